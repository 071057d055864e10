"""Dose limits tied to body size or to a tolerated earlier dose: the BSA cap, and a dose that may be raised.

`bsa_cap` is its own kind (clauses.md §0.4) because the cap is on the BSA the dose is computed from, not on
the dose per m²: a 100 mg order for a 2.5 m² patient is 40 mg/m² of actual BSA, yet above 40 mg/m² × 2.2 m².
"""
from __future__ import annotations

import math

from ...dosing import intensity_mg_per_m2
from ..context import EvalContext
from ..criterion import Criterion
from ..registry import leaf_kind
from ..status import Result
from .doses import MG_PER_M2, PER_DOSE_MODES, amount, current_bsa, effective_max, order_schedule, undecided_max

_READS = ("observations", "patient", "medicationRequests", "medicationAdministrations", "medicationStatements",
          "medicationDispenses")
_PER_M2_UNITS = ("mg/m2", "mg/m^2", "mg/m²", "mg/{m2}")


@leaf_kind("bsa_cap", reads=_READS)
def evaluate_bsa_cap(criterion: Criterion, ctx: EvalContext) -> Result:
    """params: `maxBsa` (m²) and `max` (mg/m², with optional `raisedBy`): every dose ≤ max × min(BSA, maxBsa) mg.
    A mg/m² order is met (the card states the mg on the capped BSA); with BSA unknown a mg order within
    max × maxBsa is met, since no BSA could allow more."""
    p = criterion.params
    max_bsa = float(p["maxBsa"])
    per_m2, raised = effective_max(ctx, p)
    bsa = current_bsa(ctx)
    notes = [n for n in (raised, bsa.evidence if bsa else "") if n]
    if bsa is not None and bsa.value <= max_bsa:
        return Result.met(f"BSA {bsa.value:g} m2 is within {max_bsa:g} m2: the cap does not bind", *notes)
    ceiling = per_m2 * max_bsa
    capped = f"{per_m2:g} mg/m2 × {max_bsa:g} m2 = {ceiling:.1f} mg"
    evidence, undecided = [], undecided_max(ctx, p)
    for dose in order_schedule(ctx).doses:
        q = dose.quantity
        if q is None:
            return Result.unknown("a readable dose on the order (doseQuantity)")
        if q.unit.replace(" ", "").lower() in _PER_M2_UNITS:
            if bsa is None:
                return Result.unknown("height and weight within 30 days (to compute BSA)")
            evidence.append(f"BSA {bsa.value:g} m2 is above {max_bsa:g} m2: dose on {max_bsa:g} m2, "
                            f"{q.value:g} mg/m2 × {max_bsa:g} m2 = {q.value * max_bsa:.1f} mg")
            continue
        mg, _ = amount(ctx, q, "mg")
        if mg is None:
            return Result.unknown(f"a dose convertible to mg (got {q.unit or 'no unit'})")
        if mg > ceiling + 1e-9 and undecided and mg <= undecided[0] * max_bsa + 1e-9:
            return Result.unknown(undecided[1], evidence=[f"ordered {mg:g} mg > {capped}", *notes])
        if mg > ceiling + 1e-9:
            # Above max × maxBsa no BSA can allow the dose, so an unknown BSA still decides.
            breach = {"cap": round(ceiling, 1), "unit": "mg", "per": "dose", "value": round(mg, 2),
                      "suggestedDose": {"value": math.floor(ceiling * 10) / 10, "unit": "mg", "code": "mg"}}
            return Result.not_met(f"ordered {mg:g} mg > {capped}", *notes, breach=breach)
        evidence.append(f"ordered {mg:g} mg ≤ {capped}")
    return Result.met(*dict.fromkeys(evidence), *notes)


def dose_with_escalation(criterion: Criterion, ctx: EvalContext) -> Result:
    """`max` mg/m² per dose, or up to `escalation.max` once a dose ≤ `escalation.priorAtMost` was given before
    (the label's "may be increased in later cycles if tolerated": a prior dose at the lower level is the proxy)."""
    p = criterion.params
    cap, step = float(p["max"]), p["escalation"]
    worst = 0.0
    for dose in order_schedule(ctx).doses:
        value, _ = amount(ctx, dose.quantity, MG_PER_M2)
        if value is None:
            return Result.unknown("height and weight within 30 days (to compute BSA)" if dose.quantity
                                  else "a readable dose on the order (doseQuantity)")
        worst = max(worst, value)
    said = f"ordered {worst:.1f} mg/m2 per dose (cap {cap:g}, or {float(step['max']):g} after a tolerated lower dose)"
    if worst <= cap + 1e-9:
        return Result.met(said)
    high = float(step["max"])
    if worst > high + 1e-9:
        breach = {"cap": high, "unit": MG_PER_M2, "per": "dose", "value": round(worst, 2),
                  "suggestedDose": _in_order_unit(ctx, cap)}
        return Result.not_met(said, breach=breach)
    prior = _prior_at_most(ctx, float(step["priorAtMost"]))
    if prior is None:
        return Result.unknown(f"an earlier dose of {float(step['priorAtMost']):g} mg/m2 that was tolerated",
                              evidence=[said])
    return Result.met(said, prior)


def _prior_at_most(ctx: EvalContext, level: float) -> str | None:
    for dose in reversed(ctx.given_doses(ctx.policy.own_drug, before=ctx.order_date) or []):
        value, _ = amount(ctx, dose.quantity, MG_PER_M2, dose.day)
        if value is not None and value <= level + 1e-9:
            return f"{dose.ref}: {value:.1f} mg/m2 given on {dose.day}"
    return None


def _in_order_unit(ctx: EvalContext, cap: float) -> dict | None:
    ordered = ctx.order.dose
    if ordered is None:
        return None
    if intensity_mg_per_m2(ordered, None) is not None:
        return {"value": cap, "unit": ordered.unit, "code": ordered.unit}
    bsa = current_bsa(ctx)
    return {"value": math.floor(cap * bsa.value * 10) / 10, "unit": "mg", "code": "mg"} if bsa else None


PER_DOSE_MODES["escalation"] = dose_with_escalation
