"""dose_absolute: mg per calendar day of an episode (dexrazoxane I.B.4: 2,000 / 2,000 / 1,000 mg, nothing after)."""
from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

from cds_service.evaluate.status import Status
from cds_service.record import Dosage, Quantity, Timing
from tests.kind_helpers import evaluate, med, record, vitals

DZR = [("hcpcs", "J1190")]
CAPS = {"unit": "mg", "perDay": [{"day": 1, "max": 2000}, {"day": 2, "max": 2000}, {"day": 3, "max": 1000}]}
D1 = date(2026, 11, 20)


def order(*mg_per_day: float, unit: str = "mg"):
    base = med("MedicationRequest/mr-1", "draft", DZR, (mg_per_day[0], unit), events=[D1])
    dosages = tuple(Dosage(i + 1, Quantity(v, unit), Timing(events=(D1 + timedelta(days=i),)))
                    for i, v in enumerate(mg_per_day))
    return replace(base, dosages=dosages)


def test_within_each_day_cap_is_met():
    result = evaluate("dexrazoxane", "dose_absolute", CAPS, record([order(2000, 2000, 1000)]))
    assert result.status is Status.MET


def test_day_3_over_1000_is_not_met_and_suggests_the_smallest_headroom():
    result = evaluate("dexrazoxane", "dose_absolute", CAPS, record([order(1000, 1000, 1500)]))
    assert result.status is Status.NOT_MET
    assert result.breach["per"] == "day 3 of the episode"
    assert result.breach["suggestedDose"]["value"] == 1000


def test_a_dose_on_day_4_is_not_met_whatever_its_size():
    result = evaluate("dexrazoxane", "dose_absolute", CAPS, record([order(1000, 1000, 500, 10)]))
    assert result.status is Status.NOT_MET
    assert result.breach["suggestedDose"] is None


def test_episode_counts_from_an_earlier_administration():
    # Given yesterday: the ordered doses are days 2-4 of the episode, so the third one is on day 4.
    given = med("MedicationAdministration/a", "administration", DZR, (1000, "mg"), start=D1 - timedelta(days=1),
                status="completed")
    result = evaluate("dexrazoxane", "dose_absolute", CAPS, record([order(1000, 500, 500)], [given]))
    assert result.status is Status.NOT_MET


def test_mg_per_m2_without_height_and_weight_is_unknown():
    result = evaluate("dexrazoxane", "dose_absolute", CAPS, record([order(1000, unit="mg/m2")]))
    assert result.status is Status.UNKNOWN


def test_mg_per_m2_is_converted_with_the_bsa():
    # 1,200 mg/m² × 1.82 m² = 2,184 mg > 2,000 mg on day 1.
    rec = record([order(1200, unit="mg/m2")], observations=vitals(D1))
    assert evaluate("dexrazoxane", "dose_absolute", CAPS, rec).status is Status.NOT_MET
