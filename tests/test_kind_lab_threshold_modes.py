"""lab_threshold modes `panel` (absolute limits across count units, multiples of ULN) and `biomarker`."""
from __future__ import annotations

from cds_service.evaluate import Status
from tests.builders import concept, med_request, observation
from tests.kind_context import context, run

IXA = med_request("mr-1", concept("rxnorm", "1726271", "ixabepilone 45 MG Injection"), (40, "mg/m2"),
                  authored="2026-11-20")
COUNTS = {"mode": "panel", "maxAgeDays": 14, "any": [
    {"valueSet": "anc", "op": "<", "value": 1500, "unit": "/mm3"},
    {"valueSet": "platelets", "op": "<", "value": 100000, "unit": "/mm3"}]}
LFT_HIGH = {"mode": "panel", "maxAgeDays": 14, "any": [
    {"valueSet": "ast", "op": ">", "uln": 2.5}, {"valueSet": "alt", "op": ">", "uln": 2.5},
    {"valueSet": "bilirubin", "op": ">", "uln": 1}]}
POS, NEG = ("snomed", "10828004", "Positive"), ("snomed", "260385009", "Negative")


def lab(code: str, value: float, unit: str, high: float | None = None, when: str = "2026-11-16") -> dict:
    return observation(f"o-{code}", "loinc", code, when, value, unit, high=high)


def ctx(*obs: dict):
    return context("ixabepilone", IXA, observations=list(obs))


def test_counts_in_any_unit_are_compared_per_microlitre():
    assert run("lab_threshold", COUNTS, ctx(lab("751-8", 1.2, "10*3/uL"), lab("777-3", 150, "10*9/L"))).status \
        is Status.MET
    # 1.5 × 10*9/L is exactly 1,500/mm³: not below. A unit-blind comparison (1.5 < 1500) would call it met.
    assert run("lab_threshold", COUNTS, ctx(lab("751-8", 1.5, "10*9/L"), lab("777-3", 100, "10*3/uL"))).status \
        is Status.NOT_MET


def test_one_count_missing_and_the_other_normal_is_unknown():
    assert run("lab_threshold", COUNTS, ctx(lab("751-8", 2.0, "10*3/uL"))).status is Status.UNKNOWN
    assert run("lab_threshold", COUNTS, ctx(lab("751-8", 1.0, "10*3/uL"))).status is Status.MET


def test_stale_counts_do_not_count():
    assert run("lab_threshold", COUNTS, ctx(lab("751-8", 1.0, "10*3/uL", when="2026-10-01"),
                                            lab("777-3", 50, "10*3/uL", when="2026-10-01"))).status is Status.UNKNOWN


def test_multiples_of_the_upper_limit_of_normal():
    normal = [lab("1920-8", 30, "U/L", 40), lab("1742-6", 25, "U/L", 40), lab("1975-2", 0.6, "mg/dL", 1.2)]
    assert run("lab_threshold", LFT_HIGH, ctx(*normal)).status is Status.NOT_MET
    # 100 U/L is 2.5 × ULN exactly: not above.
    assert run("lab_threshold", LFT_HIGH, ctx(lab("1920-8", 100, "U/L", 40), *normal[1:])).status is Status.NOT_MET
    assert run("lab_threshold", LFT_HIGH, ctx(lab("1920-8", 101, "U/L", 40), *normal[1:])).status is Status.MET


def test_no_reference_range_leaves_a_ratio_unknown():
    labs = [lab("1920-8", 30, "U/L"), lab("1742-6", 25, "U/L", 40), lab("1975-2", 0.6, "mg/dL", 1.2)]
    assert run("lab_threshold", LFT_HIGH, ctx(*labs)).status is Status.UNKNOWN


def test_any_and_all_together_describe_a_tier():
    tier = {"mode": "panel", "any": [{"valueSet": "bilirubin", "op": ">", "uln": 1.5}],
            "all": [{"valueSet": "bilirubin", "op": "<=", "uln": 3}]}
    assert run("lab_threshold", tier, ctx(lab("1975-2", 2.4, "mg/dL", 1.2))).status is Status.MET
    assert run("lab_threshold", tier, ctx(lab("1975-2", 4.0, "mg/dL", 1.2))).status is Status.NOT_MET


HER2 = {"mode": "biomarker", "expect": "positive", "markers": [
    {"valueSet": "her2", "ordinal": {"3+": True, "2+": None, "1+": False, "0": False}, "reflex": "her2_ish"}]}
HR_NEGATIVE = {"mode": "biomarker", "expect": "negative", "combine": "all", "markers": [
    {"valueSet": "er", "positiveAtLeast": 1, "conditionNegative": "er_negative_status"},
    {"valueSet": "pr", "positiveAtLeast": 1}]}


def marker(code: str, result=None, text: str | None = None, value: float | None = None) -> dict:
    return observation(f"m-{code}", "loinc", code, "2026-06-01", value, "%" if value is not None else None,
                       value_code=result, value_text=text)


def test_her2_ihc_scores_and_the_ish_reflex():
    assert run("lab_threshold", HER2, ctx(marker("85319-2", text="3+"))).status is Status.MET
    assert run("lab_threshold", HER2, ctx(marker("85319-2", text="1+"))).status is Status.NOT_MET
    assert run("lab_threshold", HER2, ctx(marker("85319-2", text="2+"))).status is Status.UNKNOWN
    assert run("lab_threshold", HER2, ctx(marker("85319-2", text="2+"), marker("85318-4", text="not amplified"))) \
        .status is Status.NOT_MET


def test_hormone_receptor_negative_needs_both_receptors_negative():
    assert run("lab_threshold", HR_NEGATIVE, ctx(marker("85337-4", NEG), marker("85339-0", NEG))).status \
        is Status.MET
    # ER-low (5%) is positive by the letter: not HR-negative.
    assert run("lab_threshold", HR_NEGATIVE, ctx(marker("85329-1", value=5), marker("85339-0", NEG))).status \
        is Status.NOT_MET
    assert run("lab_threshold", HR_NEGATIVE, ctx(marker("85339-0", NEG))).status is Status.UNKNOWN
