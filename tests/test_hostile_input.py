"""Hostile and quirky input: size limits (chunked too), every schema field named on a 400, the sandbox's quirks."""
from __future__ import annotations

import copy
import http.client
import json
import threading
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from werkzeug.serving import make_server

from cds_service import create_app
from tests.conftest import FIXTURES, ROOT, TODAY, load_fixture

SIGN = "/cds-services/prior-auth-order-sign"
SELECT = "/cds-services/prior-auth-order-select"
LIMIT = 64 * 1024


@pytest.fixture
def small_app():
    return create_app({"CDS_TODAY": TODAY, "CDS_CARDS_DIR": str(ROOT / "cards"), "CDS_MAX_BODY_BYTES": LIMIT})


@pytest.fixture
def live_url(small_app) -> Iterator[str]:
    """The app behind a real HTTP server, so chunked bodies arrive as a client would send them."""
    server = make_server("127.0.0.1", 0, small_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()


def good_request() -> dict:
    return load_fixture(FIXTURES / "mitoxantrone" / "ms_rrms_step_therapy_done_criteria_met.json")["request"]


def oversized_request() -> bytes:
    body = good_request()
    body["extension"] = {"padding": "x" * (2 * LIMIT)}
    return json.dumps(body).encode()


def test_body_over_the_limit_gets_413(small_app):
    response = small_app.test_client().post(SIGN, data=oversized_request(), content_type="application/json")
    assert response.status_code == 413
    assert response.get_json()["resourceType"] == "OperationOutcome"


def test_chunked_body_over_the_limit_gets_413_without_content_length(live_url):
    data = oversized_request()
    conn = http.client.HTTPConnection(live_url, timeout=10)
    conn.putrequest("POST", SIGN)
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()
    try:
        for start in range(0, len(data), 8192):
            piece = data[start:start + 8192]
            conn.send(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
        conn.send(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server may stop reading once the limit is passed; its answer is what counts
    response = conn.getresponse()
    assert response.status == 413
    assert json.loads(response.read())["resourceType"] == "OperationOutcome"


def test_chunked_body_under_the_limit_is_answered(live_url):
    data = json.dumps(good_request()).encode()
    conn = http.client.HTTPConnection(live_url, timeout=10)
    conn.request("POST", SIGN, body=iter([data[:1000], data[1000:]]), headers={"Content-Type": "application/json"},
                 encode_chunked=True)
    response = conn.getresponse()
    assert response.status == 200
    assert json.loads(response.read())["cards"]


def _without(path: list, body: dict) -> dict:
    out = copy.deepcopy(body)
    node = out
    for part in path[:-1]:
        node = node[part]
    del node[path[-1]]
    return out


def _with(path: list, value, body: dict) -> dict:
    out = copy.deepcopy(body)
    node = out
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return out


SCHEMA_BREAKS = {
    # name: (service, body-from-good-request, field named, JSON path)
    "no hook": (SIGN, lambda b: _without(["hook"], b), "hook", "$.hook"),
    "hook not a string": (SIGN, lambda b: _with(["hook"], 7, b), "hook", "$.hook"),
    "no hookInstance": (SIGN, lambda b: _without(["hookInstance"], b), "hookInstance", "$.hookInstance"),
    "hookInstance empty": (SIGN, lambda b: _with(["hookInstance"], "", b), "hookInstance", "$.hookInstance"),
    "no context": (SIGN, lambda b: _without(["context"], b), "context", "$.context"),
    "context a list": (SIGN, lambda b: _with(["context"], [], b), "context", "$.context"),
    "no patientId": (SIGN, lambda b: _without(["context", "patientId"], b), "patientId", "$.context.patientId"),
    "no userId": (SIGN, lambda b: _without(["context", "userId"], b), "userId", "$.context.userId"),
    "userId not a reference": (SIGN, lambda b: _with(["context", "userId"], "prac 1", b), "userId",
                               "$.context.userId"),
    "no draftOrders": (SIGN, lambda b: _without(["context", "draftOrders"], b), "draftOrders",
                       "$.context.draftOrders"),
    "draftOrders not a Bundle": (SIGN, lambda b: _with(["context", "draftOrders", "resourceType"], "List", b),
                                 "resourceType", "$.context.draftOrders.resourceType"),
    "draftOrders entry not a list": (SIGN, lambda b: _with(["context", "draftOrders", "entry"], {}, b), "entry",
                                     "$.context.draftOrders.entry"),
    "fhirServer not a URL": (SIGN, lambda b: _with(["fhirServer"], "ftp://x", b), "fhirServer", "$.fhirServer"),
    "fhirAuthorization without fhirServer": (
        SIGN, lambda b: _with(["fhirAuthorization"], {"access_token": "t", "token_type": "Bearer", "expires_in": 60,
                                                      "scope": "patient/*.read", "subject": "cds"}, b),
        "fhirServer", "$.fhirServer"),
    "fhirAuthorization without access_token": (
        SIGN, lambda b: _with(["fhirAuthorization"], {"token_type": "Bearer", "expires_in": 60, "scope": "s",
                                                      "subject": "cds"}, {**b, "fhirServer": "https://ehr.example"}),
        "access_token", "$.fhirAuthorization.access_token"),
    "prefetch value a string": (SIGN, lambda b: _with(["prefetch", "patient"], "Patient/pat-1", b), "patient",
                                "$.prefetch.patient"),
    "prefetch resource without resourceType": (SIGN, lambda b: _with(["prefetch", "patient"], {"id": "p"}, b),
                                               "resourceType", "$.prefetch.patient.resourceType"),
    "order-select without selections": (SELECT, lambda b: {**b, "hook": "order-select"}, "selections",
                                        "$.context.selections"),
    "order-select with empty selections": (
        SELECT, lambda b: _with(["context", "selections"], [], {**b, "hook": "order-select"}), "selections",
        "$.context.selections"),
}


@pytest.mark.parametrize("name", list(SCHEMA_BREAKS))
def test_schema_break_gets_400_naming_the_field(client, name):
    service, make, field, path = SCHEMA_BREAKS[name]
    response = client.post(service, json=make(good_request()))
    assert response.status_code == 400, response.get_data(as_text=True)
    issue = response.get_json()["issue"][0]
    assert f"'{field}'" in issue["diagnostics"]
    assert issue["expression"] == [path]


@pytest.mark.parametrize("raw", [b"", b"   ", b"{", b"[]", b"null", b"\xff\xfe", b'"a string"',
                                 b"[" * 100_000 + b"]" * 100_000, b'{"hook": NaN}',
                                 b'{"hook": "order-sign", "hookInstance": "x", "context": {"n": Infinity}}'])
def test_body_that_is_not_a_request_object_gets_400(client, raw):
    response = client.post(SIGN, data=raw, content_type="application/json")
    assert response.status_code == 400
    assert response.get_json()["resourceType"] == "OperationOutcome"


# --- the CDS Hooks sandbox's quirks -------------------------------------------------------------

def _draft(body: dict) -> dict:
    return body["context"]["draftOrders"]["entry"][0]["resource"]


def _sandbox_bundle_without_type(body: dict) -> dict:
    del body["context"]["draftOrders"]["type"]
    return body


def _category_as_object(body: dict) -> dict:
    _draft(body)["category"] = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/medicationrequest-"
                                                      "category", "code": "outpatient"}]}
    return body


def _dstu2_medication_order(body: dict) -> dict:
    draft = _draft(body)
    draft["resourceType"] = "MedicationOrder"
    draft["dateWritten"] = draft.pop("authoredOn")
    draft["prescriber"] = draft.pop("requester")
    draft["patient"] = draft.pop("subject")
    return body


def _other_drug(body: dict) -> dict:
    _draft(body)["medicationCodeableConcept"] = {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                                                             "code": "313782", "display": "Acetaminophen 325 MG"}]}
    return body


def _dose_as_string(body: dict) -> dict:
    _draft(body)["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] = "twelve"
    return body


QUIRKS = {
    "draftOrders Bundle without type": _sandbox_bundle_without_type,
    "category as an object": _category_as_object,
    "DSTU2 MedicationOrder": _dstu2_medication_order,
    "dose value as a string": _dose_as_string,
    "sandbox drug no policy covers": _other_drug,
}


@pytest.mark.parametrize("name", list(QUIRKS))
@pytest.mark.parametrize("service", [SIGN, SELECT])
def test_sandbox_quirk_gets_200_and_well_formed_cards(client, name, service):
    body = QUIRKS[name](good_request())
    if service == SELECT:
        selections = ["MedicationRequest/mr-1"]
        body = {**body, "hook": "order-select", "context": {**body["context"], "selections": selections}}
    response = client.post(service, json=body)
    assert response.status_code == 200, response.get_data(as_text=True)
    cards = response.get_json()["cards"]
    for card in cards:
        assert card["indicator"] in ("info", "warning", "critical")
        assert 0 < len(card["summary"]) < 140
    if name in ("DSTU2 MedicationOrder", "sandbox drug no policy covers"):
        assert cards == []


def test_depth_limit_counts_brackets_outside_strings_only():
    """The byte-level depth check ignores brackets inside strings and escapes, and stops at exactly MAX_DEPTH."""
    from cds_service.json_codec import MAX_DEPTH
    from cds_service.json_codec import too_deep as _too_deep

    inside_strings = json.dumps({"a": [{"b": "x]]]}}}[[[[{{{"}] * 3, "s": '\\"[['}).encode()
    assert not _too_deep(inside_strings)
    assert not _too_deep(("[" * MAX_DEPTH + "]" * MAX_DEPTH).encode())
    assert _too_deep(("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1)).encode())
    assert _too_deep(b'{"a":' * MAX_DEPTH + b'[1,{"x":"}"}]' + b"}" * MAX_DEPTH)


def _depth(value: object) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


_TRICKY_TEXT = st.text(alphabet='{}[]"\\/:,ab \n\u00e9\u2028', max_size=12)
_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | _TRICKY_TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TRICKY_TEXT, inner, max_size=3),
    max_leaves=40,
)


@settings(max_examples=300, deadline=None)
@given(value=_JSON_VALUES, wrap=st.integers(min_value=0, max_value=70), ascii_only=st.booleans())
def test_depth_check_agrees_with_the_decoded_document(value: object, wrap: int, ascii_only: bool):
    """Whatever the strings hold (brackets, quotes, backslashes, escapes), the byte check sees the real depth."""
    from cds_service.json_codec import MAX_DEPTH
    from cds_service.json_codec import too_deep as _too_deep

    for _ in range(wrap):
        value = {"k": [value]} if wrap % 2 else [value]
    raw = json.dumps(value, ensure_ascii=ascii_only).encode()
    assert _too_deep(raw) == (_depth(value) > MAX_DEPTH)
