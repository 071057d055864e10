"""Configuration from the environment (contract §2), overridable by the dict given to create_app."""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

PACKAGE_ROOT = Path(__file__).resolve().parent
DEFAULT_CARDS_DIR = PACKAGE_ROOT.parent / "cards"


def _float(value: str | None, default: float) -> float:
    try:
        return float(value) if value not in (None, "") else default
    except ValueError:
        return default


def load_config(overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Settings for one app: environment variables first, then explicit overrides (tests pass theirs)."""
    env = os.environ
    config: dict[str, Any] = {
        "CDS_DATABASE_URL": env.get("CDS_DATABASE_URL") or None,
        "CDS_PUBLIC_BASE_URL": (env.get("CDS_PUBLIC_BASE_URL") or "").rstrip("/") or None,
        "CDS_JWT_ISSUERS_FILE": env.get("CDS_JWT_ISSUERS_FILE") or None,
        "CDS_ENV": env.get("CDS_ENV", "development"),
        "CDS_FHIR_TIMEOUT_S": _float(env.get("CDS_FHIR_TIMEOUT_S"), 2.0),
        "CDS_CARDS_DIR": env.get("CDS_CARDS_DIR") or str(DEFAULT_CARDS_DIR),
        "CDS_MAX_BODY_BYTES": int(_float(env.get("CDS_MAX_BODY_BYTES"), 5 * 1024 * 1024)),
        "CDS_CORS_ORIGINS": env.get("CDS_CORS_ORIGINS", "*"),
        "CDS_TODAY": env.get("CDS_TODAY") or None,  # fixed evaluation date, for reproducible fixtures
        # Resources read per worker whose facts are remembered by their exact bytes (0: none; see fact_cache).
        "CDS_FACT_CACHE_SIZE": int(_float(env.get("CDS_FACT_CACHE_SIZE"), 50_000)),
        "CDS_FACT_CACHE_MB": _float(env.get("CDS_FACT_CACHE_MB"), 64.0),  # and at most this much of their bytes
        # Where hook calls are journaled before the database takes them (audit_journal): "off", or a directory;
        # unset, beside a SQLite file, and nowhere for other databases.
        "CDS_AUDIT_JOURNAL_DIR": env.get("CDS_AUDIT_JOURNAL_DIR") or None,
        # Migrate the schema when the app starts (off when operators run `cds-service migrate` themselves).
        "CDS_MIGRATE_ON_START": env.get("CDS_MIGRATE_ON_START", "1").lower() not in ("0", "false", "no"),
    }
    config.update(overrides or {})
    return config
