"""Lab thresholds and qualitative results (clauses.md §0.4 lab_threshold), read from Observations."""
from __future__ import annotations

import operator
import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from ...record import ObservationFact
from ...terminology import ValueSet
from ..context import EvalContext
from ..criterion import Criterion
from ..registry import leaf_kind
from ..status import Result

POSITIVE_CODES = {"10828004", "POS", "H", "HH", "A", "DET", "52101004"}
NEGATIVE_CODES = {"260385009", "NEG", "N", "ND", "260415000"}
_POSITIVE_TEXT = re.compile(r"\b(positive|detected|present|amplified|pos)\b", re.I)
_NEGATIVE_TEXT = re.compile(r"\b(negative|not detected|absent|not amplified|neg)\b", re.I)
OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


def observations_in(ctx: EvalContext, value_set: str, max_age_days: int | None = None) -> list[ObservationFact]:
    """Observations coded in a value set, newest first, dated on or before the order (within a window)."""
    vs = ctx.value_set(value_set)
    found = ctx.cached_for("observations", vs, lambda: _coded_before(ctx, vs))
    if max_age_days is None:
        return list(found)
    since = ctx.order_date - timedelta(days=max_age_days)
    return [obs for obs in found if obs.effective is not None and obs.effective >= since]


def _coded_before(ctx: EvalContext, vs: ValueSet) -> tuple[ObservationFact, ...]:
    """Every observation of the value set dated on or before the order, newest first (the stable sort keeps
    record order among equal dates, so filtering this list by age gives what filtering first would)."""
    on = ctx.order_date
    out = [obs for obs in ctx.observations_in_set(vs) if obs.effective is None or obs.effective <= on]
    return tuple(sorted(out, key=lambda o: o.effective or on, reverse=True))


def qualitative(obs: ObservationFact) -> bool | None:
    """True for a positive result, False for negative, None when the result cannot be read."""
    codes = {c.code for c in (*obs.value_codes, *obs.interpretation)}
    if codes & NEGATIVE_CODES or (obs.value_text and _NEGATIVE_TEXT.search(obs.value_text)):
        return False
    if codes & POSITIVE_CODES or (obs.value_text and _POSITIVE_TEXT.search(obs.value_text)):
        return True
    return None


def describe(obs: ObservationFact) -> str:
    value = f"{obs.value.value:g} {obs.value.unit}" if obs.value else (obs.value_text or "coded result")
    return f"{obs.ref}: {value} on {obs.effective}"


def _qualitative(params: Mapping[str, Any], ctx: EvalContext, criterion: Criterion) -> Result:
    found = observations_in(ctx, params["valueSet"], params.get("maxAgeDays"))
    label = ctx.value_set(params["valueSet"]).text
    for obs in found:
        result = qualitative(obs)
        if result is None:
            continue
        expect = params["expect"] == "positive"
        said = f"{describe(obs)} ({'positive' if result else 'negative'})"
        return Result.met(said) if result == expect else Result.not_met(said)
    return Result.unknown(f"{label} result")


def _numeric(params: Mapping[str, Any], ctx: EvalContext, criterion: Criterion) -> Result:
    found = [o for o in observations_in(ctx, params["valueSet"], params.get("maxAgeDays")) if o.value]
    label = ctx.value_set(params["valueSet"]).text
    if not found:
        window = f" within {params['maxAgeDays']} days" if params.get("maxAgeDays") else ""
        return Result.unknown(f"{label}{window}")
    obs = found[0]
    ok = OPS[params["op"]](obs.value.value, params["value"])
    said = f"{describe(obs)} {'meets' if ok else 'fails'} {params['op']} {params['value']:g}"
    return Result.met(said) if ok else Result.not_met(said)


def _vs_baseline(params: Mapping[str, Any], ctx: EvalContext, criterion: Criterion) -> Result:
    """Latest score not above baseline: the latest on or before the first dose of the drug (or the answer)."""
    found = [o for o in observations_in(ctx, params["valueSet"]) if o.value and o.effective]
    label = ctx.value_set(params["valueSet"]).text
    history = ctx.given_doses(ctx.drug(params.get("drug", "self")))
    first_dose = history[0].day if history else None
    baseline = None
    if first_dose is not None:
        before = [o for o in found if o.effective <= first_dose]
        baseline = (before[0].value.value, f"baseline {describe(before[0])}") if before else None
    if baseline is None and params.get("baselineAnswer"):
        answer = ctx.answer(params["baselineAnswer"])
        if answer is not None and isinstance(answer.value, int | float) and not isinstance(answer.value, bool):
            baseline = (float(answer.value), f"baseline {answer.value:g} (documented for {params['baselineAnswer']})")
    latest = found[0] if found else None
    if baseline is None or latest is None or (first_dose and latest.effective <= first_dose):
        missing = [] if baseline else [f"baseline {label} (before the first dose)"]
        missing += [] if latest and (not first_dose or latest.effective > first_dose) else [f"current {label}"]
        return Result.unknown(*missing)
    said = f"{baseline[1]}; latest {describe(latest)}"
    return Result.met(said) if latest.value.value <= baseline[0] else Result.not_met(said)


# Further modes (multiples of ULN, count panels, biomarker combinations) register here from their own modules.
LAB_MODES = {"qualitative": _qualitative, "numeric": _numeric, "vs_baseline": _vs_baseline}


@leaf_kind("lab_threshold", reads=("observations",), modes=LAB_MODES, mode_required=True)
def evaluate_lab(criterion: Criterion, ctx: EvalContext) -> Result:
    """params: `mode` (one of LAB_MODES), `valueSet`, and the mode's own fields."""
    if ctx.record.observations is None:
        vs = criterion.params.get("valueSet")
        what = ctx.value_set(vs).text if vs else criterion.text
        return Result.unknown(f"{what} (observations could not be read)")
    return LAB_MODES[criterion.params["mode"]](criterion.params, ctx, criterion)
