"""Medication leaves: partner drugs, drugs that must be absent, prior therapy, current therapy."""
from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta
from typing import Any

from ...record import MedicationFact
from ...terminology import DrugGroup
from ..context import EvalContext
from ..criterion import Criterion
from ..phase import lookback_days
from ..registry import leaf_kind
from ..status import Result, Status
from .documentation import answered

_MED_KEYS = ("medicationRequests", "medicationAdministrations", "medicationStatements", "medicationDispenses")
PARTNER_WINDOW_DAYS = 28
HISTORY_REQUEST_STATUS = {"completed", "stopped", "active"}


def _supply_end(med: MedicationFact) -> date | None:
    if med.start is None:
        return None
    return med.start + timedelta(days=med.days_supply or 0)


def is_concurrent(med: MedicationFact, on: date) -> bool:
    """A partner counts when it is in play around the order date (clauses.md §0.4 concurrent_medication)."""
    if med.source == "draft":
        return True
    if med.source == "request":
        return med.status in ("active", "on-hold")
    if med.source == "statement":
        return med.status == "active"
    if med.source == "administration":
        return med.start is not None and on - timedelta(days=PARTNER_WINDOW_DAYS) <= med.start <= on
    if med.source == "dispense":
        end = _supply_end(med)
        return med.start is not None and end is not None and med.start <= on <= end
    return False


def is_prescribed_now(med: MedicationFact) -> bool:
    """'Prescribed concurrently': a draft, an active or on-hold request, or an active statement."""
    return (med.source == "draft" or (med.source == "request" and med.status in ("active", "on-hold"))
            or (med.source == "statement" and med.status == "active"))


def concurrent_meds(ctx: EvalContext) -> list[MedicationFact]:
    on = ctx.order_date
    return [*ctx.other_drafts(), *(m for m in ctx.record.medications or () if is_concurrent(m, on))]


def received_before(ctx: EvalContext, drug: DrugGroup, before: date | None = None) -> list[MedicationFact]:
    """History of a drug before the order: administrations, dispenses, statements, past/active requests."""
    cutoff = before or ctx.order_date
    out = []
    for med in ctx.record.medications or ():
        if not drug.matches(med):
            continue
        if med.source == "request" and med.status not in HISTORY_REQUEST_STATUS:
            continue
        if med.start is not None and med.start > cutoff:
            continue
        out.append(med)
    return sorted(out, key=lambda m: m.start or date.min)


def _requirement(spec: Any, ctx: EvalContext, meds: list[MedicationFact]) -> tuple[bool, list[str], list[str]]:
    """Evaluate a partner requirement: a drug name, or {"all": [...]}/{"any": [...]}; (ok, found, missing)."""
    if isinstance(spec, str):
        group = ctx.drug(spec)
        match = next((m for m in meds if group.matches(m)), None)
        return (True, [f"{match.ref}: {group.display}"], []) if match else (False, [], [group.display])
    if "all" in spec:
        parts = [_requirement(s, ctx, meds) for s in spec["all"]]
        return (all(p[0] for p in parts), [f for p in parts for f in p[1]], [m for p in parts for m in p[2]])
    parts = [_requirement(s, ctx, meds) for s in spec["any"]]
    if any(p[0] for p in parts):
        return True, [f for p in parts if p[0] for f in p[1]], []
    return False, [], [" or ".join(m for p in parts for m in p[2])]


@leaf_kind("concurrent_medication", reads=_MED_KEYS)
def evaluate_concurrent(criterion: Criterion, ctx: EvalContext) -> Result:
    """params: {"all": [...]} or {"any": [...]} of drug groups. Met when present; otherwise unknown
    (never not-met: the partner may be ordered later, elsewhere, or in a regimen not sent)."""
    ok, found, missing = _requirement(dict(criterion.params), ctx, concurrent_meds(ctx))
    if ok:
        return Result.met(*found)
    return Result.unknown(*(f"an order for {m} with this one" for m in missing), evidence=found)


@leaf_kind("concurrent_medication_absent", reads=("medicationRequests", "medicationStatements"))
def evaluate_absent(criterion: Criterion, ctx: EvalContext) -> Result:
    """params: `absent` (drug groups). Met when medication data was supplied and none is prescribed now."""
    groups = [ctx.drug(n) for n in criterion.params["absent"]]
    current = [*ctx.other_drafts(), *(m for m in ctx.record.medications or () if is_prescribed_now(m))]
    for med in current:
        for group in groups:
            if group.matches(med):
                drug = f"{med.text} ({group.display})" if med.text else group.display
                return Result.not_met(f"{med.ref}: {drug} is prescribed ({med.source}, {med.status})")
    if not (ctx.record.has("medicationRequests") or ctx.record.has("medicationStatements")):
        return Result.unknown("current medication list (active orders and statements)")
    return Result.met("none of the listed drugs is prescribed now")


def _any_drugs(criterion: Criterion, ctx: EvalContext) -> list[DrugGroup]:
    return [ctx.drug(n) for n in criterion.params["any"]]


@leaf_kind("prior_medication", reads=_MED_KEYS + ("conditions",))
def evaluate_prior(criterion: Criterion, ctx: EvalContext) -> Result:
    """params: `any` (drug groups, one suffices), `mode` received | failed | refractory, and for
    refractory `progression` (value sets whose diagnosis documents progression). Not-met comes only
    from a documentation answer: absence from an EHR history is not proof."""
    result = _prior_from_record(criterion, ctx)
    if result.status is Status.UNKNOWN:
        return answered(criterion, ctx) or result
    return result


def _prior_from_record(criterion: Criterion, ctx: EvalContext) -> Result:
    groups = _any_drugs(criterion, ctx)
    names = " or ".join(g.display for g in groups)
    if not any(ctx.record.has(k) for k in _MED_KEYS):
        return Result.unknown(f"history of {names} (medication history could not be read)")
    found = [(m, g) for g in groups for m in received_before(ctx, g)]
    if not found:
        verb = {"failed": "trial and outcome of", "refractory": "therapy with"}.get(criterion.params.get("mode"), "")
        return Result.unknown(f"{verb} {names}".strip() + " (dates, reason stopped)")
    med, group = found[-1]
    said = f"{med.ref}: {group.display} ({med.source}{', ' + str(med.start) if med.start else ''})"
    if criterion.params.get("mode") != "refractory":
        return Result.met(said)
    progression = [vs for vs in criterion.params.get("progression", [])]
    sets = [ctx.value_set(n) for n in progression]
    for cond in ctx.record.conditions or ():
        code = next((c for c in cond.codes if any(vs.matches(c) for vs in sets)), None)
        if code:
            return Result.met(said, f"{cond.ref}: {code.code} {code.display}".strip())
    return Result.unknown("documented progression on or after it (refractory disease)", evidence=[said])


def _lookback(ctx: EvalContext, criterion: Criterion) -> int:
    """The clause's own lookback, else the phase lookback by indication (computed when phase selection did not)."""
    return int(criterion.params.get("lookbackDays") or ctx.memo.get("lookback_days") or lookback_days(ctx))


def recent_use(ctx: EvalContext, drug: DrugGroup, days: int, sources: Iterable[str]) -> MedicationFact | None:
    """The latest use of a drug within `days` before the order (supply end for dispenses)."""
    since = ctx.order_date - timedelta(days=days)
    best = None
    for med in ctx.record.medications or ():
        if med.source not in sources or not drug.matches(med):
            continue
        when = _supply_end(med) if med.source == "dispense" else (med.end or med.start)
        recent = when is not None and since <= when and (med.start or when) <= ctx.order_date
        if recent and (best is None or when > (best.end or best.start)):
            best = med
    return best


@leaf_kind("currently_receiving", reads=_MED_KEYS + ("coverage",))
def evaluate_receiving(criterion: Criterion, ctx: EvalContext) -> Result:
    """params: `requireCoverage` (the payer's Coverage must be active: clauses.md's proxy for
    'via Centene benefit'), `lookbackDays` (default: the phase lookback). Met or unknown."""
    days = _lookback(ctx, criterion)
    med = recent_use(ctx, ctx.policy.own_drug, days, ("administration", "dispense", "statement"))
    drug = ctx.policy.own_drug.display
    if med is None:
        return Result.unknown(f"{drug} given or dispensed in the last {days} days")
    said = f"{med.ref}: {drug} {med.source} on {med.start} (within {days} days)"
    if criterion.params.get("requireCoverage"):
        active = [c for c in ctx.record.coverages or () if c.status == "active"]
        if not active:
            return Result.unknown("an active coverage with this payer", evidence=[said])
        said += f"; {active[0].ref} active"
    return Result.met(said)
