"""audit journals: how far each write-behind journal of hook calls has been written

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03 12:20:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('audit_journals',
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('position', sa.BigInteger(), nullable=False),
    sa.Column('done', sa.Boolean(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )


def downgrade() -> None:
    op.drop_table('audit_journals')
