"""Course-of-therapy leaves: how long the drug has been given, and how many lines came before."""
from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta

from ..context import EvalContext
from ..criterion import Criterion
from ..registry import leaf_kind
from ..status import Result
from .documentation import or_answered
from .medications import received_before

REGIMEN_GAP_DAYS = 14  # clauses.md §0.5.10: agents started within 14 days form one regimen


# Other readings of "how long": `mode` names one (cycle length, the order's span), registered by their modules.
DURATION_MODES: dict[str, Callable[[Criterion, EvalContext], Result]] = {}


@leaf_kind("therapy_duration", reads=("medicationAdministrations",), modes=DURATION_MODES)
def evaluate_duration(criterion: Criterion, ctx: EvalContext) -> Result:
    """params: `lessThanDays` or `atLeastDays` since the first recorded administration of `drug`,
    or a `mode` of DURATION_MODES."""
    p = criterion.params
    if "mode" in p:
        return DURATION_MODES[p["mode"]](criterion, ctx)
    drug = ctx.drug(p.get("drug", "self"))
    history = ctx.given_doses(drug, before=ctx.order_date)
    if not history:
        return Result.unknown(f"date of the first {drug.display} dose")
    days = (ctx.order_date - history[0].day).days
    said = f"first {drug.display} dose on record {history[0].day} ({days} days before the order)"
    if "lessThanDays" in p:
        return Result.met(said) if days < p["lessThanDays"] else Result.not_met(said)
    return Result.met(said) if days >= p["atLeastDays"] else Result.not_met(said)


def count_prior_lines(ctx: EvalContext, drug_names: list[str]) -> tuple[int, list[str]]:
    """Regimens before the order: explicit groups first, else agents started within 14 days of each other.
    Memoised per list of drugs: several rows of a policy count the lines of the same agents."""
    lines, evidence = ctx.cached(("prior_lines", tuple(drug_names)), lambda: _count_prior_lines(ctx, drug_names))
    return lines, list(evidence)


def _count_prior_lines(ctx: EvalContext, drug_names: list[str]) -> tuple[int, tuple[str, ...]]:
    starts: list[tuple[date, str, str | None]] = []
    for name in drug_names:
        for med in received_before(ctx, ctx.drug(name), before=ctx.order_date - timedelta(days=1)):
            if med.start is not None:
                starts.append((med.start, name, med.group))
    starts.sort()
    lines, evidence, regimen_start, agents, groups = 0, [], None, set(), set()
    for day, name, group in starts:
        if group and group in groups:
            continue
        if regimen_start is not None and (name in agents or (day - regimen_start).days < REGIMEN_GAP_DAYS):
            agents.add(name)
            continue
        lines += 1
        regimen_start, agents = day, {name}
        if group:
            groups.add(group)
        evidence.append(f"line {lines}: {ctx.drug(name).display} from {day}")
    return lines, tuple(evidence)


@leaf_kind("line_of_therapy", reads=("medicationRequests", "medicationAdministrations", "medicationStatements",
                                     "medicationDispenses"))
def evaluate_line(criterion: Criterion, ctx: EvalContext) -> Result:
    """params: `drugs` (the disease's antineoplastic agents), `minPrior` (≥ n prior lines: met when counted,
    never not-met from absence) and/or `maxPrior` (not-met when more prior lines are on record);
    `answerable`: a documentation answer decides what the history leaves unknown."""
    return or_answered(criterion, ctx, _line(criterion.params, ctx))


def _line(p, ctx: EvalContext) -> Result:
    if ctx.record.medications is None:
        return Result.unknown("prior lines of therapy (medication history could not be read)")
    lines, evidence = count_prior_lines(ctx, p["drugs"])
    evidence = evidence or ["no prior line of therapy on record"]
    if "maxPrior" in p and lines > p["maxPrior"]:
        return Result.not_met(f"{lines} prior line(s) on record (at most {p['maxPrior']} allowed)", *evidence)
    if "minPrior" in p:
        if lines >= p["minPrior"]:
            return Result.met(f"{lines} prior line(s) on record", *evidence)
        return Result.unknown(f"at least {p['minPrior']} prior line(s) of therapy", evidence=evidence)
    return Result.unknown(f"documentation that this is line {p['maxPrior'] + 1} of therapy", evidence=evidence)
