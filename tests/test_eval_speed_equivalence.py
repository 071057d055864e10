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
from cds_service.evaluate.kinds import diagnosis, dose_limits, doses
from cds_service.evaluate.kinds.doses import _Planned, _rolling_windows, bsa_of_day, weight_of_day
from cds_service.evaluate.kinds.labs import observations_in
from cds_service.evaluate.kinds.medications import received_before
from cds_service.evaluate.status import all_of, any_of
from cds_service.policies import Policy, load_policies
from cds_service.record import Code, ConditionFact, Facts, MedicationFact, ObservationFact, PatientRecord, Quantity
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


def _context(observations=(), medications=(), as_facts: type = tuple) -> EvalContext:
    """`as_facts=Facts`: the observations as the fact cache hands them, keeping what is derived from them."""
    order = MedicationFact("MedicationRequest/o", "draft", "draft", (), "", start=ON)
    kept = observations if observations.__class__ is as_facts else as_facts(observations)
    record = PatientRecord("Patient/p", ON, observations=kept, medications=tuple(medications), drafts=(order,))
    return EvalContext(record=record, order=order, policy=LIBRARY.policies["ixabepilone"])


@pytest.mark.parametrize("as_facts", [tuple, Facts])
def test_observations_in_agrees_with_a_scan_of_every_observation(as_facts):
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
    ctx = _context(observations, as_facts=as_facts)
    for max_age in (None, 0, 14, 90):
        since = ON - timedelta(days=max_age) if max_age is not None else None
        direct = [o for o in observations if any(vs.matches(c) for c in o.codes)
                  and not (o.effective is not None and o.effective > ON)
                  and not (since is not None and (o.effective is None or o.effective < since))]
        direct.sort(key=lambda o: o.effective or ON, reverse=True)
        assert observations_in(ctx, name, max_age) == direct


@pytest.mark.parametrize("as_facts", [tuple, Facts])
@pytest.mark.parametrize("adult", [True, False, None])
@pytest.mark.parametrize("seed", range(4))
def test_bsa_and_weight_of_a_day_agree_with_the_lookups_on_the_whole_record(seed, adult, as_facts, monkeypatch):
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
    ctx = _context(observations, as_facts=as_facts)
    for day in sorted({o.effective for o in observations if o.effective} | {ON + timedelta(days=2)}):
        assert bsa_of_day(ctx, day) == bsa_on(ctx.record, day, adult)
        assert weight_of_day(ctx, day) == weight_kg(ctx.record, day)


def test_what_is_derived_from_facts_is_kept_with_them_and_keyed_by_all_it_depends_on(monkeypatch):
    """A second evaluation over the same Facts (the same chart again) reuses the index and the BSA of a day; a
    patient whose adulthood differs on the same facts gets the BSA of the other rule (height age limit)."""
    day = ON
    observations = Facts([
        ObservationFact("Observation/h", (Code("loinc", HEIGHT_LOINC[0]),), day - timedelta(days=200),
                        Quantity(170.0, "cm")),
        ObservationFact("Observation/w", (Code("loinc", WEIGHT_LOINC[0]),), day, Quantity(70.0, "kg"))])
    first = _context(observations, as_facts=Facts)
    monkeypatch.setattr(doses, "is_adult", lambda _ctx: True)
    assert bsa_of_day(first, day).value == 1.82
    kept = dict(observations.derived())
    assert "observation_codes" in kept and ("bsa", day, True) in kept
    second = _context(observations, as_facts=Facts)
    monkeypatch.setattr(doses, "_size_index", lambda _ctx: pytest.fail("the index was built again"))
    assert bsa_of_day(second, day).value == 1.82
    monkeypatch.setattr(doses, "is_adult", lambda _ctx: False)  # a child: a height over 90 days old is too old
    assert bsa_of_day(_context(observations, as_facts=Facts), day) is None
    assert bsa_on(PatientRecord("Patient/p", ON, observations=tuple(observations)), day, False) is None


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


@pytest.mark.parametrize("seed", range(3))
def test_oral_window_check_agrees_with_a_scan_of_every_dose(seed):
    """The worst rolling window over day-sorted doses (slices found by bisection) is the one a scan finds."""
    rng = random.Random(seed)
    history = [dose_limits._Dose(ON - timedelta(days=rng.randint(1, 90)), rng.choice([5.0, 10.0, 20.0]), False)
               for _ in range(30)]
    planned = [dose_limits._Dose(ON + timedelta(days=d), rng.choice([5.0, 10.0]), True)
               for d in sorted(rng.sample(range(0, 60), 15))]
    doses = sorted(history + planned, key=lambda d: d.day)
    for value, unit in ((7, "d"), (4, "wk"), (1, "mo")):
        worst = max(((sum(1 for d in doses if window_start(p.day, value, unit) < d.day <= p.day),
                      sum(d.mg for d in doses if window_start(p.day, value, unit) < d.day <= p.day), -i)
                     for i, p in enumerate(planned)))
        said, breach = dose_limits._check_window({"value": value, "unit": unit, "max": 1.0, "maxDoses": 1},
                                                 doses, planned)
        day = planned[-worst[2]].day
        assert said[0].startswith(f"{worst[0]} dose(s)") and str(day) in said[0]
        assert breach == {"cap": 1, "unit": "doses", "per": dose_limits._window_label(value, unit),
                          "value": worst[0], "suggestedDose": None}


@pytest.mark.parametrize("as_facts", [tuple, Facts])
def test_diagnosis_hits_kept_with_the_conditions_agree_with_a_scan_and_are_per_policy(as_facts):
    """`b_all` names different codes in the inotuzumab and mitoxantrone files: one chart's Conditions, evaluated
    under both, must each get their own policy's hits; reason codes of the order come after the Conditions'."""
    rng = random.Random(11)
    codes = sorted({code for key in ("inotuzumab", "mitoxantrone") for code in
                    LIBRARY.policies[key].value_sets["b_all"].codes} | {("icd10cm", "Z00.0"), ("snomed", "1")})
    conditions = as_facts(ConditionFact(f"Condition/{i}", tuple(Code(*c) for c in rng.sample(codes, 2)))
                          for i in range(12))
    reason = Code(*codes[0], display="on the order")
    for key in ("inotuzumab", "mitoxantrone", "inotuzumab"):
        for reasons in ((), (reason,)):
            order = MedicationFact("MedicationRequest/o", "draft", "draft", (), "", start=ON, reason_codes=reasons)
            record = PatientRecord("Patient/p", ON, conditions=conditions, drafts=(order,))
            ctx = EvalContext(record=record, order=order, policy=LIBRARY.policies[key])
            vs = ctx.value_set("b_all")
            pairs = [(c.ref, code) for c in conditions for code in c.codes] + \
                [("MedicationRequest/o reasonCode", code) for code in reasons]
            expected = [f"{where}: {code.code} {code.display}".strip() for where, code in pairs if vs.matches(code)]
            assert expected and diagnosis._diagnosed(ctx, ["b_all"]) == expected


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
