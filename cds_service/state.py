"""What one app instance holds for its lifetime: the policy library and the settings read at start-up."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from flask import current_app, request

from .audit_journal import AuditJournal
from .fact_cache import FactCache
from .policies import PolicyLibrary
from .record import Answer


@dataclass
class ServiceState:
    library: PolicyLibrary
    fhir_timeout_s: float
    public_base_url: str | None = None
    today: date | None = None
    answers: Callable[[str, list[str]], dict[str, Answer]] | None = None
    facts: FactCache | None = None  # None: every resource is read afresh (CDS_FACT_CACHE_SIZE=0)
    journal: AuditJournal | None = None  # None: hook calls are written to the database as they are answered

    def base_url(self) -> str:
        """The URL callers use: configured (behind a load balancer the Host is not trusted), else the request's."""
        return self.public_base_url or request.host_url.rstrip("/")


def service_state() -> ServiceState:
    return current_app.extensions["cds_service"]
