"""Each leaf and guard kind mitoxantrone uses, called directly: met, not met, unknown, and the edge proving the rule."""
from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from typing import Any

import pytest

from cds_service.evaluate.context import EvalContext
from cds_service.evaluate.criterion import Criterion, Predicate
from cds_service.evaluate.engine import Tracer
from cds_service.evaluate.registry import GUARD_KINDS, LEAF_KINDS
from cds_service.evaluate.status import Status
from cds_service.policies import load_policies
from cds_service.record import (
    Answer,
    Code,
    ConditionFact,
    CoverageFact,
    Dosage,
    MedicationFact,
    ObservationFact,
    PartialDate,
    PatientRecord,
    Quantity,
    Timing,
)
from tests.conftest import ROOT

POLICY = load_policies(ROOT / "cards").policies["mitoxantrone"]
DAY = date(2026, 11, 20)
MITO = (Code("rxnorm", "197989"),)
EVERYTHING = frozenset({"patient", "conditions", "observations", "medicationRequests", "medicationAdministrations",
                        "medicationStatements", "medicationDispenses", "coverage", "user"})
MET, NOT_MET, UNKNOWN = Status.MET, Status.NOT_MET, Status.UNKNOWN


def order(dose: float = 12, unit: str = "mg/m2", timing: Timing | None = None, **kw: Any) -> MedicationFact:
    timing = timing or Timing(frequency=1, period=3, period_unit="mo", count=1, bounds_start=DAY)
    return MedicationFact("MedicationRequest/mr-1", "draft", "draft", MITO, "mitoxantrone", start=DAY,
                          dose=Quantity(dose, unit), dosages=(Dosage(1, Quantity(dose, unit), timing),),
                          authored_on=DAY, **kw)


def cond(*codes: tuple[str, str]) -> ConditionFact:
    return ConditionFact(f"Condition/{codes[0][1]}", tuple(Code(s, c) for s, c in codes))


def given(day: date, dose: float, unit: str = "mg/m2", codes=MITO, ref: str | None = None) -> MedicationFact:
    return MedicationFact(ref or f"MedicationAdministration/{day}", "administration", "completed", codes, "",
                          start=day, end=day, dose=Quantity(dose, unit))


def med(source: str, code: str, text: str, status: str = "active", start: date = date(2025, 1, 1)) -> MedicationFact:
    """A medication fact of a source (draft, request, statement, ...)."""
    return MedicationFact(f"Medication{source.capitalize()}/{code}", source, status, (Code("rxnorm", code),), text,
                          start=start)


def obs(loinc: str, when: date, value: float | None = None, unit: str = "", system: str = "loinc",
        value_codes: tuple[Code, ...] = ()) -> ObservationFact:
    return ObservationFact(f"Observation/{loinc}-{when}", (Code(system, loinc),), when,
                           Quantity(value, unit) if value is not None else None, value_codes=value_codes)


VITALS = (obs("8302-2", date(2026, 11, 15), 170, "cm"), obs("29463-7", date(2026, 11, 15), 70, "kg"))


def ctx(*, conditions=(), observations=VITALS, medications=(), drafts=(), birth="1979-04-02", specialties=(),
        coverages=(), answers=None, supplied=EVERYTHING, the_order: MedicationFact | None = None,
        phase: str = "initial") -> EvalContext:
    the_order = the_order or order()
    record = PatientRecord(
        "Patient/p", date(2026, 11, 26), birth_date=PartialDate.parse(birth) if birth else None,
        conditions=None if conditions is None else tuple(conditions),
        observations=None if observations is None else tuple(observations),
        medications=None if medications is None else tuple(medications), drafts=(the_order, *drafts),
        specialties=None if specialties is None else tuple(specialties),
        coverages=None if coverages is None else tuple(coverages),
        answers={k: Answer(k, v) for k, v in (answers or {}).items()}, supplied=supplied)
    return EvalContext(record=record, order=the_order, policy=POLICY, phase=phase)


def run(clause_id: str, context: EvalContext) -> Status:
    """Evaluate the policy's own leaf for this clause id (its kind and params as encoded), as the engine does:
    the leaf's evaluator, then its documentation answer (evaluate/answers.py)."""
    return Tracer(context).evaluate(POLICY.nodes[clause_id])


def leaf(kind: str, **params: Any) -> Criterion:
    return Criterion(id="X.1", text="test leaf", kind=kind, params=params)


# --- diagnosis ----------------------------------------------------------------------------------------------------

RRMS, SPMS, PPMS, G35 = ("icd10cm", "G35.A"), ("icd10cm", "G35.C0"), ("icd10cm", "G35.B0"), ("icd10cm", "G35")


@pytest.mark.parametrize("codes, status", [
    ([RRMS], MET), ([SPMS], NOT_MET), ([G35], UNKNOWN), ([G35, SPMS], NOT_MET), ([("icd10cm", "I10")], NOT_MET),
])
def test_rrms_diagnosis(codes, status):
    assert run("I.A.1.a.dx", ctx(conditions=[cond(c) for c in codes])) is status


def test_diagnosis_is_unknown_when_conditions_are_unreadable_but_a_reason_code_decides():
    assert run("I.A.1.a.dx", ctx(conditions=None)) is UNKNOWN
    with_reason = order(reason_codes=(Code("icd10cm", "G35.A"),))
    assert run("I.A.1.a.dx", ctx(conditions=None, the_order=with_reason)) is MET


@pytest.mark.parametrize("codes, status", [
    ([PPMS], MET), ([RRMS], NOT_MET), ([G35], UNKNOWN), ([PPMS, RRMS], UNKNOWN), ([G35, SPMS], NOT_MET),
])
def test_ppms_exclusion_met_only_when_ppms_alone_is_coded(codes, status):
    assert run("III.B", ctx(conditions=[cond(c) for c in codes])) is status


@pytest.mark.parametrize("codes, status", [
    ([("icd10cm", "C61"), ("icd10cm", "C79.51")], MET), ([("icd10cm", "C61")], UNKNOWN), ([RRMS], NOT_MET),
])
def test_prostate_cancer_needs_its_extent(codes, status):
    assert run("I.B.1", ctx(conditions=[cond(c) for c in codes])) is status


def test_stage_iv_observation_gives_the_extent_but_stage_ii_does_not():
    stage = ObservationFact("Observation/s", (Code("loinc", "21908-9"),), date(2026, 9, 1), value_text="Stage IV")
    assert run("I.B.1", ctx(conditions=[cond(("icd10cm", "C61"))], observations=[stage])) is MET
    assert run("I.B.1", ctx(conditions=[cond(("icd10cm", "C61"))],
                            observations=[replace(stage, value_text="Stage II")])) is UNKNOWN


@pytest.mark.parametrize("codes, answers, status", [
    ([("icd10cm", "Z19.2")], {}, MET), ([("icd10cm", "Z19.1")], {}, NOT_MET), ([("icd10cm", "C61")], {}, UNKNOWN),
    ([("icd10cm", "C61")], {"I.B.4": False}, NOT_MET), ([("icd10cm", "C61")], {"I.B.4": True}, MET),
])
def test_castration_resistance(codes, answers, status):
    assert run("I.B.4", ctx(conditions=[cond(c) for c in codes], answers=answers)) is status


def test_ph_negative_b_all_reads_the_bcr_abl1_result():
    dx = [cond(("icd10cm", "C91.02")), cond(("snomed", "277571004"))]
    negative = obs("51867-0", date(2026, 10, 1), value_codes=(Code("snomed", "260385009"),))
    positive = obs("51867-0", date(2026, 10, 1), value_codes=(Code("snomed", "10828004"),))
    assert run("I.E.4.a.i.1", ctx(conditions=dx, observations=[negative])) is MET
    assert run("I.E.4.a.i.1", ctx(conditions=dx, observations=[positive])) is NOT_MET
    assert run("I.E.4.a.i.1", ctx(conditions=dx, observations=[])) is UNKNOWN
    assert run("I.E.4.a.i.1", ctx(conditions=[cond(("snomed", "277575008"))])) is NOT_MET  # T-ALL only


# --- age ----------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("birth, status", [
    ("2008-11-20", MET), ("2008-11-21", NOT_MET), (None, UNKNOWN), ("2008", UNKNOWN), ("1990", MET),
    ("2008-12", NOT_MET),
])
def test_age_at_least_18_counts_the_18th_birthday(birth, status):
    assert run("I.A.3", ctx(birth=birth)) is status


def test_pediatric_age_is_under_18():
    assert run("I.E.4.b.age", ctx(birth="2016-05-01")) is MET
    assert run("I.E.4.b.age", ctx(birth="2008-11-20")) is NOT_MET


# --- prescriber ---------------------------------------------------------------------------------------------------

def test_prescriber_specialty_is_met_or_unknown_never_not_met():
    assert run("I.A.2", ctx(specialties=[Code("nucc", "2084N0400X")])) is MET
    assert run("I.A.2", ctx(specialties=[Code("nucc", "207RX0202X")])) is UNKNOWN
    assert run("I.A.2", ctx(specialties=None)) is UNKNOWN
    assert run("I.C.2", ctx(specialties=[Code("nucc", "207RH0000X")])) is MET
    assert run("I.B.2", ctx(specialties=[Code("nucc", "1835X0200X")])) is UNKNOWN  # an oncology pharmacist


# --- medications --------------------------------------------------------------------------------------------------

def test_partner_drug_in_another_draft_or_a_recent_administration():
    assert run("I.B.5", ctx(drafts=[med("draft", "8640", "prednisone", status="draft")])) is MET
    assert run("I.B.5", ctx(medications=[given(date(2026, 11, 1), 5, "mg", (Code("rxnorm", "8640"),))])) is MET
    assert run("I.B.5", ctx(medications=[given(date(2026, 10, 1), 5, "mg", (Code("rxnorm", "8640"),))])) is UNKNOWN
    assert run("I.B.5", ctx()) is UNKNOWN


def test_every_partner_of_a_combination_is_needed():
    ifo, eto = med("draft", "5657", "ifosfamide", "draft"), med("draft", "4179", "etoposide", "draft")
    assert run("I.D.1.a.ii", ctx(drafts=[ifo, eto])) is MET
    assert run("I.D.1.a.ii", ctx(drafts=[ifo])) is UNKNOWN


def test_no_other_ms_dmt_prescribed_now():
    assert run("I.A.4", ctx()) is MET
    assert run("I.A.4", ctx(medications=[med("request", "1876366", "ocrelizumab")])) is NOT_MET
    assert run("I.A.4", ctx(medications=[med("request", "1876366", "ocrelizumab", status="completed")])) is MET
    assert run("I.A.4", ctx(medications=[med("statement", "2261783", "diroximel fumarate")])) is NOT_MET
    assert run("I.A.4", ctx(medications=None, supplied=frozenset({"medicationAdministrations"}))) is UNKNOWN


def test_prior_step_agent_met_from_history_not_met_only_from_an_answer():
    dmf = med("statement", "1373478", "dimethyl fumarate", status="completed")
    assert run("I.A.1.a.i", ctx(medications=[dmf])) is MET
    assert run("I.A.1.a.i", ctx()) is UNKNOWN
    assert run("I.A.1.a.i", ctx(answers={"I.A.1.a.i": False})) is NOT_MET
    assert run("I.A.1.a.i", ctx(medications=[med("statement", "2261783", "diroximel fumarate")])) is UNKNOWN


def test_tki_refractory_needs_a_tki_and_relapse():
    das = med("statement", "475342", "dasatinib", status="completed")
    assert run("I.E.4.a.i.2.prior", ctx(medications=[das], conditions=[cond(("icd10cm", "C91.02"))])) is MET
    assert run("I.E.4.a.i.2.prior", ctx(medications=[das], conditions=[cond(("icd10cm", "C91.00"))])) is UNKNOWN


IXAZOMIB = load_policies(ROOT / "cards").policies["ixazomib"]


@pytest.mark.parametrize("clause_id, days_after, status", [
    ("I.A.5.b.iii", 45, MET), ("I.A.5.b.iii", 90, NOT_MET),  # progression within / after 60 days of the last dose
    ("I.A.5.b.rr", 90, UNKNOWN),  # refractoriness has no not-met from dates (clauses.md §2)
    ("I.A.5.d.relapse", 200, MET), ("I.A.5.d.relapse", 90, NOT_MET),  # relapse > / < 6 months after induction
])
def test_dated_progression_outside_its_window_is_not_met_only_where_the_clause_says_so(clause_id, days_after, status):
    last = date(2026, 3, 1)
    lenalidomide = replace(med("statement", "342369", "lenalidomide", status="completed"), end=last)
    relapse = replace(cond(("icd10cm", "C90.02")), onset=last + timedelta(days=days_after))
    context = replace(ctx(medications=[lenalidomide], conditions=[relapse]), policy=IXAZOMIB)
    assert Tracer(context).evaluate(IXAZOMIB.nodes[clause_id]) is status


def test_currently_receiving_within_the_lookback_under_active_coverage():
    cov = CoverageFact("Coverage/c", "active", "Organization/payer", "medicaid")
    recent, ms = given(date(2026, 8, 20), 12), [cond(RRMS)]  # 92 days: inside the MS lookback of 120 days
    assert run("II.A.1.a", ctx(medications=[recent], coverages=[cov], conditions=ms)) is MET
    assert run("II.A.1.a", ctx(medications=[recent], coverages=[], conditions=ms)) is UNKNOWN
    assert run("II.A.1.b.receiving", ctx(medications=[recent], conditions=ms)) is MET
    assert run("II.A.1.b.receiving", ctx(medications=[recent], conditions=[cond(("icd10cm", "C92.00"))])) is UNKNOWN


# --- course -------------------------------------------------------------------------------------------------------

def test_therapy_duration_from_the_first_administration():
    assert run("II.A.2.a.cond", ctx(medications=[given(date(2025, 11, 21), 12)])) is MET  # 364 days
    assert run("II.A.2.a.cond", ctx(medications=[given(date(2025, 11, 20), 12)])) is NOT_MET  # 365 days
    assert run("II.A.2.b.cond", ctx(medications=[given(date(2025, 11, 20), 12)])) is MET
    assert run("II.A.2.a.cond", ctx()) is UNKNOWN


def test_line_of_therapy_counts_prior_regimens():
    rituximab = given(date(2026, 3, 1), 375, codes=(Code("rxnorm", "121191"),))
    assert run("I.D.1.a.i", ctx(medications=[rituximab])) is MET
    assert run("I.D.1.a.i", ctx()) is UNKNOWN
    assert run("I.D.1.a.i", ctx(answers={"I.D.1.a.i": False})) is NOT_MET


# --- labs ---------------------------------------------------------------------------------------------------------

def edss(when: date, score: float) -> ObservationFact:
    return obs("edss", when, score, "{score}", system="local")


@pytest.mark.parametrize("latest, status", [(4.0, MET), (3.5, MET), (4.5, NOT_MET)])
def test_edss_against_the_baseline_before_the_first_dose(latest, status):
    history = [given(date(2025, 5, 20), 12)]
    scores = [edss(date(2024, 1, 1), 6.0), edss(date(2025, 5, 1), 4.0), edss(date(2026, 11, 1), latest)]
    assert run("II.A.2.b.iii", ctx(medications=history, observations=scores)) is status


def test_edss_without_a_baseline_is_unknown_unless_documented():
    history = [given(date(2025, 5, 20), 12)]
    current = [edss(date(2026, 11, 1), 4.0)]
    assert run("II.A.2.b.iii", ctx(medications=history, observations=current)) is UNKNOWN
    documented = {"I.A.5.edss": 4.5}
    assert run("II.A.2.b.iii", ctx(medications=history, observations=current, answers=documented)) is MET


# --- doses --------------------------------------------------------------------------------------------------------

def test_per_infusion_cap():
    assert run("I.C.5.a", ctx(the_order=order(12))) is MET
    assert run("I.C.5.a", ctx(the_order=order(12.5))) is NOT_MET
    assert run("I.C.5.a", ctx(the_order=order(20, "mg"), observations=[])) is UNKNOWN


def test_per_infusion_breach_suggests_the_largest_dose_in_the_orders_unit():
    node = POLICY.nodes["I.C.5.a"]
    mg = LEAF_KINDS[node.kind].evaluate(node, ctx(the_order=order(30, "mg")))
    assert mg.status is NOT_MET
    assert mg.breach["suggestedDose"] == {"value": 21.8, "unit": "mg", "code": "mg"}  # 12 x 1.82, rounded down


def test_three_month_window_is_rolling_without_grace_days():
    inside = ctx(medications=[given(date(2026, 8, 21), 10)])
    boundary = ctx(medications=[given(date(2026, 8, 20), 10)])
    assert run("I.A.6.a", inside) is NOT_MET
    assert run("I.A.6.a", boundary) is MET
    assert run("I.A.6.a", ctx(medications=None, supplied=EVERYTHING - {"medicationAdministrations"})) is UNKNOWN
    over = order(13)
    assert run("I.A.6.a", ctx(the_order=over, medications=None,
                              supplied=EVERYTHING - {"medicationAdministrations"})) is NOT_MET


def test_window_breach_suggests_what_is_left_in_the_window():
    node = POLICY.nodes["I.A.6.a"]
    result = LEAF_KINDS[node.kind].evaluate(node, ctx(medications=[given(date(2026, 9, 1), 4)]))
    assert result.status is NOT_MET
    assert result.breach["value"] == 16
    assert result.breach["suggestedDose"]["value"] == 8


def test_lifetime_cap_is_inclusive_and_converts_history_at_each_dates_bsa():
    assert run("I.A.6.b", ctx(medications=[given(date(2020, 1, 1), 128)])) is MET  # 128 + 12 = 140
    assert run("I.A.6.b", ctx(medications=[given(date(2020, 1, 1), 128.5)])) is NOT_MET
    then = (obs("8302-2", date(2019, 12, 20), 170, "cm"), obs("29463-7", date(2019, 12, 20), 100, "kg"))
    in_mg = [given(date(2020, 1, 1), 280, "mg")]  # 280 / 2.17 = 129.0 then; 280 / 1.82 = 153.8 today
    assert run("I.A.6.b", ctx(medications=in_mg, observations=VITALS + then)) is NOT_MET
    small = [given(date(2020, 1, 1), 270, "mg")]  # 124.4 then + 12 = 136.4 (148.4 at today's BSA)
    assert run("I.A.6.b", ctx(medications=small, observations=VITALS + then)) is MET
    assert run("I.A.6.b", ctx(medications=None, supplied=EVERYTHING - {"medicationAdministrations"})) is UNKNOWN


def test_lifetime_breach_reports_the_remaining_allowance():
    node = POLICY.nodes["I.A.6.b"]
    result = LEAF_KINDS[node.kind].evaluate(node, ctx(medications=[given(date(2020, 1, 1), 131)]))
    assert result.breach["remaining"] == 9
    assert result.breach["suggestedDose"]["value"] == 9


# --- documentation, referral, guards -------------------------------------------------------------------------------

def test_documentation_only_from_an_answer():
    assert run("I.A.5", ctx()) is UNKNOWN
    assert run("I.A.5", ctx(answers={"I.A.5": True})) is MET
    assert run("I.A.5", ctx(answers={"I.A.5": False})) is NOT_MET
    assert run("I.A.5", ctx(answers={"I.A.5": "maybe"})) is UNKNOWN


def test_referral_is_always_unknown_and_names_the_policy_for_the_line_of_business():
    node = POLICY.nodes["I.F.2"]
    commercial = CoverageFact("Coverage/c", "active", "Organization/payer", "commercial")
    result = LEAF_KINDS["referral"].evaluate(node, ctx(coverages=[commercial]))
    assert result.status is UNKNOWN
    assert result.referral["lineOfBusiness"] == {"commercial": "CP.CPA.09"}
    unknown_lob = LEAF_KINDS["referral"].evaluate(node, ctx(coverages=[]))
    assert unknown_lob.referral["targets"] == {"commercial": "CP.CPA.09", "marketplace": "HIM.PA.154",
                                               "medicaid": "CP.PMN.53"}


def increase(context: EvalContext) -> Status:
    return GUARD_KINDS["dose_increase"].evaluate(Predicate("dose_increase", {"unit": "mg/m2"}), context)[0]


def test_dose_increase_beyond_5_percent_or_a_shorter_interval():
    assert increase(ctx(medications=[given(date(2026, 8, 20), 10)])) is MET
    assert increase(ctx(medications=[given(date(2026, 8, 20), 11.5)])) is NOT_MET  # 12 <= 11.5 x 1.05
    assert increase(ctx()) is UNKNOWN
    prior = MedicationFact("MedicationRequest/old", "request", "completed", MITO, "", start=date(2026, 8, 20),
                           dose=Quantity(12, "mg/m2"),
                           dosages=(Dosage(1, Quantity(12, "mg/m2"), Timing(frequency=1, period=4, period_unit="mo")),))
    assert increase(ctx(medications=[prior])) is MET  # every 3 months instead of 4


def test_dose_increase_counts_each_order_s_capsules_at_its_own_strength():
    """One 3 mg capsule before, one 4 mg capsule now: an increase (ixazomib II.A.3), though both say 1 capsule."""
    def capsule(ref: str, source: str, code: str, name: str, day: date) -> MedicationFact:
        return MedicationFact(ref, source, "completed" if source == "request" else "draft", (Code("rxnorm", code),),
                              name, start=day, dose=Quantity(1, "{capsule}"), authored_on=day,
                              dosages=(Dosage(1, Quantity(1, "{capsule}"), Timing(frequency=1, period=1,
                                                                                   period_unit="wk", count=3)),))
    new = capsule("MedicationRequest/mr-1", "draft", "1723770", "ixazomib 4 MG Oral Capsule", DAY)
    old = capsule("MedicationRequest/mr-0", "request", "1723765", "ixazomib 3 MG Oral Capsule", date(2026, 10, 23))
    context = replace(ctx(medications=[old], the_order=new), policy=IXAZOMIB)
    status, why = GUARD_KINDS["dose_increase"].evaluate(Predicate("dose_increase", {"unit": "mg"}), context)
    assert status is MET, why
    assert "previous 3.0 mg" in why


DEXRAZOXANE = load_policies(ROOT / "cards").policies["dexrazoxane"]


def test_liposomal_doxorubicin_is_not_doxorubicin_for_dexrazoxane():
    """Its name contains 'doxorubicin', but it counts neither toward the 300 mg/m² received (I.A.3.a.cum) nor as the
    concurrent doxorubicin (I.A.4): the group's excludeNames stop the name match; plain doxorubicin still counts."""
    def doxo(text: str, day: date) -> MedicationFact:
        return MedicationFact(f"MedicationAdministration/{day}", "administration", "completed", (), text,
                              start=day, end=day, dose=Quantity(50, "mg/m2"))

    def status(clause_id: str, text: str) -> Status:
        given_ = [doxo(text, date(2026, m, 1)) for m in range(4, 10)]  # 6 x 50 = 300 mg/m²
        draft = replace(doxo(text, DAY), ref="MedicationRequest/mr-dox", source="draft", status="draft")
        context = replace(ctx(medications=given_, drafts=[draft]), policy=DEXRAZOXANE)
        return Tracer(context).evaluate(DEXRAZOXANE.nodes[clause_id])

    group = DEXRAZOXANE.drugs["doxorubicin"]
    assert group.matches_name("doxorubicin hydrochloride liposomal 2 MG/ML") is False
    assert group.matches_name("Doxil (doxorubicin) 20 mg") is False
    assert group.matches_name("doxorubicin hydrochloride 2 MG/ML") is True
    assert status("I.A.3.a.cum", "doxorubicin hydrochloride 50 mg/m2") is MET
    assert status("I.A.3.a.cum", "doxorubicin hydrochloride liposomal 50 mg/m2") is UNKNOWN
    assert status("I.A.4", "doxorubicin hydrochloride 50 mg/m2") is MET
    assert status("I.A.4", "pegylated liposomal doxorubicin 50 mg/m2") is UNKNOWN
