"""A guard on another clause's status: for "specific over general" conflicts inside one seed.

Ixazomib I.A.4 ("has received at least one prior therapy") is waived when I.A.5.d is met through its
primary-treatment arm (clauses.md §2, I.A.4). The guard evaluates the named clauses in a scratch trace,
so the order of clauses in the file does not matter and the main trace is not touched.
"""
from __future__ import annotations

from ..context import EvalContext
from ..criterion import Predicate
from ..engine import Tracer
from ..registry import guard_kind
from ..status import Status, all_of


@guard_kind("clause_status")
def clauses_met(pred: Predicate, ctx: EvalContext) -> tuple[Status, str]:
    """params: `clauses` (ids of this policy): true when every one is met (Kleene AND of their statuses)."""
    tracer = Tracer(ctx)
    statuses = {cid: tracer.evaluate(ctx.policy.nodes[cid]) for cid in pred.params["clauses"]}
    return all_of(statuses.values()), ", ".join(f"{cid} {s.value}" for cid, s in statuses.items())
