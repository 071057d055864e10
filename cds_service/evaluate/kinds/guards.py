"""Guard-only kinds for `applies_if`: whether a request is a dose increase, and the phase."""
from __future__ import annotations

from ..context import EvalContext
from ..criterion import Predicate
from ..registry import guard_kind
from ..status import Status
from .doses import amount, order_schedule
from .medications import received_before

INCREASE_TOLERANCE = 0.05  # clauses.md §0.5.8: absorbs vial and BSA rounding


def _interval_days(order) -> float | None:
    for dosage in order.dosages:
        t = dosage.timing
        if t and t.period and t.period_unit:
            per = {"d": 1, "wk": 7, "mo": 30.4375}.get(t.period_unit)
            return t.period * per / (t.frequency or 1) if per else None
    return None


@guard_kind("dose_increase", reads=("medicationRequests", "medicationAdministrations", "observations"))
def is_dose_increase(pred: Predicate, ctx: EvalContext) -> tuple[Status, str]:
    """Compare the draft's per-dose intensity and interval with the latest prior order or administration."""
    unit = pred.params.get("unit", "mg/m2")
    prior = [m for m in received_before(ctx, ctx.policy.own_drug)
             if m.source in ("administration", "request") and (m.dose or m.dosages)]
    if not prior:
        return Status.UNKNOWN, "no prior dose on record to compare with"
    last = prior[-1]
    new, _ = amount(ctx, order_schedule(ctx).doses[0].quantity, unit)
    old, _ = amount(ctx, last.dose, unit, last.start, med=last)  # its own capsule strength
    if new is None or old is None:
        return Status.UNKNOWN, "the new or the previous dose cannot be compared"
    said = f"new {new:.1f} {unit} vs previous {old:.1f} {unit} ({last.ref})"
    if new > old * (1 + INCREASE_TOLERANCE):
        return Status.MET, said
    new_gap, old_gap = _interval_days(ctx.order), _interval_days(last) if last.source == "request" else None
    if new_gap and old_gap and new_gap < old_gap:
        return Status.MET, f"{said}; interval shortened from {old_gap:g} to {new_gap:g} days"
    return Status.NOT_MET, said


@guard_kind("phase")
def is_phase(pred: Predicate, ctx: EvalContext) -> tuple[Status, str]:
    """True when the evaluation is in the named phase (initial or continued)."""
    wanted = pred.params["phase"]
    return (Status.MET if ctx.phase == wanted else Status.NOT_MET), f"phase is {ctx.phase}"
