"""dose_per_interval, oral absolute form (ixazomib I.A.6.a): 4 mg per dose, 1 per 7 days, 3 doses / 12 mg per 28."""
from __future__ import annotations

from datetime import date, timedelta

from cds_service.evaluate.status import Status
from cds_service.record import Code, Dosage, MedicationFact, Quantity, Timing
from tests.kind_helpers import evaluate, record

IXA4 = Code("rxnorm", "1723770", "ixazomib 4 MG Oral Capsule")
CAP = {"unit": "mg", "max": 12, "window": {"value": 28, "unit": "d"}, "maxDoses": 3, "perDose": 4,
       "windows": [{"value": 7, "unit": "d", "maxDoses": 1}]}
D1 = date(2026, 11, 20)


def order(capsules: float = 1, frequency: int = 1, count: int | None = 3, quantity: float | None = None,
          supply: float | None = None, codes=(IXA4,)) -> MedicationFact:
    timing = Timing(frequency=frequency, period=1, period_unit="wk", count=count, bounds_start=D1)
    return MedicationFact("MedicationRequest/mr-1", "draft", "draft", tuple(codes), "", start=D1,
                          dose=Quantity(capsules, "{capsule}"), dosages=(Dosage(1, Quantity(capsules, "{capsule}"),
                                                                                timing),),
                          quantity=Quantity(quantity, "{capsule}") if quantity else None, days_supply=supply)


def dispense(handed: date, qty: float = 3, days: float = 28) -> MedicationFact:
    weekly = Timing(frequency=1, period=1, period_unit="wk")
    return MedicationFact(f"MedicationDispense/{handed}", "dispense", "completed", (IXA4,), "", start=handed,
                          dosages=(Dosage(None, Quantity(1, "{capsule}"), weekly),), quantity=Quantity(qty, ""),
                          days_supply=days)


def test_one_capsule_weekly_times_three_is_met():
    assert evaluate("ixazomib", "dose_per_interval", CAP, record([order()])).status is Status.MET


def test_two_capsules_is_over_4_mg_and_suggests_one_capsule():
    result = evaluate("ixazomib", "dose_per_interval", CAP, record([order(2)]))
    assert result.status is Status.NOT_MET
    assert result.breach["per"] == "dose" and result.breach["suggestedDose"]["value"] == 1


def test_twice_weekly_breaks_the_7_day_count():
    assert evaluate("ixazomib", "dose_per_interval", CAP, record([order(frequency=2, count=6)])).status \
        is Status.NOT_MET


def test_four_capsules_per_28_day_supply_breaches_12_mg():
    result = evaluate("ixazomib", "dose_per_interval", CAP, record([order(count=None, quantity=4, supply=28)]))
    assert result.status is Status.NOT_MET


def test_no_history_within_the_cap_is_unknown():
    rec = record([order()], history=None)
    assert evaluate("ixazomib", "dose_per_interval", CAP, rec).status is Status.UNKNOWN


def test_unknown_strength_is_unknown():
    rec = record([order(codes=(Code("rxnorm", "999"),))])
    assert evaluate("ixazomib", "dose_per_interval", CAP, rec).status is Status.UNKNOWN


def test_overlapping_dispense_counts_toward_the_window():
    # A supply handed over 6 days ago is still being taken: its doses plus the new cycle exceed 3 per 28 days.
    rec = record([order()], history=[dispense(D1 - timedelta(days=6))])
    assert evaluate("ixazomib", "dose_per_interval", CAP, rec).status is Status.NOT_MET
    rec = record([order()], history=[dispense(D1 - timedelta(days=28))])
    assert evaluate("ixazomib", "dose_per_interval", CAP, rec).status is Status.MET
