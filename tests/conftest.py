"""Shared fixtures: an app built from the repo's cards/ with a fixed evaluation date and its own database.

`app` uses a fresh SQLite file (copied from one migrated once per session). `db_url` runs a storage test on
SQLite and on PostgreSQL; the PostgreSQL server starts once per session, on loopback, only if a test needs it.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cds_service import create_app
from cds_service.db import make_engine, migrate
from tests.postgres import PostgresServer

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
TODAY = "2026-11-26"


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory) -> Path:
    """One SQLite file migrated to the newest schema; tests get copies (migrating each time is slow)."""
    path = tmp_path_factory.mktemp("db") / "template.sqlite3"
    engine = make_engine(f"sqlite:///{path}")
    migrate(engine)
    engine.dispose()
    return path


@pytest.fixture
def sqlite_url(migrated_sqlite, tmp_path) -> str:
    path = tmp_path / "cds.sqlite3"
    shutil.copy(migrated_sqlite, path)
    return f"sqlite:///{path}"


@pytest.fixture(scope="session")
def postgres_server():
    server = PostgresServer()  # fails loudly when the binaries are missing
    yield server
    server.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path) -> str:
    """A fresh, empty database of each kind (the app migrates it when it starts)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'cds.sqlite3'}"
    return request.getfixturevalue("postgres_server").new_database()


def make_app(database_url: str, **overrides):
    return create_app({"CDS_TODAY": TODAY, "CDS_CARDS_DIR": str(ROOT / "cards"), "CDS_DATABASE_URL": database_url,
                       **overrides})


@pytest.fixture
def app(sqlite_url):
    return make_app(sqlite_url)


@pytest.fixture
def client(app):
    return app.test_client()


def load_fixture(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))
