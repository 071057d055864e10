"""The write-behind audit journal: kept before the answer goes out, written to the tables exactly once, by the
owner's thread, by any reader, or by whoever finds a dead worker's file; refused lines set aside, never lost."""
from __future__ import annotations

import fcntl
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import pytest
import requests
from sqlalchemy import func, select

from cds_service import audit_journal
from cds_service.audit_journal import AuditJournal, decode, encode, journal_directory
from cds_service.crd import COVERAGE_INFO_URL
from cds_service.db import KeptCall, Storage, make_engine, migrate, storage
from cds_service.errors import StorageUnavailable
from cds_service.json_codec import Encoded
from cds_service.models import AuditJournalRow, CoverageAssertion, HookCall
from cds_service.state import service_state
from fixtures.generate.mitoxantrone import ms_request
from tests.conftest import ROOT, make_app

HOOK = "/cds-services/prior-auth-order-sign"


def _call(n: int, *, assertion: str | None = None, patient: str = "pat-1", created: datetime | None = None,
          policy: str = "mitoxantrone", hook_instance: str | None = None) -> tuple[KeptCall, bytes]:
    answer = (b'{"cards":[{"summary":"call %d","extension":{"prior-auth.evaluation":{"policy":"%s",'
              b'"order":"MedicationRequest/m-1","n":%d}}}],"systemActions":[]}') % (n, policy.encode(), n)
    rows = [{"id": assertion or f"a-{n}", "order_ref": "MedicationRequest/m-1", "coverage_ref": "Coverage/c-1",
             "policy": policy, "decision": "criteria-met", "covered": "covered", "pa_needed": "no-auth",
             "doc_needed": None, "questionnaire": None, "assertion_date": date(2026, 11, 26)}]
    call = KeptCall("prior-auth-order-sign", "order-sign", hook_instance or f"hi-{n}", patient,
                    {"hook": "order-sign", "n": n}, Encoded(answer.decode()), rows,
                    created or datetime(2026, 12, 3, 12, 0, n % 60))
    return call, answer


def _count(store: Storage, model) -> int:
    with store.session() as s:
        return s.scalar(select(func.count()).select_from(model))


def _journal_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.jsonl"))


@pytest.fixture
def quiet_thread(monkeypatch):
    """The owner's thread waits (almost) forever: a test decides who writes the journal."""
    monkeypatch.setattr(audit_journal, "GATHER_S", 3600.0)


@pytest.fixture
def journaled(db_url, tmp_path, quiet_thread) -> Iterator[tuple[Storage, AuditJournal]]:
    """A migrated store (SQLite, PostgreSQL) and a journal, wired as create_app wires them."""
    store = Storage(make_engine(db_url))
    migrate(store.engine)
    journal = AuditJournal(journal_directory(db_url, None) or tmp_path / "journal", store)
    store.settle_audit = journal.settle
    yield store, journal
    journal.close()  # as at a worker's exit, while the database is still there


def test_a_line_keeps_the_call_and_the_answer_exactly():
    call, answer = _call(7)
    line = encode(call, answer)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    back = decode(line[:-1])
    assert back.response.text == answer.decode(), "the answer is kept byte for byte as it was sent"
    assert back.assertions[0]["assertion_date"] == date(2026, 11, 26)
    assert back.created_at == call.created_at and back.request == {"hook": "order-sign", "n": 7}
    assert (back.service, back.hook, back.hook_instance, back.patient_id) == \
        ("prior-auth-order-sign", "order-sign", "hi-7", "pat-1")


def test_where_the_journal_lives():
    assert journal_directory("sqlite:////data/cds.sqlite3", None) == Path("/data/cds.sqlite3.audit-journal")
    assert journal_directory("sqlite:////data/cds.sqlite3", "off") is None
    assert journal_directory("sqlite://", None) is None  # in memory: nothing on disk to be as safe as
    assert journal_directory("postgresql+psycopg://db/cds", None) is None, "PostgreSQL opts in"
    assert journal_directory("postgresql+psycopg://db/cds", "/var/lib/cds/journal") == Path("/var/lib/cds/journal")


def test_the_answer_goes_out_once_its_line_is_in_the_file_and_a_read_then_finds_it(sqlite_url, quiet_thread):
    app = make_app(sqlite_url)
    client = app.test_client()
    request = ms_request()
    response = client.post(HOOK, json=request)
    assert response.status_code == 200
    [action] = response.get_json()["systemActions"]
    [info] = [e for e in action["resource"]["extension"] if e["url"] == COVERAGE_INFO_URL]
    [assertion_id] = [s["valueString"] for s in info["extension"] if s["url"] == "coverage-assertion-id"]
    with app.app_context():
        st, journal = storage(), service_state().journal
        [path] = _journal_files(journal.directory)
        assert path.read_bytes().count(b"\n") == 1, "kept in the journal before the answer went out"
        assert _count(st, HookCall) == 0, "and not yet in the tables: that is the thread's work"
        found = st.assertion(assertion_id)  # a read settles every journal first
        assert found is not None and found.policy == "mitoxantrone"
        [call] = st.hook_calls(request["hookInstance"])
        assert call.response_json == response.get_json(), "the answer as sent"
        journal.settle()
        assert _count(st, HookCall) == 1 and _count(st, CoverageAssertion) == 1, "written once"


def test_the_owners_thread_writes_in_batches_and_finishes_an_idle_file(journaled, monkeypatch):
    store, journal = journaled
    monkeypatch.setattr(audit_journal, "GATHER_S", 0.01)
    monkeypatch.setattr(audit_journal, "IDLE_S", 0.2)
    for n in range(5):
        journal.append(*_call(n))
    for _ in range(100):
        if not _journal_files(journal.directory) and not journal._thread_running:
            break
        threading.Event().wait(0.05)
    with store.engine.connect() as conn:  # no settle: what the thread alone wrote
        assert conn.scalar(select(func.count()).select_from(HookCall)) == 5
        assert conn.scalar(select(func.count()).select_from(AuditJournalRow)) == 0, "finished: row dropped"
    assert _journal_files(journal.directory) == [], "an idle file is finished and deleted"
    journal.append(*_call(5))
    [path] = _journal_files(journal.directory)
    assert path.name.endswith("-0002.jsonl"), "the next call starts a new file"


def test_a_gathered_batch_is_written_by_the_worker_once_its_answer_has_gone_out(sqlite_url, quiet_thread,
                                                                              monkeypatch):
    monkeypatch.setattr(audit_journal, "BATCH_LINES", 3)
    app = make_app(sqlite_url)
    client = app.test_client()
    with app.app_context():
        st = storage()
        for n in range(1, 4):
            response = client.post(HOOK, json=ms_request(instance=f"7f3a1c2e-0000-4000-8000-00000000010{n}"))
            assert response.status_code == 200
            response.close()  # what the WSGI server does once the answer is sent
            with st.engine.connect() as conn:  # no settle: what the worker wrote after answering
                written = conn.scalar(select(func.count()).select_from(HookCall))
            assert written == (3 if n == 3 else 0), f"after answer {n}"


def test_a_worker_leaves_its_batch_for_a_later_answer_while_another_writes_one(journaled, monkeypatch):
    store, journal = journaled
    monkeypatch.setattr(audit_journal, "BATCH_LINES", 2)
    for n in range(2):
        journal.append(*_call(n))
    other = os.open(journal.directory / audit_journal.BATCH_LOCK, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)  # another worker is writing its batch
        journal.after_answer()
        with store.engine.connect() as conn:  # no settle: what the worker wrote after answering
            assert conn.scalar(select(func.count()).select_from(HookCall)) == 0
    finally:
        os.close(other)  # that worker is done
    journal.append(*_call(2))
    journal.after_answer()
    with store.engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(HookCall)) == 3, "the batch waited, it was not dropped"


def test_after_a_failed_write_answers_leave_retrying_to_the_thread(journaled, monkeypatch):
    store, journal = journaled
    monkeypatch.setattr(audit_journal, "BATCH_LINES", 1)
    attempts = []

    def unavailable(*args, **kwargs):
        attempts.append(args)
        raise StorageUnavailable("down")

    monkeypatch.setattr(store, "write_journal", unavailable)
    for n in range(5):
        journal.append(*_call(n))
        journal.after_answer()  # must not raise, and must not wait on the database after each answer
    assert len(attempts) == 1
    monkeypatch.undo()  # the database is back: the fixture's close writes the lines


def test_files_past_the_rotation_size_are_finished_and_deleted(journaled, monkeypatch):
    store, journal = journaled
    monkeypatch.setattr(audit_journal, "ROTATE_BYTES", 1)
    for n in range(3):
        journal.append(*_call(n))
        journal._drain_own()
    assert _count(store, HookCall) == 3
    assert _journal_files(journal.directory) == []


def test_two_workers_settling_at_once_write_each_line_once(journaled):
    store, journal = journaled
    other = AuditJournal(journal.directory, store)  # a second worker on the same directory and database
    for n in range(40):
        journal.append(*_call(n))
    errors: list[BaseException] = []

    def settle(j: AuditJournal) -> None:
        try:
            for _ in range(5):
                j.settle()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=settle, args=(j,)) for j in (journal, other, other)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert _count(store, HookCall) == 40 and _count(store, CoverageAssertion) == 40


def test_the_newest_trace_is_the_last_answered_whichever_journal_is_written_first(journaled):
    store, journal = journaled
    other = AuditJournal(journal.directory, store)
    journal.append(*_call(1, created=datetime(2026, 12, 3, 9, 0)))
    other.append(*_call(2, created=datetime(2026, 12, 3, 10, 0)))
    other.settle()  # writes both files, in name order: which comes first in the table is by chance
    assert store.latest_trace("pat-1", "mitoxantrone")["n"] == 2
    other.close()


def test_a_line_the_tables_refuse_is_set_aside_and_the_rest_written(journaled):
    store, journal = journaled
    journal.append(*_call(1, assertion="same"))
    journal.append(*_call(2, assertion="same"))  # a second assertion with the same id: the tables refuse it
    journal.append(*_call(3))
    journal.settle()
    assert [c.hook_instance for c in store.hook_calls("hi-1") + store.hook_calls("hi-3")] == ["hi-1", "hi-3"]
    assert store.hook_calls("hi-2") == []
    [path] = _journal_files(journal.directory)
    rejected = path.with_name(path.name + ".rejected").read_bytes()
    assert decode(rejected.rstrip(b"\n")).hook_instance == "hi-2", "kept, not dropped"
    assert journal.backlog() == {"files": 1, "unwritten_bytes": 0, "rejected_files": 1}


def test_the_backlog_counts_what_the_tables_have_not_taken_yet(journaled):
    store, journal = journaled
    lines = [_call(n) for n in range(3)]
    for call, answer in lines:
        journal.append(call, answer)
    appended = sum(len(encode(call, answer)) for call, answer in lines)
    assert journal.backlog() == {"files": 1, "unwritten_bytes": appended, "rejected_files": 0}
    journal.settle()
    assert journal.backlog() == {"files": 1, "unwritten_bytes": 0, "rejected_files": 0}


def test_readiness_reports_the_journal_backlog(sqlite_url, quiet_thread):
    app = make_app(sqlite_url)
    client = app.test_client()
    assert client.get("/readyz").get_json()["audit_journal"] == {"files": 0, "unwritten_bytes": 0,
                                                                 "rejected_files": 0}
    assert client.post(HOOK, json=ms_request()).status_code == 200
    backlog = client.get("/readyz").get_json()["audit_journal"]
    assert backlog["files"] == 1 and backlog["unwritten_bytes"] > 0, "answered, not yet in the tables"
    with app.app_context():
        storage().settle_audit()
    assert client.get("/readyz").get_json()["audit_journal"]["unwritten_bytes"] == 0


def test_readiness_is_refused_when_the_backlog_cannot_be_read(sqlite_url, quiet_thread, monkeypatch):
    app = make_app(sqlite_url)
    with app.app_context():
        journal = service_state().journal

    def unavailable():
        raise StorageUnavailable("down")

    monkeypatch.setattr(journal, "backlog", unavailable)
    response = app.test_client().get("/readyz")
    assert response.status_code == 503 and response.get_json()["database"] == "unreachable"


def test_a_damaged_line_is_set_aside_too(journaled):
    store, journal = journaled
    journal.append(*_call(1))
    journal._file.append(b"not a journal line\n")
    journal.append(*_call(2))
    journal.settle()
    assert _count(store, HookCall) == 2
    [path] = _journal_files(journal.directory)
    assert path.with_name(path.name + ".rejected").read_bytes() == b"not a journal line\n"


_CRASH = """
import os, sys
from fixtures.generate.mitoxantrone import ms_request
from tests.conftest import make_app
client = make_app(sys.argv[1]).test_client()
response = client.post("/cds-services/prior-auth-order-sign", json=ms_request())
assert response.status_code == 200
from pathlib import Path
[journal] = Path(sys.argv[2]).glob("*.jsonl")
with open(journal, "ab") as f:  # a torn line: the worker dies mid-append, before that answer goes out
    f.write(b'{"service":"prior-auth-order-sign","hook":')
os._exit(0)  # no atexit, no drain: as a worker killed right after answering
"""


def test_a_dead_workers_file_is_finished_by_the_next_worker(sqlite_url, tmp_path):
    directory = journal_directory(sqlite_url, None)
    script = tmp_path / "crash.py"
    script.write_text(_CRASH)
    subprocess.run([sys.executable, str(script), sqlite_url, str(directory)], cwd=ROOT, check=True, timeout=120,
                   env={**os.environ, "PYTHONPATH": str(ROOT)})
    [orphan] = _journal_files(directory)
    with make_app(sqlite_url, CDS_AUDIT_JOURNAL_DIR="off").app_context():
        assert _count(storage(), HookCall) == 0, "nothing written by the worker that died"
    app = make_app(sqlite_url)  # the next worker to start
    with app.app_context():
        st = storage()
        assert _count(st, HookCall) == 1, "the answered call is written; the torn line was never answered"
        assert _count(st, CoverageAssertion) == 1
        assert not orphan.exists() and _count(st, AuditJournalRow) == 0


def test_a_live_workers_file_is_not_adopted(journaled):
    store, journal = journaled
    journal.append(*_call(1))
    other = AuditJournal(journal.directory, store)
    other.adopt_orphans()
    assert len(_journal_files(journal.directory)) == 1, "its owner still holds it"


def test_without_a_usable_journal_the_call_is_written_at_once(sqlite_url, tmp_path):
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("")
    app = make_app(sqlite_url, CDS_AUDIT_JOURNAL_DIR=str(blocked / "journal"))
    response = app.test_client().post(HOOK, json=ms_request())
    assert response.status_code == 200 and response.get_json()["systemActions"]
    with app.app_context():
        assert _count(storage(), HookCall) == 1


def test_postgres_outage_journaled_calls_keep_their_coverage_and_reach_the_table(postgres_server, tmp_path,
                                                                                 quiet_thread):
    app = make_app(postgres_server.new_database(), CDS_AUDIT_JOURNAL_DIR=str(tmp_path / "journal"))
    client = app.test_client()
    request = ms_request()
    postgres_server.stop()
    try:
        hook = client.post(HOOK, json=request)
        assert hook.status_code == 200 and hook.get_json()["systemActions"], "kept in the journal: acknowledged"
        with app.app_context(), pytest.raises(StorageUnavailable):  # a read cannot settle the journal now
            storage().hook_calls(request["hookInstance"])
    finally:
        postgres_server.start()
    with app.app_context():
        [call] = storage().hook_calls(request["hookInstance"])
        assert call.response_json == hook.get_json()
        service_state().journal.close()  # now, while the server is up


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_gunicorn_workers_write_their_journals_as_they_stop(sqlite_url, tmp_path):
    """Answers under the real server, then a graceful stop (as a deploy or a max-requests restart does)."""
    port = _free_port()
    env = {**os.environ, "CDS_DATABASE_URL": sqlite_url, "CDS_TODAY": "2026-11-26", "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "python:cds_service.gunicorn_conf", "-w", "2",
                               "-b", f"127.0.0.1:{port}", "cds_service:create_app()"], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                requests.get(f"{base}/healthz", timeout=1)
                break
            except requests.ConnectionError:
                threading.Event().wait(0.1)
        for n in range(4):
            body = ms_request(instance=f"7f3a1c2e-0000-4000-8000-00000000030{n}")
            assert requests.post(f"{base}{HOOK}", json=body, timeout=30).status_code == 200
    finally:
        server.terminate()
        server.wait(timeout=30)
    engine = make_engine(sqlite_url)
    with engine.connect() as conn:  # no settle: only what the workers wrote
        assert conn.scalar(select(func.count()).select_from(HookCall)) == 4
    engine.dispose()
    assert _journal_files(journal_directory(sqlite_url, None)) == []
