"""What an evaluator may look at: the record, the order under evaluation, the policy's vocabularies."""
from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

from ..record import Answer, MedicationFact, PatientRecord
from ..terminology import DrugGroup, ValueSet

if TYPE_CHECKING:
    from ..policies import Policy


@dataclass
class EvalContext:
    record: PatientRecord
    order: MedicationFact
    policy: Policy
    phase: str = "initial"
    memo: dict[Hashable, Any] = field(default_factory=dict)

    @property
    def order_date(self) -> date:
        """The date the order is for: its first dose, else authoredOn, else the evaluation date."""
        return self.order.start or self.order.authored_on or self.record.as_of

    def value_set(self, name: str) -> ValueSet:
        return self.policy.value_sets[name]

    def drug(self, name: str) -> DrugGroup:
        """A drug group by name; `self` is the policy's own drug."""
        return self.policy.own_drug if name == "self" else self.policy.drugs[name]

    def answer(self, clause_id: str) -> Answer | None:
        """The documentation answer for this clause (DTR), if any was given for this policy."""
        return self.record.answers.get(f"{self.policy.key}:{clause_id}") or self.record.answers.get(clause_id)

    def other_drafts(self) -> tuple[MedicationFact, ...]:
        """Draft orders other than the one evaluated: they count as concurrent medications (contract §3)."""
        return tuple(d for d in self.record.drafts if d.ref != self.order.ref)

    def cached(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """Memoise work shared by several clauses (BSA, dose history) for this one evaluation."""
        if key not in self.memo:
            self.memo[key] = compute()
        return self.memo[key]
