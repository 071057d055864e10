"""Documentation forms from policy data: one Questionnaire per policy, and answers read back by clause id.

An item exists for every clause a person can answer: nodes with a `question` in cards/, and documentation
leaves. `linkId` is the clause id, so an answer lands on the criterion it documents (contract §6).
"""
from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .errors import UnprocessableResource
from .evaluate.criterion import Criterion
from .policies import Policy, PolicyLibrary
from .record import Answer

UNIT_EXTENSION = "http://hl7.org/fhir/StructureDefinition/questionnaire-unit"
ORIGIN_EXTENSION = "http://hl7.org/fhir/us/davinci-dtr/StructureDefinition/information-origin"
ORIGIN_SYSTEM = "http://hl7.org/fhir/us/davinci-dtr/CodeSystem/dtr-informationorigin-codes"
UCUM = "http://unitsofmeasure.org"
COUNTED_STATUSES = frozenset({"in-progress", "completed", "amended"})
RESPONSE_STATUSES = COUNTED_STATUSES | {"entered-in-error", "stopped"}
# FHIR item type -> the answer value[x] it takes.
VALUE_KEYS = {"boolean": "valueBoolean", "decimal": "valueDecimal", "integer": "valueInteger", "date": "valueDate",
              "string": "valueString", "quantity": "valueQuantity", "choice": "valueString"}


@dataclass(frozen=True)
class FormItem:
    """One answerable item: its clause id, FHIR type, question text, and unit or options where they apply."""

    link_id: str
    type: str
    text: str
    prefix: str
    unit: str | None = None
    options: tuple[str, ...] = ()

    def to_fhir(self) -> dict[str, Any]:
        item: dict[str, Any] = {"linkId": self.link_id, "prefix": self.prefix, "text": self.text, "type": self.type}
        if self.unit:
            item["extension"] = [{"url": UNIT_EXTENSION,
                                  "valueCoding": {"system": UCUM, "code": self.unit, "display": self.unit}}]
        if self.options:
            item["answerOption"] = [{"valueString": o} for o in self.options]
        return item


def _items_of(node: Criterion) -> Iterator[FormItem]:
    question = node.question or {}
    if not question and node.kind != "documentation":
        return
    kind = question.get("type", "boolean")
    yield FormItem(node.id, kind, question.get("text") or node.text, node.id, question.get("unit"),
                   tuple(question.get("options", ())))
    for sub in question.get("items", ()):
        yield FormItem(sub["linkId"], sub.get("type", "string"), sub.get("text", sub["linkId"]), sub["linkId"],
                       sub.get("unit"), tuple(sub.get("options", ())))


def form_sections(policy: Policy) -> list[tuple[Criterion, list[FormItem]]]:
    """The answerable items under each top-level criterion, in document order (empty sections dropped)."""
    sections = []
    for root in policy.roots.values():
        items = [item for node in root.walk() for item in _items_of(node)]
        if items:
            sections.append((root, items))
    return sections


def form_items(policy: Policy) -> dict[str, FormItem]:
    return {item.link_id: item for _, items in form_sections(policy) for item in items}


def canonical(policy: Policy, base_url: str) -> str:
    return f"{base_url}{policy.canonical_path}"


def build_questionnaire(policy: Policy, base_url: str) -> dict[str, Any]:
    """The policy's documentation form as a FHIR R4 Questionnaire, at its canonical URL."""
    name = re.sub(r"[^A-Za-z0-9_]", "_", f"{policy.key.capitalize()}PriorAuthDocumentation")
    return {
        "resourceType": "Questionnaire",
        "id": policy.key,
        "url": canonical(policy, base_url),
        "name": name,
        "title": f"{policy.publisher} {policy.number} {policy.title}: prior authorization documentation",
        "status": "active",
        "subjectType": ["Patient"],
        "publisher": policy.publisher,
        "description": f"Documentation the prior-authorization criteria of {policy.number} need when the record "
                       "does not show them. Each item's linkId is the policy clause it documents.",
        "item": [{"linkId": f"section-{root.id}", "prefix": root.id, "text": root.text, "type": "group",
                  "item": [i.to_fhir() for i in items]} for root, items in form_sections(policy)],
    }


def policy_for_canonical(library: PolicyLibrary, url: str | None) -> Policy | None:
    """The policy whose form a canonical names (any base: proxies rewrite hosts; a |version is ignored)."""
    if not url:
        return None
    path = url.split("|", 1)[0].rstrip("/")
    for policy in library:
        if path.endswith(policy.canonical_path) or path == policy.key:
            return policy
    return None


def _walk_items(items: Any, path: str) -> Iterator[tuple[Mapping[str, Any], str]]:
    for i, item in enumerate(items or ()):
        here = f"{path}.item[{i}]"
        yield item, here
        yield from _walk_items(item.get("item"), here)
        for j, answer in enumerate(item.get("answer") or ()):
            yield from _walk_items(answer.get("item"), f"{here}.answer[{j}]")


def _answer_value(item: FormItem, answer: Mapping[str, Any], where: str) -> tuple[Any, str | None]:
    """The stored value and unit of one answer, checked against the item's type."""
    key = VALUE_KEYS[item.type]
    if item.type == "choice" and "valueCoding" in answer:
        coding = answer["valueCoding"]
        return coding.get("display") or coding.get("code"), None
    if key not in answer:
        given = next((k for k in answer if k.startswith("value")), "no value")
        raise UnprocessableResource(f"item '{item.link_id}' is of type {item.type}: expected {key}, got {given}",
                                    where)
    value = answer[key]
    if item.type == "quantity":
        unit = value.get("code") or value.get("unit")
        if item.unit and unit and unit != item.unit:
            raise UnprocessableResource(f"item '{item.link_id}' is in {item.unit}, got {unit}", where)
        return value.get("value"), unit or item.unit
    if item.type == "choice" and item.options and value not in item.options:
        raise UnprocessableResource(f"item '{item.link_id}': '{value}' is not one of {list(item.options)}", where)
    return value, item.unit


def read_answers(response: Mapping[str, Any], policy: Policy) -> list[dict[str, Any]]:
    """Answer rows of a (valid) QuestionnaireResponse: one per answered item; unknown linkIds are refused."""
    items = form_items(policy)
    rows = []
    for item, where in _walk_items(response.get("item"), "QuestionnaireResponse"):
        link_id = item.get("linkId")
        answers = item.get("answer") or ()
        if link_id not in items:
            if answers:
                raise UnprocessableResource(f"linkId '{link_id}' is not an item of {policy.number}'s form",
                                            f"{where}.linkId")
            continue  # a group
        for j, answer in enumerate(answers[:1]):
            value, unit = _answer_value(items[link_id], answer, f"{where}.answer[{j}]")
            if value is not None:
                rows.append({"clause_id": link_id, "value_type": items[link_id].type, "value_json": value,
                             "unit": unit})
    return rows


def parse_authored(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment


def _origin() -> dict[str, Any]:
    return {"url": ORIGIN_EXTENSION, "extension": [{"url": "source", "valueCode": "auto-server"}]}


def _prefill_answer(item: FormItem, status: str | None, answer: Answer | None) -> dict[str, Any] | None:
    """A pre-filled answer: a stored answer first, else what the record decided for a yes/no item."""
    value: Any = None
    if answer is not None and answer.value is not None:
        value = answer.value
    elif item.type == "boolean" and status in ("met", "not-met"):
        value = status == "met"
    if value is None:
        return None
    key = VALUE_KEYS[item.type]
    if item.type == "boolean":
        value = bool(value)
    elif item.type == "integer":
        value = int(float(value))
    elif item.type == "quantity":
        value = {"value": value, "unit": item.unit or (answer.unit if answer else None) or "1", "system": UCUM,
                 "code": item.unit or (answer.unit if answer else None) or "1"}
    return {key: value, "extension": [_origin()]}


def prefilled_response(policy: Policy, base_url: str, patient_ref: str, trace: Mapping[str, Any] | None,
                       answers: Mapping[str, Answer], authored: str) -> dict[str, Any]:
    """A QuestionnaireResponse pre-filled from what the server knows: stored answers and the last evaluation."""
    statuses = {c["id"]: c["status"] for c in (trace or {}).get("criteria", ())}
    groups = []
    for root, items in form_sections(policy):
        filled = []
        for item in items:
            answer = answers.get(f"{policy.key}:{item.link_id}") or answers.get(item.link_id)
            value = _prefill_answer(item, statuses.get(item.link_id), answer)
            if value is not None:
                filled.append({"linkId": item.link_id, "text": item.text, "answer": [value]})
        if filled:
            groups.append({"linkId": f"section-{root.id}", "text": root.text, "item": filled})
    out: dict[str, Any] = {"resourceType": "QuestionnaireResponse", "questionnaire": canonical(policy, base_url),
                           "status": "in-progress", "subject": {"reference": patient_ref}, "authored": authored}
    if groups:
        out["item"] = groups
    return out
