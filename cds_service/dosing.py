"""Dose arithmetic on facts (clauses.md §0.5): BSA, unit conversion, order schedules, dose history."""
from __future__ import annotations

import calendar
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import date, timedelta

from .record import MedicationFact, ObservationFact, PatientRecord, Quantity
from .terminology import DrugGroup

WEIGHT_LOINC = ("29463-7", "3141-9")
HEIGHT_LOINC = ("8302-2", "3137-7")
BSA_LOINC = ("8277-6", "3140-1")
_KG = {"kg": 1.0, "g": 0.001, "[lb_av]": 0.45359237, "lb": 0.45359237, "lbs": 0.45359237}
_CM = {"cm": 1.0, "m": 100.0, "mm": 0.1, "[in_i]": 2.54, "in": 2.54}
_MG = {"mg": 1.0, "g": 1000.0, "ug": 0.001, "mcg": 0.001, "[mg]": 1.0}
_PER_M2 = {"mg/m2", "mg/m^2", "mg/m²", "mg/{m2}", "mg/m.2"}
_UNIT_DOSE = {"{capsule}", "{caps}", "capsule", "capsules", "{tablet}", "{tbl}", "tablet", "tablets", "cap", "tab"}


@dataclass(frozen=True)
class Bsa:
    """Body surface area in m² and the observations it was computed from."""

    value: float
    evidence: str
    approximate: bool = False


@dataclass(frozen=True)
class PlannedDose:
    day: date
    quantity: Quantity | None
    sequence: int | None = None


@dataclass(frozen=True)
class Schedule:
    """The order's doses, expanded; `bounded` is False when more were projected than the order states."""

    doses: tuple[PlannedDose, ...]
    bounded: bool
    note: str = ""


@dataclass(frozen=True)
class GivenDose:
    day: date
    quantity: Quantity | None
    ref: str


def latest_observation(record: PatientRecord, loinc: Iterable[str], on_or_before: date,
                       max_age_days: int | None = None) -> ObservationFact | None:
    """The newest observation with one of the LOINC codes, dated on or before a day, within a window."""
    wanted = set(loinc)
    best = None
    for obs in record.observations or ():
        if obs.effective is None or obs.effective > on_or_before or obs.value is None:
            continue
        if max_age_days is not None and (on_or_before - obs.effective).days > max_age_days:
            continue
        coded = any(c.system == "loinc" and c.code in wanted for c in obs.codes)
        if coded and (best is None or obs.effective > best.effective):
            best = obs
    return best


def _convert(q: Quantity, table: dict[str, float]) -> float | None:
    factor = table.get(q.unit) or table.get(q.unit.lower())
    return q.value * factor if factor else None


def weight_kg(record: PatientRecord, when: date) -> tuple[float, ObservationFact] | None:
    obs = latest_observation(record, WEIGHT_LOINC, when, 30)
    value = _convert(obs.value, _KG) if obs else None
    return (value, obs) if value else None


def bsa_on(record: PatientRecord, when: date, adult: bool | None) -> Bsa | None:
    """Mosteller BSA on a day: weight ≤ 30 days old, height any age for adults (≤ 90 days for children).

    Mosteller (sqrt(cm × kg / 3600)) because one fixed formula makes results reproducible; it is
    what most oncology order sets use, and DuBois differs by about 3% in adults.
    """
    weight = weight_kg(record, when)
    height_obs = latest_observation(record, HEIGHT_LOINC, when, None if adult is not False else 90)
    height = _convert(height_obs.value, _CM) if height_obs else None
    if weight and height:
        value = round(math.sqrt(height * weight[0] / 3600.0), 2)
        return Bsa(value, f"BSA {value} m2 (Mosteller: height {height:g} cm on {height_obs.effective}, "
                          f"weight {weight[0]:g} kg on {weight[1].effective})")
    recorded = latest_observation(record, BSA_LOINC, when, 30)
    if recorded and recorded.value.unit in ("m2", "m^2", "m²"):
        return Bsa(round(recorded.value.value, 2), f"BSA {recorded.value.value:g} m2 recorded on {recorded.effective}")
    return None


def intensity_mg_per_m2(q: Quantity | None, bsa: Bsa | None) -> float | None:
    """A dose as mg/m²: as given when ordered in mg/m², else mg divided by the BSA."""
    if q is None:
        return None
    if q.unit.lower() in _PER_M2 or q.unit.replace(" ", "").lower() in _PER_M2:
        return q.value
    mg = _convert(q, _MG)
    if mg is None or bsa is None:
        return None
    return mg / bsa.value


def absolute_mg(q: Quantity | None, bsa: Bsa | None, weight: float | None = None,
                strength_mg: float | None = None) -> float | None:
    """A dose in mg: mg/m² times BSA, mg/kg times weight, unit doses times strength."""
    if q is None:
        return None
    unit = q.unit.replace(" ", "").lower()
    if unit in _PER_M2:
        return q.value * bsa.value if bsa else None
    if unit == "mg/kg":
        return q.value * weight if weight else None
    if unit in _UNIT_DOSE or unit in ("1", ""):
        return q.value * strength_mg if strength_mg else None
    return _convert(q, _MG)


def _add_months(day: date, months: int) -> date:
    month = day.month - 1 + months
    year = day.year + month // 12
    month = month % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def step(day: date, amount: float, unit: str) -> date:
    """The day `amount` periods after `day`; months are calendar months (clauses.md §0.5.3)."""
    if unit == "mo":
        return _add_months(day, int(round(amount)))
    if unit == "a":
        return _add_months(day, int(round(amount * 12)))
    days = {"d": 1, "wk": 7, "h": 1 / 24, "min": 1 / 1440, "s": 1 / 86400}.get(unit)
    return day + timedelta(days=amount * days) if days else day


def window_start(day: date, window_value: float, window_unit: str) -> date:
    """The exclusive start of the rolling window (t − W, t]."""
    if window_unit == "mo":
        return _add_months(day, -int(window_value))
    return day - timedelta(days=window_value * (7 if window_unit == "wk" else 1))


def expand_order(order: MedicationFact, start_default: date, fill_until: date | None = None) -> Schedule:
    """Expand the order's dosage instructions into dated doses (clauses.md §0.5.3-4).

    An order with no count or bounds is projected up to `fill_until` (one window of an interval cap),
    or to one dose when no such day is given (cumulative caps).
    """
    doses: list[PlannedDose] = []
    bounded = True
    for dosage in order.dosages or ():
        timing = dosage.timing
        if timing is not None and timing.events:
            doses += [PlannedDose(d, dosage.dose, dosage.sequence) for d in timing.events]
            continue
        start = (timing.bounds_start if timing else None) or order.authored_on or start_default
        if timing is None or not timing.period or not timing.period_unit:
            doses.append(PlannedDose(start, dosage.dose, dosage.sequence))
            continue
        per_period = (timing.frequency or 1) * max(1, timing.day_of_week) * max(1, timing.time_of_day)
        count = timing.count
        end = timing.bounds_end
        if end is None and timing.bounds_duration_days:
            end = start + timedelta(days=timing.bounds_duration_days)
        if count is None and end is None:
            bounded = False
        limit = count if count is not None else 10_000
        day, n = start, 0
        while n < limit:
            if end is not None and day > end:
                break
            if count is None and end is None and (fill_until is None or day > fill_until) and n > 0:
                break
            for _ in range(per_period):
                if n >= limit:
                    break
                doses.append(PlannedDose(day, dosage.dose, dosage.sequence))
                n += 1
            day = step(day, timing.period, timing.period_unit)
    if not order.dosages:
        doses.append(PlannedDose(order.start or order.authored_on or start_default, None))
    note = "" if bounded else f"{len(doses)} dose(s) projected (the order states no count or end)"
    return Schedule(tuple(sorted(doses, key=lambda d: d.day)), bounded, note)


def given_doses(record: PatientRecord, drug: DrugGroup, before: date | None = None) -> list[GivenDose] | None:
    """Administrations of a drug on record (deduplicated by day and amount); None when not supplied."""
    if not record.has("medicationAdministrations"):
        return None
    seen, out = set(), []
    for med in record.medications or ():
        if med.source != "administration" or med.start is None or not drug.matches(med):
            continue
        if before is not None and med.start >= before:
            continue
        key = (med.start, med.dose.value if med.dose else None, med.dose.unit if med.dose else None)
        if key in seen:
            continue
        seen.add(key)
        out.append(GivenDose(med.start, med.dose, med.ref))
    return sorted(out, key=lambda g: g.day)


_STRENGTH_TEXT = re.compile(r"(\d+(?:\.\d+)?)\s*MG\b(?!\s*/)[^/]*\b(capsule|tablet)", re.I)


def strength_in_text(*texts: str) -> float | None:
    """mg per capsule or tablet read from an RxNorm SCD/SBD name ('ixazomib 4 MG Oral Capsule')."""
    for text in texts:
        m = _STRENGTH_TEXT.search(text or "")
        if m:
            return float(m.group(1))
    return None


def is_unit_dose(q: Quantity | None) -> bool:
    """True for a quantity counted in capsules or tablets (or unitless), not in mass."""
    return q is not None and q.unit.replace(" ", "").lower() in (_UNIT_DOSE | {"1", ""})


def with_dispense_count(order: MedicationFact, strength_mg: float | None) -> MedicationFact:
    """An oral order whose timing states no count or bounds, bounded by its dispense quantity (clauses.md §0.5.3):
    quantity ÷ units per dose × (1 + repeats). Unchanged when the quantity cannot be read."""
    if order.quantity is None or not order.dosages:
        return order
    dosages = []
    for dosage in order.dosages:
        t = dosage.timing
        if t is None or t.events or t.count is not None or t.bounds_end or t.bounds_duration_days:
            dosages.append(dosage)
            continue
        units_per_dose = _units_per_dose(dosage.dose, strength_mg)
        units = order.quantity.value if is_unit_dose(order.quantity) else (
            (_convert(order.quantity, _MG) or 0) / strength_mg if strength_mg else None)
        if not units_per_dose or not units:
            dosages.append(dosage)
            continue
        count = int(units // units_per_dose) * (1 + order.repeats)
        dosages.append(replace(dosage, timing=replace(t, count=max(count, 1))))
    return replace(order, dosages=tuple(dosages))


def _units_per_dose(dose: Quantity | None, strength_mg: float | None) -> float | None:
    if dose is None:
        return None
    if is_unit_dose(dose):
        return dose.value
    mg = _convert(dose, _MG)
    return mg / strength_mg if mg and strength_mg else None


def dispensed_doses(record: PatientRecord, drug: DrugGroup, strength_of: Callable[[MedicationFact], float | None],
                    ) -> tuple[list[GivenDose] | None, list[str]]:
    """Oral doses on record from MedicationDispense, spread evenly over each dispense's days' supply
    (clauses.md §0.5.5), or on the dispense's own once-per-period schedule when it states one (an even spread
    of a weekly × 3 supply would move doses into the next cycle's window); (None, why) when dispenses were
    not supplied or one cannot be spread."""
    if not record.has("medicationDispenses"):
        return None, ["dispense history not supplied"]
    out, problems = [], []
    for med in record.medications or ():
        if med.source != "dispense" or med.start is None or not drug.matches(med):
            continue
        strength = med.strength_mg or strength_of(med)
        dose = med.dosages[0].dose if med.dosages else None
        units_per_dose = _units_per_dose(dose, strength) or 1.0
        if med.quantity is None or not is_unit_dose(med.quantity) or not strength or not med.days_supply:
            problems.append(f"{med.ref}: quantity, strength or days' supply cannot be read")
            continue
        count = max(1, int(med.quantity.value // units_per_dose))
        timing = med.dosages[0].timing if med.dosages else None
        for i in range(count):
            if timing is not None and timing.period and timing.period_unit and (timing.frequency or 1) == 1:
                day = step(med.start, i * timing.period, timing.period_unit)  # the dispense's own schedule
            else:
                day = med.start + timedelta(days=math.floor(i * med.days_supply / count))
            out.append(GivenDose(day, Quantity(units_per_dose * strength, "mg"), med.ref))
    if problems:
        return None, problems
    return sorted(out, key=lambda g: g.day), []
