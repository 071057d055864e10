"""therapy_duration modes: cycle length from day 1 to day 1, and the span of the order itself."""
from __future__ import annotations

from datetime import date, timedelta

from cds_service.evaluate import Status
from tests.builders import concept, med_admin, med_request, quantity, timing
from tests.kind_context import context, run

INO = concept("rxnorm", "1942954", "inotuzumab ozogamicin 0.9 MG Injection")
FIRST = {"mode": "cycle_length", "cycle": "first", "minDays": 21}
LATER = {"mode": "cycle_length", "cycle": "subsequent", "minDays": 28}


def order(start: str) -> dict:
    first = date.fromisoformat(start)
    out = med_request("mr-1", INO, authored=start)
    out["dosageInstruction"] = [{"sequence": 1, "timing": {"event": [(first + timedelta(days=d)).isoformat()
                                                                     for d in (0, 7, 14)]},
                                 "doseAndRate": [{"doseQuantity": quantity(0.5, "mg/m2")}]}]
    return out


def cycle(prefix: str, d1: str) -> list[dict]:
    first = date.fromisoformat(d1)
    return [med_admin(f"{prefix}-{i}", INO, (first + timedelta(days=7 * i)).isoformat(), (0.5, "mg/m2"))
            for i in range(3)]


def test_cycle_two_may_start_on_day_22_not_earlier():
    on_time = context("inotuzumab", order("2026-11-20"), medicationAdministrations=cycle("c1", "2026-10-30"))
    assert run("therapy_duration", FIRST, on_time).status is Status.MET  # exactly 21 days
    early = context("inotuzumab", order("2026-11-19"), medicationAdministrations=cycle("c1", "2026-10-30"))
    assert run("therapy_duration", FIRST, early).status is Status.NOT_MET


def test_later_cycles_last_28_days_and_the_first_rule_does_not_judge_them():
    admins = cycle("c1", "2026-09-20") + cycle("c2", "2026-10-18")
    ctx = context("inotuzumab", order("2026-11-10"), medicationAdministrations=admins)  # 23 days after C2 day 1
    assert run("therapy_duration", LATER, ctx).status is Status.NOT_MET
    assert run("therapy_duration", FIRST, ctx).status is Status.MET


def test_without_history_the_cycle_length_is_unknown():
    ctx = context("inotuzumab", order("2026-11-20"), medicationAdministrations=None)
    assert run("therapy_duration", FIRST, ctx).status is Status.UNKNOWN


def test_order_span():
    span = {"mode": "order_span", "maxDoses": 3, "maxDays": 28}
    assert run("therapy_duration", span, context("inotuzumab", order("2026-11-20"))).status is Status.MET
    four = med_request("mr-1", INO, (0.5, "mg/m2"), timing(7, "d", count=4, start="2026-11-20"))
    assert run("therapy_duration", span, context("inotuzumab", four)).status is Status.NOT_MET
    open_ended = med_request("mr-1", INO, (0.5, "mg/m2"), timing(7, "d", start="2026-11-20"))
    assert run("therapy_duration", span, context("inotuzumab", open_ended)).status is Status.MET
