"""The CDS Hooks protocol: discovery and the two services. Protocol errors only; no clinical logic here."""
from __future__ import annotations

import json
from datetime import date

from flask import Blueprint, current_app, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge

from .audit import keep
from .db import storage
from .discovery import SERVICES, discovery_document
from .errors import InvalidRequest, PayloadTooLarge, UnknownService
from .hook_request import parse_hook_request
from .logs import note_hook
from .service import answer_hook
from .state import service_state

bp = Blueprint("cds_hooks", __name__)


def _not_json(constant: str) -> None:
    """NaN and Infinity are Python's extension, not JSON: no dose or lab value may be one."""
    raise ValueError(f"{constant} is not JSON")


def json_body() -> object:
    """The decoded request body, or InvalidRequest naming why it is not JSON (PayloadTooLarge past the limit).

    The body is read through Werkzeug's limited stream, so a chunked body with no Content-Length
    is cut off at the limit too, not buffered whole.
    """
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"The request body is over the {limit} byte limit")
    try:
        raw = request.get_data(cache=True)
        # Werkzeug stops a streamed (chunked) body at the limit without saying so; one byte more tells.
        if request.content_length is None and len(raw) >= limit and request.stream.read(1):
            raise RequestEntityTooLarge()
    except RequestEntityTooLarge as exc:
        raise PayloadTooLarge(f"The request body is over the {limit} byte limit") from exc
    if not raw.strip():
        raise InvalidRequest("The request body is empty", "$")
    try:
        return json.loads(raw, parse_constant=_not_json)
    except (ValueError, RecursionError) as exc:
        raise InvalidRequest("The request body is not valid JSON", "$") from exc


@bp.get("/cds-services")
def discovery():
    return jsonify(discovery_document())


@bp.post("/cds-services/<service_id>")
def call_service(service_id: str):
    if service_id not in SERVICES:
        raise UnknownService(f"No CDS service with id '{service_id}'")
    body = json_body()
    hook_request = parse_hook_request(body)
    state = service_state()
    today = state.today or date.today()
    result = answer_hook(hook_request, state.library, today=today, timeout_s=state.fhir_timeout_s,
                         base_url=state.base_url(), answers=state.answers)
    note_hook(hook_request.hook, hook_request.hook_instance, [e.decision.value for e in result.evaluations])
    return jsonify(keep(storage(), service_id, body, hook_request, result))
