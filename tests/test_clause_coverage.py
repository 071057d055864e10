"""Inventory: the fixtures of a policy pin every clause in every status it can take.

The statuses a clause can take are derived from its policy file: a leaf's kind (less the statuses
that kind can never give, below), then Kleene logic up the tree, with the guards. A policy with a
fixtures/<policy>/ folder is checked; the others are skipped until their scenarios exist.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest

from tests.conftest import FIXTURES, ROOT

MET, NOT_MET, UNKNOWN = "met", "not-met", "unknown"
ALL = frozenset({MET, NOT_MET, UNKNOWN})

# Statuses a leaf kind can never give (clauses.md §0.3-0.4). Every other status of every clause must be
# pinned by a fixture. Documentation-style leaves reach met / not-met through a documentation answer.
IMPOSSIBLE_BY_KIND: dict[str, frozenset[str]] = {
    "prescriber_specialty": frozenset({NOT_MET}),  # a consultation cannot be seen: no match is unknown
    "concurrent_medication": frozenset({NOT_MET}),  # the partner may be ordered later or elsewhere
    "currently_receiving": frozenset({NOT_MET}),  # not seeing the drug given proves nothing
    "referral": frozenset({MET, NOT_MET}),  # names where a request goes, never decides
}
# Guard-only kinds (evaluate/kinds/guards.py, clause_guard.py): the phase is always known.
GUARD_STATUSES: dict[str, frozenset[str]] = {"phase": frozenset({MET, NOT_MET})}

# Clauses whose children are readings of one fact, so a combination the Kleene rules allow cannot occur. The
# derivation treats children as independent; these are the exceptions, each with the reason (clauses.md row).
CORRELATED: dict[tuple[str, str], frozenset[str]] = {
    # "HR-negative or HR-positive" is a tautology once ER/PR is known, unknown only while it is missing (§5 A.ii.D.list)
    ("ixabepilone", "A.ii.D.list"): frozenset({NOT_MET}),
}


def impossible(kind: str, params: Mapping[str, Any]) -> frozenset[str]:
    """The statuses a leaf of this kind never gives, as its params read it (evaluate/kinds/*)."""
    if kind == "referral" and "redirect" in params:
        return frozenset({MET, UNKNOWN})  # a request the row forbids (no re-authorization): always not met
    if kind == "concurrent_medication" and (params.get("absentIsNotMet") or params.get("notMetIfEnded")):
        # the row tests whether a drug is taken (ixabepilone D.ii.combo, a CYP3A4 guard): supplied medication
        # data without it is not met; with notMetIfEnded, the partner's orders all ended is not met too
        return frozenset()
    if kind == "documentation" and params.get("anyAnswer"):
        return frozenset({NOT_MET})  # the policy asks that a status be documented: either answer meets it
    # documentation with `clause` / `expect` reads another row's answer, or wants "no": met, not met and
    # unknown all remain possible, so it keeps the kind's default (nothing impossible).
    if kind == "therapy_duration" and params.get("mode") == "order_span":
        return frozenset({UNKNOWN})  # the order itself is always on hand; an open-ended one is met
    return IMPOSSIBLE_BY_KIND.get(kind, frozenset())


def guard_statuses(pred: Mapping[str, Any]) -> frozenset[str]:
    """The values an applies_if / requires predicate can take, after its `negate`."""
    kind = pred["kind"]
    own = GUARD_STATUSES.get(kind) or ALL - impossible(kind, pred.get("params", {}))
    if pred.get("negate"):
        own = frozenset({MET: NOT_MET, NOT_MET: MET}.get(s, s) for s in own)
    return own


def _guarded(node: Mapping[str, Any], own: frozenset[str]) -> frozenset[str]:
    """The guards as the engine applies them (evaluate/engine.py, clauses.md §0.3): applies_if is ¬P ∨ Q,
    a requires that fails decides not met before the node, one that is unknown is ANDed in."""
    if "applies_if" in node:
        guard, out = guard_statuses(node["applies_if"]), set()
        if NOT_MET in guard:
            out.add(MET)  # not applicable is met
        if MET in guard:
            out |= own
        if UNKNOWN in guard:
            out |= own & {MET}
            out |= {UNKNOWN} if own - {MET} else set()
        own = frozenset(out)
    if "requires" in node:
        guard, out = guard_statuses(node["requires"]), set()
        if NOT_MET in guard:
            out.add(NOT_MET)
        for g in guard - {NOT_MET}:
            out |= _all_of([frozenset({g}), own])
        own = frozenset(out)
    return own


# Policies whose fixtures do not yet pin every (clause, status) pair this inventory derives: listed here so the gap
# stays visible in every run (xfail) until their scenarios close it; remove a policy once it passes.
INCOMPLETE: frozenset[str] = frozenset()
POLICIES = [pytest.param(p.stem, marks=pytest.mark.xfail(reason="scenario coverage incomplete"))
            if p.stem in INCOMPLETE else p.stem
            for p in sorted((ROOT / "cards").glob("*.json")) if (FIXTURES / p.stem).is_dir()]


def _all_of(children: list[frozenset[str]]) -> frozenset[str]:
    out = set()
    if all(MET in c for c in children):
        out.add(MET)
    if any(NOT_MET in c for c in children):
        out.add(NOT_MET)
    if any(UNKNOWN in c for c in children) and all(c - {NOT_MET} for c in children):
        out.add(UNKNOWN)
    return frozenset(out)


def _any_of(children: list[frozenset[str]]) -> frozenset[str]:
    out = set()
    if any(MET in c for c in children):
        out.add(MET)
    if all(NOT_MET in c for c in children):
        out.add(NOT_MET)
    if any(UNKNOWN in c for c in children) and all(c - {MET} for c in children):
        out.add(UNKNOWN)
    return frozenset(out)


def possible_statuses(node: Mapping[str, Any], out: dict[str, frozenset[str]],
                      correlated: Mapping[str, frozenset[str]] | None = None) -> frozenset[str]:
    """The statuses this node can take, recording every node below it in `out`."""
    correlated = correlated or {}
    if "kind" in node:
        own = ALL - impossible(node["kind"], node.get("params", {}))
    elif "derived" in node:
        own = ALL  # negation of another clause (MMM D rows)
    else:
        children = [possible_statuses(child, out, correlated) for child in node.get("all_of") or node.get("any_of")]
        own = _all_of(children) if "all_of" in node else _any_of(children)
    own = _guarded(node, own - correlated.get(node["id"], frozenset()))
    out[node["id"]] = own
    return own


def evaluated_roots(data: Mapping[str, Any]) -> set[str]:
    """The top-level roots a decision can evaluate: a root no phase, exclusion, scope or derived row names
    (ixazomib V.1, which only defines the FDA maximum that I.B.5.fda and I.C.5.fda encode) takes no status."""
    decision = data["decision"]
    named = {*decision.get("exclusions", ()), *decision.get("scope", ())}
    for block in (decision.get("initial", {}), decision.get("continued", {})):
        named |= {block.get(k) for k in ("root", "referral", "alsoEvaluate")} - {None}
        named |= set(block.get("alongside", ()))
    derived = json.dumps(data["criteria"])
    named |= {root["id"] for root in data["criteria"] if f'"negates": "{root["id"]}"' in derived}
    return named


def policy_statuses(policy: str) -> dict[str, frozenset[str]]:
    data = json.loads((ROOT / "cards" / f"{policy}.json").read_text(encoding="utf-8"))
    out: dict[str, frozenset[str]] = {}
    correlated = {clause: statuses for (p, clause), statuses in CORRELATED.items() if p == policy}
    roots = evaluated_roots(data)
    for root in data["criteria"]:
        if root["id"] in roots:
            possible_statuses(root, out, correlated)
    return out


def pinned(policy: str) -> dict[str, set[str]]:
    """Every status each clause is expected to have in some fixture of the policy."""
    out: dict[str, set[str]] = {}
    for path in sorted((FIXTURES / policy).glob("*.json")):
        for clause, status in json.loads(path.read_text(encoding="utf-8"))["expect"].get("criteria", {}).items():
            out.setdefault(clause, set()).add(status)
    return out


def test_kleene_derivation_matches_clauses_md_examples():
    """The derivation reads §0.3 as written: a referral group is always unknown, III can never be not met."""
    referral = {"kind": "referral"}
    doc = {"kind": "documentation"}
    found: dict[str, frozenset[str]] = {}
    fallback = {"id": "F", "any_of": [{"id": "F.1", "all_of": [{"id": "F.1.cond", **doc},
                                                                {"id": "F.1.a", **referral}]},
                                      {"id": "F.2", **referral}]}
    assert possible_statuses(fallback, found) == {UNKNOWN}
    assert found["F.1"] == {NOT_MET, UNKNOWN}
    exclusion = {"id": "III", "any_of": [{"id": "III.A", **referral}, {"id": "III.B", "kind": "diagnosis"}]}
    assert possible_statuses(exclusion, found) == {MET, UNKNOWN}
    partner = {"id": "P", "any_of": [{"id": "P.1", "kind": "concurrent_medication"},
                                     {"id": "P.2", "kind": "concurrent_medication"}]}
    assert possible_statuses(partner, found) == {MET, UNKNOWN}


def test_derivation_reads_params_and_guards():
    """Params that change a kind's reading, and guards as the engine applies them (¬P ∨ Q; requires ANDed)."""
    found: dict[str, frozenset[str]] = {}
    taken = {"id": "X", "kind": "concurrent_medication", "params": {"any": ["capecitabine"], "absentIsNotMet": True}}
    assert possible_statuses(taken, found) == ALL
    either = {"id": "X", "kind": "documentation", "params": {"anyAnswer": True}}
    assert possible_statuses(either, found) == {MET, UNKNOWN}
    other = {"id": "X", "kind": "documentation", "params": {"clause": "Y", "expect": False}}
    assert possible_statuses(other, found) == ALL
    span = {"id": "X", "kind": "therapy_duration", "params": {"mode": "order_span", "maxDays": 28},
            "applies_if": {"kind": "phase", "params": {"phase": "initial"}}}
    assert possible_statuses(span, found) == {MET, NOT_MET}
    span_if_lab = {**span, "applies_if": {"kind": "lab_threshold", "params": {"mode": "panel"}}}
    assert possible_statuses(span_if_lab, found) == ALL  # an unknown guard over a not-met span is unknown
    referral_in_phase = {"id": "X", "kind": "referral", "requires": {"kind": "phase", "params": {}}}
    assert possible_statuses(referral_in_phase, found) == {NOT_MET, UNKNOWN}
    both = {"id": "X", "any_of": [{"id": "X.1", "kind": "lab_threshold"}, {"id": "X.2", "kind": "lab_threshold"}]}
    assert possible_statuses(both, found, {"X": frozenset({NOT_MET})}) == {MET, UNKNOWN}


@pytest.mark.parametrize("policy", POLICIES)
def test_every_clause_is_pinned_in_every_status_it_can_take(policy: str):
    have = pinned(policy)
    gaps = {clause: sorted(statuses - have.get(clause, set()))
            for clause, statuses in policy_statuses(policy).items() if statuses - have.get(clause, set())}
    assert not gaps, f"{policy}: clause -> statuses no fixture pins: {gaps}"


@pytest.mark.parametrize("policy", POLICIES)
def test_fixtures_pin_no_impossible_status(policy: str):
    possible = policy_statuses(policy)
    wrong = {clause: sorted(statuses - possible.get(clause, frozenset()))
             for clause, statuses in pinned(policy).items() if statuses - possible.get(clause, frozenset())}
    assert not wrong, f"{policy}: clause -> statuses it cannot take (or unknown clause ids): {wrong}"


def test_params_that_change_what_a_leaf_can_give():
    """A redirect referral is always not met; an ended partner and an anyAnswer row read their params."""
    assert possible_statuses({"id": "II.B.1", "kind": "referral", "params": {"redirect": "I.B"}}, {}) == {NOT_MET}
    assert possible_statuses({"id": "II.A.2", "kind": "concurrent_medication",
                              "params": {"any": ["doxorubicin"], "notMetIfEnded": True}}, {}) == ALL
    assert "V.1" not in policy_statuses("ixazomib")  # defines the FDA maximum; no decision evaluates it
