"""The rule between documentation answers and the record (evaluate/answers.py), on one clause."""
from __future__ import annotations

from datetime import date

import pytest

from cds_service.evaluate.answers import reconcile
from cds_service.evaluate.context import EvalContext
from cds_service.evaluate.status import Result, Status
from cds_service.policies import load_policies
from cds_service.record import Answer, MedicationFact, PatientRecord
from tests.conftest import ROOT

POLICY = load_policies(ROOT / "cards").policies["mitoxantrone"]
CLAUSE = POLICY.nodes["I.A.1.a.i"]
ORDER = MedicationFact("MedicationRequest/mr-1", "draft", "draft", (), "mitoxantrone")


def _ctx(answer: bool | None, authored: date = date(2026, 11, 10)) -> EvalContext:
    answers = {} if answer is None else {"mitoxantrone:I.A.1.a.i": Answer("I.A.1.a.i", answer, authored=authored)}
    return EvalContext(PatientRecord("Patient/p", date(2026, 11, 26), answers=answers), ORDER, POLICY)


@pytest.mark.parametrize(("record", "answer", "expected"), [
    (Result.unknown("history"), True, Status.MET),
    (Result.unknown("history"), False, Status.NOT_MET),
    (Result.met("on record", as_of=date(2026, 11, 20)), False, Status.MET),  # record newer: record wins
    (Result.met("on record", as_of=date(2026, 11, 1)), False, Status.NOT_MET),  # answer newer: answer wins
    (Result.met("on record", as_of=date(2026, 11, 10)), False, Status.NOT_MET),  # same day: the answer
    (Result.met("on record"), False, Status.NOT_MET),  # an undated record result cannot show it is newer
    (Result.met("on record"), True, Status.MET),
    (Result.met("on record"), None, Status.MET),
])
def test_record_wins_only_where_newer(record, answer, expected):
    assert reconcile(CLAUSE, record, _ctx(answer)).status is expected
