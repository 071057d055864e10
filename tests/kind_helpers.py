"""Direct evaluator calls: a policy from cards/, plain facts, and one leaf criterion."""
from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from cds_service.evaluate.context import EvalContext
from cds_service.evaluate.criterion import Criterion
from cds_service.evaluate.registry import LEAF_KINDS
from cds_service.evaluate.status import Result
from cds_service.policies import load_policies
from cds_service.record import (
    Code,
    Dosage,
    MedicationFact,
    ObservationFact,
    PartialDate,
    PatientRecord,
    Quantity,
    Timing,
)

LIBRARY = load_policies(Path(__file__).resolve().parent.parent / "cards")
ALL_MEDS = frozenset({"medicationRequests", "medicationAdministrations", "medicationStatements", "medicationDispenses",
                      "observations", "conditions"})


def med(ref: str, source: str, codes: list[tuple[str, str]], dose: tuple[float, str] | None = None,
        events: list[date] | None = None, status: str = "draft", start: date | None = None, text: str = "",
        timing: Timing | None = None, **extra: Any) -> MedicationFact:
    quantity = Quantity(*dose) if dose else None
    timing = timing or (Timing(events=tuple(events)) if events else None)
    dosages = (Dosage(1, quantity, timing),) if source != "administration" else ()
    return MedicationFact(ref, source, status, tuple(Code(s, c) for s, c in codes), text,
                          start=start or (events[0] if events else None), dose=quantity, dosages=dosages, **extra)


def vitals(on: date, height: float = 170, weight: float = 70) -> tuple[ObservationFact, ...]:
    return (ObservationFact("Observation/h", (Code("loinc", "8302-2"),), on, Quantity(height, "cm")),
            ObservationFact("Observation/w", (Code("loinc", "29463-7"),), on, Quantity(weight, "kg")))


def record(drafts: list[MedicationFact], history: list[MedicationFact] | None = (), observations=(),
           supplied: frozenset[str] = ALL_MEDS) -> PatientRecord:
    return PatientRecord("Patient/p1", date(2026, 11, 26), birth_date=PartialDate(1970, 1, 1), conditions=(),
                         observations=tuple(observations), medications=None if history is None else tuple(history),
                         drafts=tuple(drafts), supplied=supplied if history is not None else frozenset({"conditions"}))


def evaluate(policy: str, kind: str, params: dict[str, Any], rec: PatientRecord, clause_id: str = "T.1") -> Result:
    ctx = EvalContext(record=rec, order=rec.drafts[0], policy=LIBRARY.policies[policy])
    return LEAF_KINDS[kind].evaluate(Criterion(id=clause_id, text="test", kind=kind, params=params), ctx)
