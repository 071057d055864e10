"""Diagnosis leaves (clauses.md §0.4): Conditions and the order's reason, by value set."""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from ...record import Code
from ..context import EvalContext
from ..criterion import Criterion
from ..registry import leaf_kind
from ..status import Result, Status
from .documentation import or_answered
from .labs import describe, observations_in, qualitative


def _on_record(ctx: EvalContext) -> tuple[tuple[str, Code], ...]:
    """(where, code) for every code of the active Conditions."""
    conditions = ctx.record.conditions
    return ctx.derived(conditions, "condition_codes",
                       lambda: tuple((cond.ref, code) for cond in conditions or () for code in cond.codes))


def _reasons(ctx: EvalContext) -> list[tuple[str, Code]]:
    return [(f"{ctx.order.ref} reasonCode", code) for code in ctx.order.reason_codes]


def _hits(coded: Iterable[tuple[str, Code]], ctx: EvalContext, names: list[str]) -> list[str]:
    sets = [ctx.value_set(n) for n in names]
    return [f"{where}: {code.code} {code.display}".strip() for where, code in coded
            if any(vs.matches(code) for vs in sets)]


def _diagnosed(ctx: EvalContext, names: list[str]) -> list[str]:
    """`_hits` over the Conditions' codes, then the order's reason codes. The Conditions' part is kept with them
    (`EvalContext.derived`), by policy and value-set names: a policy asks about the same few value sets in many
    rows, and the same chart comes again."""
    if not names:
        return []
    key = ("hits", ctx.policy.key, tuple(names))
    found = list(ctx.derived(ctx.record.conditions, key, lambda: tuple(_hits(_on_record(ctx), ctx, names))))
    reasons = _reasons(ctx)
    return found + _hits(reasons, ctx, names) if reasons else found


def _extent(params: Mapping[str, Any], ctx: EvalContext) -> str | None:
    """Evidence that a required extent (metastases, stage) is on record, or None."""
    hits = _diagnosed(ctx, params.get("valueSets", []))
    if hits:
        return hits[0]
    for spec in params.get("observations", ()):
        pattern = re.compile(spec["valuePattern"], re.I) if spec.get("valuePattern") else None
        values = ctx.value_set(spec["valueCodes"]) if spec.get("valueCodes") else None
        for obs in observations_in(ctx, spec["valueSet"]):
            coded = values is not None and any(values.matches(c) for c in obs.value_codes)
            texts = [obs.value_text, *(c.code for c in obs.value_codes), *(c.display for c in obs.value_codes)]
            if coded or (pattern and any(t and pattern.search(t) for t in texts)):
                return describe(obs)
    return None


@leaf_kind("diagnosis", reads=("conditions", "observations"))
def evaluate_diagnosis(criterion: Criterion, ctx: EvalContext) -> Result:
    """params: `valueSets` (met), `vague` (a less specific code: unknown), `extent` (a required extent
    of disease: metastases or stage, else unknown), `lab` (a molecular subtype read from an Observation),
    `absentIs` ("unknown" where only documentation can make the clause not met), `recentDrug` {any, days}
    (a drug given within that many days makes the diagnosis attributable, else unknown), and for a
    purpose-of-use clause `groupedWith` (a drug ordered with this one shows the purpose); `conflicting`
    (a specific subtype, or the other purpose, that rules the clause out when no wanted code is present),
    `answerable` (a documentation answer decides what the record leaves unknown)."""
    return or_answered(criterion, ctx, _diagnosis(criterion.params, ctx))


def _diagnosis(p: Mapping[str, Any], ctx: EvalContext) -> Result:
    label = " or ".join(ctx.value_set(n).text for n in p["valueSets"])
    if "groupedWith" in p:
        decided = _purpose(p, ctx)
        if decided is not None:
            return decided
    if ctx.record.conditions is None and not ctx.order.reason_codes:
        return Result.unknown(f"diagnosis: {label} (conditions could not be read)")
    hits = _diagnosed(ctx, p["valueSets"])
    if hits:
        doubt = _diagnosed(ctx, p.get("contradictedBy", []))
        if doubt:
            # e.g. PPMS coded beside RRMS or SPMS (clauses.md III.B): the record contradicts itself.
            return Result.unknown(f"which diagnosis is current: {label} or {', '.join(doubt)}", evidence=hits + doubt)
        return _qualify(p, ctx, hits, label)
    conflicting = _diagnosed(ctx, p.get("conflicting", []))
    if conflicting:
        return Result.not_met(*(f"{c} (a different subtype)" for c in conflicting))
    vague = _diagnosed(ctx, p.get("vague", []))
    if vague:
        return Result.unknown(f"a specific diagnosis: {label}", evidence=[f"only {v} is on record" for v in vague])
    if ctx.record.conditions is None or p.get("absentIs") == "unknown":
        return Result.unknown(f"diagnosis: {label}")
    return Result.not_met(f"no {label} diagnosis on record")


def _purpose(p: Mapping[str, Any], ctx: EvalContext) -> Result | None:
    """Why the drug is ordered: a conflicting reason on the order, then grouping with the partner drug's
    order, then the coded reason; a conflicting diagnosis on record only when nothing shows this purpose."""
    conflicting = p.get("conflicting", [])
    on_order = _hits(_reasons(ctx), ctx, conflicting)
    if on_order:
        return Result.not_met(*on_order)
    if "groupedWith" in p:
        group = ctx.drug(p["groupedWith"])
        same = [m for m in [*ctx.other_drafts(), *(ctx.record.medications or ())] if group.matches(m) and (
            m.source == "draft" or (ctx.order.group is not None and m.group == ctx.order.group))]
        if same:
            return Result.met(f"{same[0].ref}: ordered with {group.display} ({same[0].source})")
    if _diagnosed(ctx, p["valueSets"]):
        return None
    elsewhere = _diagnosed(ctx, conflicting)
    if elsewhere:
        return Result.not_met(*elsewhere)
    return None


def _recent_drug(spec: Mapping[str, Any], ctx: EvalContext) -> Result | None:
    """None when one of the drugs was given within `days` days of the order; else why it stays unknown."""
    groups = [ctx.drug(n) for n in spec["any"]]
    names = " or ".join(g.display for g in groups)
    if not ctx.record.has("medicationAdministrations"):
        return Result.unknown(f"the {names} given in the {spec['days']} day(s) before")
    since = ctx.order_date.toordinal() - spec["days"]
    for med in ctx.record.medications or ():
        if med.source == "administration" and med.start and any(g.matches(med) for g in groups) \
                and since <= med.start.toordinal() <= ctx.order_date.toordinal():
            return Result.met(f"{med.ref}: {med.text or names} given {med.start}")
    return Result.unknown(f"which {names} was given in the {spec['days']} day(s) before")


def _qualify(p: Mapping[str, Any], ctx: EvalContext, hits: list[str], label: str) -> Result:
    if "extent" in p:
        extent = _extent(p["extent"], ctx)
        if extent is None:
            return Result.unknown(p["extent"].get("text", "extent of disease"), evidence=hits)
        hits = hits + [extent]
    if "lab" in p:
        spec = p["lab"]
        readings = [(obs, qualitative(obs)) for obs in observations_in(ctx, spec["valueSet"])]
        readings = [(obs, r) for obs, r in readings if r is not None]
        if not readings:
            return Result.unknown(f"{ctx.value_set(spec['valueSet']).text} result", evidence=hits)
        obs, positive = readings[0]
        said = f"{describe(obs)} ({'positive' if positive else 'negative'})"
        if positive != (spec["expect"] == "positive"):
            return Result.not_met(*hits, said)
        hits = hits + [said]
    if "recentDrug" in p:
        given = _recent_drug(p["recentDrug"], ctx)
        if given.status is not Status.MET:
            return Result.unknown(*given.missing, evidence=hits)
        hits = hits + given.evidence
    return Result.met(*hits)
