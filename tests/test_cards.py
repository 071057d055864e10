"""Cards rendered from mitoxantrone traces: summary, markdown detail, dose suggestions, referral, CRD extensions."""
from __future__ import annotations

import re
import uuid
from datetime import date

import pytest

from cds_service.record import Answer
from tests.conftest import FIXTURES, load_fixture

SIGN = "/cds-services/prior-auth-order-sign"
MITOXANTRONE = sorted((FIXTURES / "mitoxantrone").glob("*.json"))
OUTCOME_WORDS = {"criteria-met": "criteria met", "criteria-not-met": "criteria not met",
                 "documentation-needed": "documentation needed", "not-covered": "not covered"}


def card_for(app, client, name: str) -> dict:
    scenario = load_fixture(FIXTURES / "mitoxantrone" / f"{name}.json")
    answers = {k: Answer(k, v, authored=date(2026, 11, 1)) for k, v in (scenario.get("answers") or {}).items()}
    app.extensions["cds_service"].answers = lambda patient, policies: answers
    response = client.post(SIGN, json=scenario["request"])
    assert response.status_code == 200
    (card,) = response.get_json()["cards"]
    return card


def listed_ids(detail: str) -> set[str]:
    return set(re.findall(r"^- `([A-Za-z0-9._]+)`", detail, re.M))


@pytest.mark.parametrize("path", MITOXANTRONE, ids=[p.stem for p in MITOXANTRONE])
def test_every_card_has_a_short_summary_naming_drug_and_outcome_and_the_crd_extensions(app, client, path):
    card = card_for(app, client, path.stem)
    trace = card["extension"]["prior-auth.evaluation"]
    assert len(card["summary"]) < 140
    assert "Mitoxantrone" in card["summary"]
    assert OUTCOME_WORDS[trace["decision"]] in card["summary"]
    assert "CP.PHAR.258" in card["detail"]
    assert card["extension"]["davinci-crd.associated-resource"] == [{"reference": trace["order"]}]
    assert (trace["policy"], trace["policyNumber"]) == ("mitoxantrone", "CP.PHAR.258")
    assert card["source"]["label"].startswith("Centene CP.PHAR.258") and card["source"]["topic"]["code"]
    uuid.UUID(card["uuid"])
    assert card["indicator"] in ("info", "warning", "critical")


@pytest.mark.parametrize("path", MITOXANTRONE, ids=[p.stem for p in MITOXANTRONE])
def test_detail_lists_the_clauses_that_stop_approval(app, client, path):
    card = card_for(app, client, path.stem)
    trace = card["extension"]["prior-auth.evaluation"]
    listed = listed_ids(card["detail"])
    status = {c["id"]: c["status"] for c in trace["criteria"]}
    if trace["decision"] == "documentation-needed":
        assert any(status.get(i) == "unknown" for i in listed), card["detail"]
    if trace["decision"] == "criteria-not-met" and "not addressed by this policy" not in card["detail"]:
        assert any(status.get(i) == "not-met" for i in listed), card["detail"]
    assert all(status.get(i) in ("unknown", "not-met", "met") for i in listed)


def test_documentation_needed_names_each_missing_clause_and_links_the_form(app, client):
    card = card_for(app, client, "ms_baseline_not_documented")
    assert "`I.A.5`" in card["detail"]
    assert card["links"][0]["url"].endswith("/fhir/Questionnaire/mitoxantrone")


def test_unmet_clause_is_listed_with_its_evidence(app, client):
    card = card_for(app, client, "ms_other_dmt_active_not_met")
    assert re.search(r"`I\.A\.4` .*ocrelizumab", card["detail"])


def update_dose(card: dict) -> tuple[str, dict]:
    (suggestion,) = [s for s in card.get("suggestions", ()) if s["actions"][0]["type"] == "update"]
    resource = suggestion["actions"][0]["resource"]
    return resource["id"], resource["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]


@pytest.mark.parametrize("scenario, value, unit, clause", [
    ("ms_dose_14_mg_m2_breaches_12_per_3_months", 12, "mg/m2", "I.A.6.a"),
    ("ms_cumulative_dose_exceeded", 9, "mg/m2", "I.A.6.b"),
    ("prostate_15_mg_m2_breaches_14_per_21_days_needs_literature", 14, "mg/m2", "I.B.6.a"),
    ("anll_14_mg_m2_per_infusion_over_cap_needs_literature", 12, "mg/m2", "I.C.5.a"),
])
def test_a_dose_breach_suggests_the_order_at_the_largest_allowed_dose(app, client, scenario, value, unit, clause):
    card = card_for(app, client, scenario)
    order_id, dose = update_dose(card)
    assert order_id == "mr-1"
    assert (dose["value"], dose["unit"]) == (value, unit)
    assert f"`{clause}`" in card["detail"] and "exceeds" in card["detail"]
    assert "dose exceeds" in card["summary"]


def test_a_breach_is_reported_even_when_literature_makes_the_order_acceptable(app, client):
    card = card_for(app, client, "prostate_15_mg_m2_literature_supported")
    assert card["extension"]["prior-auth.evaluation"]["decision"] == "criteria-met"
    assert "`I.B.6.a`" in card["detail"]
    assert update_dose(card)[1]["value"] == 14
    assert card["indicator"] == "warning"


def test_caps_of_other_indications_are_not_reported(app, client):
    card = card_for(app, client, "anll_14_mg_m2_per_infusion_over_cap_needs_literature")
    assert listed_ids(card["detail"]) == {"I.C.5.a", "I.C.5.b"}


def test_a_mg_order_over_the_cap_gets_a_mg_suggestion(app, client):
    scenario = load_fixture(FIXTURES / "mitoxantrone" / "ms_rrms_ordered_by_hcpcs_code_in_mg_converted_with_bsa.json")
    dose = scenario["request"]["context"]["draftOrders"]["entry"][0]["resource"]["dosageInstruction"][0]
    dose["doseAndRate"][0]["doseQuantity"]["value"] = 30  # 30 mg / 1.82 m2 = 16.5 mg/m2
    card = client.post(SIGN, json=scenario["request"]).get_json()["cards"][0]
    _, suggested = update_dose(card)
    assert (suggested["value"], suggested["unit"]) == (21.8, "mg")  # 12 mg/m2 x 1.82 m2, rounded down


@pytest.mark.parametrize("scenario, policy, lob", [
    ("ms_progressive_relapsing_not_listed_refers_to_commercial_off_label_policy", "CP.CPA.09", "commercial"),
    ("ms_age_17_not_met_refers_marketplace_off_label_policy", "HIM.PA.154", "marketplace"),
    ("prostate_hormone_sensitive_not_met_refers_medicaid_off_label_policy", "CP.PMN.53", "medicaid"),
])
def test_a_referral_names_the_policy_for_the_coverage_line_of_business(app, client, scenario, policy, lob):
    card = card_for(app, client, scenario)
    referral = card["detail"].split("**Referral:**")[1]
    assert f"{policy} ({lob})" in referral
    assert referral.count("(") == 1, "only the coverage's line of business"


def test_a_use_no_branch_covers_says_so_instead_of_listing_every_branch(app, client):
    card = card_for(app, client, "ms_progressive_relapsing_not_listed_refers_to_commercial_off_label_policy")
    assert "not addressed by this policy" in card["detail"]
    assert "**Not met**" not in card["detail"]


def test_not_covered_is_critical_and_names_the_exclusion(app, client):
    card = card_for(app, client, "ms_primary_progressive_not_covered")
    assert card["indicator"] == "critical"
    assert "not covered" in card["summary"].lower() and "Primary progressive MS" in card["summary"]
    assert "`III.B`" in card["detail"]


def test_a_missing_partner_drug_gets_a_create_suggestion(app, client):
    card = card_for(app, client, "prostate_urologist_without_corticosteroid")
    creates = [s for s in card["suggestions"] if s["actions"][0]["type"] == "create"]
    assert creates and creates[0]["actions"][0]["resource"]["resourceType"] == "MedicationRequest"
    assert "prednisone" in creates[0]["label"].lower()


def policy_card(app, client, policy: str, name: str) -> dict:
    scenario = load_fixture(FIXTURES / policy / f"{name}.json")
    answers = {k: Answer(k, v, authored=date(2026, 11, 1)) for k, v in (scenario.get("answers") or {}).items()}
    app.extensions["cds_service"].answers = lambda patient, policies: answers
    cards = client.post(SIGN, json=scenario["request"]).get_json()["cards"]
    return next(c for c in cards if c["extension"]["prior-auth.evaluation"]["order"] == scenario["expect"]["order"])


def test_a_dose_ratio_breach_reads_as_a_ratio(app, client):
    card = policy_card(app, client, "dexrazoxane", "ratio_600_to_50_exceeds_10_to_1")
    assert "dexrazoxane 12:1 to doxorubicin exceeds the 10:1 cap" in card["detail"]
    assert "× the doxorubicin dose per dose" not in card["detail"]


def test_a_capsule_dose_is_suggested_in_words_not_as_a_ucum_annotation(app, client):
    card = policy_card(app, client, "ixazomib", "mm_two_capsules_per_dose_exceeds_4_mg")
    (suggestion,) = card["suggestions"]
    assert suggestion["label"].startswith("Change the dose to 1 capsule(s)")
    assert "largest dose allowed: 1 capsule(s)" in card["detail"]
    assert "{capsule}" not in card["detail"] + suggestion["label"] + suggestion["actions"][0]["description"]
    # The order itself keeps its UCUM unit.
    dose = suggestion["actions"][0]["resource"]["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]
    assert (dose["value"], dose["unit"]) == (1, "{capsule}")


DOC_PATHS = sorted([*(FIXTURES / "ixazomib").glob("*.json"), *(FIXTURES / "dexrazoxane").glob("*.json")])


@pytest.mark.parametrize("path", DOC_PATHS, ids=[f"{p.parent.name}/{p.stem}" for p in DOC_PATHS])
def test_every_documentation_bullet_says_what_to_document(app, client, path):
    detail = policy_card(app, client, path.parent.name, path.stem)["detail"]
    section = detail.split("**Documentation needed**")[1].split("\n\n")[0] if "**Documentation needed**" in detail \
        else ""
    for line in section.strip().splitlines():
        head, _, said = line.partition(": ")
        assert said.strip() and said.strip() not in head, line


def test_a_regimen_row_with_nothing_missing_recorded_still_names_its_partner_drugs():
    """A concurrent-medication row left unknown with no `missing` detail (e.g. by a guard) names the drugs."""
    from types import SimpleNamespace

    from cds_service.cards import _to_document
    from cds_service.evaluate.engine import TraceEntry
    from cds_service.policies import load_policies
    from tests.conftest import ROOT

    policy = load_policies(ROOT / "cards").policies["ixazomib"]
    entry = TraceEntry(policy.nodes["I.A.5.a"])
    said = _to_document(SimpleNamespace(policy=policy), entry)
    assert said and all(name in said[0] for name in ("dexamethasone", "lenalidomide", "cyclophosphamide"))
    assert _to_document(SimpleNamespace(policy=policy), TraceEntry(policy.nodes["II.A.2"])) == ["not documented"]
