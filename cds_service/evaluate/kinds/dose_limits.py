"""Dose limits beyond mg/m² caps (clauses.md §0.5; notes 2 of seeds 001 and 002).

- `dose_absolute`: mg per calendar day of an episode (dexrazoxane extravasation: 2,000 / 2,000 / 1,000 mg,
  nothing from day 4). New kind because no existing kind counts days from an episode's first dose.
- `dose_ratio`: a dose bounded by a multiple of a partner drug's dose given the same day (dexrazoxane ≤ 10 ×
  doxorubicin). New kind because the cap is not a number on the order but a pairing with another order.
- `schedule_limits`: the oral, absolute-mg form of `dose_per_interval` (ixazomib 4 mg per dose, 1 dose per 7
  days, 3 doses and 12 mg per 28 days, checked against dispense quantity and supply). Reached through
  `dose_per_interval` when its optional params `perDose`, `maxDoses` or `windows` are given.
- `threshold`: the `min` form of `cumulative_dose` with equivalence factors, concurrent orders and the
  rule for when a shortfall is not-met. Reached through `cumulative_dose` when those optional params are given.
"""
from __future__ import annotations

import math
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from ...dosing import (
    Schedule,
    absolute_mg,
    dispensed_doses,
    expand_order,
    is_unit_dose,
    step,
    window_start,
    with_dispense_count,
)
from ...record import MedicationFact, Quantity
from ..context import EvalContext
from ..criterion import Criterion
from ..registry import leaf_kind
from ..status import Result, Status
from .doses import MG_PER_M2, amount, current_bsa, order_schedule, unit_strength, weight_of_day
from .medications import is_prescribed_now

_DOSE_READS = ("observations", "medicationAdministrations", "patient")
_ORAL_READS = _DOSE_READS + ("medicationDispenses",)
MG = "mg"


def _fmt(value: float) -> str:
    return f"{value:g}" if value == int(value) else f"{value:.1f}"


def _mg(ctx: EvalContext, q: Quantity | None, on: date, strength: float | None = None) -> float | None:
    """A dose in mg on a day: mg/m² × BSA, mg/kg × weight, capsules × strength."""
    value, _ = amount(ctx, q, MG, on)
    if value is None and strength is not None and q is not None:
        weight = weight_of_day(ctx, on)
        value = absolute_mg(q, current_bsa(ctx), weight[0] if weight else None, strength)
    return value


def _in_order_unit(ctx: EvalContext, mg: float) -> dict[str, Any] | None:
    """An mg amount expressed in the draft order's own dose unit (mg, or mg/m² with the current BSA), rounded down."""
    ordered = ctx.order.dose
    if ordered is None or mg <= 0:
        return None
    unit = ordered.unit.replace(" ", "").lower()
    if unit in ("mg/m2", "mg/m^2", "mg/m²"):
        bsa = current_bsa(ctx)
        return {"value": math.floor(mg / bsa.value), "unit": ordered.unit, "code": ordered.unit} if bsa else None
    if unit == MG:
        return {"value": math.floor(mg * 10) / 10, "unit": "mg", "code": "mg"}
    return None


# --- dose_absolute -------------------------------------------------------------------------------

@leaf_kind("dose_absolute", reads=_DOSE_READS)
def evaluate_dose_absolute(criterion: Criterion, ctx: EvalContext) -> Result:
    """params: `perDay` [{day, max}] in mg, day 1 = the episode's first dose; no dose is allowed after the last
    listed day. Administrations of the drug within that many days before the order belong to the episode.
    A per-dose cap: history is not needed (clauses.md §0.5.5)."""
    caps = {int(row["day"]): float(row["max"]) for row in criterion.params["perDay"]}
    last_day = max(caps)
    schedule = order_schedule(ctx)
    planned = []
    for dose in schedule.doses:
        mg = _mg(ctx, dose.quantity, dose.day)
        if mg is None:
            return Result.unknown("a dose in mg, or height and weight to convert mg/m² (BSA)")
        planned.append((dose.day, mg))
    first_planned = min(day for day, _ in planned)
    history = [(g.day, _mg(ctx, g.quantity, g.day)) for g in ctx.given_doses(ctx.policy.own_drug) or ()
               if first_planned - timedelta(days=last_day) < g.day < first_planned]
    history = [(day, mg) for day, mg in history if mg is not None]
    episode_start = min([first_planned, *(day for day, _ in history)])
    per_day: dict[int, float] = defaultdict(float)
    ordered_per_day: dict[int, int] = defaultdict(int)
    for day, mg in history:
        per_day[(day - episode_start).days + 1] += mg
    for day, mg in planned:
        n = (day - episode_start).days + 1
        per_day[n] += mg
        ordered_per_day[n] += 1
    said = [f"day {n} ({episode_start + timedelta(days=n - 1)}): {_fmt(mg)} mg (cap {_fmt(caps.get(n, 0))} mg)"
            for n, mg in sorted(per_day.items())]
    over = [(n, mg) for n, mg in sorted(per_day.items()) if mg > caps.get(n, 0) + 1e-9]
    if not over:
        return Result.met(*said, *([schedule.note] if schedule.note else []))
    late = [n for n, _ in over if n > last_day]
    n, mg = over[0]
    headroom = 0.0 if late else min(
        (caps[d] - (per_day[d] - _ordered_mg(planned, episode_start, d))) / ordered_per_day[d]
        for d in ordered_per_day)
    breach = {"cap": caps.get(n, 0), "unit": MG, "per": f"day {n} of the episode", "value": round(mg, 1),
              "suggestedDose": _in_order_unit(ctx, headroom) if not late else None}
    if late:
        said.append(f"doses on day {', '.join(map(str, late))}: nothing is allowed after day {last_day}")
    return Result.not_met(*said, breach=breach)


def _ordered_mg(planned: list[tuple[date, float]], start: date, day_no: int) -> float:
    return sum(mg for day, mg in planned if (day - start).days + 1 == day_no)


# --- dose_ratio ----------------------------------------------------------------------------------

def _partner_orders(ctx: EvalContext, partner) -> list[MedicationFact]:
    """The partner's draft orders and its active or on-hold orders (the doses to be given with this one)."""
    return [m for m in [*ctx.other_drafts(), *(ctx.record.medications or ())]
            if m.source in ("draft", "request") and is_prescribed_now(m) and partner.matches(m)]


def _basis(*quantities: Quantity | None) -> str:
    per_m2 = any(q is not None and q.unit.replace(" ", "").lower() in ("mg/m2", "mg/m^2", "mg/m²")
                 for q in quantities)
    return MG_PER_M2 if per_m2 else MG


@leaf_kind("dose_ratio", reads=_DOSE_READS + ("medicationRequests",))
def evaluate_dose_ratio(criterion: Criterion, ctx: EvalContext) -> Result:
    """params: `partner` (drug group), `max` (ratio). Every dose of the order is paired with the partner's doses
    on the same date (draft orders, active orders, administrations), both on one basis (mg/m², or mg);
    each pair must be ≤ max : 1 and no dose may go without a partner dose that day."""
    partner = ctx.drug(criterion.params["partner"])
    ratio_cap = float(criterion.params["max"])
    ours = order_schedule(ctx).doses
    theirs: dict[date, list[Quantity | None]] = defaultdict(list)
    seen = set()
    orders = _partner_orders(ctx, partner)
    if not orders:
        # Pairing needs the partner's order: it may be placed later or elsewhere (clauses.md I.A.5.a unknown).
        return Result.unknown(f"the {partner.display} order this one is given with")
    for order in orders:
        for dose in expand_order(order, ctx.order_date).doses:
            key = (dose.day, dose.quantity)
            if key not in seen:
                seen.add(key)
                theirs[dose.day].append(dose.quantity)
    for given in ctx.given_doses(partner) or ():
        key = (given.day, given.quantity)
        if key not in seen:
            seen.add(key)
            theirs[given.day].append(given.quantity)
    by_day: dict[date, list[Quantity | None]] = defaultdict(list)
    for dose in ours:
        by_day[dose.day].append(dose.quantity)
    said, unpaired, worst = [], [], None
    for day, quantities in sorted(by_day.items()):
        if day not in theirs:
            unpaired.append(day)
            continue
        if len(quantities) > len(theirs[day]):
            unpaired.append(day)
        basis = _basis(*quantities, *theirs[day])
        ours_sum = [amount(ctx, q, basis, day)[0] for q in quantities]
        their_sum = [amount(ctx, q, basis, day)[0] for q in theirs[day]]
        if None in ours_sum or None in their_sum:
            return Result.unknown("doses of both drugs on one basis (mg/m², or mg with height and weight)")
        mine, partner_dose = sum(ours_sum), sum(their_sum)
        ratio = mine / partner_dose if partner_dose else math.inf
        said.append(f"{day}: {_fmt(mine)} {basis} vs {partner.display} {_fmt(partner_dose)} {basis} "
                    f"= {ratio:.1f}:1 (cap {_fmt(ratio_cap)}:1)")
        if ratio > ratio_cap + 1e-9 and (worst is None or ratio > worst[0]):
            worst = (ratio, basis, partner_dose, day)
    said += [f"{day}: no {partner.display} dose that day" for day in unpaired]
    if worst is None and not unpaired:
        return Result.met(*said)
    breach = None
    if worst is not None:
        ratio, basis, partner_dose, _ = worst
        allowed = partner_dose * ratio_cap
        suggested = None
        if ctx.order.dose is not None and _basis(ctx.order.dose) == basis:
            suggested = {"value": math.floor(allowed * 10) / 10, "unit": ctx.order.dose.unit,
                         "code": ctx.order.dose.unit}
        elif basis == MG_PER_M2:
            bsa = current_bsa(ctx)
            suggested = _in_order_unit(ctx, allowed * bsa.value) if bsa else None
        breach = {"cap": ratio_cap, "unit": f"× the {partner.display} dose", "per": "dose",
                  "value": round(ratio, 1), "partner": partner.display, "suggestedDose": suggested}
    return Result.not_met(*said, breach=breach)


# --- schedule_limits (dose_per_interval, oral absolute form) -------------------------------------

@dataclass(frozen=True)
class _Dose:
    day: date
    mg: float
    ordered: bool


def _window_label(value: float, unit: str) -> str:
    return f"{value:g} {'months' if unit == 'mo' else 'weeks' if unit == 'wk' else 'days'}"


def evaluate_schedule_limits(criterion: Criterion, ctx: EvalContext) -> Result:
    """params: `unit` mg, `max` mg and `maxDoses` per `window`, `perDose` mg, `windows` [{value, unit, max?,
    maxDoses?}] further rolling windows. The order is bounded by its dispense quantity when its timing is not;
    history is administrations plus dispenses spread over their days' supply. Breach → not-met; no breach but no
    history → unknown (a window can only be proven within the cap with the history)."""
    p = criterion.params
    strength = unit_strength(ctx, ctx.order)
    order = with_dispense_count(ctx.order, strength)
    windows = [{"value": p["window"]["value"], "unit": p["window"]["unit"], "max": p.get("max"),
                "maxDoses": p.get("maxDoses")}, *p.get("windows", ())]
    until = max(step(ctx.order_date, w["value"], w["unit"]) for w in windows)
    schedule, planned, missing = ctx.cached(("oral_plan", until), lambda: _oral_plan(ctx, order, strength, until))
    if missing:
        return Result.unknown(missing)
    drug = criterion.params.get("drug", "self")
    history, notes = ctx.cached(("oral_history", drug), lambda: _oral_history(ctx, drug))
    history, notes = (None if history is None else list(history)), list(notes)
    doses = sorted((history or []) + planned, key=lambda d: d.day)
    evidence, breaches = [], []
    per_dose = p.get("perDose")
    if per_dose is not None:
        biggest = max(d.mg for d in planned)
        evidence.append(f"{_fmt(biggest)} mg per dose (cap {_fmt(per_dose)} mg)")
        if biggest > per_dose + 1e-9:
            breaches.append({"cap": per_dose, "unit": "mg", "per": "dose", "value": round(biggest, 2),
                             "suggestedDose": _dose_at(ctx, per_dose, strength)})
    for w in windows:
        evidence_w, breach = _check_window(w, doses, planned)
        evidence += evidence_w
        if breach:
            breaches.append(breach)
    supply = _supply_rate(ctx, order, strength, windows[0])
    if supply is not None:
        evidence.append(supply[0])
        if supply[1]:
            breaches.append(supply[1])
    evidence += notes + ([schedule.note] if schedule.note else [])
    if breaches:
        return Result.not_met(*evidence, breach=breaches[0])
    if history is None:
        return Result.unknown("dispense or administration history (to count the doses in each window)",
                              evidence=evidence)
    return Result.met(*evidence)


def _oral_plan(ctx: EvalContext, order: MedicationFact, strength: float | None,
               until: date) -> tuple[Schedule, list[_Dose], str | None]:
    """The order expanded to `until` (the end of its longest window) in mg per dose, or why a dose cannot be read
    in mg. Memoised per evaluation: each of a policy's schedule rows reads the same plan."""
    schedule = expand_order(order, ctx.order_date, until)
    planned = []
    for dose in schedule.doses:
        mg = _mg(ctx, dose.quantity, dose.day, strength)
        if mg is None:
            what = "the capsule strength (mg per capsule)" if is_unit_dose(dose.quantity) else "a dose in mg"
            return schedule, [], what
        planned.append(_Dose(dose.day, mg, True))
    return schedule, planned, None


def _oral_history(ctx: EvalContext, drug_name: str) -> tuple[list[_Dose] | None, list[str]]:
    """Past doses of the drug in mg: administrations, and dispenses spread over their days' supply (memoised per
    evaluation by the caller, so the lists it returns are copied before use)."""
    drug = ctx.drug(drug_name)
    given = ctx.given_doses(drug, before=ctx.order_date)
    dispensed, problems = dispensed_doses(ctx.record, drug, lambda m: unit_strength(ctx, m))
    if given is None and dispensed is None:
        return None, []
    out = []
    for g in given or ():
        mg = _mg(ctx, g.quantity, g.day, unit_strength(ctx, ctx.order))
        if mg is None:
            return None, [f"{g.ref}: dose given on {g.day} cannot be read in mg"]
        out.append(_Dose(g.day, mg, False))
    out += [_Dose(d.day, d.quantity.value, False) for d in dispensed or ()]
    notes = [f"{len(dispensed)} dose(s) from dispenses, spread over their days' supply"] if dispensed else []
    return out, notes + [f"not counted: {p}" for p in problems]


def _check_window(w: Mapping[str, Any], doses: list[_Dose], planned: list[_Dose]) -> tuple[list[str], dict | None]:
    label = _window_label(w["value"], w["unit"])
    worst_mg, worst_n, worst_day = 0.0, 0, planned[0].day
    days = [d.day for d in doses]  # `doses` is in day order: each window (start, day] is a slice
    for dose in planned:
        start = window_start(dose.day, w["value"], w["unit"])
        inside = doses[bisect_right(days, start):bisect_right(days, dose.day)]
        total, count = sum(d.mg for d in inside), len(inside)
        if (count, total) > (worst_n, worst_mg):
            worst_mg, worst_n, worst_day = total, count, dose.day
    said, breach = [], None
    if w.get("maxDoses") is not None:
        said.append(f"{worst_n} dose(s) in the {label} ending {worst_day} (at most {w['maxDoses']})")
        if worst_n > w["maxDoses"]:
            breach = {"cap": w["maxDoses"], "unit": "doses", "per": label, "value": worst_n, "suggestedDose": None}
    if w.get("max") is not None:
        said.append(f"{_fmt(worst_mg)} mg in the {label} ending {worst_day} (cap {_fmt(w['max'])} mg)")
        if worst_mg > w["max"] + 1e-9 and breach is None:
            breach = {"cap": w["max"], "unit": "mg", "per": label, "value": round(worst_mg, 2), "suggestedDose": None}
    return said, breach


def _supply_rate(ctx: EvalContext, order: MedicationFact, strength: float | None,
                 window: Mapping[str, Any]) -> tuple[str, dict | None] | None:
    """Dispense arithmetic: quantity × strength ÷ days' supply, scaled to the window, within its mg cap."""
    if order.quantity is None or not order.days_supply or window.get("max") is None:
        return None
    if not is_unit_dose(order.quantity) or not strength:
        return None
    days = (step(ctx.order_date, window["value"], window["unit"]) - ctx.order_date).days
    total = order.quantity.value * strength
    rate = total / order.days_supply * days
    label = _window_label(window["value"], window["unit"])
    said = (f"dispense {order.quantity.value:g} × {_fmt(strength)} mg over {order.days_supply:g} days = "
            f"{_fmt(rate)} mg per {label} (cap {_fmt(window['max'])} mg)")
    if rate > window["max"] + 1e-9:
        return said, {"cap": window["max"], "unit": "mg", "per": f"{label} of supply", "value": round(rate, 2),
                      "suggestedDose": None}
    return said, None


def _dose_at(ctx: EvalContext, cap_mg: float, strength: float | None) -> dict[str, Any] | None:
    """The per-dose cap in the order's unit: whole capsules of the ordered strength, or mg."""
    ordered = ctx.order.dose
    if ordered is None:
        return None
    if is_unit_dose(ordered):
        if not strength:
            return None
        return {"value": math.floor(cap_mg / strength), "unit": ordered.unit, "code": ordered.unit}
    return {"value": cap_mg, "unit": "mg", "code": "mg"}


# --- threshold (cumulative_dose, `min` form) -----------------------------------------------------

def evaluate_threshold(criterion: Criterion, ctx: EvalContext) -> Result:
    """params: `min`, `unit`, `drugs` {group: factor} (doxorubicin-equivalents; default {drug: 1}),
    `includeConcurrent` (add the doses of those drugs' draft and active orders: a planned total),
    `notMetFrom`: "records" (a shortfall is not-met once ≥ 1 dose is on record) or "answer" (only a documented
    plan below the threshold makes it not-met). A numeric answer for the clause is the documented total."""
    p = criterion.params
    unit, threshold = p.get("unit", MG_PER_M2), float(p["min"])
    factors = {name: float(f) for name, f in (p.get("drugs") or {p.get("drug", "self"): 1}).items()}
    answer = ctx.answer(criterion.id)
    if answer is not None and isinstance(answer.value, int | float) and not isinstance(answer.value, bool):
        said = f"documented total {_fmt(float(answer.value))} {unit} ({answer.source or 'documentation answer'})"
        return Result.met(said) if answer.value >= threshold - 1e-9 else Result.not_met(f"{said} < {_fmt(threshold)}")
    received, planned, parts, records = 0.0, 0.0, [], 0
    history_supplied = ctx.record.has("medicationAdministrations")
    for name, factor in factors.items():
        group = ctx.drug(name)
        for g in ctx.given_doses(group, before=ctx.order_date) or ():
            value, _ = amount(ctx, g.quantity, unit, g.day)
            if value is None:
                return Result.unknown(f"{g.ref}: {group.display} dose on {g.day} in {unit} (height and weight)")
            received += value * factor
            records += 1
        if p.get("includeConcurrent"):
            for order in _partner_orders(ctx, group):
                for dose in expand_order(order, ctx.order_date).doses:
                    value, _ = amount(ctx, dose.quantity, unit, dose.day)
                    if value is None:
                        return Result.unknown(f"{order.ref}: ordered {group.display} dose in {unit}")
                    planned += value * factor
                    records += 1
        if factor != 1:
            parts.append(f"{group.display} × {factor:g}")
    total = received + planned
    basis = f" (doxorubicin-equivalent: {', '.join(parts)})" if parts else ""
    said = f"received {_fmt(received)}" + (f" + ordered {_fmt(planned)}" if p.get("includeConcurrent") else "")
    said += f" = {_fmt(total)} {unit}{basis}"
    if total >= threshold - 1e-9:
        return Result.met(f"{said} ≥ {_fmt(threshold)} {unit}")
    rule = p.get("notMetFrom", "history")
    if rule == "records" and records and history_supplied:
        return Result.not_met(f"{said} < {_fmt(threshold)} {unit}")
    if rule == "history" and history_supplied:
        return Result.not_met(f"{said} < {_fmt(threshold)} {unit}")
    wanted = "planned cumulative dose" if p.get("includeConcurrent") else "cumulative dose received"
    return Result(Status.UNKNOWN, [f"{said} < {_fmt(threshold)} {unit} so far"] if records else [],
                  [f"{wanted} ({_fmt(threshold)} {unit} or more), with outside doses"])
