"""bsa_cap: the dose may be computed on at most `maxBsa` m² (ixabepilone 40 mg/m² on ≤ 2.2 m², so ≤ 88 mg)."""
from __future__ import annotations

from cds_service.evaluate import Status
from tests.builders import concept, med_request, med_statement, timing, vitals
from tests.kind_context import context, run

IXA = concept("rxnorm", "1726271", "ixabepilone 45 MG Injection")
CAP = {"maxBsa": 2.2, "max": 40, "raisedBy": {"any": ["strong_cyp3a4_inducer"], "max": 60}}
LARGE = vitals("2026-11-15", 190, 118)  # Mosteller 2.50 m²
SMALL = vitals("2026-11-15", 170, 70)  # 1.82 m²


def order(dose: float, unit: str = "mg") -> dict:
    return med_request("mr-1", IXA, (dose, unit), timing(21, "d", count=1, start="2026-11-20"))


def test_mg_order_above_the_capped_bsa_is_not_met_with_the_88_mg_suggestion():
    result = run("bsa_cap", CAP, context("ixabepilone", order(100), observations=LARGE))
    assert result.status is Status.NOT_MET
    assert result.breach["suggestedDose"]["value"] == 88.0


def test_mg_order_within_88_mg_is_met_for_a_large_patient():
    assert run("bsa_cap", CAP, context("ixabepilone", order(88), observations=LARGE)).status is Status.MET


def test_the_cap_does_not_bind_at_or_below_2_2_m2():
    # 80 mg at 1.82 m² is 44 mg/m²: a breach of the 40 mg/m² dose (another row), not of the BSA cap.
    assert run("bsa_cap", CAP, context("ixabepilone", order(80), observations=SMALL)).status is Status.MET


def test_mg_per_m2_order_is_met_and_states_the_mg_on_2_2_m2():
    result = run("bsa_cap", CAP, context("ixabepilone", order(40, "mg/m2"), observations=LARGE))
    assert result.status is Status.MET
    assert any("88.0 mg" in e for e in result.evidence)


def test_unknown_bsa_decides_only_when_no_bsa_could_allow_the_dose():
    assert run("bsa_cap", CAP, context("ixabepilone", order(80))).status is Status.MET
    assert run("bsa_cap", CAP, context("ixabepilone", order(100))).status is Status.NOT_MET
    assert run("bsa_cap", CAP, context("ixabepilone", order(40, "mg/m2"))).status is Status.UNKNOWN


def test_a_strong_inducer_raises_the_ceiling_to_60_mg_m2():
    rifampin = [med_statement("s-rif", concept("rxnorm", "9384", "rifampin"), "active", "2026-10-01")]
    ctx = context("ixabepilone", order(130), observations=LARGE, medicationStatements=rifampin)
    assert run("bsa_cap", CAP, ctx).status is Status.MET  # 130 ≤ 60 × 2.2 = 132


def test_unreadable_medications_leave_a_dose_the_inducer_would_allow_unknown():
    # No medication data: a strong inducer (ceiling 132 mg) cannot be ruled out, so 110 mg asks rather than denies;
    # 140 mg is above even the raised ceiling and stays not met.
    no_meds = {k: None for k in ("medicationRequests", "medicationStatements", "medicationAdministrations",
                                 "medicationDispenses")}
    assert run("bsa_cap", CAP, context("ixabepilone", order(110), observations=LARGE, **no_meds)).status \
        is Status.UNKNOWN
    assert run("bsa_cap", CAP, context("ixabepilone", order(140), observations=LARGE, **no_meds)).status \
        is Status.NOT_MET
    assert run("bsa_cap", CAP, context("ixabepilone", order(110), observations=LARGE)).status is Status.NOT_MET
