"""The audit trail: every hook call and the guidance given, kept under its hookInstance (CRD retention)."""
from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from typing import Any

from . import json_codec
from .audit_journal import AuditJournal
from .crd import COVERAGE_INFO_URL
from .db import KeptCall, Storage
from .errors import StorageUnavailable
from .hook_request import HookRequest
from .models import utcnow
from .service import HookResult

log = logging.getLogger(__name__)


def kept_request(body: Mapping[str, Any], raw: bytes) -> dict[str, Any]:
    """The request as kept: everything but the prefetched record, which is replaced by its keys and a digest.

    The record is the EHR's copy of the chart (megabytes, and patient data the audit does not need to repeat); the
    digest still proves which record an answer was given on. The FHIR access token is a credential, never stored.
    """
    kept = {k: v for k, v in body.items() if k != "prefetch"}
    auth = kept.get("fhirAuthorization")
    if isinstance(auth, Mapping) and "access_token" in auth:
        kept["fhirAuthorization"] = {**auth, "access_token": "[not stored]"}
    prefetch = body.get("prefetch")
    if isinstance(prefetch, Mapping):
        kept["prefetchKeys"] = sorted(prefetch)
    kept["bodySha256"] = hashlib.sha256(raw).hexdigest()
    return kept


def _is_coverage_action(action: Mapping[str, Any]) -> bool:
    return any(isinstance(e, Mapping) and e.get("url") == COVERAGE_INFO_URL
               for e in (action.get("resource") or {}).get("extension") or ())


def keep(store: Storage, journal: AuditJournal | None, service_id: str, raw_body: Mapping[str, Any],
         request: HookRequest, result: HookResult, raw: bytes = b"") -> bytes:
    """Keep the call and its answer; the JSON to send, serialised once for both. Kept in the journal when there is
    one (written to the tables off the answer's path), else in the tables now. If it cannot be kept, the
    coverage-information actions are withdrawn (their assertion ids would point at nothing) and the cards still
    go out."""
    answer = json_codec.dumps_bytes(result.body)
    call = KeptCall(service_id, request.hook, request.hook_instance, request.patient_id or None,
                    kept_request(raw_body, raw), json_codec.Encoded(answer),
                    [a.row() for a in result.assertions], utcnow())
    if journal is not None:
        try:
            journal.append(call, answer)
            return answer
        except OSError as exc:
            log.error("audit journal unavailable; writing the call to the database directly",
                      extra={"event": "audit.journal_unavailable", "error": type(exc).__name__})
    try:
        store.record_call(call)
        return answer
    except StorageUnavailable:
        log.error("hook call not stored: database unavailable; coverage information withheld",
                  extra={"hook": request.hook})
        body = dict(result.body)
        if "systemActions" in body:
            body["systemActions"] = [a for a in body["systemActions"] if not _is_coverage_action(a)]
        return json_codec.dumps_bytes(body)
