"""Outbound FHIR reads against a real HTTP server on 127.0.0.1: missing prefetch keys, tokens, paging, failures."""
from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.builders import PATIENT_ID, bundle, concept, condition, hook_request, med_request, operation_outcome, timing

SIGN = "/cds-services/prior-auth-order-sign"
MITO = concept("rxnorm", "197989", "mitoxantrone 2 MG/ML Injectable Solution")
RRMS = condition("c-rrms", "icd10cm", "G35.A", "Relapsing-remitting multiple sclerosis")
TOKEN = "token-abc"


@dataclass
class FakeFhir:
    """Routes (path?query -> (status, JSON body)); every request's path and Authorization header is recorded."""

    base: str = ""
    routes: dict[str, tuple[int, Any]] = field(default_factory=dict)
    seen: list[tuple[str, str | None]] = field(default_factory=list)
    hang: threading.Event = field(default_factory=threading.Event)
    stalled: set[str] = field(default_factory=set)


@pytest.fixture
def fhir() -> Iterator[FakeFhir]:
    fake = FakeFhir()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's naming)
            parts = urlsplit(self.path)
            target = parts.path.removeprefix("/fhir/") + (f"?{parts.query}" if parts.query else "")
            fake.seen.append((target, self.headers.get("Authorization")))
            if any(target.startswith(s) for s in fake.stalled):
                fake.hang.wait(5)
                return
            status, body = fake.routes.get(target, (404, operation_outcome("not found")))
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/fhir+json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):  # keep test output quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    fake.base = f"http://127.0.0.1:{server.server_address[1]}/fhir"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield fake
    fake.hang.set()
    server.shutdown()
    server.server_close()


def request_to(fake: FakeFhir, drop: tuple[str, ...], token: str | None = TOKEN, **prefetch: Any) -> dict[str, Any]:
    """An order-sign call for 12 mg/m2 mitoxantrone whose prefetch lacks `drop`, pointing at the fake server."""
    body = hook_request([med_request("mr-1", MITO, (12, "mg/m2"), timing(3, "mo", count=1))], conditions=[RRMS],
                        **prefetch)
    for key in drop:
        body["prefetch"].pop(key)
    body["fhirServer"] = fake.base
    if token:
        body["fhirAuthorization"] = {"access_token": token, "token_type": "Bearer", "expires_in": 300,
                                     "scope": "patient/*.read", "subject": "cds-service"}
    return body


def statuses(response) -> dict[str, str]:
    assert response.status_code == 200, response.get_data(as_text=True)
    trace = response.get_json()["cards"][0]["extension"]["prior-auth.evaluation"]
    return {c["id"]: c["status"] for c in trace["criteria"]}


def test_missing_keys_are_fetched_with_the_bearer_token(client, fhir):
    fhir.routes[f"Condition?patient={PATIENT_ID}"] = (200, bundle([RRMS]))
    fhir.routes[f"Patient/{PATIENT_ID}"] = (200, {"resourceType": "Patient", "id": PATIENT_ID,
                                                  "birthDate": "1980-01-01"})
    got = statuses(client.post(SIGN, json=request_to(fhir, drop=("conditions", "patient"))))
    assert got["I.A.1.a.dx"] == "met"
    assert got["I.A.3"] == "met"
    asked = dict(fhir.seen)
    assert asked[f"Condition?patient={PATIENT_ID}"] == f"Bearer {TOKEN}"
    assert asked[f"Patient/{PATIENT_ID}"] == f"Bearer {TOKEN}"
    assert not any(path.startswith("Observation") for path, _ in fhir.seen), "prefetched keys are not fetched again"


def test_without_a_token_no_authorization_header_is_sent(client, fhir):
    fhir.routes[f"Condition?patient={PATIENT_ID}"] = (200, bundle([RRMS]))
    statuses(client.post(SIGN, json=request_to(fhir, drop=("conditions",), token=None)))
    assert fhir.seen == [(f"Condition?patient={PATIENT_ID}", None)]


def test_a_paged_search_is_followed_through_its_next_links(client, fhir):
    page1 = bundle([condition("c-htn", "icd10cm", "I10", "Hypertension")])
    page1["link"] = [{"relation": "next", "url": f"{fhir.base}/Condition?patient={PATIENT_ID}&page=2"}]
    fhir.routes[f"Condition?patient={PATIENT_ID}"] = (200, page1)
    fhir.routes[f"Condition?patient={PATIENT_ID}&page=2"] = (200, bundle([RRMS]))
    got = statuses(client.post(SIGN, json=request_to(fhir, drop=("conditions",))))
    assert got["I.A.1.a.dx"] == "met"
    assert [p for p, _ in fhir.seen] == [f"Condition?patient={PATIENT_ID}", f"Condition?patient={PATIENT_ID}&page=2"]


def test_a_paged_prefetch_value_is_completed_from_the_server(client, fhir):
    first = bundle([condition("c-htn", "icd10cm", "I10", "Hypertension")])
    first["link"] = [{"relation": "next", "url": f"{fhir.base}/Condition?patient={PATIENT_ID}&page=2"}]
    fhir.routes[f"Condition?patient={PATIENT_ID}&page=2"] = (200, bundle([RRMS]))
    body = request_to(fhir, drop=())
    body["prefetch"]["conditions"] = first
    got = statuses(client.post(SIGN, json=body))
    assert got["I.A.1.a.dx"] == "met"
    assert [p for p, _ in fhir.seen] == [f"Condition?patient={PATIENT_ID}&page=2"]


def test_an_operation_outcome_prefetch_value_makes_its_criteria_unknown_without_fetching(client, fhir):
    body = request_to(fhir, drop=())
    body["prefetch"]["conditions"] = operation_outcome("the EHR timed out")
    got = statuses(client.post(SIGN, json=body))
    assert got["I.A.1.a.dx"] == "unknown"
    assert got["III.B"] == "unknown"
    assert fhir.seen == []


@pytest.mark.parametrize("status, body", [
    (200, operation_outcome("search failed")),
    (500, operation_outcome("boom")),
    (401, operation_outcome("token expired")),
    (200, "not a resource"),
])
def test_a_failing_server_makes_the_criteria_it_would_decide_unknown(client, fhir, status, body):
    fhir.routes[f"Condition?patient={PATIENT_ID}"] = (status, body)
    response = client.post(SIGN, json=request_to(fhir, drop=("conditions",)))
    got = statuses(response)
    assert got["I.A.1.a.dx"] == "unknown"
    assert got["I.A.3"] == "met", "what was prefetched is still read"


def test_a_server_that_never_answers_costs_the_budget_and_gives_unknown(app, fhir):
    app.extensions["cds_service"].fhir_timeout_s = 0.3
    fhir.stalled.add("Condition")
    got = statuses(app.test_client().post(SIGN, json=request_to(fhir, drop=("conditions",))))
    assert got["I.A.1.a.dx"] == "unknown"


def test_a_next_link_to_another_host_is_not_followed(client, fhir):
    page1 = bundle([RRMS])
    page1["link"] = [{"relation": "next", "url": "http://elsewhere.invalid/fhir/Condition?page=2"}]
    fhir.routes[f"Condition?patient={PATIENT_ID}"] = (200, page1)
    got = statuses(client.post(SIGN, json=request_to(fhir, drop=("conditions",))))
    assert got["I.A.1.a.dx"] == "unknown", "a partial list cannot prove what is absent, so it is not used"
