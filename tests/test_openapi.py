"""The OpenAPI document: served as kept in the repo, covering every contract endpoint, in step with the schema."""
from __future__ import annotations

import json

from cds_service.openapi import openapi_document
from tests.conftest import ROOT

CONTRACT_ENDPOINTS = {
    ("get", "/cds-services"), ("post", "/cds-services/prior-auth-order-sign"),
    ("post", "/cds-services/prior-auth-order-select"), ("post", "/cds-services/{serviceId}/feedback"),
    ("get", "/fhir/Questionnaire/{policy}"), ("post", "/fhir/Questionnaire/$questionnaire-package"),
    ("post", "/fhir/QuestionnaireResponse"), ("get", "/fhir/QuestionnaireResponse/{id}"),
    ("get", "/healthz"), ("get", "/readyz"), ("get", "/openapi.json"),
}


def _as_component(node):
    """The request schema file's `#/$defs/x` references as the OpenAPI document spells them."""
    if isinstance(node, dict):
        return {k: ("#/components/schemas/" + v.rsplit("/", 1)[1] if k == "$ref" else _as_component(v))
                for k, v in node.items()}
    if isinstance(node, list):
        return [_as_component(x) for x in node]
    return node


def test_served_document_is_the_one_in_the_repo(client):
    response = client.get("/openapi.json")
    assert response.status_code == 200
    assert response.get_json() == json.loads((ROOT / "cds_service" / "openapi.json").read_text())
    assert response.get_json()["openapi"].startswith("3.1")


def test_every_contract_endpoint_is_documented():
    documented = {(method, path) for path, ops in openapi_document()["paths"].items() for method in ops}
    assert documented >= CONTRACT_ENDPOINTS


def test_hook_request_schema_matches_the_one_the_service_checks_with():
    schema = json.loads((ROOT / "cds_service" / "schemas" / "hook-request.schema.json").read_text())
    components = openapi_document()["components"]["schemas"]
    for name, definition in schema.pop("$defs").items():
        assert components[name] == _as_component(definition), name
    body = {k: v for k, v in schema.items() if k not in ("$schema", "$id")}
    assert components["HookRequest"] == _as_component(body)
