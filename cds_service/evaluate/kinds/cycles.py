"""Treatment cycles (clauses.md §0.5.9): which cycle and which day of it each dose of the order falls on.

One reading serves the cycle-count leaf, the per-position and per-cycle dose caps, and the cycle-length
rows: the order's planned doses are walked together with the administrations on record, so that an
order for days 8 and 15 continues the cycle its day 1 opened.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from typing import Any

from ...record import Quantity
from ..context import EvalContext
from ..criterion import Criterion
from ..registry import leaf_kind
from ..status import Result
from .course import DURATION_MODES
from .doses import INTERVAL_MODES, MG_PER_M2, PER_DOSE_MODES, amount, current_bsa, order_schedule

# §0.5.9: a cycle closes after its 3rd dose (D1, D8, D15), or when the next dose comes ≥ 14 days after the last
# (a skipped dose). Gaps alone cannot separate cycles: C2D1 of a 21-day cycle 1 comes 7 days after D15.
DOSES_PER_CYCLE = 3
SKIP_GAP_DAYS = 14
_READS = ("medicationAdministrations", "medicationRequests", "observations", "patient")


@dataclass(frozen=True)
class CycleDose:
    day: date
    quantity: Quantity | None
    ordered: bool  # a dose of the order under evaluation (else given, on record)
    cycle: int  # 1-based
    position: int  # 1-based within its cycle: 1 is the cycle's day 1
    ref: str = ""
    sequence: int | None = None


@dataclass(frozen=True)
class Cycles:
    """The doses of the drug (given and ordered) with their cycle and position."""

    doses: tuple[CycleDose, ...]
    history_known: bool  # administrations were supplied: positions and counts are exact
    how: str  # how cycles were found, for the evidence

    @property
    def planned(self) -> list[CycleDose]:
        return [d for d in self.doses if d.ordered]

    @property
    def requested(self) -> list[int]:
        """The cycles the order's doses fall in."""
        return sorted({d.cycle for d in self.planned})

    def completed_before(self) -> int:
        """Cycles wholly before the order's first dose."""
        first = min(self.requested, default=1)
        return first - 1

    def day_one(self, cycle: int) -> date | None:
        return next((d.day for d in self.doses if d.cycle == cycle and d.position == 1), None)

    def describe(self) -> str:
        if not self.planned:
            return "the order has no dated dose"
        cycles = ", ".join(f"C{c}" for c in self.requested)
        done = self.completed_before()
        return f"order falls in {cycles} ({done} cycle(s) completed before it; {self.how})"


def _walk(doses: list[tuple[date, Quantity | None, bool, str, int | None]]) -> list[CycleDose]:
    out: list[CycleDose] = []
    cycle, position, last = 0, 0, None
    for day, qty, ordered, ref, seq in sorted(doses, key=lambda d: (d[0], d[2])):
        if last is None or position >= DOSES_PER_CYCLE or (day - last).days >= SKIP_GAP_DAYS:
            cycle, position = cycle + 1, 0
        position += 1
        last = day
        out.append(CycleDose(day, qty, ordered, cycle, position, ref, seq))
    return out


def _explicit(ctx: EvalContext) -> int | None:
    """Cycles before the order by MedicationRequest.groupIdentifier (one group per cycle), when both carry it."""
    group = ctx.order.group
    if not group:
        return None
    earlier = {m.group for m in ctx.meds_of(ctx.policy.own_drug)
               if m.source == "request" and m.group and m.group != group
               and m.status in ("active", "completed", "stopped") and (m.start or date.min) < ctx.order_date}
    return len(earlier) if earlier else None


def cycles_of(ctx: EvalContext) -> Cycles:
    """The order's doses placed in cycles (memoised: several rows read them)."""
    return ctx.cached("cycles", lambda: _cycles(ctx))


def _cycles(ctx: EvalContext) -> Cycles:
    schedule = order_schedule(ctx)
    planned = [(d.day, d.quantity, True, ctx.order.ref, d.sequence) for d in schedule.doses]
    before = _explicit(ctx)
    if before is not None:
        doses = tuple(CycleDose(d[0], d[1], True, before + 1, i + 1, d[3], d[4])
                      for i, d in enumerate(sorted(planned, key=lambda d: d[0])))
        return Cycles(doses, True, f"cycles by groupIdentifier: {before} earlier cycle order(s)")
    given = ctx.given_doses(ctx.policy.own_drug, before=ctx.order_date)
    history = [(g.day, g.quantity, False, g.ref, None) for g in given or ()]
    how = f"{len(history)} administration(s) on record" if given is not None else "administration history not supplied"
    return Cycles(tuple(_walk(history + planned)), given is not None, how)


def _selected(cycles: Cycles, which: str) -> list[CycleDose]:
    """The order's doses in the cycles a row is about: `first` (cycle 1), `subsequent` (≥ 2), or `all`."""
    keep = {"first": lambda c: c == 1, "subsequent": lambda c: c >= 2}.get(which, lambda c: True)
    return [d for d in cycles.planned if keep(d.cycle)]


# --- the cycle_count leaf ----------------------------------------------------------------------------------

@leaf_kind("cycle_count", reads=_READS)
def evaluate_cycle_count(criterion: Criterion, ctx: EvalContext) -> Result:
    """params, one of: `max` (the order stays within cycle n), `exactly` (every dose of the order is in cycle n),
    `includes` (first | subsequent: some dose of the order is in cycle 1 / a later cycle), `minCompleted`
    (at least n cycles were completed before the order). Without administration history only an order
    that by itself exceeds a maximum is decided."""
    p = criterion.params
    cycles = cycles_of(ctx)
    said = cycles.describe()
    if not cycles.planned:
        return Result.unknown("the dates of the ordered doses")
    last, first = max(cycles.requested), min(cycles.requested)
    if "max" in p:
        if last > p["max"]:
            return Result.not_met(f"{said}: beyond cycle {p['max']}")
        return Result.met(said) if cycles.history_known else _no_history(said)
    if not cycles.history_known:
        if p.get("includes") == "subsequent" and last >= 2:
            return Result.met(said)
        return _no_history(said)
    if "exactly" in p:
        ok = first == last == p["exactly"]
        return (Result.met if ok else Result.not_met)(f"{said} (cycle {p['exactly']} required)")
    if "includes" in p:
        ok = first == 1 if p["includes"] == "first" else last >= 2
        return (Result.met if ok else Result.not_met)(said)
    done = cycles.completed_before()
    ok = done >= p["minCompleted"]
    return (Result.met if ok else Result.not_met)(f"{done} cycle(s) completed before the order ({cycles.how})")


def _no_history(said: str) -> Result:
    return Result.unknown("administration history of earlier cycles (to count them)", evidence=[said])


# --- dose caps by position in the cycle, and per cycle -------------------------------------------------------

def _value(ctx: EvalContext, dose: CycleDose) -> float | None:
    value, _ = amount(ctx, dose.quantity, MG_PER_M2, None if dose.ordered else dose.day)
    return value


def _suggestion(ctx: EvalContext, cap: float, sequence: int | None) -> dict[str, Any] | None:
    """The dose the position allows, in the order's unit, for the dosage instruction that breaches it."""
    ordered = next((d.dose for d in ctx.order.dosages if d.sequence == sequence and d.dose), ctx.order.dose)
    if ordered is None:
        return None
    unit = ordered.unit.replace(" ", "").lower()
    if unit in ("mg/m2", "mg/m^2", "mg/m²"):
        dose = {"value": math.floor(cap * 100) / 100, "unit": ordered.unit, "code": ordered.unit}
    elif unit == "mg" and current_bsa(ctx) is not None:
        dose = {"value": math.floor(cap * current_bsa(ctx).value * 100) / 100, "unit": "mg", "code": "mg"}
    else:
        return None
    if sequence is not None and len(ctx.order.dosages) > 1:
        dose["sequence"] = sequence
    return dose


def dose_by_position(criterion: Criterion, ctx: EvalContext) -> Result:
    """`caps` mg/m² by position in the cycle (the last repeats), for the order's doses in `cycles`."""
    p = criterion.params
    caps = [float(c) for c in p["caps"]]
    cycles = cycles_of(ctx)
    doses = _selected(cycles, p.get("cycles", "all")) if cycles.history_known else cycles.planned
    if not doses:
        return Result.met(f"no dose of the order falls in the {p.get('cycles')} cycle(s): {cycles.describe()}")
    evidence, worst, unknown = [], None, []
    for dose in doses:
        value = _value(ctx, dose)
        if value is None:
            return Result.unknown("height and weight within 30 days (to compute BSA)" if dose.quantity
                                  else "a readable dose on the order (doseQuantity)")
        cap = caps[min(dose.position, len(caps)) - 1] if cycles.history_known else None
        if cap is None:  # without history the position is unknown: the strictest cap decides met, the loosest not-met
            if value > max(caps) + 1e-9:
                cap = max(caps)
            elif value > min(caps) + 1e-9:
                unknown.append(f"{value:.2f} mg/m2 on {dose.day}")
                continue
            else:
                cap = min(caps)
        evidence.append(f"C{dose.cycle} dose {dose.position} on {dose.day}: {value:.2f} mg/m2 (cap {cap:g})"
                        if cycles.history_known else f"{dose.day}: {value:.2f} mg/m2 (cap {cap:g})")
        if value > cap + 1e-9 and (worst is None or value - cap > worst[0] - worst[1]):
            worst = (value, cap, dose)
    if current_bsa(ctx):
        evidence.append(current_bsa(ctx).evidence)
    if worst is not None:
        value, cap, dose = worst
        breach = {"cap": cap, "unit": MG_PER_M2, "per": "dose", "value": round(value, 2),
                  "suggestedDose": _suggestion(ctx, cap, dose.sequence)}
        return Result.not_met(*evidence, breach=breach)
    if unknown:
        return Result.unknown("administration history of this cycle (to know which day of the cycle each dose is)",
                              evidence=[*evidence, *(f"{u} is within the day-1 cap only" for u in unknown)])
    return Result.met(*evidence)


def dose_per_cycle(criterion: Criterion, ctx: EvalContext) -> Result:
    """`max` mg/m² and `maxDoses` per cycle (given + ordered), for the cycles the order's doses in `cycles` reach."""
    p = criterion.params
    cycles = cycles_of(ctx)
    doses = _selected(cycles, p.get("cycles", "all"))
    if not doses and cycles.history_known:
        return Result.met(f"no dose of the order falls in the {p.get('cycles')} cycle(s): {cycles.describe()}")
    cap, max_doses = float(p["max"]), p.get("maxDoses")
    wanted = {d.cycle for d in doses} or set(cycles.requested)
    evidence, breach = [], None
    for cycle in sorted(wanted):
        members = [d for d in cycles.doses if d.cycle == cycle]
        values = [_value(ctx, d) for d in members]
        if any(v is None for v in values):
            return Result.unknown("height and weight within 30 days (to compute BSA)")
        total = sum(values)
        evidence.append(f"C{cycle}: {len(members)} dose(s), {total:.2f} mg/m2 (cap {cap:g} mg/m2"
                        + (f", {max_doses} doses)" if max_doses else ")"))
        if total > cap + 1e-9:
            breach = {"cap": cap, "unit": MG_PER_M2, "per": "cycle", "value": round(total, 2)}
        elif max_doses and len(members) > max_doses:
            return Result.not_met(*evidence, f"C{cycle} has {len(members)} doses (at most {max_doses})")
    if breach:
        return Result.not_met(*evidence, breach=breach)
    if not cycles.history_known:
        return Result.unknown("administration history of this cycle (to sum the doses already given)",
                              evidence=evidence)
    return Result.met(*evidence)


# --- therapy_duration modes: cycle length, and the order's span ---------------------------------------------

def cycle_length(criterion: Criterion, ctx: EvalContext) -> Result:
    """No new cycle before `minDays` after the D1 of a `cycle` (first | subsequent) cycle. Only the starts of
    cycles the order reaches are judged: an early start already given is history, not this order."""
    p = criterion.params
    cycles = cycles_of(ctx)
    which, min_days = p["cycle"], int(p["minDays"])
    evidence = []
    for cycle in cycles.requested:
        prev = cycle - 1
        if prev < 1 or (which == "first") != (prev == 1):
            continue
        start, prev_start = cycles.day_one(cycle), cycles.day_one(prev)
        if start is None or prev_start is None:
            continue
        gap = (start - prev_start).days
        said = f"C{cycle} day 1 on {start} is {gap} days after C{prev} day 1 ({prev_start}); at least {min_days}"
        if gap < min_days:
            return Result.not_met(said)
        evidence.append(said)
    if not cycles.history_known:
        return Result.unknown("administration history (the day 1 of the cycle before this order)",
                              evidence=evidence)
    return Result.met(*(evidence or [f"no {which} cycle ends within this order: {cycles.describe()}"]))


def order_span(criterion: Criterion, ctx: EvalContext) -> Result:
    """The order itself: at most `maxDoses` doses, the last within `maxDays` (or `maxMonths`) of the first."""
    p = criterion.params
    schedule = order_schedule(ctx)
    if not schedule.bounded:
        return Result.met(f"the order states no end: the authorization period is {p.get('period', 'the maximum')}")
    days = [d.day for d in schedule.doses]
    span = (max(days) - min(days)).days
    limit = p.get("maxDays") or round(p.get("maxMonths", 0) * 30.4375)
    said = f"{len(days)} dose(s) from {min(days)} to {max(days)} ({span} days; at most {limit} days"
    said += f", {p['maxDoses']} doses)" if p.get("maxDoses") else ")"
    if span > limit or (p.get("maxDoses") and len(days) > p["maxDoses"]):
        return Result.not_met(said + ": split the order")
    return Result.met(said)


def _registered() -> None:
    PER_DOSE_MODES["by_position"] = dose_by_position
    INTERVAL_MODES["per_cycle"] = dose_per_cycle
    DURATION_MODES["cycle_length"] = cycle_length
    DURATION_MODES["order_span"] = order_span


_registered()
