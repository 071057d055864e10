"""The checks a CRD server test suite makes on a hook answer, written from CDS Hooks 2.0 and Da Vinci CRD 2.0.1/2.2.

Each function returns a list of problems (empty = conforms), so a test can assert on it and show every problem.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

COVERAGE_INFO_URL = "http://hl7.org/fhir/us/davinci-crd/StructureDefinition/ext-coverage-information"
SYSTEM_ACTION_HOOKS = ("appointment-book", "order-sign", "order-dispatch")
ORDER_TYPES = ("DeviceRequest", "MedicationRequest", "NutritionOrder", "ServiceRequest", "VisionPrescription")
# Value sets of the sub-extensions: codes valid in BOTH CRD 2.0.1 and 2.2 (what a server claiming both may send).
COVERED = {"covered", "not-covered", "conditional"}
PA_NEEDED = {"no-auth", "auth-needed", "satisfied", "performpa", "conditional"}
DOC_NEEDED = {"clinical", "admin", "conditional"}
DOC_PURPOSE = {"withpa", "withclaim", "withorder", "retain-doc", "OTH"}
SUB_EXTENSIONS = {"coverage", "covered", "pa-needed", "doc-needed", "doc-purpose", "info-needed", "billingCode",
                  "reason", "detail", "dependency", "questionnaire", "date", "coverage-assertion-id",
                  "satisfied-pa-id", "contact"}


def _is(value: Any, kind: type) -> bool:
    return isinstance(value, kind) and (not isinstance(value, str) or bool(value))


def card_problems(card: Mapping[str, Any]) -> list[str]:
    """CDS Hooks 2.0 card attributes and CRD's source.topic rule."""
    out = []
    for field, kind in (("summary", str), ("indicator", str), ("source", dict)):
        if not _is(card.get(field), kind):
            out.append(f"card.{field} missing or not a {kind.__name__}")
    if isinstance(card.get("summary"), str) and len(card["summary"]) >= 140:
        out.append(f"summary is {len(card['summary'])} characters (must be under 140)")
    if card.get("indicator") not in ("info", "warning", "critical"):
        out.append(f"indicator {card.get('indicator')!r}")
    source = card.get("source") or {}
    if not _is(source.get("label"), str):
        out.append("source.label missing")
    topic = source.get("topic")
    if not isinstance(topic, Mapping) or not _is(topic.get("code"), str) or not _is(topic.get("system"), str):
        out.append("source.topic needs code and system (CRD: SHALL be populated)")
    for field, kind in (("uuid", str), ("detail", str), ("suggestions", list), ("overrideReasons", list),
                        ("links", list)):
        if field in card and not isinstance(card[field], kind):
            out.append(f"card.{field} is not a {kind.__name__}")
    if card.get("suggestions") and card.get("selectionBehavior") not in ("at-most-one", "any"):
        out.append("selectionBehavior required with suggestions")
    for reason in card.get("overrideReasons") or ():
        if not all(_is(reason.get(k), str) for k in ("code", "system", "display")):
            out.append(f"override reason {reason} needs code, system and display")
    for link in card.get("links") or ():
        if not all(_is(link.get(k), str) for k in ("label", "url", "type")):
            out.append(f"link {link} needs label, url and type")
        if link.get("type") not in ("absolute", "smart"):
            out.append(f"link type {link.get('type')!r}")
        if link.get("type") == "absolute" and link.get("appContext"):
            out.append("appContext only goes with smart links")
    for suggestion in card.get("suggestions") or ():
        if not _is(suggestion.get("label"), str):
            out.append("suggestion.label missing")
        actions = suggestion.get("actions")
        if actions is not None and (not isinstance(actions, list) or not actions):
            out.append("suggestion.actions must be a non-empty array")
        for action in actions or ():
            out += action_problems(action)
    return out


def action_problems(action: Mapping[str, Any]) -> list[str]:
    """CDS Hooks 2.0 Action: type and description required; a resource for create/update, resourceId for delete."""
    out = []
    if action.get("type") not in ("create", "update", "delete"):
        out.append(f"action type {action.get('type')!r}")
    if not _is(action.get("description"), str):
        out.append("action.description missing (required by CDS Hooks 2.0)")
    if action.get("type") in ("create", "update") and not isinstance(action.get("resource"), Mapping):
        out.append("create/update action without a resource")
    if action.get("type") == "delete" and not _is(action.get("resourceId"), str):
        out.append("delete action without resourceId")
    return out


def response_problems(body: Mapping[str, Any], hook: str) -> list[str]:
    """A whole service response: cards array, systemActions where the hook needs them, each card and action."""
    out = []
    if not isinstance(body.get("cards"), list):
        return ["response has no cards array"]
    if hook in SYSTEM_ACTION_HOOKS and not isinstance(body.get("systemActions"), list):
        out.append(f"{hook} response has no systemActions array")
    for card in body["cards"]:
        out += card_problems(card)
    for action in body.get("systemActions") or ():
        out += action_problems(action)
    return out


def coverage_extensions(resource: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [e for e in resource.get("extension") or () if e.get("url") == COVERAGE_INFO_URL]


def _values(ext: Mapping[str, Any], url: str) -> list[Any]:
    found = []
    for sub in ext.get("extension") or ():
        if sub.get("url") == url:
            found.append(next((v for k, v in sub.items() if k.startswith("value")), None))
    return found


def coverage_information_problems(ext: Mapping[str, Any]) -> list[str]:
    """One ext-coverage-information: cardinalities, codes, and the invariants of CRD 2.0.1 and of 2.2."""
    out = []
    subs = [s.get("url") for s in ext.get("extension") or ()]
    if ext.get("url") != COVERAGE_INFO_URL:
        out.append("wrong url")
    for unknown in set(subs) - SUB_EXTENSIONS:
        out.append(f"unknown sub-extension {unknown}")
    for url in ("coverage", "covered", "date", "coverage-assertion-id"):
        if subs.count(url) != 1:
            out.append(f"{url}: {subs.count(url)} (must be 1)")
    for url in ("pa-needed", "satisfied-pa-id"):
        if subs.count(url) > 1:
            out.append(f"{url} repeated")
    if subs.count("doc-needed") > 1:
        out.append("doc-needed repeated (2.0.1 allows one)")
    covered = _values(ext, "covered")
    pa = _values(ext, "pa-needed")
    doc = _values(ext, "doc-needed")
    purposes = _values(ext, "doc-purpose")
    reasons = _values(ext, "reason")
    info = _values(ext, "info-needed")
    for values, allowed, name in ((covered, COVERED, "covered"), (pa, PA_NEEDED, "pa-needed"),
                                  (doc, DOC_NEEDED, "doc-needed"), (purposes, DOC_PURPOSE, "doc-purpose")):
        for v in values:
            if v not in allowed:
                out.append(f"{name} code {v!r} is not valid in both 2.0.1 and 2.2")
    coverage = _values(ext, "coverage")
    if coverage and str((coverage[0] or {}).get("reference", "")).split("/")[-2:-1] != ["Coverage"]:
        out.append("coverage must reference a Coverage")
    # crd-ci-q1 (both): questionnaire only with doc-needed
    if _values(ext, "questionnaire") and not doc:
        out.append("crd-ci-q1: questionnaire without doc-needed")
    # crd-ci-q2 (2.2): not-covered -> no pa-needed; (2.0.1): covered != not-covered -> pa-needed present
    if "not-covered" in covered and pa:
        out.append("crd-ci-q2 (2.2): pa-needed with not-covered")
    if any(c != "not-covered" for c in covered) and not pa:
        out.append("crd-ci-q2 (2.0.1): pa-needed missing")
    conditional = "conditional" in covered + pa + doc
    # crd-ci-q3: 2.0.1 info-needed -> conditional; 2.2 conditional -> info-needed
    if info and not conditional:
        out.append("crd-ci-q3 (2.0.1): info-needed without a conditional")
    if conditional and not info:
        out.append("crd-ci-q3 (2.2): conditional without info-needed")
    # crd-ci-q4: satisfied / no-auth -> doc-purpose not withpa
    if set(pa) & {"satisfied", "no-auth"} and "withpa" in purposes:
        out.append("crd-ci-q4: withpa with no prior auth needed")
    # crd-ci-q5: satisfied-pa-id iff satisfied
    if ("satisfied" in pa) != bool(_values(ext, "satisfied-pa-id")):
        out.append("crd-ci-q5: satisfied-pa-id iff pa-needed=satisfied")
    # crd-ci-q6, q8 (2.2): info-needed OTH or doc-purpose -> reason
    if ("OTH" in info or purposes) and not reasons:
        out.append("crd-ci-q6/q8 (2.2): reason required")
    # crd-ci-q7 (2.2): a reason without a code from the value set needs text
    for reason in reasons:
        if not (reason or {}).get("text"):
            out.append("crd-ci-q7 (2.2): reason without text")
    return out


def assertion_id_problems(resource: Mapping[str, Any]) -> list[str]:
    """One coverage-assertion-id per coverage; distinct coverages, distinct ids (Inferno's check)."""
    by_coverage: dict[str, set[str]] = {}
    for ext in coverage_extensions(resource):
        coverage = (_values(ext, "coverage") or [{}])[0].get("reference")
        by_coverage.setdefault(coverage, set()).update(_values(ext, "coverage-assertion-id"))
    out = [f"{cov}: {len(ids)} assertion ids" for cov, ids in by_coverage.items() if len(ids) != 1]
    all_ids = [i for ids in by_coverage.values() for i in ids]
    if len(all_ids) != len(set(all_ids)):
        out.append("the same assertion id for different coverages")
    return out
