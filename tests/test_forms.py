"""DTR-style documentation forms: generated Questionnaires, the package operation, and answer validation."""
from __future__ import annotations

import pytest

from cds_service.fhir_facts import resource_problem
from cds_service.policies import load_policies
from cds_service.questionnaire import ORIGIN_EXTENSION
from fixtures.generate.mitoxantrone import ms_request
from fixtures.generate.mitoxantrone import order as ms_order
from tests.builders import coverage
from tests.conftest import ROOT

CANONICAL = "http://localhost/fhir/Questionnaire/mitoxantrone"
LIBRARY = load_policies(ROOT / "cards")


def _items(questionnaire: dict) -> dict[str, dict]:
    return {i["linkId"]: i for group in questionnaire["item"] for i in group["item"]}


@pytest.mark.parametrize("policy", sorted(LIBRARY.policies))
def test_every_policy_has_a_valid_form_at_its_canonical(client, policy):
    response = client.get(f"/fhir/Questionnaire/{policy}")
    assert response.status_code == 200 and response.mimetype == "application/fhir+json"
    form = response.get_json()
    assert resource_problem(form, "Questionnaire") is None
    assert form["url"] == f"http://localhost/fhir/Questionnaire/{policy}" and form["status"] == "active"
    link_ids = [i["linkId"] for g in form["item"] for i in [g, *g["item"]]]
    assert len(link_ids) == len(set(link_ids)), "linkIds are unique"
    nodes = LIBRARY.policies[policy].nodes
    asked = {n.id for n in nodes.values() if n.question or n.kind == "documentation"}
    assert asked <= set(link_ids), "an item for every clause a person can answer"


def test_item_types_follow_the_policy_questions(client):
    items = _items(client.get("/fhir/Questionnaire/mitoxantrone").get_json())
    assert items["I.A.5"]["type"] == "boolean" and items["I.A.5"]["prefix"] == "I.A.5"
    assert items["I.A.5.edss"]["type"] == "decimal" and items["I.A.5.relapses"]["type"] == "integer"
    protocol = items["I.E.4.b.ii.protocol"]
    assert protocol["type"] == "choice"
    assert [o["valueString"] for o in protocol["answerOption"]] == ["UKALL R3", "COG AALL1331", "neither"]
    assert items["I.A.1.a.i"]["type"] == "boolean"


def test_unknown_form_is_404(client):
    response = client.get("/fhir/Questionnaire/aspirin")
    assert response.status_code == 404 and response.get_json()["resourceType"] == "OperationOutcome"
    assert client.get("/fhir/QuestionnaireResponse/nope").status_code == 404


def _response(**changes) -> dict:
    out = {"resourceType": "QuestionnaireResponse", "status": "completed", "questionnaire": CANONICAL,
           "subject": {"reference": "Patient/pat-1"},
           "item": [{"linkId": "section-I", "item": [{"linkId": "I.A.5", "answer": [{"valueBoolean": True}]}]}]}
    out.update(changes)
    return out


@pytest.mark.parametrize(("body", "status", "where"), [
    ({"resourceType": "Patient"}, 400, "QuestionnaireResponse"),
    (_response(item=[{"answer": [{"valueBoolean": True}]}]), 400, "QuestionnaireResponse.item[0].linkId"),
    (_response(status="done"), 400, "QuestionnaireResponse.status"),
    (_response(questionnaire="http://elsewhere/Questionnaire/x"), 422, "QuestionnaireResponse.questionnaire"),
    (_response(subject={"reference": "Group/1"}), 422, "QuestionnaireResponse.subject"),
    (_response(item=[{"linkId": "Z.9", "answer": [{"valueBoolean": True}]}]), 422,
     "QuestionnaireResponse.item[0].linkId"),
    (_response(item=[{"linkId": "I.A.5", "answer": [{"valueString": "yes"}]}]), 422,
     "QuestionnaireResponse.item[0].answer[0]"),
    (_response(item=[{"linkId": "I.E.4.b.ii.protocol", "answer": [{"valueString": "other"}]}]), 422,
     "QuestionnaireResponse.item[0].answer[0]"),
])
def test_invalid_answers_are_refused_and_say_where(client, body, status, where):
    response = client.post("/fhir/QuestionnaireResponse", json=body)
    assert response.status_code == status, response.get_data(as_text=True)
    issue = response.get_json()["issue"][0]
    assert issue["expression"] == [where]


def test_numeric_answers_are_kept_with_their_value(client, app):
    form = _response(item=[{"linkId": "I.A.5.edss", "answer": [{"valueDecimal": 3.5}]},
                           {"linkId": "I.A.5.relapses", "answer": [{"valueInteger": 2}]}])
    assert client.post("/fhir/QuestionnaireResponse", json=form).status_code == 201
    with app.app_context():
        from cds_service.db import storage
        answers = storage().answers_for("pat-1", ["mitoxantrone"])
    assert answers["mitoxantrone:I.A.5.edss"].value == 3.5 and answers["mitoxantrone:I.A.5.relapses"].value == 2


def _package(*parameters: dict) -> dict:
    return {"resourceType": "Parameters", "parameter": list(parameters)}


def test_package_returns_the_form_then_a_response_prefilled_from_the_server(client):
    client.post("/cds-services/prior-auth-order-sign", json=ms_request())  # the record shows the step therapy
    client.post("/fhir/QuestionnaireResponse", json=_response())  # and I.A.5 was documented
    response = client.post("/fhir/Questionnaire/$questionnaire-package", json=_package(
        {"name": "coverage", "resource": coverage()}, {"name": "order", "resource": ms_order()}))
    assert response.status_code == 200, response.get_data(as_text=True)
    [bundle] = [p["resource"] for p in response.get_json()["parameter"] if p["name"] == "PackageBundle"]
    form, prefilled = (e["resource"] for e in bundle["entry"])
    assert form["resourceType"] == "Questionnaire" and form["url"] == CANONICAL
    assert prefilled["resourceType"] == "QuestionnaireResponse" and prefilled["questionnaire"] == CANONICAL
    assert resource_problem(prefilled, "QuestionnaireResponse") is None
    answers = {i["linkId"]: i["answer"][0] for g in prefilled["item"] for i in g["item"]}
    assert answers["I.A.1.a.i"]["valueBoolean"] is True, "from the record (the evaluation kept in the audit)"
    assert answers["I.A.5"]["valueBoolean"] is True, "from the stored answer"
    origin = answers["I.A.5"]["extension"][0]
    assert origin["url"] == ORIGIN_EXTENSION and origin["extension"][0]["valueCode"] == "auto-server"


def test_package_by_canonical_or_assertion_id(client):
    body = client.post("/cds-services/prior-auth-order-sign", json=ms_request()).get_json()
    ext = body["systemActions"][0]["resource"]["extension"][-1]
    [assertion] = [s["valueString"] for s in ext["extension"] if s["url"] == "coverage-assertion-id"]
    by_context = client.post("/fhir/Questionnaire/$questionnaire-package",
                             json=_package({"name": "context", "valueString": assertion}))
    by_url = client.post("/fhir/Questionnaire/$questionnaire-package",
                         json=_package({"name": "questionnaire", "valueCanonical": CANONICAL}))
    for response in (by_context, by_url):
        assert response.status_code == 200
        bundle = response.get_json()["parameter"][0]["resource"]
        assert bundle["entry"][0]["resource"]["id"] == "mitoxantrone"


def test_package_with_nothing_to_go_on_is_422(client):
    response = client.post("/fhir/Questionnaire/$questionnaire-package",
                           json=_package({"name": "context", "valueString": "unknown"}))
    assert response.status_code == 422
    assert client.post("/fhir/Questionnaire/$questionnaire-package", json={"resourceType": "Bundle"}).status_code \
        == 400
