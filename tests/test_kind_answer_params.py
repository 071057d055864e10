"""Optional params that let a documented answer decide: documentation (clause, expect, anyAnswer), `answerable`
rows of other kinds, and concurrent_medication's `absentIsNotMet`."""
from __future__ import annotations

from cds_service.evaluate import Status
from tests.builders import concept, condition, med_request, med_statement
from tests.kind_context import context, run

INO = med_request("mr-1", concept("rxnorm", "1942954", "inotuzumab ozogamicin 0.9 MG Injection"), (0.5, "mg/m2"))
IXA = med_request("mr-1", concept("rxnorm", "1726271", "ixabepilone 45 MG Injection"), (40, "mg/m2"))


def test_documentation_reads_another_clause_with_an_expected_answer():
    ctx = context("inotuzumab", INO, answers={"B.i.B": False})
    assert run("documentation", {"clause": "B.i.B"}, ctx).status is Status.NOT_MET
    assert run("documentation", {"clause": "B.i.B", "expect": False}, ctx).status is Status.MET
    assert run("documentation", {"anyAnswer": True}, ctx, "B.i.B").status is Status.MET
    assert run("documentation", {"anyAnswer": True}, ctx, "B.ii.A.1").status is Status.UNKNOWN


def test_answerable_diagnosis_uses_the_answer_only_when_the_record_is_silent():
    params = {"valueSets": ["all_relapsed"], "absentIs": "unknown", "answerable": True}
    silent = context("inotuzumab", INO, answers={"X": True})
    assert run("diagnosis", params, silent).status is Status.MET
    coded = context("inotuzumab", INO, answers={"X": False},
                    conditions=[condition("c-1", "icd10cm", "C91.02", "ALL in relapse")])
    assert run("diagnosis", params, coded).status is Status.MET  # the record wins over a 'no'
    assert run("diagnosis", {k: v for k, v in params.items() if k != "answerable"},
               context("inotuzumab", INO, answers={"X": True})).status is Status.UNKNOWN


def test_conflicting_subtype_rules_the_diagnosis_out():
    params = {"valueSets": ["b_all"], "vague": ["all_lineage_unknown"], "conflicting": ["t_all"]}
    t_all = [condition("c-1", "snomed", "277575008", "T-ALL"), condition("c-2", "icd10cm", "C91.02", "ALL")]
    assert run("diagnosis", params, context("inotuzumab", INO, conditions=t_all)).status is Status.NOT_MET
    only_icd = [condition("c-2", "icd10cm", "C91.02", "ALL")]
    assert run("diagnosis", params, context("inotuzumab", INO, conditions=only_icd)).status is Status.UNKNOWN


def test_absent_is_not_met_only_with_medication_data():
    params = {"any": ["capecitabine"], "absentIsNotMet": True}
    assert run("concurrent_medication", params, context("ixabepilone", IXA)).status is Status.NOT_MET
    none = context("ixabepilone", IXA, medicationRequests=None, medicationAdministrations=None,
                   medicationStatements=None, medicationDispenses=None)
    assert run("concurrent_medication", params, none).status is Status.UNKNOWN
    cape = [med_statement("s-1", concept("rxnorm", "194000", "capecitabine"), "active", "2026-11-01")]
    assert run("concurrent_medication", params, context("ixabepilone", IXA, medicationStatements=cape)).status \
        is Status.MET
    # Without the flag the partner requirement stays unknown, never not-met.
    assert run("concurrent_medication", {"any": ["capecitabine"]}, context("ixabepilone", IXA)).status \
        is Status.UNKNOWN
