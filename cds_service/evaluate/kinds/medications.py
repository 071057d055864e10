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
from ..status import Result
from .documentation import or_answered

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
    """Drafts and medications in play around the order date (memoised: partner and cap rows all read them)."""
    return list(ctx.cached("concurrent", lambda: _concurrent(ctx)))


def _concurrent(ctx: EvalContext) -> tuple[MedicationFact, ...]:
    on = ctx.order_date
    return (*ctx.other_drafts(), *(m for m in ctx.record.medications or () if is_concurrent(m, on)))


def received_before(ctx: EvalContext, drug: DrugGroup, before: date | None = None) -> list[MedicationFact]:
    """History of a drug before the order: administrations, dispenses, statements, past/active requests.
    Memoised per drug and cutoff: prior-therapy and line-of-therapy rows ask for the same drugs many times."""
    cutoff = before or ctx.order_date
    return list(ctx.cached_for(("received_before", cutoff), drug, lambda: _received_before(ctx, drug, cutoff)))


def _received_before(ctx: EvalContext, drug: DrugGroup, cutoff: date) -> tuple[MedicationFact, ...]:
    out = [med for med in ctx.meds_of(drug)
           if (med.source != "request" or med.status in HISTORY_REQUEST_STATUS)
           and (med.start is None or med.start <= cutoff)]
    return tuple(sorted(out, key=_start_or_min))


def _start_or_min(med: MedicationFact) -> date:
    return med.start or date.min


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
    return False, [], [" or ".join(" and ".join(p[2]) for p in parts)]


@leaf_kind("concurrent_medication", reads=_MED_KEYS)
def evaluate_concurrent(criterion: Criterion, ctx: EvalContext) -> Result:
    """params: {"all": [...]} or {"any": [...]} of drug groups. Met when present; otherwise unknown
    (never not-met: the partner may be ordered later, elsewhere, or in a regimen not sent), except with
    `notMetIfEnded`, where the partner's orders all being completed or stopped is not-met, and with
    `absentIsNotMet`, for rows that test whether a drug is taken rather than require it (an exclusion's
    "used with capecitabine", a CYP3A4 guard): medication data supplied and none is not met."""
    params = {k: v for k, v in criterion.params.items() if k in ("all", "any")}
    ok, found, missing = _requirement(params, ctx, concurrent_meds(ctx))
    if ok:
        return Result.met(*found)
    if criterion.params.get("notMetIfEnded"):
        ended = _ended_orders(ctx, params)
        if ended:
            return Result.not_met(*ended)
    if criterion.params.get("absentIsNotMet") and ctx.record.medications is not None:
        return Result.not_met(f"no {' or '.join(missing)} among current or draft medications")
    return Result.unknown(*(f"an order for {m} with this one" for m in missing), evidence=found)


def _ended_orders(ctx: EvalContext, spec: dict) -> list[str]:
    """`notMetIfEnded`: orders of the partner on record, all completed or stopped (positive evidence it ended)."""
    names = [n for n in (spec.get("all") or spec.get("any") or ()) if isinstance(n, str)]
    orders = [m for n in names for m in ctx.meds_of(ctx.drug(n)) if m.source == "request"]
    if orders and all(m.status in ("completed", "stopped") for m in orders):
        return [f"{m.ref}: {m.status}" for m in orders] + ["no active or pending order"]
    return []


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
    if not (ctx.record.has("medicationRequests") and ctx.record.has("medicationStatements")):
        return Result.unknown("current medication list (active orders and statements)")
    return Result.met("none of the listed drugs is prescribed now")


def _any_drugs(criterion: Criterion, ctx: EvalContext) -> list[DrugGroup]:
    return [ctx.drug(n) for n in criterion.params["any"]]


# How a prior drug counts (clauses.md §0.4 prior_medication); without a mode, received.
PRIOR_MODES = ("received", "failed", "refractory", "relapse")


@leaf_kind("prior_medication", reads=_MED_KEYS + ("conditions",), modes=PRIOR_MODES)
def evaluate_prior(criterion: Criterion, ctx: EvalContext) -> Result:
    """params: `any` (drug groups, one suffices) or `all` (each must be on record), `mode` received | failed |
    refractory | relapse, and for these two `progression` (value sets whose diagnosis documents progression) with an
    optional `progressionWindow` {maxDaysAfterLastDose | minDaysAfterLastDose} measured from the drug's last
    dose (with `outsideIsNotMet`, a dated progression after the last dose but outside the window is not met);
    `minLines` {count, drugs} (that many prior regimens, clauses.md §0.5.10). Not-met comes only from
    a documentation answer (`answerable`): absence from an EHR history is not proof."""
    return or_answered(criterion, ctx, _prior(criterion, ctx))


def _prior(criterion: Criterion, ctx: EvalContext) -> Result:
    p = criterion.params
    if "all" in p:
        return _prior_all(criterion, ctx)
    groups = _any_drugs(criterion, ctx)
    names = " or ".join(g.display for g in groups)
    if not any(ctx.record.has(k) for k in _MED_KEYS):
        return Result.unknown(f"history of {names} (medication history could not be read)")
    found = [(m, g) for g in groups for m in received_before(ctx, g)]
    if not found:
        verb = {"failed": "trial and outcome of", "refractory": "therapy with"}.get(p.get("mode"), "")
        return Result.unknown(f"{verb} {names}".strip() + " (dates, reason stopped)")
    found.sort(key=lambda mg: last_use(mg[0], ctx.order_date) or date.min)
    med, group = found[-1]
    said = f"{med.ref}: {group.display} ({med.source}{', ' + str(med.start) if med.start else ''})"
    if p.get("mode") not in ("refractory", "relapse"):
        return Result.met(said)
    sets = [ctx.value_set(n) for n in p.get("progression", [])]
    window = p.get("progressionWindow")
    last = max((d for d in (last_use(m, ctx.order_date) for m, _ in found) if d), default=None)
    first = min((m.start for m, _ in found if m.start), default=None)
    for cond in ctx.record.conditions or ():
        code = next((c for c in cond.codes if any(vs.matches(c) for vs in sets)), None)
        if code is None:
            continue
        progression = f"{cond.ref}: {code.code} {code.display}".strip()
        if window is None:
            return Result.met(said, progression)
        when = cond.onset or cond.recorded
        if when is None or last is None:
            continue
        gap = (when - last).days
        progression += f" on {when}, {gap} days after the last dose ({last})"
        if "maxDaysAfterLastDose" in window and (first is None or when >= first) \
                and gap <= window["maxDaysAfterLastDose"]:
            return Result.met(said, progression)
        if "minDaysAfterLastDose" in window and gap >= window["minDaysAfterLastDose"]:
            return Result.met(said, progression)
        if window.get("outsideIsNotMet") and gap >= 0:
            # Dated progression after the last dose but outside the window is positive evidence (clauses.md §2
            # I.A.5.b.iii "documented later progression", I.A.5.d.relapse "documented interval < 6 months").
            return Result.not_met(said, progression + ": outside the window")
        return Result.unknown("documented timing of progression against the last dose", evidence=[said, progression])
    return Result.unknown("documented progression on or after it (refractory disease)", evidence=[said])


def last_use(med: MedicationFact, today: date) -> date | None:
    """The last day a record shows the drug in use: supply end for dispenses, today for ongoing orders/statements."""
    if med.source == "dispense":
        return _supply_end(med)
    if med.end is not None:
        return med.end
    if med.source in ("statement", "request") and med.status in ("active", "on-hold"):
        return today
    return med.start


def _prior_all(criterion: Criterion, ctx: EvalContext) -> Result:
    """Every named drug class on record, and optionally at least `minLines.count` prior regimens."""
    from .course import count_prior_lines  # course imports this module

    p = criterion.params
    groups = [ctx.drug(n) for n in p["all"]]
    if not any(ctx.record.has(k) for k in _MED_KEYS):
        return Result.unknown("prior therapy history (medication history could not be read)")
    evidence, missing = [], []
    for group in groups:
        found = received_before(ctx, group)
        if found:
            evidence.append(f"{found[-1].ref}: {group.display} ({found[-1].source}, {found[-1].start})")
        else:
            missing.append(f"prior {group.display}")
    if "minLines" in p:
        lines, line_evidence = count_prior_lines(ctx, p["minLines"]["drugs"])
        evidence += line_evidence
        if lines < p["minLines"]["count"]:
            missing.append(f"at least {p['minLines']['count']} prior lines of therapy ({lines} on record)")
    return Result.unknown(*missing, evidence=evidence) if missing else Result.met(*evidence)


def _lookback(ctx: EvalContext, criterion: Criterion) -> int:
    """The clause's own lookback, else the phase lookback by indication (computed when phase selection did not)."""
    return int(criterion.params.get("lookbackDays") or ctx.memo.get("lookback_days") or lookback_days(ctx))


def recent_use(ctx: EvalContext, drug: DrugGroup, days: int, sources: Iterable[str]) -> MedicationFact | None:
    """The latest use of a drug within `days` before the order (supply end for dispenses)."""
    since = ctx.order_date - timedelta(days=days)
    best = None
    for med in ctx.meds_of(drug):
        if med.source not in sources:
            continue
        when = _supply_end(med) if med.source == "dispense" else (med.end or med.start)
        recent = when is not None and since <= when and (med.start or when) <= ctx.order_date
        if recent and (best is None or when > (best.end or best.start)):
            best = med
    return best


@leaf_kind("currently_receiving", reads=_MED_KEYS + ("coverage",))
def evaluate_receiving(criterion: Criterion, ctx: EvalContext) -> Result:
    """params: `requireCoverage` (the payer's Coverage must be active: clauses.md's proxy for
    'via Centene benefit'), `lookbackDays` (default: the phase lookback). Met or unknown. With
    `orReceivedForDays` and `coveredDiagnoses` (value sets), current use that began at least that many days
    ago for a covered diagnosis is met without the coverage (the 'documentation supports' route)."""
    p = criterion.params
    days = _lookback(ctx, criterion)
    med = recent_use(ctx, ctx.policy.own_drug, days, ("administration", "dispense", "statement"))
    drug = ctx.policy.own_drug.display
    if med is None:
        return Result.unknown(f"{drug} given or dispensed in the last {days} days")
    said = f"{med.ref}: {drug} {med.source} on {med.start} (within {days} days)"
    if p.get("requireCoverage"):
        active = [c for c in ctx.record.coverages or () if c.status == "active"]
        if not active:
            alternative = _long_enough(ctx, p) if "orReceivedForDays" in p else None
            if alternative:
                return Result.met(said, *alternative)
            return Result.unknown("an active coverage with this payer", evidence=[said])
        said += f"; {active[0].ref} active"
    return Result.met(said)


def _long_enough(ctx: EvalContext, p: Any) -> list[str] | None:
    """Evidence of current use for ≥ n days for a covered diagnosis, or None."""
    history = received_before(ctx, ctx.policy.own_drug)
    first = min((m.start for m in history if m.start), default=None)
    if first is None or (ctx.order_date - first).days < p["orReceivedForDays"]:
        return None
    sets = [ctx.value_set(n) for n in p.get("coveredDiagnoses", ())]
    codes = [c for cond in ctx.record.conditions or () for c in cond.codes] + list(ctx.order.reason_codes)
    hit = next((c for c in codes if any(vs.matches(c) for vs in sets)), None)
    if hit is None:
        return None
    return [f"first {ctx.policy.own_drug.display} on record {first} ({(ctx.order_date - first).days} days ago)",
            f"covered diagnosis {hit.code} {hit.display}".strip()]
