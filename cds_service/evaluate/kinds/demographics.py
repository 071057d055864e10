"""Age (clauses.md §0.4): completed years at the order date, from a possibly partial birthDate."""
from __future__ import annotations

from datetime import date

from ..context import EvalContext
from ..criterion import Criterion
from ..registry import leaf_kind
from ..status import Result


def completed_years(born: date, on: date) -> int:
    """Completed years on a day; the birthday itself counts (the 18th birthday is ≥ 18)."""
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


def age_range(ctx: EvalContext) -> tuple[int, int] | None:
    """Youngest and oldest age consistent with a partial birthDate, at the order date."""
    birth = ctx.record.birth_date
    if birth is None:
        return None
    on = ctx.order_date
    return completed_years(birth.latest(), on), completed_years(birth.earliest(), on)


def is_adult(ctx: EvalContext) -> bool | None:
    ages = age_range(ctx)
    if ages is None:
        return None
    return True if ages[0] >= 18 else False if ages[1] < 18 else None


@leaf_kind("age", reads=("patient",))
def evaluate_age(criterion: Criterion, ctx: EvalContext) -> Result:
    """params: `min` (age ≥ min) and/or `under` (age < under)."""
    ages = age_range(ctx)
    if ages is None:
        return Result.unknown("date of birth")
    low, high = ages
    minimum, under = criterion.params.get("min"), criterion.params.get("under")

    def passes(age: int) -> bool:
        return (minimum is None or age >= minimum) and (under is None or age < under)

    said = f"{ctx.record.patient_ref}: age {low}" if low == high else f"{ctx.record.patient_ref}: age {low}-{high}"
    said += f" on {ctx.order_date}"
    if passes(low) and passes(high):
        return Result.met(said)
    if not passes(low) and not passes(high):
        return Result.not_met(said)
    return Result.unknown("a full date of birth", evidence=[said + " (partial date of birth)"])
