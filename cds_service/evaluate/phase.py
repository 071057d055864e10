"""Initial or continued therapy (contract §5; note 1 of each seed in clauses.md)."""
from __future__ import annotations

from datetime import timedelta

from ..record import MedicationFact, PatientRecord
from .context import EvalContext


def lookback_days(ctx: EvalContext) -> int:
    """The policy's lookback: cycle length + 30 days, by the indication on record (the longest that applies)."""
    rules = ctx.policy.phase_rules
    days = [entry["days"] for entry in rules.get("lookback", ())
            if _has_condition(ctx.record, ctx, entry["valueSet"])]
    return max(days) if days else rules["defaultLookbackDays"]


def _has_condition(record: PatientRecord, ctx: EvalContext, value_set: str) -> bool:
    vs = ctx.value_set(value_set)
    return any(vs.matches(code) for cond in record.conditions or () for code in cond.codes) or any(
        vs.matches(code) for code in ctx.order.reason_codes)


def _use_date(med: MedicationFact):
    if med.source == "dispense" and med.start is not None:
        return med.start + timedelta(days=med.days_supply or 0)
    return med.end or med.start or med.authored_on


def select_phase(ctx: EvalContext) -> tuple[str, str]:
    """('initial' | 'continued', why), from priorPrescription, active orders, or recent use of the drug."""
    rules = ctx.policy.phase_rules
    if rules.get("alwaysInitialIf") and _has_condition(ctx.record, ctx, rules["alwaysInitialIf"]):
        return "initial", f"{ctx.value_set(rules['alwaysInitialIf']).text}: always an initial request"
    if ctx.order.prior_prescription:
        return "continued", f"{ctx.order.ref} names a priorPrescription"
    days = lookback_days(ctx)
    ctx.memo["lookback_days"] = days
    since = ctx.order_date - timedelta(days=days)
    drug = ctx.policy.own_drug
    for med in ctx.record.medications or ():
        if not drug.matches(med):
            continue
        if med.source == "request" and med.status == "active":
            return "continued", f"{med.ref}: an active {drug.display} order"
        if med.source == "request" and med.status != "completed":
            continue
        when = _use_date(med)
        if when is not None and since <= when <= ctx.order_date:
            return "continued", f"{med.ref}: {drug.display} {med.source} on {when} (within {days} days)"
    return "initial", f"no {drug.display} given, dispensed or ordered in the last {days} days"
