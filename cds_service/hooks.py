"""The CDS Hooks protocol: discovery and the two services. Protocol errors only; no clinical logic here."""
from __future__ import annotations

import re
from datetime import date

from flask import Blueprint, current_app, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge

from . import json_codec
from .audit import keep
from .db import storage
from .discovery import SERVICES, discovery_document
from .errors import InvalidRequest, PayloadTooLarge, UnknownService
from .hook_request import parse_hook_request
from .logs import note_hook
from .raw_resources import SplitBody, split_body
from .service import answer_hook
from .state import service_state

bp = Blueprint("cds_hooks", __name__)


MAX_DEPTH = 64  # FHIR resources nest about 15 deep; deeper is an attack on the parser or the validators


_KEEP_STRUCTURE = (bytes.maketrans(b"[]", b"{}"), bytes(range(256)).translate(None, b'"{}[]'))
_QUOTED = re.compile(rb'"[^"]*"')


def _too_deep(raw: bytes) -> bool:
    """True when the (already parsed, so well-formed) document nests deeper than MAX_DEPTH.

    Done with C-speed bytes methods (a Python walk of the decoded objects, or regular expressions over every
    character, cost 20 ms on a 200-resource record and half a second on 5,000): escapes out, then everything
    but quotes and brackets, with `[]` read as `{}` (the document is well formed, so only depth is left to
    tell); then strings (two adjacent quotes are an empty string or the end of one and the start of the next:
    removing them keeps every bracket inside a string inside quotes); then one innermost layer of pairs peeled
    per pass (one `replace` never matches a pair its own removals made).
    """
    if b"\\" in raw:
        raw = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
    structure = raw.translate(*_KEEP_STRUCTURE).replace(b'""', b"")
    if b'"' in structure:
        structure = _QUOTED.sub(b"", structure)
    for _ in range(MAX_DEPTH):
        if not structure:
            return False
        structure = structure.replace(b"{}", b"")
    return bool(structure)


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
    if _too_deep(raw):
        raise InvalidRequest(f"The request body nests deeper than {MAX_DEPTH} levels", "$")


def json_body() -> object:
    """The decoded request body, or InvalidRequest naming why it is not (standard, finite, shallow) JSON."""
    raw = _raw_body()
    body = _decoded(raw)
    _check_depth(raw)
    return body


def hook_body() -> SplitBody:
    """A hook request's body with its prefetched resources kept in bytes (see raw_resources), or InvalidRequest.

    A body of an unusual shape is decoded whole, so it meets the same checks and errors as every other body."""
    raw = _raw_body()
    split = split_body(raw)
    if split is None:
        body = _decoded(raw)
        _check_depth(raw)
        return SplitBody(body, None)
    _check_depth(raw)
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
    return jsonify(keep(storage(), service_id, body.checked, hook_request, result, request.get_data(cache=True)))
