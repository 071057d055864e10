"""The per-call statements on the driver's cursor: the same SQL, values and errors as SQLAlchemy's own path."""
from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError, OperationalError

from cds_service.db import storage
from cds_service.direct_sql import Compiled, driver_cursor
from cds_service.models import HookCall
from tests.conftest import make_app

CALLS = HookCall.__table__
WHEN = datetime(2026, 11, 26, 9, 30, 15, 123456)


def test_a_row_written_on_the_cursor_reads_back_the_same_through_sqlalchemy_and_vice_versa(db_url):
    app = make_app(db_url)
    with app.app_context():
        engine = storage().engine
        write = Compiled(engine, insert(CALLS).returning(CALLS.c.id),
                         ("hook_instance", "service", "hook", "patient_id", "request_json", "response_json",
                          "created_at"))
        with driver_cursor(engine) as (conn, cursor):
            cursor.execute(write.sql, write.params({
                "hook_instance": "hi-1", "service": "s", "hook": "order-sign", "patient_id": None,
                "request_json": {"n": [1, 2.5, "é"]}, "response_json": {"cards": []}, "created_at": WHEN}))
            [written] = cursor.fetchone()
            conn.commit()
        with engine.connect() as conn:
            row = conn.execute(select(CALLS).where(CALLS.c.id == written)).one()
        assert (row.request_json, row.response_json, row.created_at, row.patient_id) == \
            ({"n": [1, 2.5, "é"]}, {"cards": []}, WHEN, None)

        with engine.begin() as conn:
            other = conn.execute(insert(CALLS).returning(CALLS.c.id), {
                "hook_instance": "hi-2", "service": "s", "hook": "order-select", "patient_id": "p",
                "request_json": {"k": True}, "response_json": {}, "created_at": WHEN}).scalar_one()
        read = Compiled(engine, select(CALLS).where(CALLS.c.id == other))
        with driver_cursor(engine) as (_, cursor):
            cursor.execute(read.sql, read.params({}))
            [row] = read.rows(cursor.fetchall())
        assert (row.id, row.hook, row.request_json, row.created_at) == (other, "order-select", {"k": True}, WHEN)
        assert engine.pool.checkedout() == 0


def test_parameters_take_the_drivers_paramstyle(db_url):
    app = make_app(db_url)
    with app.app_context():
        engine = storage().engine
        with engine.connect():
            pass  # the dialect learns what the server supports on its first connection
        read = Compiled(engine, select(CALLS).where(CALLS.c.hook_instance == "x", CALLS.c.patient_id == "y"))
        params = read.params({"hook_instance_1": "x", "patient_id_1": "y"})
        if engine.dialect.positional:
            assert params == ("x", "y") and read.sql.count("?") == 2
        else:
            assert params == {"hook_instance_1": "x", "patient_id_1": "y"} and "%(patient_id_1)s" in read.sql


def test_a_driver_error_is_sqlalchemys_and_says_no_values(db_url):
    app = make_app(db_url)
    with app.app_context():
        engine = storage().engine
        write = Compiled(engine, insert(CALLS), ("id", "hook_instance", "service", "hook", "patient_id",
                                                 "request_json", "response_json", "created_at"))
        values = {"id": 7, "hook_instance": "hi", "service": "s", "hook": "h", "patient_id": "Patient/secret-name",
                  "request_json": {"name": "secret-name"}, "response_json": {}, "created_at": WHEN}
        with driver_cursor(engine) as (conn, cursor):
            cursor.execute(write.sql, write.params(values))
            conn.commit()
        with pytest.raises(IntegrityError) as raised, driver_cursor(engine) as (conn, cursor):
            cursor.execute(write.sql, write.params(values))
        assert "secret-name" not in str(raised.value)
        assert engine.pool.checkedout() == 0


def test_a_connection_the_driver_calls_gone_is_invalidated_not_pooled_again(db_url, monkeypatch):
    app = make_app(db_url)
    with app.app_context():
        engine = storage().engine
        with driver_cursor(engine) as (conn, _):
            first = conn.dbapi_connection
        monkeypatch.setattr(engine.dialect, "is_disconnect", lambda *args: True)
        with pytest.raises(OperationalError), driver_cursor(engine) as (_, cursor):
            raise engine.dialect.loaded_dbapi.OperationalError("server closed the connection")
        monkeypatch.undo()
        with driver_cursor(engine) as (conn, cursor):
            assert conn.dbapi_connection is not first
            cursor.execute("SELECT 1")
            assert cursor.fetchone()[0] == 1
        assert engine.pool.checkedout() == 0
