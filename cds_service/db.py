"""The database: one engine per app from CDS_DATABASE_URL, migrations at start-up, and every read and write.

Any SQLAlchemy URL works; SQLite (a file under the instance folder) by default, PostgreSQL through
`postgresql+psycopg://`. A write that cannot reach the database raises StorageUnavailable (503): nothing is
acknowledged that was not stored.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

import orjson
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import Flask, current_app
from sqlalchemy import Engine, bindparam, create_engine, delete, event, insert, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, selectinload, sessionmaker

from . import json_codec
from .direct_sql import Compiled, driver_cursor
from .errors import StorageUnavailable
from .models import (
    AnswerRow,
    AuditJournalRow,
    CoverageAssertion,
    Feedback,
    HookCall,
    QuestionnaireResponseRow,
    SeenJti,
    utcnow,
)
from .record import Answer

log = logging.getLogger(__name__)
_UNAVAILABLE = "The database is unavailable; nothing was stored. Retry later."
_HOOK_CALLS = HookCall.__table__
_ASSERTIONS = CoverageAssertion.__table__
_ANSWERS = AnswerRow.__table__
_JOURNALS = AuditJournalRow.__table__

# The statements every hook call runs (see direct_sql), with every column given: a Python-side default is applied
# by SQLAlchemy's execution context, which these statements skip.
_INSERT_HOOK_CALL = insert(_HOOK_CALLS).returning(_HOOK_CALLS.c.id)
_HOOK_CALL_COLUMNS = tuple(c.key for c in _HOOK_CALLS.c if c.key != "id")  # the id is the database's to give
_INSERT_ASSERTIONS = insert(_ASSERTIONS)
_ASSERTION_COLUMNS = tuple(c.key for c in _ASSERTIONS.c)
# By patient only: a patient has few answers, and an IN list of policies is rendered afresh on every execution.
_SELECT_ANSWERS = select(_ANSWERS).where(_ANSWERS.c.patient_id == bindparam("patient_id")).order_by(_ANSWERS.c.id)
# A journal's progress row, locked until the transaction ends (PostgreSQL; SQLite's BEGIN IMMEDIATE locks the file).
_LOCK_JOURNAL = (select(_JOURNALS.c.position, _JOURNALS.c.done).where(_JOURNALS.c.name == bindparam("name"))
                 .with_for_update())
_MOVE_JOURNAL = (update(_JOURNALS).where(_JOURNALS.c.name == bindparam("journal"))
                 .values(position=bindparam("new_position"), done=bindparam("new_done"), updated_at=bindparam("now")))


@dataclass(frozen=True)
class KeptCall:
    """One hook call as the audit keeps it: the request (without its record), the answer sent, the coverage
    assertions issued (`Assertion.row()`s) and when it was answered."""

    service: str
    hook: str
    hook_instance: str
    patient_id: str | None
    request: Mapping[str, Any]
    response: Mapping[str, Any] | json_codec.Encoded
    assertions: Sequence[Mapping[str, Any]]
    created_at: datetime


JournalReader = Callable[[int], tuple[list[KeptCall], int]]  # position -> (calls read, position after them)


class _HotStatements:
    """The per-call statements compiled for one engine's dialect (after its first connection has told the
    dialect what the server supports, e.g. RETURNING)."""

    def __init__(self, engine: Engine):
        self.insert_call = Compiled(engine, _INSERT_HOOK_CALL, _HOOK_CALL_COLUMNS)
        self.insert_assertion = Compiled(engine, _INSERT_ASSERTIONS, _ASSERTION_COLUMNS)
        self.select_answers = Compiled(engine, _SELECT_ANSWERS)
        dialect_insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
        self.claim_journal = Compiled(engine, dialect_insert(_JOURNALS).on_conflict_do_nothing(index_elements=["name"]),
                                      ("name", "position", "done", "updated_at"))
        self.lock_journal = Compiled(engine, _LOCK_JOURNAL)
        self.move_journal = Compiled(engine, _MOVE_JOURNAL)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_PG_MIGRATION_LOCK = 4_127_310_581  # any constant: serialises start-up migrations of several workers


def default_url(app: Flask) -> str:
    """The SQLite file under the instance folder, creating the folder if missing."""
    folder = Path(app.instance_path)
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'cds.sqlite3'}"


def _json_column(value: Any) -> Any:
    """A JSON column's value; SQLite hands a bare number back as a number (its NUMERIC affinity), not text."""
    return orjson.loads(value) if isinstance(value, (str, bytes)) else value


def make_engine(url: str) -> Engine:
    """An engine that notices dead connections (PostgreSQL restarts) and gives up connecting quickly.

    JSON columns are written with orjson: a hook call's answer (every card and its trace) is serialised on each
    call, and the standard library took ten times as long.
    """
    codec = {"json_serializer": json_codec.dumps_text, "json_deserializer": _json_column}
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 15}, **codec)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            # WAL: readers never wait for the writer, and a commit appends to the log instead of rewriting pages.
            # synchronous=NORMAL keeps every committed row through a crash of the service; only a power loss can
            # drop the last commits. PostgreSQL is the store for deployments that need more.
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            # Copy the log into the file every 10,000 pages (40 MB), not 1,000: hook calls are written in batches
            # off the answer's path (audit_journal), where a longer checkpoint delays no one, and pages written
            # again and again (indexes, the table's last page) are copied once. Half the CPU per row, in process.
            cursor.execute("PRAGMA wal_autocheckpoint=10000")
            cursor.close()
        return engine
    connect_args = {"connect_timeout": 3} if url.startswith("postgresql") else {}
    return create_engine(url, pool_pre_ping=True, connect_args=connect_args, **codec)


def alembic_config(url: str) -> Config:
    """Alembic's configuration built in code: the scripts inside the package, the URL from our settings."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["url"] = url
    return cfg


def migrate(engine: Engine) -> str:
    """Bring the schema to the newest revision; safe when several workers start at once. Returns the revision."""
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    head = ScriptDirectory.from_config(cfg).get_current_head()
    for attempt in range(3):
        try:
            with engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
                if MigrationContext.configure(conn).get_current_revision() != head:
                    cfg.attributes["connection"] = conn
                    command.upgrade(cfg, "head")
            return head or ""
        except SQLAlchemyError:
            # Another worker migrating the same SQLite file at the same moment: wait and look again.
            if attempt == 2:
                raise
            time.sleep(0.5 * (attempt + 1))
    return head or ""


def _naive_utc(moment: datetime | None) -> datetime | None:
    if moment is None or moment.tzinfo is None:
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)


class Storage:
    """Every read and write the service makes, each in its own short transaction."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.sessions = sessionmaker(engine, expire_on_commit=False)
        # Called before the audit tables are read: with a write-behind journal (audit_journal), writes every hook
        # call already answered, so a read sees each of them.
        self.settle_audit: Callable[[], None] = _nothing

    @cached_property
    def _hot(self) -> _HotStatements:
        return _HotStatements(self.engine)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A committed-or-rolled-back session; database unreachable -> StorageUnavailable."""
        session = self.sessions()
        try:
            yield session
            session.commit()
        except IntegrityError:
            session.rollback()
            raise
        except DBAPIError as exc:
            session.rollback()
            raise StorageUnavailable(_UNAVAILABLE) from exc
        finally:
            session.close()

    def ping(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except SQLAlchemyError:
            return False

    # --- audit -------------------------------------------------------------------------------

    def record_hook_call(self, *, service: str, hook: str, hook_instance: str, patient_id: str | None,
                         request: Mapping[str, Any], response: Mapping[str, Any] | json_codec.Encoded,
                         assertions: Iterable[Mapping[str, Any]]) -> int:
        """Keep one invocation, its answer (decoded, or as the JSON sent) and the coverage assertions it issued (all
        or nothing), now. Returns the call's row id."""
        return self.record_call(KeptCall(service, hook, hook_instance, patient_id or None, request, response,
                                         tuple(assertions), utcnow()))

    def record_call(self, call: KeptCall) -> int:
        """`record_hook_call` of a KeptCall, on the driver's cursor (direct_sql): the transaction begins with the
        first statement and is rolled back, when it was not committed, as the connection goes back to the pool."""
        try:
            with driver_cursor(self.engine) as (conn, cursor):
                [call_id] = self._insert_calls(cursor, [call])
                conn.commit()
        except IntegrityError:
            raise
        except DBAPIError as exc:
            raise StorageUnavailable(_UNAVAILABLE) from exc
        return call_id

    def write_journal(self, name: str, read: JournalReader, *, finish: bool = False) -> tuple[int, bool]:
        """Write the next part of an audit journal, exactly once: in one transaction, lock the journal's progress
        row, `read(position)` the calls that follow, insert them and move the position past them. `finish` marks
        the journal done (its owner appends no more and `read` reached its end). Returns the position and whether
        the journal was done before this call. IntegrityError / DataError: a line the tables refuse; whatever
        `read` raises passes through (the transaction rolled back)."""
        try:
            with driver_cursor(self.engine) as (conn, cursor):
                hot = self._hot
                if self.engine.dialect.name == "sqlite":
                    cursor.execute("BEGIN IMMEDIATE")  # two drainers of one journal: the second waits here
                now = utcnow()
                cursor.execute(hot.claim_journal.sql, hot.claim_journal.params(
                    {"name": name, "position": 0, "done": False, "updated_at": now}))
                cursor.execute(hot.lock_journal.sql, hot.lock_journal.params({"name": name}))
                position, done = cursor.fetchone()
                if done:
                    return position, True
                calls, after = read(position)
                if calls:
                    self._insert_calls(cursor, calls)
                if after != position or finish:
                    cursor.execute(hot.move_journal.sql, hot.move_journal.params(
                        {"journal": name, "new_position": after, "new_done": finish, "now": now}))
                conn.commit()
                return after, False
        except (IntegrityError, DataError):
            raise
        except DBAPIError as exc:
            raise StorageUnavailable(_UNAVAILABLE) from exc

    def journal_positions(self) -> dict[str, int]:
        """How far each audit journal has been written to the tables (byte offset), by file name."""
        with self.session() as s:
            rows = s.execute(select(AuditJournalRow.name, AuditJournalRow.position))
            return {name: position for name, position in rows}

    def forget_journal(self, name: str) -> None:
        """Drop a finished journal's progress row (its file is deleted first)."""
        with self.session() as s:
            s.execute(delete(AuditJournalRow).where(AuditJournalRow.name == name))

    def _insert_calls(self, cursor: Any, calls: Sequence[KeptCall]) -> list[int]:
        """Insert hook calls and their assertions on a driver cursor (direct_sql), inside the caller's transaction."""
        hot = self._hot
        ids: list[int] = []
        rows = []
        for call in calls:
            answer = call.response if call.response.__class__ is json_codec.Encoded else dict(call.response)
            cursor.execute(hot.insert_call.sql, hot.insert_call.params({
                "hook_instance": call.hook_instance, "service": call.service, "hook": call.hook,
                "patient_id": call.patient_id, "request_json": dict(call.request), "response_json": answer,
                "created_at": call.created_at}))
            call_id = cursor.fetchone()[0]
            ids.append(call_id)
            rows += [hot.insert_assertion.params({**a, "hook_call_id": call_id, "patient_id": call.patient_id,
                                                 "created_at": call.created_at}) for a in call.assertions]
        if rows:
            cursor.executemany(hot.insert_assertion.sql, rows)
        return ids

    def hook_calls(self, hook_instance: str) -> list[HookCall]:
        """The calls of one hookInstance, in the order they were answered."""
        self.settle_audit()
        with self.session() as s:
            return list(s.scalars(select(HookCall).where(HookCall.hook_instance == hook_instance)
                                  .options(selectinload(HookCall.assertions))
                                  .order_by(HookCall.created_at, HookCall.id)))

    def assertion(self, assertion_id: str) -> CoverageAssertion | None:
        self.settle_audit()
        with self.session() as s:
            return s.get(CoverageAssertion, assertion_id)

    def latest_trace(self, patient_id: str, policy: str, order_ref: str | None = None,
                     assertion_id: str | None = None) -> dict[str, Any] | None:
        """The newest evaluation trace kept for this patient and policy (and order, or assertion), if any. Newest by
        the time it was answered: journals of several workers reach the table in no particular order."""
        self.settle_audit()
        with self.session() as s:
            query = (select(HookCall).where(HookCall.patient_id == patient_id)
                     .order_by(HookCall.created_at.desc(), HookCall.id.desc()))
            if assertion_id:
                found = s.get(CoverageAssertion, assertion_id)
                if found is None:
                    return None
                query = select(HookCall).where(HookCall.id == found.hook_call_id)
                order_ref = order_ref or found.order_ref
            for call in s.scalars(query.limit(50)):
                for card in call.response_json.get("cards", []):
                    trace = (card.get("extension") or {}).get("prior-auth.evaluation") or {}
                    if trace.get("policy") == policy and (order_ref is None or trace.get("order") == order_ref):
                        return trace
        return None

    # --- documentation answers ---------------------------------------------------------------

    def save_questionnaire_response(self, *, response_id: str, patient_id: str, policy: str, questionnaire: str,
                                    status: str, authored: datetime | None, resource: Mapping[str, Any],
                                    answers: Iterable[Mapping[str, Any]]) -> None:
        with self.session() as s:
            row = QuestionnaireResponseRow(id=response_id, patient_id=patient_id, policy=policy,
                                           questionnaire=questionnaire, status=status,
                                           authored=_naive_utc(authored), resource_json=dict(resource))
            row.answers = [AnswerRow(patient_id=patient_id, policy=policy, authored=_naive_utc(authored), **a)
                           for a in answers]
            s.add(row)

    def questionnaire_response(self, response_id: str) -> dict[str, Any] | None:
        with self.session() as s:
            row = s.get(QuestionnaireResponseRow, response_id)
            return dict(row.resource_json) if row else None

    def answers_for(self, patient_id: str, policies: Iterable[str]) -> dict[str, Answer]:
        """{'<policy>:<clause id>': Answer}: the newest answer to each clause (authored, then stored, order)."""
        policies = list(policies)
        if not patient_id or not policies:
            return {}
        # On the driver's cursor (direct_sql); a read needs no transaction of its own.
        try:
            with driver_cursor(self.engine) as (_, cursor):
                select_answers = self._hot.select_answers
                cursor.execute(select_answers.sql, select_answers.params({"patient_id": patient_id}))
                rows = select_answers.rows(cursor.fetchall())
        except DBAPIError as exc:
            raise StorageUnavailable(_UNAVAILABLE) from exc
        wanted = set(policies)
        out: dict[str, Answer] = {}
        for row in sorted((r for r in rows if r.policy in wanted), key=lambda r: (r.authored or r.created_at, r.id)):
            out[f"{row.policy}:{row.clause_id}"] = _answer(row)
        return out

    # --- feedback ----------------------------------------------------------------------------

    def save_feedback(self, service_id: str, items: Iterable[Mapping[str, Any]]) -> int:
        """Store each feedback item once; returns how many were new (a retried POST stores nothing twice)."""
        new = 0
        for item in items:
            try:
                with self.session() as s:
                    s.add(Feedback(service_id=service_id, **item))
                new += 1
            except IntegrityError:
                continue  # the same card, outcome and time: already stored
        return new

    def feedback_count(self) -> int:
        with self.session() as s:
            return len(list(s.scalars(select(Feedback.id))))

    # --- JWT replay --------------------------------------------------------------------------

    def remember_jti(self, jti: str, issuer: str, expires_at: datetime) -> bool:
        """Record a JWT id; False when it was seen before (a replay). Expired ids are forgotten first."""
        now = utcnow()
        try:
            with self.session() as s:
                s.execute(delete(SeenJti).where(SeenJti.expires_at < now))
            with self.session() as s:
                s.add(SeenJti(jti=jti, issuer=issuer, expires_at=_naive_utc(expires_at)))
            return True
        except IntegrityError:
            return False


def _nothing() -> None:
    return None


def _answer(row: Any) -> Answer:
    """An AnswerRow (or a Core row of its table) as the evaluator's Answer."""
    value = row.value_json
    if row.value_type == "boolean":
        value = bool(value)
    elif row.value_type in ("decimal", "integer", "quantity") and value is not None:
        value = float(value)
    authored: date | None = (row.authored or row.created_at).date()
    return Answer(row.clause_id, value, unit=row.unit, authored=authored,
                  source=f"QuestionnaireResponse/{row.response_id}")


def init_app(app: Flask) -> Storage:
    """Create the app's one engine from CDS_DATABASE_URL and migrate the schema (unless told not to)."""
    url = app.config.get("CDS_DATABASE_URL") or default_url(app)
    app.config["CDS_DATABASE_URL"] = url
    store = Storage(make_engine(url))
    if app.config.get("CDS_MIGRATE_ON_START", True):
        migrate(store.engine)
    app.extensions["cds_storage"] = store
    return store


def storage() -> Storage:
    """The current app's storage."""
    return current_app.extensions["cds_storage"]


def remember_jti(jti: str, issuer: str, expires_at: datetime) -> bool:
    """Record a JWT id for the current app; False on a replay. Raises StorageUnavailable when the database is down."""
    return storage().remember_jti(jti, issuer, expires_at)
