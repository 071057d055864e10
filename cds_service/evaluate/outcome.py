"""One order under one policy: phase, the trace of every node, and the decision (clauses.md §0.6)."""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from typing import TYPE_CHECKING, Any

from ..record import MedicationFact, PatientRecord
from .context import EvalContext
from .engine import TraceEntry, Tracer
from .phase import select_phase
from .status import Status, all_of

if TYPE_CHECKING:
    from ..policies import Policy


class Decision(StrEnum):
    NOT_COVERED = "not-covered"
    CRITERIA_MET = "criteria-met"
    DOCUMENTATION_NEEDED = "documentation-needed"
    CRITERIA_NOT_MET = "criteria-not-met"


_RANK = {Status.MET: 2, Status.UNKNOWN: 1, Status.NOT_MET: 0}
_STATUSES = tuple(_RANK)


@dataclass
class Evaluation:
    """Everything the response layer renders for one evaluated order. The trace is final once this is built:
    the views of it below (by id, by status) are worked out once, on first use."""

    policy: Policy
    order: MedicationFact
    phase: str
    phase_reason: str
    decision: Decision
    trace: list[TraceEntry]
    recognised_by: str = "code"
    exclusion: TraceEntry | None = None
    referral: TraceEntry | None = None
    not_addressed: bool = False
    unreadable: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def by_id(self) -> dict[str, TraceEntry]:
        """Trace entries by clause id, built once (the card renderer looks up ancestors of every entry)."""
        return {e.id: e for e in self.trace}

    @cached_property
    def _by_status(self) -> dict[Status, list[TraceEntry]]:
        """The trace split by status in one pass (the renderer asks for not-met and unknown rows several times)."""
        out: dict[Status, list[TraceEntry]] = {status: [] for status in _STATUSES}
        for e in self.trace:
            out[e.status].append(e)
        return out

    @cached_property
    def _ids_by_status(self) -> dict[Status, frozenset[str]]:
        rows = self.by_id.items()
        return {status: frozenset({clause for clause, e in rows if e.status is status}) for status in _STATUSES}

    def ids_with(self, status: Status) -> frozenset[str]:
        """Clause ids whose entry (in `by_id`) has this status: the renderer tests each row's ancestors against
        them with one set operation instead of a look-up per ancestor."""
        return self._ids_by_status[status]

    @property
    def breaches(self) -> list[TraceEntry]:
        return [e for e in self._by_status[Status.NOT_MET] if e.breach]

    def entries(self, status: Status) -> list[TraceEntry]:
        return list(self._by_status[status])

    def unknown_leaves(self) -> list[TraceEntry]:
        """Leaves whose status is unknown: each becomes a question of the documentation form."""
        return [e for e in self._by_status[Status.UNKNOWN] if e.criterion.kind is not None
                and e.criterion.kind != "referral"]

    def trace_json(self) -> dict[str, Any]:
        """The evaluation trace of contract §5."""
        out = {
            "order": self.order.ref,
            "policy": self.policy.key,
            "policyNumber": self.policy.number,
            "phase": self.phase,
            "decision": self.decision.value,
            "criteria": [e.to_json() for e in self.trace],
        }
        if self.recognised_by != "code":
            out["recognisedBy"] = self.recognised_by
        return out


def _run_phase(tracer: Tracer, policy: Policy, phase: str) -> Status:
    block = policy.decision[phase]
    statuses = [tracer.evaluate(policy.roots[block["root"]])]
    statuses += [tracer.evaluate(policy.roots[i]) for i in block.get("alongside", ())]
    return all_of(statuses)


def _indications_all_not_met(tracer: Tracer) -> bool:
    indications = [e for e in tracer.entries if e.criterion.role == "indication"]
    return bool(indications) and all(e.status is Status.NOT_MET for e in indications)


def evaluate_order(policy: Policy, record: PatientRecord, order: MedicationFact, recognised_by: str = "code",
                   phase: str | None = None) -> Evaluation:
    """Evaluate one draft order against its policy and decide (not covered / met / not met / documentation)."""
    ctx = EvalContext(record=record, order=order, policy=policy)
    if phase is None:
        phase, why = select_phase(ctx)
    else:
        why = "phase given by the caller"
    ctx.phase = phase
    tracer = Tracer(ctx)
    status = _run_phase(tracer, policy, phase)
    other = policy.decision[phase].get("alsoEvaluate")
    receiving = policy.decision[phase].get("alsoEvaluateUnlessMet", ())
    if other and status is not Status.MET and not _any_met(tracer, receiving):
        # A patient on the drug elsewhere (continued, receiving not shown) may still meet the initial criteria.
        alt = Tracer(EvalContext(record=record, order=order, policy=policy, phase="initial", memo=ctx.memo))
        alt_status = _run_phase(alt, policy, "initial")
        if _RANK[alt_status] > _RANK[status]:
            tracer.entries += alt.entries
            tracer.by_id.update(alt.by_id)
            phase, status, why = "initial", alt_status, why + "; the initial criteria give the better path"
            ctx.phase = "initial"
        else:
            tracer.entries += [e for e in alt.entries if e.id not in tracer.by_id]
    exclusion = None
    for clause in policy.decision.get("exclusions", ()):
        if tracer.evaluate(policy.roots[clause]) is Status.MET:
            exclusion = tracer.by_id[clause]
    for clause in policy.decision.get("scope", ()):
        tracer.evaluate(policy.roots[clause])
    referral = None
    if exclusion is None and status is Status.NOT_MET and policy.decision[phase].get("referral"):
        clause = policy.decision[phase]["referral"]
        tracer.evaluate(policy.roots[clause])
        referral = tracer.by_id[clause]
        referral.referral = _first_referral(tracer, clause)
    if exclusion is not None:
        decision = Decision.NOT_COVERED
    elif status is Status.MET and _exclusion_undecided(tracer, policy):
        # An exclusion the record cannot rule out (e.g. no recent neutrophil count) is never silently passed:
        # the request needs documentation before it can be called met.
        decision = Decision.DOCUMENTATION_NEEDED
    else:
        decision = {Status.MET: Decision.CRITERIA_MET, Status.NOT_MET: Decision.CRITERIA_NOT_MET,
                    Status.UNKNOWN: Decision.DOCUMENTATION_NEEDED}[status]
    return Evaluation(policy=policy, order=order, phase=phase, phase_reason=why, decision=decision,
                      trace=tracer.entries, recognised_by=recognised_by, exclusion=exclusion, referral=referral,
                      not_addressed=_indications_all_not_met(tracer), unreadable=record.unreadable)


def _exclusion_undecided(tracer: Tracer, policy: Policy) -> bool:
    """True when an exclusion leaf (referral rows aside, which never decide) is unknown."""
    rows = policy.tree.within(tuple(policy.decision.get("exclusions", ())))
    for e in tracer.entries:
        if e.status is Status.UNKNOWN and e.id in rows and e.criterion.kind not in (None, "referral"):
            return True
    return False


def _any_met(tracer: Tracer, clause_ids) -> bool:
    """True when one of the clauses was evaluated and met (clauses.md note 1: the better path is looked for
    only when the receiving clause II.x.1 is not met, never for a patient who fails the response criteria)."""
    return any(tracer.by_id[c].status is Status.MET for c in clause_ids if c in tracer.by_id)


def _first_referral(tracer: Tracer, clause: str) -> dict[str, Any] | None:
    """The referral target to show: the off-label route (last referral leaf) when the use is not listed."""
    found = [e.referral for e in tracer.entries if e.referral and e.id.startswith(clause)]
    return found[-1] if found else None
