"""Dose arithmetic (clauses.md §0.5): Mosteller BSA, unit conversion, schedule expansion, windows, history."""
from __future__ import annotations

from datetime import date

import pytest

from cds_service.dosing import (
    absolute_mg,
    bsa_on,
    expand_order,
    given_doses,
    intensity_mg_per_m2,
    step,
    window_start,
)
from cds_service.record import Code, Dosage, MedicationFact, ObservationFact, PatientRecord, Quantity, Timing
from cds_service.terminology import DrugGroup

MITO = DrugGroup.compile("self", {"display": "mitoxantrone", "names": ["mitoxantrone"],
                                  "codes": [{"system": "rxnorm", "code": "197989"}]})
MITO_CODE = (Code("rxnorm", "197989"),)
DAY = date(2026, 11, 20)


def vital(loinc: str, when: date, value: float, unit: str) -> ObservationFact:
    return ObservationFact(f"Observation/{loinc}-{when}", (Code("loinc", loinc),), when, Quantity(value, unit))


def record(*observations: ObservationFact, medications=(), supplied=("observations",)) -> PatientRecord:
    return PatientRecord("Patient/p", DAY, observations=tuple(observations), medications=tuple(medications),
                         supplied=frozenset(supplied))


def draft(*dosages: Dosage, authored: date | None = DAY) -> MedicationFact:
    return MedicationFact("MedicationRequest/mr-1", "draft", "draft", MITO_CODE, "mitoxantrone", dosages=dosages,
                          authored_on=authored)


def dosage(timing: Timing | None, dose: float = 12.0) -> Dosage:
    return Dosage(1, Quantity(dose, "mg/m2"), timing)


# --- BSA ------------------------------------------------------------------------------------------------------

def test_mosteller_bsa_from_height_and_weight():
    bsa = bsa_on(record(vital("8302-2", DAY, 170, "cm"), vital("29463-7", DAY, 70, "kg")), DAY, adult=True)
    assert bsa.value == 1.82  # sqrt(170 * 70 / 3600) = 1.8181
    assert "Mosteller" in bsa.evidence


def test_pounds_and_inches_are_converted():
    bsa = bsa_on(record(vital("8302-2", DAY, 66.93, "[in_i]"), vital("29463-7", DAY, 154.32, "[lb_av]")), DAY, True)
    assert bsa.value == 1.82


def test_metres_and_grams_are_converted():
    bsa = bsa_on(record(vital("8302-2", DAY, 1.7, "m"), vital("29463-7", DAY, 70000, "g")), DAY, True)
    assert bsa.value == 1.82


def test_weight_older_than_30_days_gives_no_bsa():
    old = date(2026, 10, 20)  # 31 days before
    assert bsa_on(record(vital("8302-2", DAY, 170, "cm"), vital("29463-7", old, 70, "kg")), DAY, True) is None


def test_latest_weight_within_30_days_wins():
    bsa = bsa_on(record(vital("8302-2", DAY, 170, "cm"), vital("29463-7", date(2026, 11, 1), 100, "kg"),
                        vital("29463-7", date(2026, 11, 15), 70, "kg")), DAY, True)
    assert bsa.value == 1.82


def test_an_adult_height_of_any_age_counts_but_a_child_needs_one_within_90_days():
    height = vital("8302-2", date(2025, 1, 1), 140, "cm")
    weight = vital("29463-7", DAY, 35, "kg")
    assert bsa_on(record(height, weight), DAY, adult=True).value == 1.17
    assert bsa_on(record(height, weight), DAY, adult=False) is None


def test_a_recorded_bsa_is_the_fallback():
    bsa = bsa_on(record(vital("8277-6", date(2026, 11, 10), 1.9, "m2")), DAY, True)
    assert bsa.value == 1.9


def test_an_unknown_weight_unit_gives_no_bsa():
    assert bsa_on(record(vital("8302-2", DAY, 170, "cm"), vital("29463-7", DAY, 70, "stone")), DAY, True) is None


# --- one dose ---------------------------------------------------------------------------------------------------

def test_intensity_as_ordered_or_divided_by_bsa():
    bsa = bsa_on(record(vital("8302-2", DAY, 170, "cm"), vital("29463-7", DAY, 70, "kg")), DAY, True)
    assert intensity_mg_per_m2(Quantity(12, "mg/m2"), None) == 12
    assert intensity_mg_per_m2(Quantity(12, "mg/m²"), None) == 12
    assert intensity_mg_per_m2(Quantity(21.84, "mg"), bsa) == pytest.approx(12.0)
    assert intensity_mg_per_m2(Quantity(0.02184, "g"), bsa) == pytest.approx(12.0)
    assert intensity_mg_per_m2(Quantity(21.84, "mg"), None) is None
    assert intensity_mg_per_m2(Quantity(2, "mL"), bsa) is None


def test_absolute_mg_from_intensity_weight_or_strength():
    bsa = bsa_on(record(vital("8302-2", DAY, 170, "cm"), vital("29463-7", DAY, 70, "kg")), DAY, True)
    assert absolute_mg(Quantity(10, "mg/m2"), bsa) == pytest.approx(18.2)
    assert absolute_mg(Quantity(2, "mg/kg"), None, weight=70) == 140
    assert absolute_mg(Quantity(3, "{capsule}"), None, strength_mg=4) == 12
    assert absolute_mg(Quantity(500, "ug"), None) == 0.5


# --- schedules --------------------------------------------------------------------------------------------------

def test_calendar_months_keep_the_day_or_take_the_month_end():
    assert step(date(2026, 1, 31), 1, "mo") == date(2026, 2, 28)
    assert step(date(2026, 11, 20), 3, "mo") == date(2027, 2, 20)
    assert step(date(2026, 11, 20), 3, "wk") == date(2026, 12, 11)
    assert step(date(2026, 11, 20), 21, "d") == date(2026, 12, 11)


def test_a_three_month_window_starts_three_calendar_months_before_and_excludes_that_day():
    assert window_start(date(2026, 11, 20), 3, "mo") == date(2026, 8, 20)
    assert window_start(date(2026, 5, 31), 3, "mo") == date(2026, 2, 28)
    assert window_start(date(2026, 11, 20), 21, "d") == date(2026, 10, 30)


def test_count_bounds_the_doses():
    schedule = expand_order(draft(dosage(Timing(frequency=1, period=3, period_unit="mo", count=3))), DAY)
    assert [d.day for d in schedule.doses] == [date(2026, 11, 20), date(2027, 2, 20), date(2027, 5, 20)]
    assert schedule.bounded


def test_frequency_and_days_of_week_multiply_doses_per_period():
    schedule = expand_order(draft(dosage(Timing(frequency=2, period=1, period_unit="d", count=4))), DAY)
    assert [d.day for d in schedule.doses] == [DAY, DAY, date(2026, 11, 21), date(2026, 11, 21)]
    weekly = expand_order(draft(dosage(Timing(frequency=1, period=1, period_unit="wk", count=4, day_of_week=2))), DAY)
    assert len(weekly.doses) == 4


def test_events_override_the_repeat():
    events = (date(2026, 11, 20), date(2026, 12, 10))
    schedule = expand_order(draft(dosage(Timing(events=events, period=21, period_unit="d", count=5))), DAY)
    assert [d.day for d in schedule.doses] == list(events)


def test_bounds_period_end_and_bounds_duration_stop_the_schedule():
    ended = Timing(frequency=1, period=21, period_unit="d", bounds_start=DAY, bounds_end=date(2026, 12, 31))
    assert [d.day for d in expand_order(draft(dosage(ended)), DAY).doses] == [DAY, date(2026, 12, 11)]
    lasting = Timing(frequency=1, period=1, period_unit="d", bounds_start=DAY, bounds_duration_days=2)
    assert len(expand_order(draft(dosage(lasting)), DAY).doses) == 3


def test_an_unbounded_order_projects_one_window_or_one_dose():
    forever = Timing(frequency=1, period=1, period_unit="mo", bounds_start=DAY)
    one_window = expand_order(draft(dosage(forever)), DAY, fill_until=step(DAY, 3, "mo"))
    assert [d.day for d in one_window.doses] == [DAY, date(2026, 12, 20), date(2027, 1, 20), date(2027, 2, 20)]
    assert not one_window.bounded and "projected" in one_window.note
    assert len(expand_order(draft(dosage(forever)), DAY).doses) == 1


def test_no_timing_is_one_dose_on_the_start_date():
    assert [d.day for d in expand_order(draft(dosage(None)), DAY).doses] == [DAY]
    assert [d.day for d in expand_order(draft(dosage(None), authored=None), date(2026, 12, 1)).doses] == [
        date(2026, 12, 1)]


def test_several_dosage_instructions_expand_separately():
    day1 = Dosage(1, Quantity(0.8, "mg/m2"), Timing(events=(DAY,)))
    later = Dosage(2, Quantity(0.5, "mg/m2"), Timing(events=(date(2026, 11, 27), date(2026, 12, 4))))
    schedule = expand_order(draft(day1, later), DAY)
    assert [(d.day, d.quantity.value) for d in schedule.doses] == [
        (DAY, 0.8), (date(2026, 11, 27), 0.5), (date(2026, 12, 4), 0.5)]


# --- history ----------------------------------------------------------------------------------------------------

def given(day: date, mg: float, ref: str, codes=MITO_CODE) -> MedicationFact:
    return MedicationFact(ref, "administration", "completed", codes, "", start=day, end=day, dose=Quantity(mg, "mg"))


def test_history_is_none_when_administrations_were_not_supplied():
    assert given_doses(record(), MITO) is None


def test_history_deduplicates_the_same_dose_and_keeps_only_the_drug_before_the_order():
    meds = [given(date(2026, 5, 1), 20, "MedicationAdministration/a"),
            given(date(2026, 5, 1), 20, "MedicationAdministration/a-copy"),
            given(date(2026, 8, 1), 20, "MedicationAdministration/b"),
            given(date(2026, 8, 1), 5, "MedicationAdministration/other", codes=(Code("rxnorm", "3041"),)),
            given(DAY, 20, "MedicationAdministration/today")]
    history = given_doses(record(medications=meds, supplied=("medicationAdministrations",)), MITO, before=DAY)
    assert [(g.day, g.ref) for g in history] == [(date(2026, 5, 1), "MedicationAdministration/a"),
                                                 (date(2026, 8, 1), "MedicationAdministration/b")]
