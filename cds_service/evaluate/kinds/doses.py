"""Dose caps (clauses.md §0.5): per dose, per rolling interval, and cumulative, with the numbers that prove a breach."""
from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from ...dosing import (
    BSA_LOINC,
    HEIGHT_LOINC,
    WEIGHT_LOINC,
    Bsa,
    GivenDose,
    Schedule,
    absolute_mg,
    bsa_on,
    expand_order,
    intensity_mg_per_m2,
    step,
    strength_in_text,
    weight_kg,
    window_start,
)
from ...record import MedicationFact, ObservationFact, PatientRecord, Quantity
from ...terminology import DrugGroup
from ..context import EvalContext
from ..criterion import Criterion
from ..registry import leaf_kind
from ..status import Result
from .demographics import is_adult
from .medications import concurrent_meds

_DOSE_READS = ("observations", "medicationAdministrations", "patient")
MG_PER_M2 = "mg/m2"
# Optional params handled in dose_limits (kept here so this module does not import it at load time).
SCHEDULE_PARAMS = frozenset({"perDose", "maxDoses", "windows"})
THRESHOLD_PARAMS = frozenset({"drugs", "includeConcurrent", "notMetFrom"})
_SIZE_CODES = (frozenset(WEIGHT_LOINC), frozenset(HEIGHT_LOINC), frozenset(BSA_LOINC))


def bsa_of_day(ctx: EvalContext, day: date) -> Bsa | None:
    """BSA on a day (memoised per day: the caps of one order read the same days; and with the observations, since
    it depends on nothing else once the patient is known to be an adult or not)."""
    return ctx.cached(("bsa", day), lambda: _bsa_on(ctx, day, is_adult(ctx)))


def _bsa_on(ctx: EvalContext, day: date, adult: bool | None) -> Bsa | None:
    return ctx.derived(ctx.record.observations, ("bsa", day, adult),
                       lambda: bsa_on(_body_size_on(ctx, day), day, adult))


def weight_of_day(ctx: EvalContext, day: date) -> tuple[float, ObservationFact] | None:
    """`dosing.weight_kg` on a day, memoised per day like the BSA."""
    return ctx.derived(ctx.record.observations, ("weight", day), lambda: weight_kg(_body_size_on(ctx, day), day))


def _body_size_on(ctx: EvalContext, day: date) -> PatientRecord:
    """A record holding, for weight, height and BSA each, only the observations of the newest date on or before
    `day` that have a value. The dosing look-ups take the newest such observation (the first recorded on a tie),
    so they find the same one here, without scanning the whole vital-sign history for every day a dose was given."""
    record = ctx.record
    newest = None if record.observations is None else \
        ctx.derived(record.observations, ("body_size", day), lambda: _newest_sizes(ctx, day))
    return PatientRecord(record.patient_ref, record.as_of, observations=newest)


def _newest_sizes(ctx: EvalContext, day: date) -> tuple[ObservationFact, ...]:
    observations = ctx.record.observations
    picked: list[int] = []
    for days, positions in ctx.derived(observations, "body_size_index", lambda: _size_index(ctx)):
        end = bisect_right(days, day)
        if end:
            picked += positions[bisect_left(days, days[end - 1]):end]
    return tuple(observations[i] for i in sorted(set(picked)))


def _size_index(ctx: EvalContext) -> list[tuple[list[date], list[int]]]:
    """Per group of codes (weight, height, BSA): dates and record positions of its dated observations with a
    value, in date order then record order."""
    observations = ctx.record.observations or ()
    out = []
    for codes in _SIZE_CODES:
        positions = ctx.positions_coded(lambda c, codes=codes: c.system == "loinc" and c.code in codes)
        found = sorted([(observations[i].effective, i) for i in positions
                        if observations[i].effective is not None and observations[i].value is not None])
        out.append(([d for d, _ in found], [i for _, i in found]))
    return out


def order_schedule(ctx: EvalContext, fill_until: date | None = None) -> Schedule:
    """`dosing.expand_order` of the order under evaluation (memoised: every dose row expands it)."""
    return ctx.cached(("schedule", fill_until), lambda: expand_order(ctx.order, ctx.order_date, fill_until))


def current_bsa(ctx: EvalContext) -> Bsa | None:
    """BSA on the order date (memoised: several caps read it)."""
    return bsa_of_day(ctx, ctx.order_date)


def amount(ctx: EvalContext, q: Quantity | None, unit: str, on: date | None = None,
           med: MedicationFact | None = None) -> tuple[float | None, str]:
    """A dose in the cap's unit (mg/m² or mg), using the BSA on its date; ('', note) explains approximations.
    Capsules count at the strength of `med` (a prior order of another strength), else of the draft order."""
    day = on or ctx.order_date
    bsa = bsa_of_day(ctx, day)
    note = ""
    if bsa is None and day != ctx.order_date and current_bsa(ctx) is not None:
        bsa, note = current_bsa(ctx), "approximate: current BSA used"
    if unit == MG_PER_M2:
        return intensity_mg_per_m2(q, bsa), note
    weight = weight_of_day(ctx, day)
    med = med or ctx.order
    strength = ctx.cached(("strength", med.ref), lambda: unit_strength(ctx, med))
    return absolute_mg(q, bsa, weight[0] if weight else None, strength), note


def unit_strength(ctx: EvalContext, med: MedicationFact) -> float | None:
    """mg per capsule: from the Medication resource, else the RxNorm product name on the record or in the policy."""
    if med.strength_mg:
        return med.strength_mg
    known = {c["code"]: c.get("display", "") for c in ctx.policy.data["drug"]["codes"]}
    return strength_in_text(med.text, *(c.display for c in med.codes), *(known.get(c.code, "") for c in med.codes))


def _missing_for(q: Quantity | None, unit: str) -> str:
    if q is None:
        return "a readable dose on the order (doseQuantity)"
    if unit == MG_PER_M2 or q.unit.replace(" ", "").lower() in ("mg/m2", "mg/kg"):
        return "height and weight within 30 days (to compute BSA)"
    return f"a dose convertible to {unit} (got {q.unit or 'no unit'})"


def _fmt(value: float) -> str:
    return f"{value:.1f}"


@dataclass(frozen=True)
class _Planned:
    day: date
    value: float
    ordered: bool = True


def _planned(ctx: EvalContext, schedule: Schedule, unit: str) -> tuple[list[_Planned] | None, str | None]:
    out = []
    for dose in schedule.doses:
        value, _ = amount(ctx, dose.quantity, unit)
        if value is None:
            return None, _missing_for(dose.quantity, unit)
        out.append(_Planned(dose.day, value))
    return out, None


def _history(ctx: EvalContext, drug_name: str, unit: str) -> tuple[list[_Planned] | None, list[str], str | None]:
    """Past doses in the cap's unit; (None, ...) when history was not supplied, or a reason when unreadable.
    Memoised per drug and unit: a policy's interval and lifetime caps read the same history."""
    drug = ctx.drug(drug_name)
    history, notes, unreadable = ctx.cached_for(("dose_history", unit), drug, lambda: _convert_history(ctx, drug, unit))
    return (None if history is None else list(history)), list(notes), unreadable


def _convert_history(ctx: EvalContext, drug: DrugGroup, unit: str) -> tuple[list[_Planned] | None, list[str],
                                                                             str | None]:
    given: list[GivenDose] | None = ctx.given_doses(drug, before=ctx.order_date)
    if given is None:
        return None, [], None
    out, notes = [], []
    for dose in given:
        value, note = amount(ctx, dose.quantity, unit, dose.day)
        if value is None:
            return None, [], f"{dose.ref}: dose given on {dose.day} cannot be converted to {unit}"
        if note:
            notes.append(f"{dose.ref}: {note}")
        out.append(_Planned(dose.day, value, ordered=False))
    return out, notes, None


def suggested_dose(ctx: EvalContext, per_dose_cap: float, unit: str) -> dict[str, Any] | None:
    """The largest per-dose amount the cap allows, in the order's own unit (rounded down)."""
    if per_dose_cap <= 0:
        return None
    ordered = ctx.order.dose
    if ordered is None:
        return None
    if unit == MG_PER_M2 and ordered.unit.replace(" ", "").lower() not in ("mg/m2", "mg/m^2", "mg/m²"):
        bsa = current_bsa(ctx)
        if bsa is None or ordered.unit.lower() != "mg":
            return None
        return {"value": math.floor(per_dose_cap * bsa.value * 10) / 10, "unit": "mg", "code": "mg"}
    return {"value": math.floor(per_dose_cap * 100) / 100, "unit": ordered.unit, "code": ordered.unit}


# Other readings of a per-dose or per-interval cap (by position in a cycle, per cycle, with an escalation step):
# `mode` names one, registered by the module that holds it.
PER_DOSE_MODES: dict[str, Callable[[Criterion, EvalContext], Result]] = {}
INTERVAL_MODES: dict[str, Callable[[Criterion, EvalContext], Result]] = {}


def effective_max(ctx: EvalContext, params: Mapping[str, Any]) -> tuple[float, str]:
    """The cap in force: `max`, or `raisedBy.max` while a `raisedBy` drug is taken (e.g. a strong CYP3A4 inducer)."""
    raised = params.get("raisedBy")
    if raised:
        groups = [ctx.drug(n) for n in raised["any"]]
        for med in concurrent_meds(ctx):
            group = next((g for g in groups if g.matches(med)), None)
            if group is not None:
                return float(raised["max"]), f"cap {float(raised['max']):g} while {group.display} is taken ({med.ref})"
    return float(params["max"]), ""


def undecided_max(ctx: EvalContext, params: Mapping[str, Any]) -> tuple[float, str] | None:
    """The `raisedBy` cap when medication data could not be read, so the raising drug cannot be ruled out
    (clauses.md §5 note 2): a dose above `max` but within it is unknown, never not met. None otherwise."""
    raised = params.get("raisedBy")
    if not raised or ctx.record.medications is not None:
        return None
    names = " or ".join(ctx.drug(n).display for n in raised["any"])
    return float(raised["max"]), f"whether {names} is taken (medications could not be read; cap {raised['max']:g})"


@leaf_kind("dose_per_bsa", reads=_DOSE_READS, modes=PER_DOSE_MODES)
def evaluate_dose_per_bsa(criterion: Criterion, ctx: EvalContext) -> Result:
    """params: `max` mg/m² for every single dose of the order, or a `mode` of PER_DOSE_MODES."""
    if "mode" in criterion.params:
        return PER_DOSE_MODES[criterion.params["mode"]](criterion, ctx)
    cap = float(criterion.params["max"])
    planned, missing = _planned(ctx, order_schedule(ctx), MG_PER_M2)
    if planned is None:
        return Result.unknown(missing)
    worst = max(planned, key=lambda p: p.value)
    said = f"ordered {_fmt(worst.value)} mg/m2 per dose (cap {_fmt(cap)} mg/m2)"
    evidence = [said] + ([current_bsa(ctx).evidence] if current_bsa(ctx) else [])
    if worst.value > cap + 1e-9:
        breach = {"cap": cap, "unit": MG_PER_M2, "per": "dose", "value": round(worst.value, 2),
                  "suggestedDose": suggested_dose(ctx, cap, MG_PER_M2)}
        return Result.not_met(*evidence, breach=breach)
    return Result.met(*evidence)


@leaf_kind("dose_per_interval", reads=_DOSE_READS + ("medicationDispenses",), modes=INTERVAL_MODES)
def evaluate_dose_per_interval(criterion: Criterion, ctx: EvalContext) -> Result:
    """params: `max`, `unit` (mg/m2 | mg), `window` {value, unit d|wk|mo}. Every rolling window (t − W, t]
    ending at a planned dose, history included, must stay within the cap (no grace days). `raisedBy`
    {any, max} raises the cap while one of those drugs is taken; a `mode` of INTERVAL_MODES reads it otherwise.
    With `perDose`, `maxDoses` or `windows` (oral absolute caps such as ixazomib's), see
    dose_limits.evaluate_schedule_limits."""
    p = criterion.params
    if "mode" in p:
        return INTERVAL_MODES[p["mode"]](criterion, ctx)
    if SCHEDULE_PARAMS & p.keys():
        from .dose_limits import evaluate_schedule_limits  # that module imports this one: resolved at call time
        return evaluate_schedule_limits(criterion, ctx)
    cap, raised = effective_max(ctx, p)
    unit = p.get("unit", MG_PER_M2)
    w_value, w_unit = p["window"]["value"], p["window"]["unit"]
    schedule = order_schedule(ctx, step(ctx.order_date, w_value, w_unit))
    planned, missing = _planned(ctx, schedule, unit)
    if planned is None:
        return Result.unknown(missing)
    history, notes, unreadable = _history(ctx, p.get("drug", "self"), unit)
    if unreadable:
        return Result.unknown(unreadable)
    worst_sum, worst_day, headroom = 0.0, planned[0].day, cap
    for day, past, ordered in _rolling_windows(history or [], planned, w_value, w_unit):
        total = sum(past + ordered)  # in the order history then plan, as the doses are listed
        if total > worst_sum:
            worst_sum, worst_day = total, day
        headroom = min(headroom, (cap - sum(past)) / len(ordered))
    window = f"{w_value:g} {'months' if w_unit == 'mo' else 'weeks' if w_unit == 'wk' else 'days'}"
    said = f"{_fmt(worst_sum)} {unit} in the {window} ending {worst_day} (cap {_fmt(cap)} {unit})"
    evidence = [said, *notes] + ([schedule.note] if schedule.note else []) + ([raised] if raised else [])
    undecided = undecided_max(ctx, p)
    if worst_sum > cap + 1e-9 and undecided and worst_sum <= undecided[0] + 1e-9:
        return Result.unknown(undecided[1], evidence=evidence)
    if worst_sum > cap + 1e-9:
        breach = {"cap": cap, "unit": unit, "per": window, "value": round(worst_sum, 2),
                  "suggestedDose": suggested_dose(ctx, headroom, unit)}
        return Result.not_met(*evidence, breach=breach)
    if history is None:
        return Result.unknown("administration history (to sum the doses in each window)", evidence=evidence)
    return Result.met(*evidence)


def _rolling_windows(history: list[_Planned], planned: list[_Planned], w_value: float,
                     w_unit: str) -> list[tuple[date, list[float], list[float]]]:
    """For each planned dose, the window (t − W, t] ending on it: (t, past values in it, planned values in it).

    Both lists are in day order (dose history and expanded schedules are sorted), so each window is a slice
    found by bisection rather than a scan of every dose for every planned one.
    """
    past_days, past_values = [d.day for d in history], [d.value for d in history]
    plan_days, plan_values = [d.day for d in planned], [d.value for d in planned]
    out = []
    for dose in planned:
        start = window_start(dose.day, w_value, w_unit)
        past = past_values[bisect_right(past_days, start):bisect_right(past_days, dose.day)]
        ordered = plan_values[bisect_right(plan_days, start):bisect_right(plan_days, dose.day)]
        out.append((dose.day, past, ordered))
    return out


@leaf_kind("cumulative_dose", reads=_DOSE_READS)
def evaluate_cumulative(criterion: Criterion, ctx: EvalContext) -> Result:
    """params: `max` (a lifetime cap, inclusive) or `min` (a threshold received), `unit`, `drug`
    (default the policy's own), `includeOrder` (default true for caps). A `min` with `drugs`,
    `includeConcurrent` or `notMetFrom` is evaluated by dose_limits.evaluate_threshold."""
    p = criterion.params
    if "min" in p and THRESHOLD_PARAMS & p.keys():
        from .dose_limits import evaluate_threshold  # imports this module: resolved at call time
        return evaluate_threshold(criterion, ctx)
    unit, drug = p.get("unit", MG_PER_M2), p.get("drug", "self")
    history, notes, unreadable = _history(ctx, drug, unit)
    if unreadable:
        return Result.unknown(unreadable)
    planned: list[_Planned] = []
    schedule = None
    if p.get("includeOrder", "max" in p):
        schedule = order_schedule(ctx)
        planned, missing = _planned(ctx, schedule, unit)
        if planned is None:
            return Result.unknown(missing)
    past = sum(d.value for d in history or [])
    ordered = sum(d.value for d in planned)
    total = past + ordered
    label = ctx.drug(drug).display
    said = f"lifetime {_fmt(past)} + ordered {_fmt(ordered)} = {_fmt(total)} {unit}"
    evidence = [*notes] + ([schedule.note] if schedule and schedule.note else [])
    if "max" in p:
        cap = float(p["max"])
        if total > cap + 1e-9:
            remaining = max(0.0, cap - past)
            breach = {"cap": cap, "unit": unit, "per": "lifetime", "value": round(total, 2),
                      "remaining": round(remaining, 2),
                      "suggestedDose": suggested_dose(ctx, remaining / max(1, len(planned)), unit)}
            return Result.not_met(f"{said} > {_fmt(cap)} {unit}", *evidence, breach=breach)
        if history is None:
            return Result.unknown(f"{label} administration history (lifetime dose)",
                                  evidence=[f"ordered {_fmt(ordered)} {unit}; history not supplied", *evidence])
        return Result.met(f"{said} ≤ {_fmt(cap)} {unit}; remaining {_fmt(cap - past)} {unit}", *evidence)
    threshold = float(p["min"])
    if total >= threshold - 1e-9:
        return Result.met(f"{label}: {said} ≥ {_fmt(threshold)} {unit}", *evidence)
    if history is None:
        return Result.unknown(f"{label} administration history (cumulative dose received)")
    return Result.not_met(f"{label}: {said} < {_fmt(threshold)} {unit}", *evidence)
