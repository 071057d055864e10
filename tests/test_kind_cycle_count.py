"""cycle_count (clauses.md §0.5.9): the order's doses walked with the administrations into cycles of D1/D8/D15."""
from __future__ import annotations

from datetime import date, timedelta

from cds_service.evaluate import Status
from tests.builders import concept, med_admin, med_request, quantity
from tests.kind_context import context, run

INO = concept("rxnorm", "1942954", "inotuzumab ozogamicin 0.9 MG Injection")


def order(start: str = "2026-11-20", days: tuple[int, ...] = (0, 7, 14), group: str | None = None) -> dict:
    first = date.fromisoformat(start)
    out = med_request("mr-1", INO, authored=start)
    out["dosageInstruction"] = [{"sequence": 1, "timing": {"event": [(first + timedelta(days=d)).isoformat()
                                                                     for d in days]},
                                 "doseAndRate": [{"doseQuantity": quantity(0.5, "mg/m2")}]}]
    if group:
        out["groupIdentifier"] = {"value": group}
    return out


def cycles(*day_ones: str) -> list[dict]:
    out = []
    for n, d1 in enumerate(day_ones):
        first = date.fromisoformat(d1)
        out += [med_admin(f"a{n}-{i}", INO, (first + timedelta(days=7 * i)).isoformat(), (0.5, "mg/m2"))
                for i in range(3)]
    return out


def test_first_order_is_cycle_one():
    ctx = context("inotuzumab", order(), medicationAdministrations=[])
    assert run("cycle_count", {"max": 2}, ctx).status is Status.MET
    assert run("cycle_count", {"includes": "first"}, ctx).status is Status.MET
    assert run("cycle_count", {"minCompleted": 1}, ctx).status is Status.NOT_MET


def test_two_closed_cycles_make_the_order_cycle_three():
    ctx = context("inotuzumab", order(), medicationAdministrations=cycles("2026-09-25", "2026-10-23"))
    assert run("cycle_count", {"exactly": 3}, ctx).status is Status.MET
    assert run("cycle_count", {"max": 2}, ctx).status is Status.NOT_MET
    assert run("cycle_count", {"includes": "subsequent"}, ctx).status is Status.MET


def test_a_gap_of_seven_days_after_day_15_still_starts_a_new_cycle():
    # A 21-day cycle 1: C2D1 comes 7 days after D15. Gaps alone would merge them; the 3rd dose closes the cycle.
    ctx = context("inotuzumab", order("2026-11-20"), medicationAdministrations=cycles("2026-10-30"))
    assert run("cycle_count", {"exactly": 2}, ctx).status is Status.MET


def test_an_order_for_days_8_and_15_continues_the_open_cycle():
    admins = [med_admin("a-1", INO, "2026-11-13", (0.8, "mg/m2"))]
    ctx = context("inotuzumab", order("2026-11-20", (0, 7)), medicationAdministrations=admins)
    assert run("cycle_count", {"exactly": 1}, ctx).status is Status.MET
    assert run("cycle_count", {"minCompleted": 1}, ctx).status is Status.NOT_MET


def test_a_skipped_dose_closes_the_cycle():
    # D1 and D8 given, then nothing for 14 days or more: the next dose opens a new cycle.
    admins = [med_admin("a-1", INO, "2026-10-20", (0.8, "mg/m2")), med_admin("a-2", INO, "2026-10-27", (0.5, "mg/m2"))]
    ctx = context("inotuzumab", order("2026-11-20"), medicationAdministrations=admins)
    assert run("cycle_count", {"exactly": 2}, ctx).status is Status.MET


def test_without_history_only_an_order_that_exceeds_a_maximum_is_decided():
    ctx = context("inotuzumab", order(), medicationAdministrations=None)
    assert run("cycle_count", {"max": 6}, ctx).status is Status.UNKNOWN
    assert run("cycle_count", {"minCompleted": 3}, ctx).status is Status.UNKNOWN
    long = context("inotuzumab", order(days=tuple(7 * i for i in range(9))), medicationAdministrations=None)
    assert run("cycle_count", {"max": 2}, long).status is Status.NOT_MET


def test_group_identifiers_count_cycles_when_both_sides_carry_them():
    earlier = [med_request(f"old-{i}", INO, (0.5, "mg/m2"), status="completed", authored=f"2026-0{7 + i}-01",
                           groupIdentifier={"value": f"cycle-{i}"}) for i in range(3)]
    ctx = context("inotuzumab", order(group="cycle-4"), medicationRequests=earlier, medicationAdministrations=[])
    assert run("cycle_count", {"exactly": 4}, ctx).status is Status.MET
