"""Da Vinci CRD on the answer: coverage-information system actions, configuration, and the CRD suite's checks."""
from __future__ import annotations

import copy
import json

import pytest

from cds_service.db import storage
from cds_service.record import Answer
from fixtures.generate.mitoxantrone import ms_request
from tests.builders import coverage, patient
from tests.conftest import FIXTURES
from tests.crd_checks import (
    assertion_id_problems,
    coverage_extensions,
    coverage_information_problems,
    response_problems,
)

EXAMPLES = FIXTURES / "crd-examples"
REQUESTS = sorted((EXAMPLES / "requests").glob("*.json"))
SERVICES = ("prior-auth-order-sign", "prior-auth-order-select")
BASE = "http://localhost"


def _sub(ext: dict, url: str) -> list:
    return [next(v for k, v in s.items() if k.startswith("value")) for s in ext["extension"] if s["url"] == url]


def _sign(client, request: dict, service: str = "prior-auth-order-sign") -> dict:
    response = client.post(f"/cds-services/{service}", json=request)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def test_order_sign_with_coverage_gets_one_coverage_information_action(client, app):
    request = ms_request()  # criteria met except the undocumented baseline (I.A.5): documentation needed
    body = _sign(client, request)
    assert response_problems(body, "order-sign") == []
    actions = body["systemActions"]
    assert len(actions) == 1
    action = actions[0]
    assert action["type"] == "update" and action["description"]
    draft = request["context"]["draftOrders"]["entry"][0]["resource"]
    resource = action["resource"]
    assert {k: v for k, v in resource.items() if k != "extension"} == draft, "nothing but the extension changes"
    [ext] = coverage_extensions(resource)
    assert coverage_information_problems(ext) == []
    assert assertion_id_problems(resource) == []
    assert _sub(ext, "coverage") == [{"reference": "Coverage/cov-1"}]
    assert _sub(ext, "covered") == ["covered"]
    assert _sub(ext, "pa-needed") == ["auth-needed"]
    assert _sub(ext, "doc-needed") == ["clinical"]
    assert _sub(ext, "doc-purpose") == ["withpa"]
    assert _sub(ext, "questionnaire") == [f"{BASE}/fhir/Questionnaire/mitoxantrone"]
    assert _sub(ext, "date") == ["2026-11-26"]
    assert "I.A.5" in _sub(ext, "reason")[0]["text"]
    [assertion_id] = _sub(ext, "coverage-assertion-id")
    with app.app_context():
        stored = storage().assertion(assertion_id)
    assert stored is not None and stored.order_ref == "MedicationRequest/mr-1" and stored.doc_needed == "clinical"
    card = body["cards"][0]
    assert card["links"][0]["url"] == f"{BASE}/fhir/Questionnaire/mitoxantrone"


def test_criteria_met_asks_for_no_documentation(client, app):
    app.extensions["cds_service"].answers = lambda p, policies: {"mitoxantrone:I.A.5": Answer("I.A.5", True)}
    body = _sign(client, ms_request())
    [ext] = coverage_extensions(body["systemActions"][0]["resource"])
    assert coverage_information_problems(ext) == []
    assert _sub(ext, "covered") == ["covered"] and _sub(ext, "pa-needed") == ["auth-needed"]
    assert _sub(ext, "doc-needed") == [] and _sub(ext, "questionnaire") == []


def test_not_covered_has_no_pa_needed(client):
    from fixtures.generate.mitoxantrone import PPMS
    body = _sign(client, ms_request(conditions=[PPMS]))
    [ext] = coverage_extensions(body["systemActions"][0]["resource"])
    assert coverage_information_problems(ext) == []
    assert _sub(ext, "covered") == ["not-covered"] and _sub(ext, "pa-needed") == []
    assert "III.B" in _sub(ext, "reason")[0]["text"]


def test_order_select_never_asks_for_documentation(client):
    body = _sign(client, ms_request(hook="order-select"), "prior-auth-order-select")
    assert body["cards"], "order-select still shows the criteria card"
    [ext] = coverage_extensions(body["systemActions"][0]["resource"])
    assert coverage_information_problems(ext) == []
    assert _sub(ext, "doc-needed") == [] and _sub(ext, "doc-purpose") == [] and _sub(ext, "questionnaire") == []


def test_no_coverage_means_cards_only(client):
    body = _sign(client, ms_request(coverages=[]))
    assert body["cards"] and body["systemActions"] == []


def test_two_coverages_two_extensions_with_distinct_assertion_ids(client):
    body = _sign(client, ms_request(coverages=[coverage(), coverage("commercial", cid="cov-2")]))
    resource = body["systemActions"][0]["resource"]
    extensions = coverage_extensions(resource)
    assert [_sub(e, "coverage")[0]["reference"] for e in extensions] == ["Coverage/cov-1", "Coverage/cov-2"]
    assert assertion_id_problems(resource) == []
    assert all(coverage_information_problems(e) == [] for e in extensions)


def test_earlier_coverage_information_for_the_same_coverage_is_replaced(client):
    request = ms_request()
    first = _sign(client, request)["systemActions"][0]["resource"]
    again = copy.deepcopy(request)
    again["context"]["draftOrders"]["entry"][0]["resource"] = first
    resource = _sign(client, again)["systemActions"][0]["resource"]
    assert len(coverage_extensions(resource)) == 1
    assert assertion_id_problems(resource) == []


def test_discovery_declares_configuration_options(client):
    services = client.get("/cds-services").get_json()["services"]
    for service in services:
        options = {o["code"]: o for o in service["extension"]["davinci-crd.configuration-options"]}
        assert options["coverage-info"]["type"] == "boolean" and options["coverage-info"]["default"] is True
        assert options["max-cards"]["type"] == "integer"
        assert all({"code", "type", "name", "description", "default"} <= set(o) for o in options.values())


def _configured(options: dict) -> dict:
    request = ms_request()
    request["extension"] = {"davinci-crd.configuration": options}
    return request


def test_configuration_coverage_info_off_returns_nothing_of_that_type(client):
    body = _sign(client, _configured({"coverage-info": False}))
    assert body == {"cards": [], "systemActions": []}


def test_configuration_max_cards_is_obeyed(client):
    body = _sign(client, _configured({"max-cards": 0}))
    assert body["cards"] == [] and len(body["systemActions"]) == 1


@pytest.mark.parametrize("options", [{"cost": False, "claim": False, "max-cards": 5}, {"coverage-info": "no"},
                                     {"max-cards": True}, {"max-cards": -1}, "not an object"])
def test_unknown_or_mistyped_configuration_is_ignored(client, options):
    body = _sign(client, _configured(options))
    assert len(body["cards"]) == 1 and len(body["systemActions"]) == 1


@pytest.mark.parametrize("service", SERVICES)
@pytest.mark.parametrize("path", REQUESTS, ids=[p.stem for p in REQUESTS])
def test_every_crd_example_request_gets_a_conforming_200(client, path, service):
    request = json.loads(path.read_text(encoding="utf-8"))
    response = client.post(f"/cds-services/{service}", json=request)
    assert response.status_code == 200, response.get_data(as_text=True)
    hook = "order-sign" if service.endswith("sign") else "order-select"
    assert response_problems(response.get_json(), hook) == []


def test_the_checker_accepts_inferno_valid_coverage_information_and_rejects_the_broken_one():
    good = json.loads((EXAMPLES / "inferno-responses/coverage_info_system_action_covered.json").read_text())
    [ext] = coverage_extensions(good["resource"])
    assert coverage_information_problems(ext) == []
    bad = json.loads((EXAMPLES / "inferno-responses/coverage_info_system_action_conditional.json").read_text())
    problems = [p for e in coverage_extensions(bad["resource"]) for p in coverage_information_problems(e)]
    assert any("crd-ci-q2 (2.0.1)" in p for p in problems)


@pytest.mark.parametrize("scenario", sorted(p for p in FIXTURES.glob("*/*.json")), ids=lambda p: p.stem)
def test_every_scenario_answer_passes_the_crd_checks(client, scenario):
    data = json.loads(scenario.read_text(encoding="utf-8"))
    service = data.get("service", "prior-auth-order-sign")
    body = _sign(client, data["request"], service)
    assert response_problems(body, "order-sign" if service.endswith("sign") else "order-select") == []
    for action in body.get("systemActions") or ():
        for ext in coverage_extensions(action["resource"]):
            assert coverage_information_problems(ext) == []
        assert assertion_id_problems(action["resource"]) == []


def test_access_token_is_not_kept_in_the_audit(client, app):
    request = ms_request(patient_=patient())
    request["fhirServer"] = "http://127.0.0.1:9/fhir"
    request["fhirAuthorization"] = {"access_token": "secret-token", "token_type": "Bearer", "expires_in": 300,
                                    "scope": "patient/*.read", "subject": "cds-service"}
    _sign(client, request)
    with app.app_context():
        [call] = storage().hook_calls(request["hookInstance"])
    assert "secret-token" not in json.dumps(call.request_json)
    assert call.patient_id == "pat-1" and len(call.assertions) == 1
