"""lab_threshold modes for panels and biomarker combinations (clauses.md §0.4 lab_threshold).

`panel`: several tests, each against an absolute limit (counts normalised across cells/mm³, 10*3/uL and
10*9/L) or a multiple of its upper limit of normal (`Observation.referenceRange.high`), combined with
Kleene any/all: ANC or platelets below a floor; AST/ALT/bilirubin tiers.
`biomarker`: qualitative markers read from codes, text, ordinal scores (HER2 IHC 0-3+, with an ISH reflex for
the equivocal score) or a percentage, combined all/any: HR-negative, triple-negative, HER2-positive, BRCA.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ...record import ObservationFact, Quantity
from ..context import EvalContext
from ..criterion import Criterion
from ..status import Result, Status, all_of, any_of
from .labs import LAB_MODES, OPS, describe, observations_in, qualitative

# Count units as cells per µL: 1,500/mm³ = 1.5 × 10*3/uL = 1.5 × 10*9/L.
_PER_UL = {
    "/mm3": 1.0, "/mm^3": 1.0, "/ul": 1.0, "/µl": 1.0, "{cells}/ul": 1.0, "cells/ul": 1.0, "cells/mm3": 1.0,
    "1/ul": 1.0, "10*3/ul": 1e3, "10^3/ul": 1e3, "k/ul": 1e3, "x10e3/ul": 1e3, "thou/ul": 1e3, "10*3/mm3": 1e3,
    "10*9/l": 1e3, "10^9/l": 1e3, "x10e9/l": 1e3, "g/l_cells": 1e3, "/l": 1e-6, "10*6/ul": 1e6,
}
_STATUS = {True: Status.MET, False: Status.NOT_MET, None: Status.UNKNOWN}
_WORDS = {">": "above", ">=": "at or above", "<": "below", "<=": "at or below"}


def _key(unit: str) -> str:
    return unit.replace(" ", "").lower()


def same_units(value: Quantity, limit: Quantity) -> tuple[float, float] | None:
    """Both quantities on one scale: counts by _PER_UL, anything else only when the units agree."""
    a, b = _key(value.unit), _key(limit.unit)
    if a in _PER_UL and b in _PER_UL:
        return value.value * _PER_UL[a], limit.value * _PER_UL[b]
    if a == b or not b:
        return value.value, limit.value
    return None


def _test(spec: Mapping[str, Any], ctx: EvalContext, max_age: int | None) -> tuple[bool | None, str]:
    """One test of a panel: (True / False / None, what was seen or what is missing)."""
    label = ctx.value_set(spec["valueSet"]).text
    found = [o for o in observations_in(ctx, spec["valueSet"], max_age) if o.value]
    window = f" within {max_age} days" if max_age else ""
    if not found:
        return None, f"{label}{window}" + (" with its reference range" if "uln" in spec else "")
    obs = found[0]
    op = OPS[spec["op"]]
    if "uln" in spec:
        if obs.reference_high is None:
            return None, f"{label} reference range (upper limit of normal) for {obs.ref}"
        pair = same_units(obs.value, obs.reference_high)
        if pair is None or pair[1] <= 0:
            return None, f"{label} in the unit of its reference range ({obs.ref})"
        ratio = pair[0] / pair[1]
        ok = op(ratio, float(spec["uln"]))
        said = f"{describe(obs)} = {ratio:.2f} × ULN ({obs.reference_high.value:g})"
        return ok, f"{said}, {'' if ok else 'not '}{_WORDS[spec['op']]} {spec['uln']:g} × ULN"
    limit = Quantity(float(spec["value"]), spec.get("unit", obs.value.unit))
    pair = same_units(obs.value, limit)
    if pair is None:
        return None, f"{label} in a unit comparable with {limit.unit} ({obs.ref} is in {obs.value.unit})"
    ok = op(*pair)
    return ok, f"{describe(obs)}, {'' if ok else 'not '}{_WORDS[spec['op']]} {limit.value:g} {limit.unit}"


def panel(params: Mapping[str, Any], ctx: EvalContext, criterion: Criterion) -> Result:
    """params: `any` (some test holds) and/or `all` (every test holds) of tests {valueSet, op, value + unit
    | uln}; `maxAgeDays` (clauses.md: CBC and liver tests within 14 days)."""
    max_age = params.get("maxAgeDays")
    evidence, missing, parts = [], [], []
    for group, combine in (("any", any_of), ("all", all_of)):
        if group not in params:
            continue
        statuses = []
        for spec in params[group]:
            ok, said = _test(spec, ctx, max_age)
            statuses.append(_STATUS[ok])
            (missing if ok is None else evidence).append(said)
        parts.append(combine(statuses))
    status = all_of(parts)
    if status is Status.UNKNOWN:
        return Result.unknown(*missing, evidence=evidence)
    return Result(status, evidence)


# --- biomarkers --------------------------------------------------------------------------------------------

def _ordinal(obs: ObservationFact, scores: Mapping[str, bool | None]) -> tuple[bool, bool | None]:
    """(matched, reading) of an ordinal score such as HER2 IHC 0 / 1+ / 2+ / 3+."""
    tokens = [obs.value_text, *(c.code for c in obs.value_codes), *(c.display for c in obs.value_codes)]
    if obs.value is not None:
        tokens.append(f"{obs.value.value:g}")
    for token in tokens:
        norm = re.sub(r"(?i)\bihc\b|\bscore\b|\s", "", token or "").lower()
        if norm in scores:
            return True, scores[norm]
    return False, None


def _marker(spec: Mapping[str, Any], ctx: EvalContext, max_age: int | None) -> tuple[bool | None, str]:
    label = ctx.value_set(spec["valueSet"]).text
    for obs in observations_in(ctx, spec["valueSet"], max_age):
        matched, reading = _ordinal(obs, spec.get("ordinal", {})) if spec.get("ordinal") else (False, None)
        if matched and reading is None and spec.get("reflex"):
            reflex = [(o, qualitative(o)) for o in observations_in(ctx, spec["reflex"], max_age)]
            reflex = [(o, r) for o, r in reflex if r is not None]
            if not reflex:
                return None, f"{ctx.value_set(spec['reflex']).text} ({describe(obs)} is equivocal)"
            o, r = reflex[0]
            return r, f"{describe(obs)} equivocal; {describe(o)} {'positive' if r else 'negative'}"
        if matched:
            if reading is None:
                return None, f"a conclusive {label} ({describe(obs)} is equivocal)"
            return reading, f"{describe(obs)} ({'positive' if reading else 'negative'})"
        reading = qualitative(obs)
        if reading is None and obs.value is not None and "positiveAtLeast" in spec:
            reading = obs.value.value >= float(spec["positiveAtLeast"])
        if reading is not None:
            return reading, f"{describe(obs)} ({'positive' if reading else 'negative'})"
    for key, reading in (("conditionPositive", True), ("conditionNegative", False)):
        if spec.get(key):
            vs = ctx.value_set(spec[key])
            for cond in ctx.record.conditions or ():
                code = vs.first_match(cond.codes)
                if code:
                    return reading, f"{cond.ref}: {code.code} {code.display}".strip()
    return None, f"{label} result"


def biomarker(params: Mapping[str, Any], ctx: EvalContext, criterion: Criterion) -> Result:
    """params: `markers` [{valueSet, ordinal?, reflex?, positiveAtLeast?, conditionPositive?, conditionNegative?}],
    `expect` (positive | negative), `combine` (all | any; default all)."""
    want = params["expect"] == "positive"
    combine = any_of if params.get("combine") == "any" else all_of
    statuses, evidence, missing = [], [], []
    for spec in params["markers"]:
        reading, said = _marker(spec, ctx, params.get("maxAgeDays"))
        statuses.append(Status.UNKNOWN if reading is None else _STATUS[reading == want])
        (missing if reading is None else evidence).append(said)
    status = combine(statuses)
    if status is Status.UNKNOWN:
        return Result.unknown(*missing, evidence=evidence)
    return Result(status, evidence)


LAB_MODES["panel"] = panel
LAB_MODES["biomarker"] = biomarker
