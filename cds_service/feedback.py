"""CDS Hooks feedback (`POST /cds-services/{id}/feedback`): checked to the spec, stored once, then acknowledged."""
from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, jsonify

from .db import storage
from .discovery import SERVICES
from .errors import InvalidRequest, UnknownService
from .hooks import json_body

bp = Blueprint("cds_feedback", __name__)

OUTCOMES = ("accepted", "overridden")
# RFC 3339 date-time (section 5.6): full date, 'T', full time with a mandatory offset.
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def _text(item: Mapping[str, Any], key: str, path: str) -> str:
    value = item.get(key)
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequest(f"'{key}' is required and must be a non-empty string", f"{path}.{key}")
    return value


def normalise_timestamp(text: str, path: str) -> str:
    """The RFC 3339 timestamp in UTC with microseconds, so the same instant always makes the same key."""
    if not _RFC3339.match(text):
        raise InvalidRequest("'outcomeTimestamp' must be an RFC 3339 date-time with a time zone", path)
    try:
        moment = datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidRequest(f"'outcomeTimestamp' is not a real date-time: {exc}", path) from exc
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _check_accepted(item: Mapping[str, Any], path: str) -> None:
    accepted = item.get("acceptedSuggestions")
    if not isinstance(accepted, list) or not accepted:
        raise InvalidRequest("'acceptedSuggestions' is required when the outcome is accepted",
                             f"{path}.acceptedSuggestions")
    for i, suggestion in enumerate(accepted):
        if not isinstance(suggestion, Mapping):
            raise InvalidRequest("each accepted suggestion must be an object with an 'id'",
                                 f"{path}.acceptedSuggestions[{i}]")
        _text(suggestion, "id", f"{path}.acceptedSuggestions[{i}]")


def _override_reason(item: Mapping[str, Any], path: str) -> str | None:
    """The override reason as kept: 'system|code' and the user's comment (both optional in CDS Hooks 2.0)."""
    reason = item.get("overrideReason")
    if reason is None:
        return None
    here = f"{path}.overrideReason"
    if not isinstance(reason, Mapping):
        raise InvalidRequest("'overrideReason' must be an object", here)
    said = []
    coding = reason.get("reason")
    if coding is not None:
        if not isinstance(coding, Mapping):
            raise InvalidRequest("'overrideReason.reason' must be a Coding", f"{here}.reason")
        said.append(f"{_text(coding, 'system', f'{here}.reason')}|{_text(coding, 'code', f'{here}.reason')}")
    comment = reason.get("userComment")
    if comment is not None:
        if not isinstance(comment, str):
            raise InvalidRequest("'overrideReason.userComment' must be a string", f"{here}.userComment")
        said.append(comment)
    return " ".join(said) or None


def parse_feedback(body: Any) -> list[dict[str, Any]]:
    """The feedback items as rows, or InvalidRequest naming the first field that breaks the spec."""
    if not isinstance(body, Mapping) or not isinstance(body.get("feedback"), list) or not body["feedback"]:
        raise InvalidRequest("The body must be an object with a non-empty 'feedback' array", "$.feedback")
    rows = []
    for i, item in enumerate(body["feedback"]):
        path = f"$.feedback[{i}]"
        if not isinstance(item, Mapping):
            raise InvalidRequest("each feedback item must be an object", path)
        card = _text(item, "card", path)
        outcome = _text(item, "outcome", path)
        if outcome not in OUTCOMES:
            raise InvalidRequest(f"'outcome' must be one of {', '.join(OUTCOMES)}", f"{path}.outcome")
        if outcome == "accepted":
            _check_accepted(item, path)
        elif item.get("acceptedSuggestions"):
            raise InvalidRequest("'acceptedSuggestions' only goes with an accepted outcome",
                                 f"{path}.acceptedSuggestions")
        stamp = normalise_timestamp(_text(item, "outcomeTimestamp", path), f"{path}.outcomeTimestamp")
        rows.append({"card_uuid": card, "outcome": outcome, "outcome_timestamp": stamp, "body_json": dict(item),
                     "override_reason": _override_reason(item, path)})
    return rows


@bp.post("/cds-services/<service_id>/feedback")
def post_feedback(service_id: str):
    if service_id not in SERVICES:
        raise UnknownService(f"No CDS service with id '{service_id}'")
    rows = parse_feedback(json_body())
    new = storage().save_feedback(service_id, rows)  # StorageUnavailable -> 503: nothing acknowledged
    return jsonify({"received": len(rows), "stored": new})
