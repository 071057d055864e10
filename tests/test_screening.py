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


def _library_with_a_second_policy(tmp_path):
    """mitoxantrone.json plus a copy, `other`, routed by another code and reading ALT (LOINC 1742-6)."""
    import json

    from cds_service.policies import load_policies
    from tests.conftest import ROOT

    data = json.loads((ROOT / "cards" / "mitoxantrone.json").read_text())
    (tmp_path / "mitoxantrone.json").write_text(json.dumps(data))
    data["policy"] = "other"
    data["drug"] = {"display": "otherdrug", "names": ["otherdrug"], "codes": [{"system": "rxnorm", "code": "999999"}]}
    data["valueSets"]["alt"] = {"text": "ALT", "codes": [{"system": "loinc", "code": "1742-6"}]}
    (tmp_path / "other.json").write_text(json.dumps(data))
    return load_policies(tmp_path)


def test_a_call_screens_with_what_its_routed_policies_read(tmp_path):
    library = _library_with_a_second_policy(tmp_path)
    alt = observation("o-alt", "loinc", "1742-6", "2026-01-01", 30, "U/L")
    weight = observation("o-w", "loinc", "29463-7", "2026-01-01", 70, "kg")
    assert not _is_relevant(alt, library.interest_for(["mitoxantrone"]), {})
    assert _is_relevant(alt, library.interest_for(["other"]), {})
    assert _is_relevant(alt, library.interest_for(["mitoxantrone", "other"]), {})
    assert _is_relevant(alt, library.interest, {})
    assert _is_relevant(weight, library.interest_for(["mitoxantrone"]), {})  # vital signs: every dose clause
    assert not _is_relevant(med_request("m", concept("rxnorm", "1", "otherdrug 5 mg")),
                            library.interest_for(["mitoxantrone"]), {})
