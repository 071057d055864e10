"""initial schema: audit, assertions, answers, feedback, seen jti

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-26 10:49:07.697669
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('feedback',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('service_id', sa.String(length=64), nullable=False),
    sa.Column('card_uuid', sa.String(length=128), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('outcome_timestamp', sa.String(length=40), nullable=False),
    sa.Column('body_json', sa.JSON(), nullable=False),
    sa.Column('override_reason', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('card_uuid', 'outcome', 'outcome_timestamp', name='uq_feedback_card_outcome')
    )
    op.create_table('hook_calls',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('hook_instance', sa.String(length=128), nullable=False),
    sa.Column('service', sa.String(length=64), nullable=False),
    sa.Column('hook', sa.String(length=64), nullable=False),
    sa.Column('patient_id', sa.String(length=256), nullable=True),
    sa.Column('request_json', sa.JSON(), nullable=False),
    sa.Column('response_json', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('hook_calls', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_hook_calls_hook_instance'), ['hook_instance'], unique=False)
        batch_op.create_index(batch_op.f('ix_hook_calls_patient_id'), ['patient_id'], unique=False)

    op.create_table('questionnaire_responses',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('patient_id', sa.String(length=256), nullable=False),
    sa.Column('policy', sa.String(length=64), nullable=False),
    sa.Column('questionnaire', sa.String(length=512), nullable=False),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('authored', sa.DateTime(), nullable=True),
    sa.Column('resource_json', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('questionnaire_responses', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_questionnaire_responses_patient_id'), ['patient_id'], unique=False)

    op.create_table('seen_jti',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('jti', sa.String(length=256), nullable=False),
    sa.Column('issuer', sa.String(length=512), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('jti')
    )
    with op.batch_alter_table('seen_jti', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_seen_jti_expires_at'), ['expires_at'], unique=False)

    op.create_table('coverage_assertions',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('hook_call_id', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.String(length=256), nullable=True),
    sa.Column('order_ref', sa.String(length=256), nullable=False),
    sa.Column('coverage_ref', sa.String(length=256), nullable=False),
    sa.Column('policy', sa.String(length=64), nullable=False),
    sa.Column('decision', sa.String(length=32), nullable=False),
    sa.Column('covered', sa.String(length=32), nullable=False),
    sa.Column('pa_needed', sa.String(length=32), nullable=True),
    sa.Column('doc_needed', sa.String(length=32), nullable=True),
    sa.Column('questionnaire', sa.String(length=512), nullable=True),
    sa.Column('assertion_date', sa.Date(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['hook_call_id'], ['hook_calls.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('coverage_assertions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_coverage_assertions_hook_call_id'), ['hook_call_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_coverage_assertions_patient_id'), ['patient_id'], unique=False)

    op.create_table('questionnaire_answers',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('response_id', sa.String(length=64), nullable=False),
    sa.Column('patient_id', sa.String(length=256), nullable=False),
    sa.Column('policy', sa.String(length=64), nullable=False),
    sa.Column('clause_id', sa.String(length=128), nullable=False),
    sa.Column('value_type', sa.String(length=16), nullable=False),
    sa.Column('value_json', sa.JSON(), nullable=False),
    sa.Column('unit', sa.String(length=64), nullable=True),
    sa.Column('authored', sa.DateTime(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['response_id'], ['questionnaire_responses.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('questionnaire_answers', schema=None) as batch_op:
        batch_op.create_index('ix_answers_patient_policy_clause', ['patient_id', 'policy', 'clause_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_questionnaire_answers_response_id'), ['response_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('questionnaire_answers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_questionnaire_answers_response_id'))
        batch_op.drop_index('ix_answers_patient_policy_clause')

    op.drop_table('questionnaire_answers')
    with op.batch_alter_table('coverage_assertions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_coverage_assertions_patient_id'))
        batch_op.drop_index(batch_op.f('ix_coverage_assertions_hook_call_id'))

    op.drop_table('coverage_assertions')
    with op.batch_alter_table('seen_jti', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_seen_jti_expires_at'))

    op.drop_table('seen_jti')
    with op.batch_alter_table('questionnaire_responses', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_questionnaire_responses_patient_id'))

    op.drop_table('questionnaire_responses')
    with op.batch_alter_table('hook_calls', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_hook_calls_patient_id'))
        batch_op.drop_index(batch_op.f('ix_hook_calls_hook_instance'))

    op.drop_table('hook_calls')
    op.drop_table('feedback')
