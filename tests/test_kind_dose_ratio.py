"""dose_ratio: dexrazoxane ≤ 10 × the doxorubicin dose given the same day (I.A.5.a / II.A.4.a)."""
from __future__ import annotations

from datetime import date, timedelta

from cds_service.evaluate.status import Status
from tests.kind_helpers import evaluate, med, record, vitals

DZR = [("hcpcs", "J1190")]
DOX = [("rxnorm", "3639")]
RATIO = {"partner": "doxorubicin", "max": 10}
D1 = date(2026, 11, 20)


def dzr(value: float, unit: str = "mg/m2", days: tuple[date, ...] = (D1,)):
    return med("MedicationRequest/mr-1", "draft", DZR, (value, unit), events=list(days))


def dox(value: float = 50, unit: str = "mg/m2", day: date = D1):
    return med("MedicationRequest/mr-dox", "draft", DOX, (value, unit), events=[day])


def test_exactly_ten_to_one_is_met():
    assert evaluate("dexrazoxane", "dose_ratio", RATIO, record([dzr(500), dox(50)])).status is Status.MET


def test_above_ten_to_one_is_not_met_with_the_allowed_dose():
    result = evaluate("dexrazoxane", "dose_ratio", RATIO, record([dzr(510), dox(50)]))
    assert result.status is Status.NOT_MET
    assert result.breach["suggestedDose"]["value"] == 500


def test_no_doxorubicin_order_is_unknown():
    assert evaluate("dexrazoxane", "dose_ratio", RATIO, record([dzr(500)])).status is Status.UNKNOWN


def test_a_dose_on_a_day_without_doxorubicin_is_not_met():
    result = evaluate("dexrazoxane", "dose_ratio", RATIO,
                      record([dzr(500, days=(D1, D1 + timedelta(days=1))), dox(50)]))
    assert result.status is Status.NOT_MET


def test_mixed_units_use_one_bsa_and_unknown_without_it():
    # 910 mg at 1.82 m² is 500 mg/m²: 10:1 against 50 mg/m².
    assert evaluate("dexrazoxane", "dose_ratio", RATIO,
                    record([dzr(910, "mg"), dox(50)], observations=vitals(D1))).status is Status.MET
    assert evaluate("dexrazoxane", "dose_ratio", RATIO, record([dzr(910, "mg"), dox(50)])).status is Status.UNKNOWN


def test_ratio_is_not_read_as_the_sum_over_the_order():
    # Two 500 mg/m² days each paired with 50 mg/m²: each pair is 10:1; a rule summing the order (1,000 vs 50) fails.
    rec = record([dzr(500, days=(D1, D1 + timedelta(days=21))), dox(50),
                  med("MedicationRequest/mr-dox2", "draft", DOX, (50, "mg/m2"), events=[D1 + timedelta(days=21)])])
    assert evaluate("dexrazoxane", "dose_ratio", RATIO, rec).status is Status.MET
