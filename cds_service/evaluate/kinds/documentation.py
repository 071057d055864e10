"""Documentation and referral rows: decided only by an answer, or never decided at all."""
from __future__ import annotations

from ..context import EvalContext
from ..criterion import Criterion
from ..registry import leaf_kind
from ..status import Result, Status


def answered(criterion: Criterion, ctx: EvalContext) -> Result | None:
    """A boolean documentation answer for this clause, as a result (None when there is none).

    Optional params: `clause` reads the answer given for another clause (a status documented once and
    used by several rows, e.g. CR/CRi), `expect` is the answer that makes the row met (default yes),
    and `anyAnswer` makes the row met by either answer (the policy asks that a status be documented).
    """
    p = criterion.params
    clause = p.get("clause", criterion.id)
    answer = ctx.answer(clause)
    if answer is None or not isinstance(answer.value, bool):
        return None
    said = f"documented: {'yes' if answer.value else 'no'} ({answer.source or 'documentation answer'}"
    said += f", {answer.authored})" if answer.authored else ")"
    if clause != criterion.id:
        said = f"{clause} {said}"
    if p.get("anyAnswer") or answer.value == p.get("expect", True):
        return Result.met(said)
    return Result.not_met(said)


def or_answered(criterion: Criterion, ctx: EvalContext, result: Result) -> Result:
    """For rows the record may leave unknown ("coded, or documented"): with `answerable`, an answer decides."""
    if result.status is not Status.UNKNOWN or not criterion.params.get("answerable"):
        return result
    found = answered(criterion, ctx)
    if found is None:
        return result
    found.evidence = [*result.evidence, *found.evidence]
    return found


def question_text(criterion: Criterion) -> str:
    question = criterion.question or {}
    return question.get("text") or criterion.text


@leaf_kind("documentation")
def evaluate_documentation(criterion: Criterion, ctx: EvalContext) -> Result:
    """Met or not met only from a documentation answer; otherwise unknown, naming what to document."""
    return answered(criterion, ctx) or Result.unknown(question_text(criterion))


@leaf_kind("referral", reads=("coverage",))
def evaluate_referral(criterion: Criterion, ctx: EvalContext) -> Result:
    """Always unknown: names the policy a request goes to, for the coverage's line of business. With
    `redirect` (a clause of the same policy), a request this row forbids: not-met, pointing at that clause
    (dexrazoxane II.B.1: no re-authorization for extravasation, evaluate I.B)."""
    if "redirect" in criterion.params:
        target = criterion.params["redirect"]
        return Result.not_met(f"not renewable: a new request is evaluated under {target}",
                              referral={"redirect": target})
    targets = dict(criterion.params.get("targets", {}))
    lobs = {c.line_of_business for c in ctx.record.coverages or () if c.line_of_business}
    chosen = {lob: targets[lob] for lob in sorted(lobs) if lob in targets}
    referral = {"targets": targets}
    if chosen:
        referral["lineOfBusiness"] = chosen
    said = ", ".join(f"{t} ({lob})" for lob, t in (chosen or targets).items())
    return Result.unknown(evidence=[f"refer to {said}"], referral=referral)
