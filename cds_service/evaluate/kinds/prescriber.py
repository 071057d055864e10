"""Prescriber specialty: met when the requester is in the set; otherwise unknown, never not-met."""
from __future__ import annotations

from ..context import EvalContext
from ..criterion import Criterion
from ..registry import leaf_kind
from ..status import Result


@leaf_kind("prescriber_specialty", reads=("user", "practitionerRoles"))
def evaluate_specialty(criterion: Criterion, ctx: EvalContext) -> Result:
    """params: `valueSets`. A consultation cannot be seen in the record, so no match is unknown."""
    sets = [ctx.value_set(n) for n in criterion.params["valueSets"]]
    wanted = " or ".join(vs.text for vs in sets)
    specialties = ctx.record.specialties
    if specialties is None:
        return Result.unknown(f"prescriber specialty ({wanted}) or a consultation")
    for code in specialties:
        if any(vs.matches(code) for vs in sets):
            return Result.met(f"prescriber specialty {code.code} {code.display}".strip())
    seen = ", ".join(sorted({c.code for c in specialties})) or "none on record"
    return Result.unknown(f"prescribed by or in consultation with: {wanted}",
                          evidence=[f"prescriber specialties on record: {seen}"])
