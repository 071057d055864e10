"""The CDS Hooks protocol through the Flask test client: discovery, errors of contract §7, CORS, order-select."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from tests.builders import concept, hook_request, med_request, timing
from tests.conftest import FIXTURES

SIGN = "/cds-services/prior-auth-order-sign"
SELECT = "/cds-services/prior-auth-order-select"
MITO = concept("rxnorm", "197989", "mitoxantrone 2 MG/ML Injectable Solution")
PREDNISONE = concept("rxnorm", "8640", "prednisone")
PREFETCH_KEYS = {"patient", "user", "practitionerRoles", "coverage", "conditions", "observations", "medicationRequests",
                 "medicationAdministrations", "medicationStatements", "medicationDispenses", "procedures"}
CRD_EXAMPLES = sorted((FIXTURES / "crd-examples" / "requests").glob("*.json"))


def mito_order(mid: str = "mr-1", dose: float = 12) -> dict:
    return med_request(mid, MITO, (dose, "mg/m2"), timing(3, "mo", count=1, start="2026-11-20"))


@pytest.fixture
def good() -> dict:
    return hook_request([mito_order()])


def outcome(response, status: int) -> dict:
    """The single OperationOutcome issue of an error response, after checking its status."""
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert body["resourceType"] == "OperationOutcome"
    assert len(body["issue"]) == 1
    return body["issue"][0]


def test_discovery_lists_exactly_the_two_services_with_the_contract_prefetch_keys(client):
    services = client.get("/cds-services").get_json()["services"]
    assert {(s["id"], s["hook"]) for s in services} == {("prior-auth-order-sign", "order-sign"),
                                                        ("prior-auth-order-select", "order-select")}
    for service in services:
        assert set(service["prefetch"]) == PREFETCH_KEYS
        assert service["prefetch"]["patient"] == "Patient/{{context.patientId}}"
        assert all("{{context.patientId}}" in q for k, q in service["prefetch"].items()
                   if k not in ("patient", "user", "practitionerRoles"))
        assert service["title"] and service["description"]


def test_body_that_is_not_json_is_400_naming_the_body(client):
    issue = outcome(client.post(SIGN, data='{"hook": "order-sign",', content_type="application/json"), 400)
    assert "not valid JSON" in issue["diagnostics"]
    assert issue["expression"] == ["$"]


@pytest.mark.parametrize("raw, said", [
    ("", "empty"),
    ("[1, 2]", "must be a JSON object"),
    ('{"hook": NaN}', "NaN"),
    ('{"hook": 1e400}', "out of range"),
    ("[" * 5000 + "]" * 5000, "deeper than"),
    ('{"a":' * 100 + "1" + "}" * 100, "deeper than"),
])
def test_bodies_that_are_not_a_json_object_are_400(client, raw, said):
    issue = outcome(client.post(SIGN, data=raw, content_type="application/json"), 400)
    assert said in issue["diagnostics"]
    assert issue["expression"] == ["$"]


def test_invalid_utf8_is_400(client):
    outcome(client.post(SIGN, data=b"\xff\xfe{", content_type="application/json"), 400)


@pytest.mark.parametrize("change, field, path", [
    (lambda b: b.pop("hook"), "hook", "$.hook"),
    (lambda b: b.pop("hookInstance"), "hookInstance", "$.hookInstance"),
    (lambda b: b.pop("context"), "context", "$.context"),
    (lambda b: b["context"].pop("patientId"), "patientId", "$.context.patientId"),
    (lambda b: b["context"].pop("draftOrders"), "draftOrders", "$.context.draftOrders"),
    (lambda b: b.update(hook=5), "hook", "$.hook"),
    (lambda b: b["context"].update(patientId=["p"]), "patientId", "$.context.patientId"),
    (lambda b: b["context"].update(draftOrders="x"), "draftOrders", "$.context.draftOrders"),
    (lambda b: b["context"]["draftOrders"].update(entry=["x"]), "entry", "$.context.draftOrders.entry[0]"),
    (lambda b: b["prefetch"].update(patient=5), "patient", "$.prefetch.patient"),
    (lambda b: b.update(prefetch=[]), "prefetch", "$.prefetch"),
    (lambda b: b.update(fhirServer="ftp://ehr.example/fhir"), "fhirServer", "$.fhirServer"),
    (lambda b: b.update(fhirAuthorization={"access_token": "t"}), "fhirServer", "$.fhirServer"),
])
def test_schema_violations_are_400_naming_the_field_and_its_json_path(client, good, change, field, path):
    change(good)
    issue = outcome(client.post(SIGN, json=good), 400)
    assert f"'{field}'" in issue["diagnostics"]
    assert issue["expression"] == [path]


def test_order_select_without_selections_is_400(client, good):
    good["hook"] = "order-select"
    issue = outcome(client.post(SELECT, json=good), 400)
    assert issue["expression"] == ["$.context.selections"]


def test_extra_fields_are_allowed(client, good):
    good["extension"] = {"davinci-crd.requestedVersion": "2.0"}
    good["context"]["somethingNew"] = {"x": 1}
    good["novel"] = True
    assert client.post(SIGN, json=good).status_code == 200


def test_unknown_service_is_404(client, good):
    issue = outcome(client.post("/cds-services/no-such-service", json=good), 404)
    assert "no-such-service" in issue["diagnostics"]


def test_a_10_mb_body_is_413(client):
    body = b'{"hook": "' + b"x" * (10 * 1024 * 1024) + b'"}'
    issue = outcome(client.post(SIGN, data=body, content_type="application/json"), 413)
    assert "limit" in issue["diagnostics"]


def test_a_body_over_a_configured_limit_is_413(app, good):
    app.config["MAX_CONTENT_LENGTH"] = 1000
    outcome(app.test_client().post(SIGN, json=good), 413)


def test_no_prefetch_and_no_fhir_server_is_412_naming_the_key(client, good):
    del good["prefetch"]
    issue = outcome(client.post(SIGN, json=good), 412)
    key = issue["expression"][0].removeprefix("$.prefetch.")
    assert key in PREFETCH_KEYS
    assert f"'{key}'" in issue["diagnostics"]


def test_a_missing_key_nobody_can_fetch_is_412(client, good):
    del good["prefetch"]["conditions"]
    issue = outcome(client.post(SIGN, json=good), 412)
    assert issue["expression"] == ["$.prefetch.conditions"]


def test_no_prefetch_is_fine_when_no_order_is_routed(client):
    body = hook_request([med_request("mr-9", PREDNISONE)])
    del body["prefetch"]
    response = client.post(SIGN, json=body)
    assert response.status_code == 200
    assert response.get_json() == {"cards": [], "systemActions": []}


def test_cors_preflight_allows_browser_clients(client):
    response = client.options(SIGN, headers={"Origin": "https://ehr.example", "Access-Control-Request-Method": "POST",
                                             "Access-Control-Request-Headers": "Content-Type, Authorization"})
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] in ("*", "https://ehr.example")
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    assert {"authorization", "content-type"} <= {
        h.strip().lower() for h in response.headers["Access-Control-Allow-Headers"].split(",")}


def test_cors_header_on_an_actual_call(client, good):
    response = client.post(SIGN, json=good, headers={"Origin": "https://ehr.example"})
    assert response.headers["Access-Control-Allow-Origin"] in ("*", "https://ehr.example")


def test_order_select_evaluates_only_the_selected_order(client):
    body = hook_request([mito_order("mr-1"), mito_order("mr-2", dose=14)], hook="order-select")
    body["context"]["selections"] = ["MedicationRequest/mr-2"]
    cards = client.post(SELECT, json=body).get_json()["cards"]
    assert [c["extension"]["davinci-crd.associated-resource"] for c in cards] == [
        [{"reference": "MedicationRequest/mr-2"}]]


def test_order_sign_evaluates_every_routed_order_and_always_has_system_actions(client):
    body = hook_request([mito_order("mr-1"), mito_order("mr-2"), med_request("mr-3", PREDNISONE)])
    answer = client.post(SIGN, json=body).get_json()
    assert "systemActions" in answer
    assert sorted(c["extension"]["prior-auth.evaluation"]["order"] for c in answer["cards"]) == [
        "MedicationRequest/mr-1", "MedicationRequest/mr-2"]


def test_a_draft_order_that_breaks_r4_is_not_a_500(client, good):
    good["context"]["draftOrders"]["entry"][0]["resource"]["status"] = 5
    good["context"]["draftOrders"]["entry"][0]["resource"]["dosageInstruction"] = "twice"
    response = client.post(SIGN, json=good)
    assert response.status_code == 200
    assert response.get_json()["cards"][0]["extension"]["prior-auth.evaluation"]["policy"] == "mitoxantrone"


def test_a_prefetched_resource_that_breaks_r4_is_not_a_500(client, good):
    good["prefetch"]["patient"] = {"resourceType": "Patient", "id": "pat-1", "birthDate": "not a date"}
    response = client.post(SIGN, json=good)
    assert response.status_code == 200
    trace = response.get_json()["cards"][0]["extension"]["prior-auth.evaluation"]
    assert {c["id"]: c["status"] for c in trace["criteria"]}["I.A.3"] == "unknown"


@pytest.mark.parametrize("path", CRD_EXAMPLES, ids=[p.stem for p in CRD_EXAMPLES])
def test_every_crd_example_request_gets_200(client, path: Path):
    body = json.loads(path.read_text(encoding="utf-8"))
    service = SELECT if body.get("hook") == "order-select" else SIGN
    response = client.post(service, json=copy.deepcopy(body))
    assert response.status_code == 200, response.get_data(as_text=True)
    assert isinstance(response.get_json()["cards"], list)


def test_health_endpoints(client):
    assert client.get("/healthz").status_code == 200
    assert "mitoxantrone" in client.get("/readyz").get_json()["policies"]
