"""Evaluation trace -> CDS Hooks cards: what a prescriber reads in a few seconds, and fixes in one click."""
from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .evaluate import Decision, Evaluation, Status
from .evaluate.engine import TraceEntry

if TYPE_CHECKING:
    from .policies import Policy

CRD_TOPIC_SYSTEM = "http://hl7.org/fhir/us/davinci-crd/CodeSystem/temp"
OVERRIDE_SYSTEM = "urn:cds-service:override-reason"
OVERRIDE_REASONS = [
    {"code": "clinical-justification", "system": OVERRIDE_SYSTEM,
     "display": "Clinical justification will be documented"},
    {"code": "pa-submitted", "system": OVERRIDE_SYSTEM, "display": "Prior authorization request will be submitted"},
    {"code": "not-applicable", "system": OVERRIDE_SYSTEM, "display": "Card does not apply to this patient"},
]
_OUTCOME = {
    Decision.CRITERIA_MET: ("prior authorization criteria met", "info"),
    Decision.DOCUMENTATION_NEEDED: ("documentation needed for prior authorization", "warning"),
    Decision.CRITERIA_NOT_MET: ("prior authorization criteria not met", "warning"),
    Decision.NOT_COVERED: ("not covered", "critical"),
}
_DOSE_UNITS = {"mg/m2": "mg/m²"}


def _unit_words(unit: str) -> str:
    """A unit as a prescriber reads it: mg/m², and a UCUM annotation such as {capsule} as capsule(s)."""
    if unit.startswith("{") and unit.endswith("}"):
        return f"{unit[1:-1]}(s)"
    return _DOSE_UNITS.get(unit, unit)


def _ruled_out(evaluation: Evaluation, entry: TraceEntry) -> bool:
    """True when the clause lies on a branch whose indication the patient does not have (the indication row
    itself included): an ANLL patient's card says nothing about the prostate or MS branches."""
    indications = evaluation.policy.tree.indications.get(entry.id, ())
    return not evaluation.ids_with(Status.NOT_MET).isdisjoint(indications)


def _relevant(evaluation: Evaluation, entry: TraceEntry) -> bool:
    """Show a failing clause only on the path that matters: no met ancestor (an alternative already
    satisfied it) and no ancestor branch whose indication the patient does not have."""
    if not evaluation.ids_with(Status.MET).isdisjoint(evaluation.policy.tree.ancestors(entry.id)):
        return False
    return not _ruled_out(evaluation, entry)


def breaches(evaluation: Evaluation) -> list[TraceEntry]:
    """Dose caps the order breaches on the patient's own branch, reported whatever the outcome (clauses.md §0.6),
    even where a literature alternative keeps the parent unknown or met. When no branch's indication is met,
    each distinct cap is said once."""
    if not evaluation.not_addressed:
        return [e for e in evaluation.breaches if not _ruled_out(evaluation, e)]
    seen, out = set(), []
    for entry in evaluation.breaches:
        key = (entry.breach["cap"], entry.breach["unit"], entry.breach["per"])
        if key not in seen:
            seen.add(key)
            out.append(entry)
    return out


def _line(entry: TraceEntry, detail: list[str]) -> str:
    text = entry.criterion.text
    said = "; ".join(detail)
    return f"- `{entry.id}` {text}" + (f": {said}" if said else "")


def _breach_phrase(entry: TraceEntry, drug: str) -> str:
    b = entry.breach
    unit = _unit_words(b["unit"])
    if b.get("partner"):  # a dose ratio: "dexrazoxane 12:1 to doxorubicin exceeds the 10:1 cap"
        phrase = f"{drug} {b['value']:g}:1 to {b['partner']} exceeds the {b['cap']:g}:1 cap"
    else:
        phrase = f"{b['value']:g} {unit} {'per ' + b['per'] if b['per'] not in ('lifetime',) else 'lifetime'}"
        phrase += f" exceeds the {b['cap']:g} {unit} cap"
    if b.get("remaining") is not None:
        phrase += f" ({b['remaining']:g} {unit} remaining)"
    dose = b.get("suggestedDose")
    if dose:
        phrase += f"; largest dose allowed: {dose['value']:g} {_unit_words(dose['unit'])}"
    return phrase


def _exclusion_rows(evaluation: Evaluation) -> list[TraceEntry]:
    """The met leaves that make the exclusion apply (e.g. III.B, not the III group), else the exclusion itself."""
    root = evaluation.exclusion
    rows = evaluation.policy.tree.within((root.id,))
    met = [e for e in evaluation.entries(Status.MET) if e.criterion.is_leaf and e.id in rows]
    return met or [root]


def summary(evaluation: Evaluation) -> str:
    """One line under 140 characters naming the drug and the outcome."""
    drug = evaluation.policy.own_drug.display.capitalize()
    phrase, _ = _OUTCOME[evaluation.decision]
    if evaluation.decision is Decision.NOT_COVERED and evaluation.exclusion is not None:
        phrase = f"not covered ({_exclusion_rows(evaluation)[0].criterion.text})"
    elif breaches(evaluation) and evaluation.decision is not Decision.CRITERIA_MET:
        phrase = "dose exceeds the policy cap; " + phrase
    text = f"{drug}: {phrase} ({evaluation.policy.number})"
    return text if len(text) < 140 else text[:136].rstrip() + "..."


def detail(evaluation: Evaluation) -> str:
    """GitHub-flavoured markdown: decision, breaches, unmet and undocumented clauses, referral."""
    policy = evaluation.policy
    phrase, _ = _OUTCOME[evaluation.decision]
    lines = [f"**{phrase.capitalize()}** ({evaluation.phase} request) under {policy.publisher} "
             f"{policy.number} *{policy.title}*."]
    if evaluation.recognised_by == "name":
        lines.append("The order was recognised by the drug's name (no routed code).")
    if evaluation.exclusion is not None:
        lines += ["", "**Not covered**"] + [_line(e, e.evidence) for e in _exclusion_rows(evaluation)]
    breached = breaches(evaluation)
    if breached:
        drug = policy.own_drug.display
        lines += ["", "**Dose caps breached**"] + [_line(e, [_breach_phrase(e, drug)]) for e in breached]
    if evaluation.not_addressed and evaluation.decision is Decision.CRITERIA_NOT_MET:
        lines += ["", "The requested use is not addressed by this policy (no covered diagnosis on record)."]
    else:
        apart = _reported_apart(policy, include_exclusions=True)
        unmet = [e for e in evaluation.entries(Status.NOT_MET) if e.criterion.is_leaf and not e.breach
                 and e.criterion.role != "exclusion" and e.id not in apart and _relevant(evaluation, e)]
        if unmet:
            lines += ["", "**Not met**"] + [_line(e, e.evidence) for e in unmet]
        # Unknown exclusion rows are listed too (an exclusion the record cannot rule out needs documenting);
        # referral and scope rows are not questions for the prescriber.
        apart = _reported_apart(policy, include_exclusions=False)
        unknown = [e for e in evaluation.unknown_leaves() if e.id not in apart and _relevant(evaluation, e)]
        if unknown:
            lines += ["", "**Documentation needed**"] + [_line(e, _to_document(evaluation, e)) for e in unknown]
    if evaluation.referral is not None and evaluation.referral.referral:
        lines += ["", f"**Referral:** {_referral_phrase(evaluation.referral.referral)}"]
    if evaluation.unreadable:
        lines += ["", "**Part of the record could not be read:** " + "; ".join(sorted(set(evaluation.unreadable))[:5])]
    return "\n".join(lines)


def _to_document(evaluation: Evaluation, entry: TraceEntry) -> list[str]:
    """What to document for an unknown row, never nothing: its own missing items, else (a regimen row) the
    partner drugs it names, else its question."""
    said = [m for m in entry.missing if m.strip() and m.strip() != entry.criterion.text]
    if said:
        return said
    drugs = [evaluation.policy.drugs[n].display for n in _drug_names(entry.criterion.params)
             if n in evaluation.policy.drugs]
    if drugs:
        return [f"an order for {' and '.join(drugs)} with this one, or where it is given"]
    question = (entry.criterion.question or {}).get("text")
    return [question if question and question != entry.criterion.text else "not documented"]


def _drug_names(spec: Any) -> list[str]:
    """Drug group names of a partner requirement ({"all"|"any": [name or nested requirement]})."""
    if isinstance(spec, str):
        return [spec]
    if not isinstance(spec, Mapping):
        return []
    return [n for key in ("all", "any") for item in spec.get(key, ()) for n in _drug_names(item)]


def _reported_apart(policy: Policy, include_exclusions: bool) -> frozenset[str]:
    """Rows of the exclusion, scope and referral roots: they are reported in their own sections."""
    decision = policy.decision
    roots = [*(decision.get("exclusions", ()) if include_exclusions else ()), *decision.get("scope", ()),
             *(block["referral"] for block in (decision.get("initial", {}), decision.get("continued", {}))
               if block.get("referral"))]
    return policy.tree.within(tuple(roots))


def _referral_phrase(referral: Mapping[str, Any]) -> str:
    chosen = referral.get("lineOfBusiness")
    targets = chosen or referral.get("targets", {})
    return "refer to " + ", ".join(f"{policy} ({lob})" for lob, policy in targets.items())


def copy_json(resource: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of a decoded JSON object: what copy.deepcopy gives for dicts, lists and scalars, at a fraction
    of its cost (no memo, no dispatch per value)."""
    return {k: _copy_value(v) if isinstance(v, dict | list) else v for k, v in resource.items()}


def _copy_value(value: dict | list) -> dict | list:
    if isinstance(value, dict):
        return {k: _copy_value(v) if isinstance(v, dict | list) else v for k, v in value.items()}
    return [_copy_value(v) if isinstance(v, dict | list) else v for v in value]


def _with_dose(resource: Mapping[str, Any], dose: Mapping[str, Any]) -> dict[str, Any]:
    """The draft order with every doseQuantity set to the suggested dose, nothing else changed; only the
    instruction named by `sequence` when the cap binds one day of a multi-day order (inotuzumab D1 vs D8/D15)."""
    updated = copy_json(resource)
    for inst in updated.get("dosageInstruction") or ():
        if dose.get("sequence") is not None and inst.get("sequence") != dose["sequence"]:
            continue
        for dr in inst.get("doseAndRate") or ():
            if isinstance(dr, dict) and "doseQuantity" in dr:
                dr["doseQuantity"] = {**dr["doseQuantity"], "value": dose["value"]}
    return updated


def suggestions(evaluation: Evaluation, raw_order: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """Actions that fix the order: the dose every breached cap allows, and missing partner drugs."""
    out = []
    breached = breaches(evaluation)
    doses = [e.breach["suggestedDose"] for e in breached if e.breach.get("suggestedDose")]
    if doses and raw_order is not None:
        dose = min(doses, key=lambda d: d["value"])
        ids = ", ".join(e.id for e in breached)
        unit = _unit_words(dose["unit"])
        out.append({
            "label": f"Change the dose to {dose['value']:g} {unit} ({evaluation.policy.number} {ids})",
            "uuid": str(uuid.uuid4()),
            "actions": [{"type": "update", "description": f"Set the dose to {dose['value']:g} {unit}, the largest "
                         f"dose {evaluation.policy.number} allows", "resource": _with_dose(raw_order, dose)}],
        })
    for entry in evaluation.trace:
        spec = entry.criterion.suggestion
        if spec and entry.status is Status.UNKNOWN and _relevant(evaluation, entry):
            for item in _missing_options(evaluation, entry, spec):
                out.append({
                    "label": item["label"],
                    "uuid": str(uuid.uuid4()),
                    "actions": [{"type": "create", "description": f"{item['label']} ({entry.id})",
                                 "resource": _new_order(item, evaluation)}],
                })
    return out


def _missing_options(evaluation: Evaluation, entry: TraceEntry, spec: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """One suggestion, or, for a regimen, one per partner drug (`options`, each naming its drug group) that the
    trace lists as missing: only the drugs the prescriber has not ordered yet are offered."""
    if "options" not in spec:
        return [spec]
    missing = " ".join(entry.missing).lower()
    drugs = evaluation.policy.drugs
    return [item for item in spec["options"]
            if "drug" not in item or drugs[item["drug"]].display.lower() in missing]


def _new_order(spec: Mapping[str, Any], evaluation: Evaluation) -> dict[str, Any]:
    resource = {"resourceType": "MedicationRequest", "status": "draft", "intent": "order",
                "medicationCodeableConcept": spec["medication"]}
    if spec.get("dosage"):
        resource["dosageInstruction"] = [{"text": spec["dosage"]}]
    return resource


def render_card(evaluation: Evaluation, raw_order: Mapping[str, Any] | None, questionnaire_url: str | None) -> dict:
    """The one summary card of an evaluated order, with its trace in `extension` (contract §5)."""
    _, indicator = _OUTCOME[evaluation.decision]
    if breaches(evaluation) and indicator == "info":
        indicator = "warning"
    card: dict[str, Any] = {
        "uuid": str(uuid.uuid4()),
        "summary": summary(evaluation),
        "detail": detail(evaluation),
        "indicator": indicator,
        "source": {
            "label": f"{evaluation.policy.publisher} {evaluation.policy.number}: {evaluation.policy.title}",
            # CRD card type (extensible binding): prior-auth criteria are coverage information; "prior-auth" is
            # not a code of the CRD temp code system.
            "topic": {"system": CRD_TOPIC_SYSTEM, "code": "coverage-info", "display": "Coverage Information"},
        },
        "overrideReasons": OVERRIDE_REASONS,
        "extension": {
            "davinci-crd.associated-resource": [{"reference": evaluation.order.ref}],
            "prior-auth.evaluation": evaluation.trace_json(),
        },
    }
    found = suggestions(evaluation, raw_order)
    if found:
        card["suggestions"] = found
        card["selectionBehavior"] = "any"
    if evaluation.decision is Decision.DOCUMENTATION_NEEDED and questionnaire_url:
        card["links"] = [{"label": f"Complete the {evaluation.policy.number} documentation form",
                          "url": questionnaire_url, "type": "absolute"}]
    return card
