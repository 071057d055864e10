"""Build an evaluation context from FHIR resources, so kind evaluators can be called directly."""
from __future__ import annotations

from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

from cds_service.evaluate.context import EvalContext
from cds_service.evaluate.criterion import Criterion
from cds_service.evaluate.registry import LEAF_KINDS
from cds_service.evaluate.status import Result
from cds_service.fhir_facts import build_record, read_drafts
from cds_service.policies import PolicyLibrary, load_policies
from cds_service.record import Answer
from tests.builders import PATIENT_ID, patient

ROOT = Path(__file__).resolve().parent.parent
TODAY = date(2026, 11, 26)
_KEYS = ("conditions", "observations", "medicationRequests", "medicationAdministrations", "medicationStatements",
         "medicationDispenses")


@cache
def library() -> PolicyLibrary:
    return load_policies(ROOT / "cards")


def context(policy: str, order: dict[str, Any], *, others: tuple[dict[str, Any], ...] = (),
            answers: dict[str, Any] | None = None, **data: list[dict[str, Any]] | None) -> EvalContext:
    """A context for one draft order; each data key defaults to supplied-and-empty, None means not supplied."""
    lib = library()
    drafts, _ = read_drafts([order, *others], {})
    raw = {"patient": [patient()], **{k: data.get(k, []) for k in _KEYS}}
    record = build_record(PATIENT_ID, raw, drafts, {}, lib.interest, TODAY)
    record.answers = {k: Answer(k, v) for k, v in (answers or {}).items()}
    return EvalContext(record=record, order=drafts[0], policy=lib.policies[policy])


def run(kind: str, params: dict[str, Any], ctx: EvalContext, clause_id: str = "X") -> Result:
    return LEAF_KINDS[kind].evaluate(Criterion(id=clause_id, text=kind, kind=kind, params=params), ctx)
