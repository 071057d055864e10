"""Kind -> evaluator. The closed grammar of leaf kinds (clauses.md §0.4) plus the guard-only kinds.

Adding a kind is one function and one `@leaf_kind` line; a policy naming an unknown kind, or a `mode` the
kind does not read, fails at load, never at request time.
"""
from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .context import EvalContext
    from .criterion import Criterion, Predicate
    from .status import Result, Status

    LeafEvaluator = Callable[[Criterion, EvalContext], Result]
    GuardEvaluator = Callable[[Predicate, EvalContext], tuple[Status, str]]


@dataclass(frozen=True)
class KindSpec:
    evaluate: Callable
    reads: tuple[str, ...]  # prefetch keys the kind reads, so a call fetches only what is needed
    # The `mode` params the kind reads (a live mapping: modules add modes after the kind registers), so a policy
    # naming an unknown mode fails at load; None when the kind has no modes. `mode_required`: no default reading.
    modes: Collection[str] | None = None
    mode_required: bool = False


LEAF_KINDS: dict[str, KindSpec] = {}
GUARD_KINDS: dict[str, KindSpec] = {}


def leaf_kind(name: str, reads: tuple[str, ...] = (), modes: Collection[str] | None = None,
              mode_required: bool = False) -> Callable:
    """Register a leaf evaluator `(criterion, ctx) -> Result` under a kind name, with the `mode`s it reads."""
    def register(fn: Callable) -> Callable:
        if name in LEAF_KINDS:
            raise ValueError(f"leaf kind {name!r} registered twice")
        LEAF_KINDS[name] = KindSpec(fn, reads, modes, mode_required)
        return fn
    return register


def guard_kind(name: str, reads: tuple[str, ...] = ()) -> Callable:
    """Register a guard-only predicate `(predicate, ctx) -> (Status, evidence)` (e.g. dose increase)."""
    def register(fn: Callable) -> Callable:
        if name in GUARD_KINDS:
            raise ValueError(f"guard kind {name!r} registered twice")
        GUARD_KINDS[name] = KindSpec(fn, reads)
        return fn
    return register


def reads_of(kind: str) -> tuple[str, ...]:
    spec = LEAF_KINDS.get(kind) or GUARD_KINDS.get(kind)
    return spec.reads if spec else ()
