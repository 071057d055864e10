"""Documentation answers against record data, for leaves the record can also decide.

The rule (contract §6), applied to every leaf with a yes/no answer on file:
- the record says nothing (unknown): the answer decides (true = met, false = not met);
- the record and the answer agree: the record's result stands;
- they disagree: the record wins only where it is newer than the answer, i.e. the evaluator dated its
  evidence (`Result.as_of`) after the answer was authored. A record result with no date cannot show it is
  newer, so the answer wins; on the same day the answer wins too (the person answering saw that record).
Quantity, date and coding answers are not applied here: the kinds that read them (e.g. a documented baseline
score) look them up themselves through `EvalContext.answer`.
"""
from __future__ import annotations

from .context import EvalContext
from .criterion import Criterion
from .status import Result, Status


def reconcile(criterion: Criterion, result: Result, ctx: EvalContext) -> Result:
    """The leaf's result once its yes/no documentation answer, if any, is taken into account."""
    answer = ctx.answer(criterion.id)
    if answer is None or not isinstance(answer.value, bool):
        return result
    said = f"documented: {'yes' if answer.value else 'no'} ({answer.source or 'documentation answer'}"
    said += f", {answer.authored})" if answer.authored else ")"
    answered = Result.met(said) if answer.value else Result.not_met(said)
    if result.status is Status.UNKNOWN:
        answered.evidence += result.evidence
        return answered
    if (result.status is Status.MET) == answer.value:
        return result
    record_newer = result.as_of is not None and answer.authored is not None and result.as_of > answer.authored
    if record_newer:
        result.evidence.append(f"record ({result.as_of}) is newer than the answer {said}")
        return result
    answered.evidence.append("the answer is newer than the record: " + "; ".join(result.evidence))
    return answered
