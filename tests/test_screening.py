"""Raw screening (fhir_facts.Interest): which resources are worth validating, before any FHIR model is built."""
from __future__ import annotations

from cds_service.fhir_facts import Interest, _is_relevant
from tests.builders import concept, condition, med_request, observation


def _interest() -> Interest:
    return Interest(codes={("loinc", "29463-7"), ("icd10cm", "G35.A")}, icd_prefixes={"C91"},
                    names={"mitoxantrone", "novantrone"}).compile()


def test_conditions_and_observations_are_kept_by_code_and_icd_prefix():
    interest = _interest()
    assert _is_relevant(condition("c1", "icd10cm", "G35.A"), interest, {})
    assert _is_relevant(condition("c2", "icd10cm", "C91.02"), interest, {})  # below a `descendants` code
    assert _is_relevant(observation("o1", "loinc", "29463-7", "2026-01-01", 70, "kg"), interest, {})
    assert not _is_relevant(observation("o2", "loinc", "8480-6", "2026-01-01", 120, "mm[Hg]"), interest, {})


def test_drug_names_screen_medications_only():
    interest = _interest()
    by_brand = med_request("m1", concept("rxnorm", "999", "NOVANTRONE 20 MG/10 ML vial"))
    other = med_request("m2", concept("rxnorm", "29046", "lisinopril"))
    assert _is_relevant(by_brand, interest, {})
    assert not _is_relevant(other, interest, {})
    # A problem-list entry that mentions a drug is still matched by its code, as the value sets are.
    mentions_drug = condition("c3", "icd10cm", "T45.1X5A", "Adverse effect of mitoxantrone")
    assert not _is_relevant(mentions_drug, interest, {})


def test_an_interest_used_before_compile_compiles_itself():
    interest = Interest(names={"mitoxantrone"})
    assert _is_relevant(med_request("m1", concept("rxnorm", "1", "Mitoxantrone 2 mg/mL")), interest, {})
