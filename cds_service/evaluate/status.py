"""Three-valued results (met / not-met / unknown) and the Kleene combinators of clauses.md §0.3."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    MET = "met"
    NOT_MET = "not-met"
    UNKNOWN = "unknown"


def all_of(statuses: Iterable[Status]) -> Status:
    """Kleene AND: not-met wins, then unknown, else met."""
    seen = statuses if isinstance(statuses, list | tuple) else list(statuses)  # every status is still computed
    if Status.NOT_MET in seen:
        return Status.NOT_MET
    return Status.UNKNOWN if Status.UNKNOWN in seen else Status.MET


def any_of(statuses: Iterable[Status]) -> Status:
    """Kleene OR: met wins, then unknown, else not-met."""
    seen = statuses if isinstance(statuses, list | tuple) else list(statuses)
    if Status.MET in seen:
        return Status.MET
    return Status.UNKNOWN if Status.UNKNOWN in seen else Status.NOT_MET


_NEGATED = {Status.MET: Status.NOT_MET, Status.NOT_MET: Status.MET}


def negate(status: Status) -> Status:
    return _NEGATED.get(status, Status.UNKNOWN)


@dataclass
class Result:
    """What one leaf evaluator found: a status, the evidence for it, and what data is missing.

    `breach` carries the numbers of a dose cap the order exceeds (and the largest dose allowed),
    `referral` the policies a referral row names; both are rendered into cards later. `as_of` dates the
    evidence a decided result rests on, when the evaluator knows it (a newer record beats an older answer).
    """

    status: Status
    evidence: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    breach: dict[str, Any] | None = None
    referral: dict[str, Any] | None = None
    as_of: date | None = None

    @classmethod
    def met(cls, *evidence: str, **extra: Any) -> Result:
        return cls(Status.MET, list(evidence), **extra)

    @classmethod
    def not_met(cls, *evidence: str, **extra: Any) -> Result:
        return cls(Status.NOT_MET, list(evidence), **extra)

    @classmethod
    def unknown(cls, *missing: str, evidence: Iterable[str] = (), **extra: Any) -> Result:
        return cls(Status.UNKNOWN, list(evidence), list(missing), **extra)
