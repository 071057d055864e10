"""Inventory for the MMM policies: every clause is pinned by a scenario, and every leaf is seen met, not met and
unknown, except where its kind cannot take that value (named below, with the reason)."""
from __future__ import annotations

import json

import pytest

from tests.conftest import FIXTURES
from tests.kind_context import library

POLICIES = ["inotuzumab", "ixabepilone"]


def _cannot(node) -> set[str]:
    """Statuses a leaf's kind never gives, by its own rule (clauses.md §0.4)."""
    p = node.params
    if node.kind == "concurrent_medication" and not p.get("absentIsNotMet"):
        return {"not-met"}  # a partner may be ordered later or elsewhere: never not-met
    if node.kind == "documentation" and p.get("anyAnswer"):
        return {"not-met"}  # the policy asks that a status be documented, either way
    if node.kind == "therapy_duration" and p.get("mode") == "order_span":
        return {"unknown"}  # the order itself is always on hand
    return set()


def _seen(policy: str) -> dict[str, set[str]]:
    seen: dict[str, set[str]] = {}
    for path in (FIXTURES / policy).glob("*.json"):
        for cid, status in json.loads(path.read_text(encoding="utf-8"))["expect"]["criteria"].items():
            seen.setdefault(cid, set()).add(status)
    return seen


@pytest.mark.parametrize("policy", POLICIES)
def test_every_clause_is_pinned_by_a_scenario(policy):
    nodes = library().policies[policy].nodes
    assert set(nodes) - set(_seen(policy)) == set()


@pytest.mark.parametrize("policy", POLICIES)
def test_every_leaf_has_met_not_met_and_missing_data_scenarios(policy):
    seen = _seen(policy)
    lacking = {}
    for node in library().policies[policy].nodes.values():
        if node.is_leaf:
            want = {"met", "not-met", "unknown"} - _cannot(node)
            if want - seen.get(node.id, set()):
                lacking[node.id] = sorted(want - seen.get(node.id, set()))
    assert lacking == {}
