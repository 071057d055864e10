"""FHIR servers that fail on purpose (a real server on 127.0.0.1): each fault costs at most the budget.

The request prefetches everything but the conditions, so the service must ask `fhirServer` for
them. Whatever the server does, the answer is a 200 within `CDS_FHIR_TIMEOUT_S` (plus the
evaluation itself), the diagnosis clause is unknown rather than met or not met, the clauses
fed by prefetched data keep their status, and the card says part of the record could not be read.
"""
from __future__ import annotations

import time

import pytest

from cds_service import create_app
from tests.builders import bundle, condition
from tests.conftest import FIXTURES, ROOT, TODAY, load_fixture
from tests.local_server import refused_url, send_bytes, send_json, serve, stopping

BUDGET_S = 1.0
SLACK_S = 0.75  # evaluation and rendering after the budget is spent; far under it in practice


def _hang(handler):
    stopping(handler).wait(30)


def _error_500(handler):
    send_json(handler, {"resourceType": "OperationOutcome", "issue": []}, status=500)


def _html(handler):
    send_bytes(handler, b"<html><body><h1>Login</h1></body></html>", content_type="text/html")


def _truncated_json(handler):
    handler.send_response(200)
    handler.send_header("Content-Type", "application/fhir+json")
    handler.send_header("Content-Length", "5000")
    handler.end_headers()
    handler.wfile.write(b'{"resourceType": "Bundle", "entry": [')
    handler.close_connection = True


def _pages_forever(handler):
    page = int(handler.path.rsplit("page=", 1)[-1]) if "page=" in handler.path else 0
    url = f"http://{handler.headers['Host']}/Condition?page={page + 1}"
    send_json(handler, {"resourceType": "Bundle", "type": "searchset", "entry": [],
                        "link": [{"relation": "next", "url": url}]})


def _slow_pages_forever(handler):
    time.sleep(0.2)
    _pages_forever(handler)


def _trickle_body(handler):
    handler.send_response(200)
    handler.send_header("Content-Type", "application/fhir+json")
    handler.send_header("Content-Length", "100000")
    handler.end_headers()
    handler.wfile.write(b'{"resourceType": "Bundle", "entry": [')
    handler.wfile.flush()
    while not stopping(handler).wait(0.05):
        handler.wfile.write(b" ")
        handler.wfile.flush()


def _trickle_headers(handler):
    handler.wfile.write(b"HTTP/1.1 200 OK\r\n")
    handler.wfile.flush()
    while not stopping(handler).wait(0.05):
        handler.wfile.write(b"X-Slow: a\r\n")
        handler.wfile.flush()


def _not_a_resource(handler):
    send_json(handler, ["a", "list"])


def _broken_r4(handler):
    """A Bundle whose only Condition breaks R4 (a code that is a number, a status that is not a code)."""
    bad = condition("c-bad", "icd10cm", "G35", "Multiple sclerosis")
    bad["code"] = 42
    bad["clinicalStatus"] = "active"
    send_json(handler, bundle([bad]))


FAULTS = {
    "hangs": _hang,
    "HTTP 500": _error_500,
    "HTML instead of JSON": _html,
    "truncated JSON": _truncated_json,
    "JSON that is not a resource": _not_a_resource,
    "pages forever": _pages_forever,
    "pages forever, slowly": _slow_pages_forever,
    "trickles the body": _trickle_body,
    "trickles the headers": _trickle_headers,
    "resource that breaks R4": _broken_r4,
}


@pytest.fixture
def fault_app():
    return create_app({"CDS_TODAY": TODAY, "CDS_CARDS_DIR": str(ROOT / "cards"), "CDS_FHIR_TIMEOUT_S": BUDGET_S})


def request_needing_conditions(fhir_server: str) -> dict:
    body = load_fixture(FIXTURES / "mitoxantrone" / "ms_rrms_step_therapy_done_criteria_met.json")["request"]
    del body["prefetch"]["conditions"]
    return {**body, "fhirServer": fhir_server}


def call_timed(app, fhir_server: str) -> tuple[dict, float]:
    started = time.monotonic()
    response = app.test_client().post("/cds-services/prior-auth-order-sign", json=request_needing_conditions(
        fhir_server))
    elapsed = time.monotonic() - started
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json(), elapsed


def assert_only_the_diagnosis_is_unknown(answer: dict) -> None:
    (card,) = answer["cards"]
    trace = card["extension"]["prior-auth.evaluation"]
    statuses = {c["id"]: c["status"] for c in trace["criteria"]}
    assert statuses["I.A.1.a.dx"] == "unknown"
    assert statuses["I.A.3"] == "met"  # age, from the prefetched Patient
    assert statuses["I.A.2"] == "met"  # prescriber, from the prefetched PractitionerRole
    assert trace["decision"] == "documentation-needed"
    assert "could not be read" in card["detail"]


@pytest.mark.parametrize("fault", list(FAULTS))
def test_failing_fhir_server_costs_at_most_the_budget(fault_app, fault):
    with serve({"*": FAULTS[fault]}) as server:
        answer, elapsed = call_timed(fault_app, server.url)
        assert server.hits, "the service asked the server"
    assert elapsed < BUDGET_S + SLACK_S
    assert_only_the_diagnosis_is_unknown(answer)


def test_refused_connection_costs_at_most_the_budget(fault_app):
    answer, elapsed = call_timed(fault_app, refused_url())
    assert elapsed < BUDGET_S + SLACK_S
    assert_only_the_diagnosis_is_unknown(answer)


def test_paging_stays_on_the_fhir_server(fault_app):
    """A next link to another host is not followed: the access token must not leave the EHR's server."""
    with serve({"*": lambda h: send_json(h, {"resourceType": "Bundle", "entry": [], "link": [
            {"relation": "next", "url": "http://169.254.169.254/latest/meta-data"}]})}) as server:
        answer, _ = call_timed(fault_app, server.url)
    assert_only_the_diagnosis_is_unknown(answer)


def test_working_fhir_server_answers_fill_the_record(fault_app):
    """The control: the same request against a server that answers well meets the diagnosis clause."""
    fixture = load_fixture(FIXTURES / "mitoxantrone" / "ms_rrms_step_therapy_done_criteria_met.json")
    conditions = fixture["request"]["prefetch"]["conditions"]
    with serve({"/Condition": lambda h: send_json(h, conditions)}) as server:
        answer, _ = call_timed(fault_app, server.url)
    card = answer["cards"][0]
    assert {c["id"]: c["status"] for c in card["extension"]["prior-auth.evaluation"]["criteria"]}["I.A.1.a.dx"] == "met"
    assert "could not be read" not in card["detail"]
