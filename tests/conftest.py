"""Shared fixtures: an app built from the repo's cards/ with a fixed evaluation date, and its test client."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from cds_service import create_app

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
TODAY = "2026-11-26"


@pytest.fixture
def app():
    return create_app({"CDS_TODAY": TODAY, "CDS_CARDS_DIR": str(ROOT / "cards")})


@pytest.fixture
def client(app):
    return app.test_client()


def load_fixture(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))
