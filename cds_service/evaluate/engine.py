"""Walk a criteria tree over the facts: Kleene combinators, guards, and a trace of every node."""
from __future__ import annotations

from typing import Any

from .answers import reconcile
from .context import EvalContext
from .criterion import Criterion, Predicate
from .registry import GUARD_KINDS, LEAF_KINDS
from .status import Result, Status, all_of, any_of, negate

_STATUS_TEXT = {status: status.value for status in Status}  # Enum.value is a Python-level property: read it once
_OWN_ANSWERS = frozenset({"referral", "documentation"})  # kinds that read their own answers (or never decide)


class TraceEntry:
    """One evaluated node, as the trace of contract §5 reports it.

    A plain slotted class: one is made per node on every call, and a dataclass's default factories and
    `__post_init__` cost three calls each time."""

    __slots__ = ("criterion", "status", "evidence", "missing", "breach", "referral", "id")

    def __init__(self, criterion: Criterion) -> None:
        self.criterion = criterion
        self.id = criterion.id  # stored: the renderer reads every entry's id many times
        self.status = Status.UNKNOWN
        self.evidence: list[str] = []
        self.missing: list[str] = []
        self.breach: dict[str, Any] | None = None
        self.referral: dict[str, Any] | None = None

    def __repr__(self) -> str:
        return f"TraceEntry({self.id!r}, {self.status.value})"

    def to_json(self) -> dict[str, Any]:
        criterion = self.criterion
        out: dict[str, Any] = {"id": self.id, "status": _STATUS_TEXT[self.status], "text": criterion.text}
        if criterion.kind:
            out["kind"] = criterion.kind
        if self.evidence:
            out["evidence"] = self.evidence
        if self.missing:
            out["missing"] = self.missing
        if self.breach:
            out["breach"] = self.breach
        if self.referral:
            out["referral"] = self.referral
        return out


class Tracer:
    """Evaluates nodes and records them in document order (parents before children)."""

    def __init__(self, ctx: EvalContext):
        self.ctx = ctx
        self.entries: list[TraceEntry] = []
        self.by_id: dict[str, TraceEntry] = {}

    def evaluate(self, node: Criterion) -> Status:
        entry = TraceEntry(node)
        self.entries.append(entry)
        self.by_id[node.id] = entry
        guard, why = Status.MET, ""
        if node.requires is not None:
            guard, why = self.predicate(node.requires)
            if guard is Status.NOT_MET:
                entry.status = Status.NOT_MET
                entry.evidence.append(f"does not apply: {why}")
                return entry.status
        applies, why_applies = Status.MET, ""
        if node.applies_if is not None:
            applies, why_applies = self.predicate(node.applies_if)
            if applies is Status.NOT_MET:
                entry.status = Status.MET
                entry.evidence.append(f"not applicable: {why_applies}")
                return guard  # met or unknown: the guard AND this met row
        own = self._own(node, entry)
        if applies is Status.UNKNOWN and own is not Status.MET:
            own = Status.UNKNOWN
            entry.missing.append(f"whether it applies: {why_applies}")
        if guard is Status.UNKNOWN:
            entry.missing.append(why)
            own = Status.NOT_MET if own is Status.NOT_MET else Status.UNKNOWN  # Kleene AND with an unknown guard
        entry.status = own
        return own

    def _own(self, node: Criterion, entry: TraceEntry) -> Status:
        if node.derived is not None:
            return self._derived(node, entry)
        if node.combinator:
            statuses = [self.evaluate(child) for child in node.children]
            return all_of(statuses) if node.combinator == "all_of" else any_of(statuses)
        result: Result = LEAF_KINDS[node.kind].evaluate(node, self.ctx)
        # Referral rows never decide (clauses.md §0.3); documentation rows read their own answers (with params).
        if node.kind not in _OWN_ANSWERS and self.ctx.record.answers:
            result = reconcile(node, result, self.ctx)
        if result.evidence:
            entry.evidence.extend(result.evidence)
        if result.missing:
            entry.missing.extend(result.missing)
        entry.breach, entry.referral = result.breach, result.referral
        return result.status

    def _derived(self, node: Criterion, entry: TraceEntry) -> Status:
        """A derived exclusion row: applies iff the named clause is not met (in its phase only)."""
        target, phase = node.derived["negates"], node.derived.get("phase")
        if phase and self.ctx.phase != phase:
            entry.evidence.append(f"applies to {phase} requests only")
            return Status.NOT_MET
        source = self.by_id.get(target)
        status = source.status if source else self.evaluate(self.ctx.policy.nodes[target])
        entry.evidence.append(f"{target} is {_STATUS_TEXT[status]}")
        return negate(status)

    def predicate(self, pred: Predicate) -> tuple[Status, str]:
        """A guard's truth value and a phrase saying why, from a guard kind or any leaf kind."""
        guard = GUARD_KINDS.get(pred.kind)
        if guard is not None:
            status, why = guard.evaluate(pred, self.ctx)
        else:
            result = LEAF_KINDS[pred.kind].evaluate(pred.probe, self.ctx)
            status = result.status
            why = "; ".join(result.evidence or result.missing) or pred.text
        if pred.negate:
            status = negate(status)
        label = pred.text or pred.kind
        return status, f"{label} ({why})" if why and why != label else label
