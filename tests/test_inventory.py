"""Inventory: policy files validate, clause ids are unique and complete, no drug code routes to two policies."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from cds_service.evaluate.registry import LEAF_KINDS
from cds_service.policies import compile_policy, load_policies
from cds_service.record import normalise_code

ROOT = Path(__file__).resolve().parent.parent
CARDS = sorted((ROOT / "cards").glob("*.json"))
# A copy of the clause ids of ../shared/clauses.md per policy (CI may not have ../shared).
EXPECTED = json.loads((Path(__file__).parent / "data" / "clause_ids.json").read_text())


def _ids(node, out: list[str]) -> list[str]:
    if isinstance(node, dict):
        if isinstance(node.get("id"), str):
            out.append(node["id"])
        for key in ("criteria", "all_of", "any_of", "informational"):
            for child in node.get(key, ()):
                _ids(child, out)
    return out


@pytest.mark.parametrize("path", CARDS, ids=[p.stem for p in CARDS])
def test_policy_file_validates_with_unique_ids(path: Path):
    data = json.loads(path.read_text())
    compile_policy(data, str(path))
    ids = _ids(data, [])
    assert len(ids) == len(set(ids)), sorted({i for i in ids if ids.count(i) > 1})


@pytest.mark.parametrize("policy", sorted(EXPECTED))
def test_every_clause_of_the_section_is_encoded(policy: str):
    path = ROOT / "cards" / f"{policy}.json"
    if not path.exists():
        pytest.skip(f"{policy} not encoded on this branch")
    encoded = set(_ids(json.loads(path.read_text()), []))
    assert [i for i in EXPECTED[policy] if i not in encoded] == []


def test_no_drug_code_routes_to_two_policies():
    owners: dict[tuple[str, str], set[str]] = {}
    for path in CARDS:
        for code in json.loads(path.read_text())["drug"]["codes"]:
            key = (code["system"], normalise_code(code["system"], code["code"]))
            owners.setdefault(key, set()).add(path.stem)
    assert {k: v for k, v in owners.items() if len(v) > 1} == {}
    assert load_policies(ROOT / "cards").routing  # the loader agrees


def test_every_kind_used_has_an_evaluator_and_a_scenario_exercises_each_policy():
    library = load_policies(ROOT / "cards")
    for policy in library:
        for leaf in policy.leaves():
            assert leaf.kind in LEAF_KINDS, (policy.key, leaf.id)
        assert list((ROOT / "fixtures" / policy.key).glob("*.json")), f"no scenarios for {policy.key}"


def test_clause_guards_name_clauses_of_their_policy():
    for policy in load_policies(ROOT / "cards"):
        for node in policy.nodes.values():
            for pred in (node.applies_if, node.requires):
                if pred is not None and pred.kind == "clause_status":
                    assert set(pred.params["clauses"]) <= set(policy.nodes), (policy.key, node.id)
