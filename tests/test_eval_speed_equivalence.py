"""The shortcuts that keep evaluation and rendering linear give what the direct definitions give.

Each test states the plain definition (a walk up parent links, a scan of every observation or dose) and
compares it with the precomputed or memoised form the service uses. No timing is asserted.
"""
from __future__ import annotations

import random
from datetime import date, timedelta

import pytest

from cds_service.dosing import BSA_LOINC, HEIGHT_LOINC, WEIGHT_LOINC, bsa_on, weight_kg, window_start
from cds_service.evaluate import Status, evaluate_order
from cds_service.evaluate.context import EvalContext
from cds_service.evaluate.kinds import doses
from cds_service.evaluate.kinds.doses import _Planned, _rolling_windows, bsa_of_day, weight_of_day
from cds_service.evaluate.kinds.labs import observations_in
from cds_service.evaluate.kinds.medications import received_before
from cds_service.evaluate.status import all_of, any_of
from cds_service.policies import Policy, load_policies
from cds_service.record import Code, MedicationFact, ObservationFact, PatientRecord, Quantity
from cds_service.terminology import DrugGroup
from tests.conftest import FIXTURES, ROOT, load_fixture

LIBRARY = load_policies(ROOT / "cards")
POLICIES = sorted(LIBRARY.policies)
ON = date(2026, 11, 26)


def _walk_up(policy: Policy, clause_id: str) -> list[str]:
    out = []
    while clause_id in policy.parents:
        clause_id = policy.parents[clause_id]
        out.append(clause_id)
    return out


@pytest.mark.parametrize("key", POLICIES)
def test_tree_index_agrees_with_walking_parent_links(key):
    policy = LIBRARY.policies[key]
    for clause in policy.nodes:
        above = _walk_up(policy, clause)
        assert list(policy.tree.ancestors(clause)) == above
        indications = {c.id for a in above for c in policy.nodes[a].children if c.role == "indication"}
        assert set(policy.tree.indications[clause]) == indications
    for roots in [(r,) for r in policy.roots] + [tuple(policy.roots)]:
        expected = {c for c in policy.nodes if set(roots) & {c, *_walk_up(policy, c)}}
        assert policy.tree.within(roots) == expected
    assert policy.tree.ancestors("not-a-clause") == ()


@pytest.mark.parametrize("statuses", [[], [Status.MET], [Status.UNKNOWN, Status.MET], [Status.NOT_MET, Status.MET],
                                      [Status.UNKNOWN, Status.NOT_MET], [Status.UNKNOWN]])
def test_kleene_combinators_agree_with_their_set_definitions(statuses):
    seen = set(statuses)
    conj = Status.NOT_MET if Status.NOT_MET in seen else Status.UNKNOWN if Status.UNKNOWN in seen else Status.MET
    disj = Status.MET if Status.MET in seen else Status.UNKNOWN if Status.UNKNOWN in seen else Status.NOT_MET
    for given in (list(statuses), tuple(statuses), iter(statuses)):
        assert all_of(given) is conj
    for given in (list(statuses), tuple(statuses), iter(statuses)):
        assert any_of(given) is disj


def test_a_guard_probe_is_built_once():
    policy = LIBRARY.policies["mitoxantrone"]
    guards = [g for n in policy.nodes.values() for g in (n.applies_if, n.requires) if g is not None]
    assert guards
    for guard in guards:
        assert guard.probe is guard.probe
        assert (guard.probe.id, guard.probe.kind, guard.probe.params) == (f"guard:{guard.kind}", guard.kind,
                                                                           guard.params)


def _context(observations=(), medications=()) -> EvalContext:
    order = MedicationFact("MedicationRequest/o", "draft", "draft", (), "", start=ON)
    record = PatientRecord("Patient/p", ON, observations=tuple(observations), medications=tuple(medications),
                           drafts=(order,))
    return EvalContext(record=record, order=order, policy=LIBRARY.policies["ixabepilone"])


def test_observations_in_agrees_with_a_scan_of_every_observation():
    rng = random.Random(7)
    policy = LIBRARY.policies["ixabepilone"]
    name, vs = next((n, v) for n, v in policy.value_sets.items() if any(s == "loinc" for s, _ in v.codes))
    wanted = sorted(c for s, c in vs.codes if s == "loinc")
    codes = [Code("loinc", c) for c in wanted] + [Code("loinc", "0000-0"), Code("snomed", "1")]
    observations = [ObservationFact(f"Observation/{i}", tuple(rng.sample(codes, rng.randint(1, 2))),
                                    rng.choice([None, ON + timedelta(days=3), *(ON - timedelta(days=d)
                                                                              for d in (0, 5, 5, 40, 400))]),
                                    Quantity(float(i), "mg"))
                    for i in range(60)]
    ctx = _context(observations)
    for max_age in (None, 0, 14, 90):
        since = ON - timedelta(days=max_age) if max_age is not None else None
        direct = [o for o in observations if any(vs.matches(c) for c in o.codes)
                  and not (o.effective is not None and o.effective > ON)
                  and not (since is not None and (o.effective is None or o.effective < since))]
        direct.sort(key=lambda o: o.effective or ON, reverse=True)
        assert observations_in(ctx, name, max_age) == direct


@pytest.mark.parametrize("adult", [True, False, None])
@pytest.mark.parametrize("seed", range(4))
def test_bsa_and_weight_of_a_day_agree_with_the_lookups_on_the_whole_record(seed, adult, monkeypatch):
    """Ties on a date, observations without a value or a date, codes of two groups on one observation."""
    rng = random.Random(seed)
    codes = [*WEIGHT_LOINC, *HEIGHT_LOINC, *BSA_LOINC, "2160-0"]
    units = {"29463-7": "kg", "3141-9": "[lb_av]", "8302-2": "cm", "3137-7": "[in_i]", "8277-6": "m2", "3140-1": "m2"}
    observations = []
    for i in range(80):
        coded = rng.sample(codes, rng.choice([1, 1, 1, 2]))
        when = rng.choice([None, *(ON - timedelta(days=d) for d in (0, 1, 1, 7, 20, 31, 45, 95, 200, 400))])
        value = None if rng.random() < 0.1 else Quantity(rng.uniform(1, 180), units.get(coded[0], "mg/dL"))
        observations.append(ObservationFact(f"Observation/{i}", tuple(Code("loinc", c) for c in coded), when, value))
    monkeypatch.setattr(doses, "is_adult", lambda _ctx: adult)
    ctx = _context(observations)
    for day in sorted({o.effective for o in observations if o.effective} | {ON + timedelta(days=2)}):
        assert bsa_of_day(ctx, day) == bsa_on(ctx.record, day, adult)
        assert weight_of_day(ctx, day) == weight_kg(ctx.record, day)


def test_rolling_windows_agree_with_a_scan_of_every_dose():
    rng = random.Random(3)
    history = sorted((_Planned(ON - timedelta(days=rng.randint(1, 120)), rng.uniform(1, 20), ordered=False)
                      for _ in range(40)), key=lambda d: d.day)
    planned = sorted((_Planned(ON + timedelta(days=rng.randint(0, 60)), rng.uniform(1, 20)) for _ in range(12)),
                     key=lambda d: d.day)
    for value, unit in ((21, "d"), (4, "wk"), (1, "mo")):
        doses = history + planned
        windows = _rolling_windows(history, planned, value, unit)
        for dose, (day, past, ordered) in zip(planned, windows, strict=True):
            start = window_start(dose.day, value, unit)
            inside = [d for d in doses if start < d.day <= dose.day]
            assert day == dose.day
            assert sum(past + ordered) == sum(d.value for d in inside)  # the same additions, in the same order
            assert sum(past) == sum(d.value for d in inside if not d.ordered)
            assert len(ordered) == sum(1 for d in inside if d.ordered)


def test_memoised_drug_history_is_per_group_object_not_per_name():
    one = DrugGroup.compile("x", {"names": ["alpha"]})
    other = DrugGroup.compile("x", {"names": ["beta"]})
    meds = [MedicationFact(f"MedicationAdministration/{n}", "administration", "completed", (), n,
                           start=ON - timedelta(days=i + 1)) for i, n in enumerate(("alpha", "beta", "alpha"))]
    ctx = _context(medications=meds)
    assert [m.text for m in received_before(ctx, one)] == ["alpha", "alpha"]
    assert [m.text for m in received_before(ctx, other)] == ["beta"]
    found = received_before(ctx, one)
    found.clear()  # callers get their own list
    assert len(received_before(ctx, one)) == 2


SCENARIOS = sorted(p for p in FIXTURES.glob("*/*.json") if (ROOT / "cards" / f"{p.parent.name}.json").is_file())


def test_evaluation_views_agree_with_scans_of_the_trace(client, monkeypatch):
    """Trace grouping and id sets, checked on a sample of the scenarios the fixtures drive through the API."""
    from cds_service import service

    seen = []

    def spy(*args, **kwargs):
        seen.append(evaluate_order(*args, **kwargs))
        return seen[-1]

    monkeypatch.setattr(service, "evaluate_order", spy)
    for path in SCENARIOS[::7]:
        scenario = load_fixture(path)
        client.post(f"/cds-services/{scenario.get('service', 'prior-auth-order-sign')}", json=scenario["request"])
    assert seen
    for e in seen:
        by_id = {x.id: x for x in e.trace}
        for status in Status:
            assert e.entries(status) == [x for x in e.trace if x.status is status]
            assert e.ids_with(status) == {i for i, x in by_id.items() if x.status is status}
        assert e.breaches == [x for x in e.trace if x.breach and x.status is Status.NOT_MET]
        assert e.unknown_leaves() == [x for x in e.trace if x.status is Status.UNKNOWN and x.criterion.is_leaf
                                      and x.criterion.kind != "referral"]
