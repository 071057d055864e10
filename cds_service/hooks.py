"""The CDS Hooks protocol: discovery and the two services. Protocol errors only; no clinical logic here."""
from __future__ import annotations

from datetime import date

from flask import Blueprint, current_app, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge

from . import json_codec
from .audit import keep
from .db import storage
from .discovery import SERVICES, discovery_document
from .errors import InvalidRequest, PayloadTooLarge, UnknownService
from .hook_request import parse_hook_request
from .json_codec import MAX_DEPTH, too_deep
from .logs import note_hook
from .raw_resources import SplitBody, split_body
from .service import answer_hook
from .state import service_state

bp = Blueprint("cds_hooks", __name__)


def _raw_body() -> bytes:
    """The request body's bytes, or PayloadTooLarge / InvalidRequest (empty)."""
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
    return raw


def _decoded(raw: bytes) -> object:
    try:
        # NaN, Infinity and 1e400 would poison dose arithmetic; the JSON standard has none of them.
        return json_codec.loads(raw, json_codec.strict_loads)
    except json_codec.NotANumber as exc:
        raise InvalidRequest(f"The request body is not valid JSON: {exc}", "$") from None
    except RecursionError:
        raise InvalidRequest(f"The request body nests deeper than {MAX_DEPTH} levels", "$") from None
    except ValueError:
        raise InvalidRequest("The request body is not valid JSON", "$") from None


def _check_depth(raw: bytes) -> None:
    if too_deep(raw):
        raise InvalidRequest(f"The request body nests deeper than {MAX_DEPTH} levels", "$")


def json_body() -> object:
    """The decoded request body, or InvalidRequest naming why it is not (standard, finite, shallow) JSON."""
    raw = _raw_body()
    body = _decoded(raw)
    _check_depth(raw)
    return body


def hook_body() -> SplitBody:
    """A hook request's body with its prefetched resources kept in bytes (see raw_resources), or InvalidRequest.

    A body of an unusual shape is decoded whole, so it meets the same checks and errors as every other body. The
    one difference: entries of a prefetched Bundle nesting past MAX_DEPTH make that data set unreadable (its
    criteria unknown, contract section 7) when a policy reads it, instead of refusing the whole call."""
    raw = _raw_body()
    split = split_body(raw)  # checks the depth of what it decodes; the entries of Bundles when they are read
    if split is None:
        body = _decoded(raw)
        _check_depth(raw)
        return SplitBody(body, None)
    return split


@bp.get("/cds-services")
def discovery():
    return jsonify(discovery_document())


@bp.post("/cds-services/<service_id>")
def call_service(service_id: str):
    if service_id not in SERVICES:
        raise UnknownService(f"No CDS service with id '{service_id}'")
    body = hook_body()
    hook_request = parse_hook_request(body.checked, body.prefetch)
    state = service_state()
    today = state.today or date.today()
    result = answer_hook(hook_request, state.library, today=today, timeout_s=state.fhir_timeout_s,
                         base_url=state.base_url(), answers=state.answers, facts=state.facts)
    note_hook(hook_request.hook, hook_request.hook_instance, [e.decision.value for e in result.evaluations])
    answer = keep(storage(), state.journal, service_id, body.checked, hook_request, result,
                  request.get_data(cache=True))
    response = current_app.response_class(answer, mimetype="application/json")
    if state.journal is not None:
        response.call_on_close(state.journal.after_answer)
    return response
