"""Statements compiled once by SQLAlchemy and run on the database driver's own cursor.

Every hook call reads the patient's documentation answers and writes its audit row. Through a Core
`Connection` each statement also builds an execution context, a result object and its metadata, and on a
worker whose caches a 200 KB chart has just churned that bookkeeping costs more than the database: in
process, on the benchmark's 200-resource mix (SQLite), the read went from 260 to 100 us and the audit write
from 650 to 440 us on the driver's cursor. So those statements are compiled here once per engine:
SQLAlchemy still writes the SQL for the dialect, orders the parameters for its paramstyle and converts each
column's values (JSON, dates) exactly as it would itself; the pool, its pre-ping and its connect events
still apply. Driver errors come out as SQLAlchemy's (IntegrityError, OperationalError, ...), with the
connection invalidated when it is gone, so callers handle one family of errors whichever way a statement
ran. Every other statement stays on SQLAlchemy.
"""
from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.expression import Executable

Processor = Callable[[Any], Any] | None


class Compiled:
    """One statement in the engine's dialect: its SQL text, parameters in the driver's form, typed rows."""

    def __init__(self, engine: Engine, statement: Executable, column_keys: Sequence[str] | None = None):
        dialect = engine.dialect
        compiled = statement.compile(dialect=dialect, column_keys=list(column_keys) if column_keys else None)
        self.sql: str = compiled.string
        self._positions: tuple[str, ...] | None = tuple(compiled.positiontup) if compiled.positional else None
        self._bind: dict[str, Processor] = {
            name: processor for param, name in compiled.bind_names.items()
            if (processor := param.type.dialect_impl(dialect).bind_processor(dialect)) is not None}
        # Values written into the statement itself (`column == "x"`) travel as parameters too.
        self._given: dict[str, Any] = {name: param.effective_value for param, name in compiled.bind_names.items()
                                       if not param.required}
        columns = list(getattr(statement, "selected_columns", ()))
        self._row = namedtuple("Row", [c.key for c in columns]) if columns else None
        self._result = [c.type.dialect_impl(dialect).result_processor(dialect, None) for c in columns]

    def params(self, values: Mapping[str, Any]) -> Sequence[Any] | dict[str, Any]:
        """The values as the driver takes them: converted by their column types, in its paramstyle."""
        if self._given:
            values = {**self._given, **values}
        converted = {name: (processor(values[name]) if (processor := self._bind.get(name)) else values[name])
                     for name in values}
        return converted if self._positions is None else tuple(converted[name] for name in self._positions)

    def rows(self, fetched: Iterable[Sequence[Any]]) -> list[Any]:
        """Fetched rows as named tuples of converted values (attribute access, like a Core row)."""
        make, processors = self._row, self._result
        return [make(*(p(v) if p else v for p, v in zip(processors, raw, strict=True))) for raw in fetched]


@contextmanager
def driver_cursor(engine: Engine) -> Iterator[tuple[Any, Any]]:
    """(DBAPI connection, cursor) from the engine's pool, returned to it (rolled back) afterwards.

    A driver error is raised as SQLAlchemy's DBAPIError subclass for it, without the values it was given
    (patient data); a connection the driver says is gone is invalidated, so the pool replaces it.
    """
    dialect = engine.dialect
    connection = cursor = None
    try:
        connection = engine.raw_connection()
        cursor = connection.cursor()
        yield connection, cursor
    except dialect.loaded_dbapi.Error as exc:
        if connection is not None and dialect.is_disconnect(exc, connection.dbapi_connection, cursor):
            connection.invalidate(exc)
        raise DBAPIError.instance(None, None, exc, dialect.loaded_dbapi.Error, dialect=dialect) from exc
    finally:
        if cursor is not None:
            with suppress(dialect.loaded_dbapi.Error):  # the connection is gone too; the pool deals with that
                cursor.close()
        if connection is not None:
            connection.close()
