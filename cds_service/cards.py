"""Evaluation trace -> CDS Hooks cards: what a prescriber reads in a few seconds, and fixes in one click."""
from __future__ import annotations

import copy
import uuid
from collections.abc import Mapping
from typing import Any

from .evaluate import Decision, Evaluation, Status
from .evaluate.engine import TraceEntry

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


def _relevant(evaluation: Evaluation, entry: TraceEntry) -> bool:
    """Show a failing clause only on the path that matters: no met ancestor (an alternative already
    satisfied it) and no ancestor branch whose indication the patient does not have."""
    policy = evaluation.policy
    by_id = evaluation.by_id
    for ancestor in policy.ancestors(entry.id):
        anc = by_id.get(ancestor)
        if anc is not None and anc.status is Status.MET:
            return False
        for child in policy.nodes[ancestor].children:
            if child.role == "indication" and child.id != entry.id and by_id.get(child.id) is not None \
                    and by_id[child.id].status is Status.NOT_MET:
                return False
    return True


def _line(entry: TraceEntry, detail: list[str]) -> str:
    text = entry.criterion.text
    said = "; ".join(detail)
    return f"- `{entry.id}` {text}" + (f": {said}" if said else "")


def _breach_phrase(entry: TraceEntry) -> str:
    b = entry.breach
    unit = _DOSE_UNITS.get(b["unit"], b["unit"])
    phrase = f"{b['value']:g} {unit} {'per ' + b['per'] if b['per'] not in ('lifetime',) else 'lifetime'}"
    phrase += f" exceeds the {b['cap']:g} {unit} cap"
    if b.get("remaining") is not None:
        phrase += f" ({b['remaining']:g} {unit} remaining)"
    dose = b.get("suggestedDose")
    if dose:
        phrase += f"; largest dose allowed: {dose['value']:g} {_DOSE_UNITS.get(dose['unit'], dose['unit'])}"
    return phrase


def summary(evaluation: Evaluation) -> str:
    """One line under 140 characters naming the drug and the outcome."""
    drug = evaluation.policy.own_drug.display.capitalize()
    phrase, _ = _OUTCOME[evaluation.decision]
    if evaluation.decision is Decision.NOT_COVERED and evaluation.exclusion is not None:
        phrase = f"not covered ({evaluation.exclusion.criterion.text})"
    elif evaluation.breaches and evaluation.decision is not Decision.CRITERIA_MET:
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
        met = [e for e in evaluation.trace if e.status is Status.MET and e.criterion.is_leaf
               and evaluation.exclusion.id in [e.id, *policy.ancestors(e.id)]]
        lines += ["", "**Not covered**"] + [_line(e, e.evidence) for e in met or [evaluation.exclusion]]
    breaches = evaluation.breaches
    if breaches:
        lines += ["", "**Dose caps breached**"] + [_line(e, [_breach_phrase(e)]) for e in breaches]
    if evaluation.not_addressed and evaluation.decision is Decision.CRITERIA_NOT_MET:
        lines += ["", "The requested use is not addressed by this policy (no covered diagnosis on record)."]
    else:
        unmet = [e for e in evaluation.entries(Status.NOT_MET) if e.criterion.is_leaf and not e.breach
                 and e.criterion.role != "exclusion" and _relevant(evaluation, e)
                 and not _in_exclusions(evaluation, e)]
        if unmet:
            lines += ["", "**Not met**"] + [_line(e, e.evidence) for e in unmet]
        unknown = [e for e in evaluation.unknown_leaves() if _relevant(evaluation, e)
                   and not _in_exclusions(evaluation, e)]
        if unknown:
            lines += ["", "**Documentation needed**"] + [_line(e, e.missing) for e in unknown]
    if evaluation.referral is not None and evaluation.referral.referral:
        lines += ["", f"**Referral:** {_referral_phrase(evaluation.referral.referral)}"]
    if evaluation.unreadable:
        lines += ["", "**Part of the record could not be read:** " + "; ".join(sorted(set(evaluation.unreadable))[:5])]
    return "\n".join(lines)


def _in_exclusions(evaluation: Evaluation, entry: TraceEntry) -> bool:
    roots = [*evaluation.policy.decision.get("exclusions", ()), *evaluation.policy.decision.get("scope", ())]
    chain = [entry.id, *evaluation.policy.ancestors(entry.id)]
    return any(r in chain for r in roots)


def _referral_phrase(referral: Mapping[str, Any]) -> str:
    chosen = referral.get("lineOfBusiness")
    targets = chosen or referral.get("targets", {})
    return "refer to " + ", ".join(f"{policy} ({lob})" for lob, policy in targets.items())


def _with_dose(resource: Mapping[str, Any], dose: Mapping[str, Any]) -> dict[str, Any]:
    """The draft order with every doseQuantity set to the suggested dose, nothing else changed."""
    updated = copy.deepcopy(dict(resource))
    for inst in updated.get("dosageInstruction") or ():
        for dr in inst.get("doseAndRate") or ():
            if isinstance(dr, dict) and "doseQuantity" in dr:
                dr["doseQuantity"] = {**dr["doseQuantity"], "value": dose["value"]}
    return updated


def suggestions(evaluation: Evaluation, raw_order: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """Actions that fix the order: the dose every breached cap allows, and missing partner drugs."""
    out = []
    doses = [e.breach["suggestedDose"] for e in evaluation.breaches if e.breach.get("suggestedDose")]
    if doses and raw_order is not None:
        dose = min(doses, key=lambda d: d["value"])
        ids = ", ".join(e.id for e in evaluation.breaches)
        unit = _DOSE_UNITS.get(dose["unit"], dose["unit"])
        out.append({
            "label": f"Change the dose to {dose['value']:g} {unit} ({evaluation.policy.number} {ids})",
            "uuid": str(uuid.uuid4()),
            "actions": [{"type": "update", "description": f"Set the dose to {dose['value']:g} {unit}, the largest "
                         f"dose {evaluation.policy.number} allows", "resource": _with_dose(raw_order, dose)}],
        })
    for entry in evaluation.trace:
        spec = entry.criterion.suggestion
        if spec and entry.status is Status.UNKNOWN and _relevant(evaluation, entry):
            out.append({
                "label": spec["label"],
                "uuid": str(uuid.uuid4()),
                "actions": [{"type": "create", "description": f"{spec['label']} ({entry.id})",
                             "resource": _new_order(spec, evaluation)}],
            })
    return out


def _new_order(spec: Mapping[str, Any], evaluation: Evaluation) -> dict[str, Any]:
    resource = {"resourceType": "MedicationRequest", "status": "draft", "intent": "order",
                "medicationCodeableConcept": spec["medication"]}
    if spec.get("dosage"):
        resource["dosageInstruction"] = [{"text": spec["dosage"]}]
    return resource


def render_card(evaluation: Evaluation, raw_order: Mapping[str, Any] | None, questionnaire_url: str | None) -> dict:
    """The one summary card of an evaluated order, with its trace in `extension` (contract §5)."""
    _, indicator = _OUTCOME[evaluation.decision]
    if evaluation.breaches and indicator == "info":
        indicator = "warning"
    card: dict[str, Any] = {
        "uuid": str(uuid.uuid4()),
        "summary": summary(evaluation),
        "detail": detail(evaluation),
        "indicator": indicator,
        "source": {
            "label": f"{evaluation.policy.publisher} {evaluation.policy.number}: {evaluation.policy.title}",
            "topic": {"system": CRD_TOPIC_SYSTEM, "code": "prior-auth", "display": "Prior authorization"},
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
