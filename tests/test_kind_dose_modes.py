"""dose_per_bsa and dose_per_interval modes: by position in the cycle, per cycle, an escalation step, a raised cap."""
from __future__ import annotations

from datetime import date, timedelta

from cds_service.evaluate import Status
from tests.builders import concept, med_admin, med_request, med_statement, quantity, timing, vitals
from tests.kind_context import context, run

INO = concept("rxnorm", "1942954", "inotuzumab ozogamicin 0.9 MG Injection")
IXA = concept("rxnorm", "1726271", "ixabepilone 45 MG Injection")
CYCLE1 = {"mode": "by_position", "caps": [0.8, 0.5, 0.5], "cycles": "first"}


def ino_order(d1: float, later: float, start: str = "2026-11-20", unit: str = "mg/m2") -> dict:
    first = date.fromisoformat(start)
    out = med_request("mr-1", INO, authored=start)
    out["dosageInstruction"] = [
        {"sequence": 1, "timing": {"event": [start]}, "doseAndRate": [{"doseQuantity": quantity(d1, unit)}]},
        {"sequence": 2, "timing": {"event": [(first + timedelta(days=d)).isoformat() for d in (7, 14)]},
         "doseAndRate": [{"doseQuantity": quantity(later, unit)}]}]
    return out


def test_day_one_may_be_0_8_but_days_8_and_15_only_0_5():
    assert run("dose_per_bsa", CYCLE1, context("inotuzumab", ino_order(0.8, 0.5))).status is Status.MET
    late = run("dose_per_bsa", CYCLE1, context("inotuzumab", ino_order(0.5, 0.8)))
    # 0.8 on day 8 breaches although the order's largest dose equals the day-1 cap: position matters.
    assert late.status is Status.NOT_MET
    assert late.breach["suggestedDose"] == {"value": 0.5, "unit": "mg/m2", "code": "mg/m2", "sequence": 2}


def test_the_position_comes_from_the_administrations_of_the_open_cycle():
    # Day 1 was given a week ago: the order's first dose is day 8 and may not be 0.8.
    given = [med_admin("a-1", INO, "2026-11-13", (0.8, "mg/m2"))]
    order = med_request("mr-1", INO, (0.8, "mg/m2"), timing(events=["2026-11-20"]), authored="2026-11-20")
    assert run("dose_per_bsa", CYCLE1, context("inotuzumab", order, medicationAdministrations=given)).status \
        is Status.NOT_MET


def test_without_history_only_the_strictest_cap_decides_met():
    order = context("inotuzumab", ino_order(0.8, 0.5), medicationAdministrations=None)
    assert run("dose_per_bsa", CYCLE1, order).status is Status.UNKNOWN
    low = context("inotuzumab", ino_order(0.5, 0.5), medicationAdministrations=None)
    assert run("dose_per_bsa", CYCLE1, low).status is Status.MET


def test_mg_doses_use_the_bsa_and_need_it():
    mg = ino_order(1.8, 0.9, unit="mg")  # 0.99 / 0.49 mg/m² at 1.82 m²
    assert run("dose_per_bsa", CYCLE1, context("inotuzumab", mg, observations=vitals("2026-11-15"))).status \
        is Status.NOT_MET
    assert run("dose_per_bsa", CYCLE1, context("inotuzumab", mg)).status is Status.UNKNOWN


def test_per_cycle_sum_includes_the_doses_already_given():
    per_cycle = {"mode": "per_cycle", "max": 1.5, "maxDoses": 3, "cycles": "subsequent"}
    given = [med_admin(f"a-{i}", INO, d, (0.5, "mg/m2")) for i, d in enumerate(["2026-10-16", "2026-10-23",
                                                                                "2026-10-30", "2026-11-13"])]
    order = med_request("mr-1", INO, (0.5, "mg/m2"), timing(events=["2026-11-20", "2026-11-27"]),
                        authored="2026-11-20")
    # Cycle 2 = 0.5 given + 1.0 ordered = 1.5: met; 0.6 per ordered dose makes 1.7 > 1.5.
    assert run("dose_per_interval", per_cycle, context("inotuzumab", order, medicationAdministrations=given)).status \
        is Status.MET
    order["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] = 0.6
    assert run("dose_per_interval", per_cycle, context("inotuzumab", order, medicationAdministrations=given)).status \
        is Status.NOT_MET
    assert run("dose_per_interval", per_cycle, context("inotuzumab", order, medicationAdministrations=None)).status \
        is Status.UNKNOWN


ESCALATION = {"mode": "escalation", "max": 20, "escalation": {"max": 30, "priorAtMost": 20}}


def ixa(dose: float) -> dict:
    return med_request("mr-1", IXA, (dose, "mg/m2"), timing(21, "d", count=1, start="2026-11-20"))


def test_escalation_to_30_needs_a_tolerated_20():
    assert run("dose_per_bsa", ESCALATION, context("ixabepilone", ixa(20))).status is Status.MET
    assert run("dose_per_bsa", ESCALATION, context("ixabepilone", ixa(30))).status is Status.UNKNOWN
    given = [med_admin("a-1", IXA, "2026-10-30", (20, "mg/m2"))]
    assert run("dose_per_bsa", ESCALATION, context("ixabepilone", ixa(30), medicationAdministrations=given)).status \
        is Status.MET
    assert run("dose_per_bsa", ESCALATION, context("ixabepilone", ixa(32), medicationAdministrations=given)).status \
        is Status.NOT_MET


def test_a_named_drug_raises_an_interval_cap_and_a_premedication_steroid_does_not():
    cap = {"max": 40, "unit": "mg/m2", "window": {"value": 21, "unit": "d"},
           "raisedBy": {"any": ["strong_cyp3a4_inducer"], "max": 60}}
    rif = [med_statement("s-1", concept("rxnorm", "9384", "rifampin"), "active", "2026-10-01")]
    dex = [med_statement("s-1", concept("rxnorm", "3264", "dexamethasone"), "active", "2026-10-01")]
    assert run("dose_per_interval", cap, context("ixabepilone", ixa(60), medicationStatements=rif)).status \
        is Status.MET
    assert run("dose_per_interval", cap, context("ixabepilone", ixa(60), medicationStatements=dex)).status \
        is Status.NOT_MET


def test_unreadable_medications_leave_a_dose_the_raising_drug_would_allow_unknown():
    cap = {"max": 40, "unit": "mg/m2", "window": {"value": 21, "unit": "d"},
           "raisedBy": {"any": ["strong_cyp3a4_inducer"], "max": 60}}
    no_meds = {k: None for k in ("medicationRequests", "medicationStatements", "medicationAdministrations",
                                 "medicationDispenses")}
    within = run("dose_per_interval", cap, context("ixabepilone", ixa(50), **no_meds))
    assert within.status is Status.UNKNOWN and any("CYP3A4 inducer" in m for m in within.missing)
    assert run("dose_per_interval", cap, context("ixabepilone", ixa(65), **no_meds)).status is Status.NOT_MET
    assert run("dose_per_interval", cap, context("ixabepilone", ixa(50))).status is Status.NOT_MET
