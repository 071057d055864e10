"""The audit trail's write-behind journal: a hook call is kept in a local file before its answer goes out, and
written to the tables in batches after answers have gone out, off the answer's path.

Writing each call to the database while its answer waited cost a sixth of a call's time at 200 resources (a
commit per call, and now and then a WAL checkpoint's fsync inside someone's answer). Appending one line to a file
is one system call, and a line in the file is as safe as a row committed with SQLite's synchronous=NORMAL: it
survives a crash of the service, not a power loss. So nothing acknowledged is lost: the answer, and the coverage
assertion ids in it, goes out only once its line is in the file.

Each worker appends to files of its own (`<host>-<pid>-<random>-<n>.jsonl`) and holds an exclusive flock on each
while it is its owner. A line is written to the tables exactly once, whoever writes it: the file's progress row
(models.AuditJournalRow) is locked by the transaction that inserts the lines and moves the offset past them.
- The owner writes BATCH_LINES gathered lines once its next answer has gone out (`after_answer`), or after a
  later answer when another worker is writing a batch just then (BATCH_LOCK: no worker waits for another); its thread
  writes a quiet worker's lines after GATHER_S. A file past ROTATE_BYTES, or one idle for IDLE_S, is finished
  (written to its end, deleted) and the next append starts a new one.
- Every read of the audit tables first writes every journal in the directory to its end (`settle`), so a
  coverage-assertion-id is found the moment after its answer went out, whichever worker gave it.
- The files of a worker that died (their flock is free) are finished by the next worker that starts or looks.
- A line the tables refuse (a value too long for its column) goes to `<file>.rejected` and is logged by file and
  offset, never dropped; while the database is down, lines wait in the file and the thread retries.
This is the default only where the database is on the same disk (a SQLite file). A PostgreSQL deployment opts in
with CDS_AUDIT_JOURNAL_DIR, knowing that lines wait on that host's disk until the database takes them.
"""
from __future__ import annotations

import atexit
import fcntl
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path

import orjson
from sqlalchemy.exc import DataError, IntegrityError

from . import json_codec
from .db import KeptCall, Storage
from .errors import StorageUnavailable

log = logging.getLogger(__name__)

SUFFIX = ".jsonl"
ROTATE_BYTES = 16 * 1024 * 1024  # a file past this is finished and a new one started
GATHER_S = 0.5  # the thread writes lines that have waited this long (a quiet worker's) in one transaction
BATCH_LINES = 16  # once this many lines wait, the worker writes them after its next answer has gone out
IDLE_S = 5.0  # a worker with no call for this long finishes its file and stops its thread
BATCH_BYTES = 4 * 1024 * 1024  # at most this much of a file per transaction
RETRY_AFTER_S = 10.0  # after a failed write, answers leave retrying to the thread for this long
ADOPT_EVERY_S = 30.0  # how often a working thread looks for the files of workers that died
BATCH_LOCK = ".batch.lock"  # held by the worker writing a batch after its answer (see after_answer)
_SEPARATOR = b"\t"  # between a line's call and its answer: compact JSON holds no raw tab or newline


class _Refused(Exception):
    """A line that is not a journal line (a damaged file): set aside as a line the tables refuse is."""


def encode(call: KeptCall, answer: bytes) -> bytes:
    """One journal line: the call's fields as JSON, a tab, the answer's JSON exactly as sent, a newline."""
    fields = {"service": call.service, "hook": call.hook, "hook_instance": call.hook_instance,
              "patient_id": call.patient_id, "request": call.request, "created_at": call.created_at,
              "assertions": call.assertions}
    return json_codec.dumps_bytes(fields) + _SEPARATOR + answer + b"\n"


def decode(line: bytes) -> KeptCall:
    """A journal line (without its newline) as the call it keeps; _Refused when it is not one."""
    try:
        head, sep, answer = line.partition(_SEPARATOR)
        if not sep:
            raise ValueError("no answer")
        fields = orjson.loads(head)
        assertions = [{**a, "assertion_date": date.fromisoformat(a["assertion_date"])} for a in fields["assertions"]]
        return KeptCall(fields["service"], fields["hook"], fields["hook_instance"], fields["patient_id"],
                        fields["request"], json_codec.Encoded(answer), assertions,
                        datetime.fromisoformat(fields["created_at"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise _Refused(f"not a journal line: {type(exc).__name__}") from None


def journal_directory(database_url: str, configured: str | None) -> Path | None:
    """Where journals live: CDS_AUDIT_JOURNAL_DIR ("off": nowhere), else beside a SQLite file, else nowhere."""
    if configured:
        return None if configured.lower() == "off" else Path(configured)
    prefix = "sqlite:///"
    if database_url.startswith(prefix) and database_url[len(prefix):] not in ("", ":memory:"):
        return Path(database_url[len(prefix):] + ".audit-journal")
    return None


class _OwnFile:
    """A file this worker appends to, open and flock'ed while the worker is its owner."""

    def __init__(self, path: Path):
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # a worker adopting orphans took the new, empty file first: it finishes it
            os.close(self.fd)
            raise
        self.size = 0

    def append(self, line: bytes) -> None:
        """The whole line or nothing: a short write (disk full) is cut off again, so no torn line stays."""
        try:
            written = os.write(self.fd, line)
        except OSError:
            os.ftruncate(self.fd, self.size)
            raise
        if written != len(line):
            os.ftruncate(self.fd, self.size)
            raise OSError(f"short write to the audit journal ({written} of {len(line)} bytes)")
        self.size += written

    def close(self) -> None:
        os.close(self.fd)


class AuditJournal:
    """Hook calls appended here are written to `store` off the answer's path (see the module doc)."""

    def __init__(self, directory: Path, store: Storage):
        self.directory = directory
        self.store = store
        self._lock = threading.Lock()  # appends, and which file is appended to
        self._drain_lock = threading.RLock()  # writing own files (after an answer, the thread, an idle stop, exit)
        self._waiting = 0  # lines appended since the own files were last written
        self._drained_at = 0.0  # when they were (time.monotonic)
        self._retry_at = 0.0  # after a failure, answers leave the writing to the thread until then
        self._pid: int | None = None  # the process the own files belong to
        self._stem = ""
        self._number = 0
        self._file: _OwnFile | None = None
        self._retired: list[_OwnFile] = []  # own files no longer appended to, not yet finished
        self._written: dict[str, int] = {}  # how far each file is known to be written (saves a transaction)
        self._thread_running = False
        self._wake = threading.Event()
        self._exiting = False
        atexit.register(self.close)

    # --- the answer's path ---------------------------------------------------------------------

    def append(self, call: KeptCall, answer: bytes) -> None:
        """Keep one call: once this returns its line is in the file. OSError when it could not be kept."""
        line = encode(call, answer)
        with self._lock:
            if self._pid != os.getpid():  # the first append of this process (or after a fork): nothing is ours
                self._pid, self._stem, self._number = os.getpid(), _stem(), 0
                self._file, self._retired = None, []
            if self._file is None:
                self.directory.mkdir(parents=True, exist_ok=True)
                self._file = self._new_file()
            self._file.append(line)
            self._waiting += 1
            if not self._thread_running:
                self._thread_running = True
                threading.Thread(target=self._run, name="audit-journal", daemon=True).start()
        self._wake.set()

    def after_answer(self) -> None:
        """Called once an answer has gone out: with a batch gathered, the worker writes it now, between calls, so
        that no thread competes with the next answer. Never raises: the thread retries what fails here.

        While another worker is writing its batch, this one leaves its own for after its next answer: waiting
        for that worker's transaction would sleep in SQLite's busy handler (a millisecond or more, however soon
        the lock frees) while the next call waits to be accepted."""
        if self._waiting < BATCH_LINES or time.monotonic() < self._retry_at:
            return
        if not self._drain_lock.acquire(blocking=False):
            return
        try:
            with _batch_turn(self.directory) as mine:
                if mine:
                    self._drain_own()
        except Exception as exc:
            # An unreachable database can take its connect timeout to say so: answers stop trying for a while.
            self._retry_at = time.monotonic() + RETRY_AFTER_S
            log.warning("audit journal not written yet; the thread retries",
                        extra={"event": "audit.journal_retry", "error": type(exc).__name__})
        finally:
            self._drain_lock.release()

    def _new_file(self) -> _OwnFile:
        self._number += 1
        own = _OwnFile(self.directory / f"{self._stem}-{self._number:04d}{SUFFIX}")
        self._written[own.path.name] = 0
        return own

    # --- writing to the tables -----------------------------------------------------------------

    def settle(self) -> None:
        """Write every journal in the directory to its end, so that a read of the audit tables sees every call
        answered so far by any worker. StorageUnavailable when the database is down."""
        for path in sorted(self.directory.glob(f"*{SUFFIX}")):
            self._write(path, finish=False)

    def backlog(self) -> dict[str, int]:
        """What waits in the directory, for operators (`/readyz`): journal files, the bytes of their lines not yet
        in the tables, and files of lines the tables refused (`*.rejected`, to be looked at by a person).
        StorageUnavailable when the database is down."""
        written = self.store.journal_positions()
        files = unwritten = 0
        for path in self.directory.glob(f"*{SUFFIX}"):
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                continue  # finished and deleted meanwhile
            files += 1
            unwritten += max(0, size - written.get(path.name, 0))
        rejected = sum(1 for _ in self.directory.glob(f"*{SUFFIX}.rejected"))
        return {"files": files, "unwritten_bytes": unwritten, "rejected_files": rejected}

    def close(self) -> None:
        """At exit: finish this worker's files (left for another worker when the database is down)."""
        self._exiting = True
        self._wake.set()
        if self._pid != os.getpid():
            return
        with self._lock:
            self._retire_current()
        try:
            self._finish_retired()
        except StorageUnavailable:
            log.warning("audit journal left for another worker: database unavailable",
                        extra={"event": "audit.journal_deferred"})

    def _run(self) -> None:
        failures = 0
        adopted_at = time.monotonic() - ADOPT_EVERY_S
        while not self._exiting:
            if not self._wake.wait(timeout=IDLE_S) and self._stop_if_idle():
                return
            time.sleep(GATHER_S)
            if time.monotonic() - self._drained_at < GATHER_S:
                continue  # the worker writes batches after its answers: leave it to them, look again later
            self._wake.clear()
            try:
                self._drain_own()
                if time.monotonic() - adopted_at >= ADOPT_EVERY_S:
                    self.adopt_orphans()
                    adopted_at = time.monotonic()
                if failures:
                    log.info("audit journal written again", extra={"event": "audit.journal_resumed"})
                failures = 0
            except Exception as exc:  # the thread outlives any one failure; the lines wait in their file
                failures += 1
                if failures == 1:
                    log.warning("audit journal not written yet; retrying",
                                extra={"event": "audit.journal_retry", "error": type(exc).__name__})
                time.sleep(min(30.0, 0.25 * 2 ** min(failures, 7)))
                self._wake.set()

    def _stop_if_idle(self) -> bool:
        """No call for IDLE_S: finish the own files and stop (the next append starts a file and a thread)."""
        with self._lock:
            if self._wake.is_set():
                return False
            self._retire_current()
            self._thread_running = False
        try:
            self._finish_retired()
        except Exception as exc:  # the files stay ours; the next thread, or the exit, finishes them
            log.warning("audit journal not finished yet", extra={"event": "audit.journal_retry",
                                                                 "error": type(exc).__name__})
        return True

    def _retire_current(self) -> None:
        """(Under self._lock.) Append no more to the current file."""
        if self._file is not None:
            self._retired.append(self._file)
            self._file = None

    def _drain_own(self) -> None:
        with self._drain_lock:
            with self._lock:
                current = self._file
                if current is not None and current.size >= ROTATE_BYTES:
                    self._retire_current()
                    current = None
                self._waiting = 0
                self._drained_at = time.monotonic()
            if current is not None:
                self._write(current.path, finish=False)
            self._finish_retired()

    def _finish_retired(self) -> None:
        """Write the own files nothing is appended to any more to their end; delete and unlock them."""
        with self._drain_lock:
            while self._retired:
                retired = self._retired[0]
                self._write(retired.path, finish=True)
                self._forget(retired.path)
                retired.close()
                self._retired.pop(0)

    def adopt_orphans(self) -> None:
        """Finish the files of workers that died: their flock is free (a live owner's, own files included, is not).
        At start-up and every ADOPT_EVERY_S while calls come. StorageUnavailable when the database is down."""
        for path in sorted(self.directory.glob(f"*{SUFFIX}")):
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            try:
                self._write(path, finish=True)
                self._forget(path)
                log.info("audit journal of a stopped worker written", extra={"event": "audit.journal_adopted"})
            finally:
                os.close(fd)

    def _forget(self, path: Path) -> None:
        """A finished file: deleted, then its progress row (a drainer that finds neither finds nothing to do)."""
        path.unlink(missing_ok=True)
        self._written.pop(path.name, None)
        self.store.forget_journal(path.name)

    def _write(self, path: Path, *, finish: bool) -> None:
        """Write one file from its progress row's offset to its end, a batch per transaction. `finish`: it gets no
        more lines, so it is marked done (a torn last line, whose writer died before its answer went out, is left)."""
        name = path.name
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return
        if not finish and self._written.get(name) == size:
            return
        try:
            while True:
                reader = _Reader(path)
                try:
                    position, was_done = self.store.write_journal(name, reader.read)
                except (_Refused, IntegrityError, DataError) as exc:  # StorageUnavailable passes: lines wait
                    self._write_one_by_one(path, exc)
                    continue
                self._written[name] = size if was_done else position
                if was_done or reader.at_end:
                    break
            if finish:
                self.store.write_journal(name, _nothing_more, finish=True)
        except FileNotFoundError:
            return  # finished and deleted meanwhile by its owner

    def _write_one_by_one(self, path: Path, error: Exception) -> None:
        """A batch the tables refused: its lines one per transaction, and the one refused set aside."""
        while True:
            reader = _Reader(path, lines=1)
            try:
                self.store.write_journal(path.name, reader.read)
            except (_Refused, IntegrityError, DataError):
                self.store.write_journal(path.name, lambda at: _set_aside(path, at, error))
                return
            if reader.at_end:
                return


class _Reader:
    """Reads a journal's complete lines from an offset, inside the transaction that holds its progress row."""

    def __init__(self, path: Path, lines: int | None = None):
        self.path = path
        self.lines = lines
        self.at_end = True

    def read(self, position: int) -> tuple[list[KeptCall], int]:
        fd = os.open(self.path, os.O_RDONLY)
        try:  # exactly what is there: a read of BATCH_BYTES would allocate that much each time
            chunk = os.pread(fd, max(0, min(os.fstat(fd).st_size - position, BATCH_BYTES + 1)), position)
        finally:
            os.close(fd)
        self.at_end = len(chunk) <= BATCH_BYTES
        end = chunk.rfind(b"\n") + 1  # complete lines only: the last may still be being appended
        calls: list[KeptCall] = []
        start = 0
        while start < end and (self.lines is None or len(calls) < self.lines):
            stop = chunk.index(b"\n", start)
            calls.append(decode(chunk[start:stop]))
            start = stop + 1
        if start < end:
            self.at_end = False
        return calls, position + start


def _nothing_more(position: int) -> tuple[list[KeptCall], int]:
    return [], position


def _set_aside(path: Path, position: int, error: Exception) -> tuple[list[KeptCall], int]:
    """Copy the refused line at `position` to `<file>.rejected` (synced) and step past it."""
    with open(path, "rb") as f:
        f.seek(position)
        line = f.readline()
    with open(path.with_name(path.name + ".rejected"), "ab") as out:
        out.write(line)
        out.flush()
        os.fsync(out.fileno())
    log.error("audit journal line refused by the database; kept in the .rejected file",
              extra={"event": "audit.journal_rejected", "journal": path.name, "offset": position,
                     "error": type(error).__name__})
    return [], position + len(line)


@contextmanager
def _batch_turn(directory: Path) -> Iterator[bool]:
    """Whether this worker may write its batch now: True while it holds the directory's batch lock (an flock, so a
    worker that dies lets go of it), False at once while another worker holds it."""
    fd = os.open(directory / BATCH_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)  # releases the flock


def _stem() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"

