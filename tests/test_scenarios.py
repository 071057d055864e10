"""Every scenario fixture (fixtures/<policy>/*.json) through the HTTP API: decision, phase and clause statuses."""
from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from cds_service.record import Answer
from tests.conftest import FIXTURES, ROOT, load_fixture

# Scenario folders are named for a policy file in cards/; other folders (e.g. crd-examples) hold raw requests.
SCENARIOS = sorted(p for p in FIXTURES.glob("*/*.json") if (ROOT / "cards" / f"{p.parent.name}.json").is_file())


def _answers(values: dict) -> dict[str, Answer]:
    return {k: Answer(k, v, authored=date(2026, 11, 1), source="fixture answer") for k, v in values.items()}


@pytest.mark.parametrize("path", SCENARIOS, ids=[f"{p.parent.name}/{p.stem}" for p in SCENARIOS])
def test_scenario(app, client, path: Path):
    scenario = load_fixture(path)
    if scenario.get("answers"):
        answers = _answers(scenario["answers"])
        app.extensions["cds_service"].answers = lambda patient, policies: answers
    service = scenario.get("service", "prior-auth-order-sign")
    response = client.post(f"/cds-services/{service}", json=scenario["request"])
    assert response.status_code == scenario.get("status", 200), response.get_data(as_text=True)
    expect = scenario["expect"]
    cards = response.get_json()["cards"]
    if "cards" in expect:
        assert len(cards) == expect["cards"]
        return
    traces = [c["extension"]["prior-auth.evaluation"] for c in cards
              if c["extension"]["prior-auth.evaluation"]["order"] == expect["order"]]
    assert len(traces) == 1, f"one card for {expect['order']}"
    trace = traces[0]
    assert trace["policy"] == expect["policy"]
    assert trace["phase"] == expect["phase"]
    statuses = {c["id"]: c["status"] for c in trace["criteria"]}
    wrong = {cid: (statuses.get(cid), want) for cid, want in expect["criteria"].items() if statuses.get(cid) != want}
    assert not wrong, f"clause (got, expected): {wrong}"
    assert trace["decision"] == expect["decision"]
