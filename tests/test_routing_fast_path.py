"""may_route: orders no policy covers are answered from raw JSON; anything route() would evaluate goes through."""
from __future__ import annotations

from cds_service.fhir_facts import read_drafts
from cds_service.policies import load_policies
from cds_service.routing import may_route, route
from tests.builders import concept, hook_request, med_request
from tests.conftest import ROOT

LIBRARY = load_policies(ROOT / "cards")


def _agrees_with_route(drafts: list[dict], medications: dict | None = None) -> bool:
    medications = medications or {}
    facts, _ = read_drafts(drafts, medications)
    fast = may_route(LIBRARY, drafts, medications)
    assert fast == bool(route(LIBRARY, facts))
    return fast


def test_orders_for_other_drugs_do_not_route():
    assert not _agrees_with_route([med_request("m1", concept("rxnorm", "29046", "lisinopril 10 MG Oral Tablet"))])


def test_a_routed_code_or_the_drug_name_routes():
    assert _agrees_with_route([med_request("m1", concept("rxnorm", "197989"))])
    assert _agrees_with_route([med_request("m1", concept("http://example.org/local", "x1", "Novantrone 20 mg"))])
    assert _agrees_with_route([med_request("m2", concept("rxnorm", "29046", "lisinopril")),
                               med_request("m1", concept("rxnorm", "99999", text="MITOXANTRONE inj"))])


def test_a_medication_reference_is_followed_as_route_follows_it():
    contained = med_request("m1", None, contained=[{"resourceType": "Medication", "id": "med",
                                                    "code": concept("hcpcs", "J9293")}],
                            medicationReference={"reference": "#med"})
    del contained["medicationCodeableConcept"]
    assert _agrees_with_route([contained])
    by_bundle = med_request("m2", None, medicationReference={"reference": "Medication/med-9"})
    del by_bundle["medicationCodeableConcept"]
    assert _agrees_with_route([by_bundle], {"Medication/med-9": {"resourceType": "Medication", "id": "med-9",
                                                                  "code": concept("rxnorm", "197989")}})


def test_the_service_answers_other_drugs_with_no_card(client):
    body = hook_request([med_request("m1", concept("rxnorm", "29046", "lisinopril"))])
    response = client.post("/cds-services/prior-auth-order-sign", json=body)
    assert response.status_code == 200
    assert response.get_json() == {"cards": [], "systemActions": []}
