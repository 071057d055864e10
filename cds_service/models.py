"""The tables: what the payer side must remember (audit, assertions, documentation answers, feedback, JWT ids,
and how far each audit journal has been written).

Times are naive UTC everywhere (SQLite keeps no zone; one convention on both databases keeps comparisons right).
Patient identifiers live here, never in logs.
"""
from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    """Now as naive UTC, the one time convention of every table."""
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class HookCall(Base):
    """One hook invocation and the answer given (CRD: servers retain the guidance they gave)."""

    __tablename__ = "hook_calls"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    hook_instance: Mapped[str] = mapped_column(String(128), index=True)
    service: Mapped[str] = mapped_column(String(64))
    hook: Mapped[str] = mapped_column(String(64))
    patient_id: Mapped[str | None] = mapped_column(String(256), index=True)
    request_json: Mapped[dict[str, Any]] = mapped_column(JSON)
    response_json: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    assertions: Mapped[list[CoverageAssertion]] = relationship(back_populates="hook_call")


class CoverageAssertion(Base):
    """One coverage-information extension issued: its id is the `coverage-assertion-id` a claim quotes back."""

    __tablename__ = "coverage_assertions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    hook_call_id: Mapped[int] = mapped_column(ForeignKey("hook_calls.id"), index=True)
    patient_id: Mapped[str | None] = mapped_column(String(256), index=True)
    order_ref: Mapped[str] = mapped_column(String(256))
    coverage_ref: Mapped[str] = mapped_column(String(256))
    policy: Mapped[str] = mapped_column(String(64))
    decision: Mapped[str] = mapped_column(String(32))
    covered: Mapped[str] = mapped_column(String(32))
    pa_needed: Mapped[str | None] = mapped_column(String(32))
    doc_needed: Mapped[str | None] = mapped_column(String(32))
    questionnaire: Mapped[str | None] = mapped_column(String(512))
    assertion_date: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    hook_call: Mapped[HookCall] = relationship(back_populates="assertions")


class QuestionnaireResponseRow(Base):
    """A stored documentation form (FHIR QuestionnaireResponse), as posted."""

    __tablename__ = "questionnaire_responses"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    patient_id: Mapped[str] = mapped_column(String(256), index=True)
    policy: Mapped[str] = mapped_column(String(64))
    questionnaire: Mapped[str] = mapped_column(String(512))
    status: Mapped[str] = mapped_column(String(32))
    authored: Mapped[datetime | None] = mapped_column(DateTime)
    resource_json: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    answers: Mapped[list[AnswerRow]] = relationship(back_populates="response", cascade="all, delete-orphan")


class AnswerRow(Base):
    """One answered item of a form, by patient, policy and clause id: what later evaluations read."""

    __tablename__ = "questionnaire_answers"
    __table_args__ = (Index("ix_answers_patient_policy_clause", "patient_id", "policy", "clause_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    response_id: Mapped[str] = mapped_column(ForeignKey("questionnaire_responses.id"), index=True)
    patient_id: Mapped[str] = mapped_column(String(256))
    policy: Mapped[str] = mapped_column(String(64))
    clause_id: Mapped[str] = mapped_column(String(128))
    value_type: Mapped[str] = mapped_column(String(16))  # boolean decimal integer quantity date string coding
    value_json: Mapped[Any] = mapped_column(JSON)
    unit: Mapped[str | None] = mapped_column(String(64))
    authored: Mapped[datetime | None] = mapped_column(DateTime)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    response: Mapped[QuestionnaireResponseRow] = relationship(back_populates="answers")


class Feedback(Base):
    """One CDS Hooks feedback item; the unique key makes a retried POST a no-op."""

    __tablename__ = "feedback"
    __table_args__ = (UniqueConstraint("card_uuid", "outcome", "outcome_timestamp", name="uq_feedback_card_outcome"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    service_id: Mapped[str] = mapped_column(String(64))
    card_uuid: Mapped[str] = mapped_column(String(128))
    outcome: Mapped[str] = mapped_column(String(16))
    outcome_timestamp: Mapped[str] = mapped_column(String(40))  # normalised UTC, microseconds, "Z"
    body_json: Mapped[dict[str, Any]] = mapped_column(JSON)
    override_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class SeenJti(Base):
    """JWT ids already accepted, so a replayed token is refused until it expires."""

    __tablename__ = "seen_jti"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    jti: Mapped[str] = mapped_column(String(256), unique=True)
    issuer: Mapped[str] = mapped_column(String(512))
    expires_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class AuditJournalRow(Base):
    """How far one audit journal file (audit_journal) has been written to the tables: the byte offset of the first
    line not yet written, and whether the file is finished (every line written; it may be deleted). The offset moves
    in the same transaction as the rows it covers, so a line is written exactly once whoever drains the file."""

    __tablename__ = "audit_journals"

    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    position: Mapped[int] = mapped_column(BigInteger)
    done: Mapped[bool] = mapped_column(Boolean)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
