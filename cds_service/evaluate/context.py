"""What an evaluator may look at: the record, the order under evaluation, the policy's vocabularies."""
from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from datetime import date
from functools import cached_property
from typing import TYPE_CHECKING, Any

from ..dosing import GivenDose, given_doses
from ..record import Answer, Code, Facts, MedicationFact, ObservationFact, PatientRecord
from ..terminology import DrugGroup, ValueSet

_MISSING = object()

if TYPE_CHECKING:
    from ..policies import Policy


@dataclass
class EvalContext:
    record: PatientRecord
    order: MedicationFact
    policy: Policy
    phase: str = "initial"
    memo: dict[Hashable, Any] = field(default_factory=dict)

    @cached_property
    def order_date(self) -> date:
        """The date the order is for: its first dose, else authoredOn, else the evaluation date (read by most
        rows, so worked out once)."""
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

    def derived(self, facts: tuple | None, key: Hashable, compute: Callable[[], Any]) -> Any:
        """`cached` for work that depends on nothing but one data set's facts and `key` (an index over the
        observations, the body size on a day): kept with the facts (`record.Facts`), so the same chart arriving
        again, whose facts the fact cache hands back, does not redo it. Facts of another kind: this evaluation."""
        if facts.__class__ is not Facts:
            return self.cached(("derived", key), compute)
        memo = facts.derived()
        found = memo.get(key, _MISSING)
        if found is _MISSING:
            found = memo[key] = compute()
        return found

    def cached_for(self, key: Hashable, of: DrugGroup | ValueSet, compute: Callable[[], Any]) -> Any:
        """`cached` for work about one drug group or value set of the policy, keyed by the object's identity:
        these dataclasses hash field by field in Python, on every look-up."""
        slot = (key, id(of))
        hit = self.memo.get(slot)
        if hit is None or hit[0] is not of:
            hit = self.memo[slot] = (of, compute())
        return hit[1]

    def meds_of(self, drug: DrugGroup) -> tuple[MedicationFact, ...]:
        """The record's medications of one drug group, in record order: matched once per evaluation, since
        phase selection, prior therapy, lines of therapy and dose history all ask about the same few drugs."""
        return self.cached_for("meds", drug, lambda: tuple(m for m in self.record.medications or ()
                                                           if drug.matches(m)))

    def observations_in_set(self, value_set: ValueSet) -> tuple[ObservationFact, ...]:
        """The record's observations carrying a code of the value set, in record order."""
        observations = self.record.observations
        return self.derived(observations, ("in_set", value_set), lambda: tuple(
            (observations or ())[i] for i in self.positions_coded(value_set.matches)))

    def positions_coded(self, matches: Callable[[Code], bool]) -> list[int]:
        """Positions in `record.observations` of those carrying a code that `matches`, ascending. Each distinct
        code is tested once: a long record repeats a few dozen lab and vital-sign codes over thousands of
        observations."""
        observations = self.record.observations
        index = self.derived(observations, "observation_codes", lambda: _code_index(observations or ()))
        return sorted({i for code, where in index.values() if matches(code) for i in where})

    def given_doses(self, drug: DrugGroup, before: date | None = None) -> list[GivenDose] | None:
        """`dosing.given_doses` of the record, worked out once per drug and cutoff for this evaluation."""
        found = self.cached_for(("given", before), drug, lambda: given_doses(self.record, drug, before=before))
        return None if found is None else list(found)


def _code_index(observations: tuple[ObservationFact, ...]) -> dict[tuple[str, str], tuple[Code, list[int]]]:
    """(system, code) -> (the code, positions of the observations that carry it)."""
    index: dict[tuple[str, str], tuple[Code, list[int]]] = {}
    for i, obs in enumerate(observations):
        for code in obs.codes:
            key = (code.system, code.code)
            if key not in index:
                index[key] = (code, [i])
            else:
                index[key][1].append(i)
    return index
