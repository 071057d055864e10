"""Property-based fuzzing: no input yields a 5xx or an answer slower than the latency budget.

Two generators, both bounded and derandomised so a fresh clone runs the same cases:
- schemathesis walks cds_service/openapi.json (valid and invalid bodies, path parameters, wrong methods);
- hypothesis mutates the real scenario fixtures (any subtree replaced by any JSON, keys deleted), which
  reaches the FHIR reading and the evaluation a schema-generated body rarely gets to.
"""
from __future__ import annotations

import copy
import json
import time
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cds_service import create_app
from cds_service.openapi import openapi_document
from tests.conftest import FIXTURES, ROOT, TODAY, load_fixture

LATENCY_BUDGET_S = 1.0  # the fixtures answer in milliseconds; one second means something is wrong
OPENAPI_CASES = 25  # per operation and generation phase
MUTATION_CASES = 200
# Endpoints the database/DTR work provides; until it is merged they may answer 404 here.
PENDING = {"/cds-services/{serviceId}/feedback", "/fhir/Questionnaire/{policy}",
           "/fhir/Questionnaire/$questionnaire-package", "/fhir/QuestionnaireResponse",
           "/fhir/QuestionnaireResponse/{id}"}

APP = create_app({"CDS_TODAY": TODAY, "CDS_CARDS_DIR": str(ROOT / "cards")})
SCHEMA = schemathesis.openapi.from_wsgi("/openapi.json", APP)
SCENARIOS = [load_fixture(p) for p in sorted(FIXTURES.glob("*/*.json"))]
FUZZ_SETTINGS = {"deadline": None, "derandomize": True, "database": None,
                 "suppress_health_check": list(HealthCheck)}
STATS: dict[str, Any] = {"cases": 0, "worst_s": 0.0, "worst": ""}


@pytest.fixture(scope="module", autouse=True)
def report_stats():
    yield
    print(f"\nfuzz: {STATS['cases']} cases, worst latency {STATS['worst_s'] * 1000:.1f} ms ({STATS['worst']})")


def _timed(label: str, call) -> tuple[Any, float]:
    started = time.perf_counter()
    response = call()
    elapsed = time.perf_counter() - started
    STATS["cases"] += 1
    if elapsed > STATS["worst_s"]:
        STATS["worst_s"], STATS["worst"] = elapsed, label
    return response, elapsed


def _documented(path: str, method: str) -> set[str]:
    operation = openapi_document()["paths"].get(path, {}).get(method.lower(), {})
    return set(operation.get("responses", {}))


@SCHEMA.parametrize()
@settings(max_examples=OPENAPI_CASES, **FUZZ_SETTINGS)
def test_openapi_operations_never_fail_or_stall(case):
    response, elapsed = _timed(case.operation.label, case.call)
    assert response.status_code < 500, response.text[:500]
    assert elapsed < LATENCY_BUDGET_S
    path, method = case.operation.path, case.method
    if path in PENDING and response.status_code == 404:
        return
    if method.upper() != case.operation.method.upper():
        # schemathesis also tries methods a path does not have; Flask answers HEAD and OPTIONS itself
        assert response.status_code == 405 or method.upper() in ("HEAD", "OPTIONS") and response.status_code == 200
    else:
        assert str(response.status_code) in _documented(path, method), response.text[:500]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(node, dict):
        for key, child in node.items():
            out += _paths(child, (*prefix, key))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            out += _paths(child, (*prefix, index))
    return out


@st.composite
def mutated_requests(draw) -> tuple[str, dict]:
    """A real fixture request with one to three subtrees replaced by arbitrary JSON or removed."""
    scenario = draw(st.sampled_from(SCENARIOS))
    body = copy.deepcopy(scenario["request"])
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(body) if p]
        path = draw(st.sampled_from(paths))
        parent = body
        for part in path[:-1]:
            parent = parent[part]
        if isinstance(parent, dict) and draw(st.booleans()):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(json_values)
    service = scenario.get("service", "prior-auth-order-sign")
    return service, body


@given(mutated_requests())
@settings(max_examples=MUTATION_CASES, **FUZZ_SETTINGS)
def test_mutated_fixtures_never_fail_or_stall(mutated):
    service, body = mutated
    client = APP.test_client()
    response, elapsed = _timed(f"POST {service} (mutated fixture)",
                               lambda: client.post(f"/cds-services/{service}", data=json.dumps(body),
                                                   content_type="application/json"))
    assert response.status_code in (200, 400, 412), response.get_data(as_text=True)[:500]
    assert elapsed < LATENCY_BUDGET_S
