"""Logs: one JSON line per request, and none of the fixtures' patient identifiers, names, birth dates or tokens."""
from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from cds_service import create_app
from cds_service.logs import JsonFormatter
from tests.conftest import FIXTURES, ROOT, TODAY, load_fixture

SCENARIOS = sorted(FIXTURES.glob("*/*.json"))
BASE = "https://cds.example.org"
ISS = "https://ehr.example.org"
KEY = ec.generate_private_key(ec.SECP384R1())
FHIR_TOKEN = "fhir-access-token-" + uuid.uuid4().hex


@pytest.fixture
def log_lines() -> Iterator[list[str]]:
    lines: list[str] = []

    class Capture(logging.Handler):
        def emit(self, record):
            lines.append(self.format(record))

    handler = Capture(level=logging.DEBUG)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("cds_service")
    logger.addHandler(handler)
    previous = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        yield lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


@pytest.fixture
def secure_app(tmp_path):
    jwk = {**json.loads(ECAlgorithm.to_jwk(KEY.public_key())), "kid": "k1", "alg": "ES384"}
    issuers = tmp_path / "issuers.json"
    issuers.write_text(json.dumps({ISS: {"jwks": {"keys": [jwk]}}}))
    return create_app({"CDS_TODAY": TODAY, "CDS_CARDS_DIR": str(ROOT / "cards"), "CDS_PUBLIC_BASE_URL": BASE,
                       "CDS_JWT_ISSUERS_FILE": str(issuers)})


def token_for(path: str) -> str:
    now = int(time.time())
    return jwt.encode({"iss": ISS, "sub": "ehr", "aud": BASE + path, "iat": now, "exp": now + 300,
                       "jti": str(uuid.uuid4())}, KEY, algorithm="ES384", headers={"kid": "k1"})


def identifying_values(request: dict) -> set[str]:
    """Every patient id, name part and birth date in a request (context and prefetch)."""
    values = {request["context"]["patientId"]}

    def walk(node):
        if isinstance(node, dict):
            if node.get("resourceType") == "Patient":
                values.update(v for v in (node.get("id"), node.get("birthDate")) if isinstance(v, str))
                for name in node.get("name") or ():
                    values.update(p for p in [name.get("family"), *(name.get("given") or ())] if isinstance(p, str))
            if isinstance(node.get("reference"), str) and node["reference"].startswith("Patient/"):
                values.add(node["reference"].split("/", 1)[1])
            for child in node.values():
                walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(request)
    return {v for v in values if v}


@pytest.mark.parametrize("path", SCENARIOS, ids=[f"{p.parent.name}/{p.stem}" for p in SCENARIOS])
def test_fixture_leaves_no_patient_data_or_token_in_the_logs(secure_app, log_lines, path: Path):
    scenario = load_fixture(path)
    request = {**scenario["request"], "fhirServer": "https://ehr.example.org/fhir",
               "fhirAuthorization": {"access_token": FHIR_TOKEN, "token_type": "Bearer", "expires_in": 300,
                                     "scope": "patient/*.read", "subject": "cds-service"}}
    service = scenario.get("service", "prior-auth-order-sign")
    url = f"/cds-services/{service}"
    bearer = token_for(url)
    response = secure_app.test_client().post(url, json=request, headers={"Authorization": f"Bearer {bearer}"})
    assert response.status_code == scenario.get("status", 200)
    secrets = identifying_values(request) | {bearer, bearer.split(".")[2], FHIR_TOKEN}
    text = "\n".join(log_lines)
    leaked = sorted(s for s in secrets if s in text)
    assert not leaked, f"in the logs: {leaked}"
    requests = [r for r in map(json.loads, log_lines) if r.get("event") == "request"]
    assert len(requests) == 1
    line = requests[0]
    assert line["service"] == service and line["hook"] == request["hook"] and line["status"] == response.status_code
    assert line["hookInstance"] == request["hookInstance"] and line["duration_ms"] >= 0
    decisions = [c["extension"]["prior-auth.evaluation"]["decision"] for c in response.get_json()["cards"]]
    assert line["decisions"] == {d: decisions.count(d) for d in set(decisions)}


def test_a_hook_instance_that_is_not_a_uuid_is_not_logged(client, log_lines):
    body = load_fixture(SCENARIOS[0])["request"]
    body["hookInstance"] = "Ada Testpatient 1979-04-02"
    client.post("/cds-services/prior-auth-order-sign", json=body)
    (line,) = [r for r in map(json.loads, log_lines) if r.get("event") == "request"]
    assert line["hookInstance"] == "not-a-uuid"
    assert "Testpatient" not in "\n".join(log_lines)


def test_errors_are_logged_by_route_never_by_the_path_filled_in(client, log_lines):
    client.get("/cds-services/pat-1-Testpatient/feedback")
    client.post("/cds-services/Ada-Testpatient", json={})
    assert "Testpatient" not in "\n".join(log_lines)
    statuses = [r["status"] for r in map(json.loads, log_lines) if r.get("event") == "request"]
    assert statuses == [405, 404] or statuses == [404, 404]
