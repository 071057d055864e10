"""The CDS Hooks protocol: discovery and the two services. Protocol errors only; no clinical logic here."""
from __future__ import annotations

from datetime import date

from flask import Blueprint, current_app, jsonify, request

from .audit import keep
from .db import storage
from .discovery import SERVICES, discovery_document
from .errors import InvalidRequest, UnknownService
from .hook_request import parse_hook_request
from .service import answer_hook
from .state import service_state

bp = Blueprint("cds_hooks", __name__)


def json_body() -> object:
    """The decoded request body, or InvalidRequest naming why it is not JSON."""
    if request.content_length is not None and request.content_length > current_app.config["MAX_CONTENT_LENGTH"]:
        from .errors import PayloadTooLarge
        raise PayloadTooLarge(f"The request body is over the {current_app.config['MAX_CONTENT_LENGTH']} byte limit")
    body = request.get_json(silent=True, force=True)
    if body is None:
        raw = request.get_data(cache=True)
        raise InvalidRequest("The request body is empty" if not raw.strip() else "The request body is not valid JSON",
                             "$")
    return body


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
    return jsonify(keep(storage(), service_id, body, hook_request, result))
