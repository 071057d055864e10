"""Da Vinci CRD: the coverage-information system action, and the client's configuration of what it wants.

One `ext-coverage-information` extension per (evaluated order, active Coverage), valid under CRD 2.0.1 and 2.2
at once. The invariants that differ between the two are met by never using the codes they disagree on:
- crd-ci-q2: 2.0.1 wants `pa-needed` whenever covered is not `not-covered`, 2.2 forbids it when `not-covered`;
  so `pa-needed` is present exactly when covered is `covered`.
- crd-ci-q3: 2.0.1 allows `info-needed` only with a `conditional`, 2.2 requires it with one; neither appears.
- crd-ci-q8 (2.2): `doc-purpose` needs a `reason`; every extension carries a reason with text (crd-ci-q7).
- codes common to both: covered | not-covered, auth-needed, clinical, withpa.
"""
from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from .cards import copy_json
from .evaluate import Decision, Evaluation, Status
from .record import PatientRecord

COVERAGE_INFO_URL = "http://hl7.org/fhir/us/davinci-crd/StructureDefinition/ext-coverage-information"
CARD_TYPE = "coverage-info"  # the CRD card type (CodeSystem temp) of every card this service returns
_SEVERITY = {"critical": 0, "warning": 1, "info": 2}
DEFAULT_MAX_CARDS = 10

CONFIGURATION_OPTIONS: list[dict[str, Any]] = [
    {"code": CARD_TYPE, "type": "boolean", "name": "Coverage Information",
     "description": "Prior-authorization criteria cards for drug orders and the coverage-information system "
                    "action on each evaluated order (covered, prior auth needed, documentation needed).",
     "default": True},
    {"code": "max-cards", "type": "integer", "name": "Maximum cards",
     "description": "The most cards returned in one response; the most severe are kept.",
     "default": DEFAULT_MAX_CARDS},
]


@dataclass(frozen=True)
class Configuration:
    """What the client asked for in `extension["davinci-crd.configuration"]` (unknown or mistyped options ignored)."""

    coverage_info: bool = True
    max_cards: int = DEFAULT_MAX_CARDS

    @classmethod
    def from_request(cls, extension: Mapping[str, Any] | None) -> Configuration:
        raw = (extension or {}).get("davinci-crd.configuration")
        if not isinstance(raw, Mapping):
            return cls()
        coverage_info = raw.get(CARD_TYPE)
        max_cards = raw.get("max-cards")
        return cls(
            coverage_info=coverage_info if isinstance(coverage_info, bool) else True,
            max_cards=max_cards if isinstance(max_cards, int) and not isinstance(max_cards, bool)
            and max_cards >= 0 else DEFAULT_MAX_CARDS,
        )

    def select_cards(self, cards: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The cards the client wants: none of a switched-off type, at most max-cards, the most severe first kept."""
        wanted = [c for c in cards if self.coverage_info or c["source"]["topic"]["code"] != CARD_TYPE]
        if len(wanted) <= self.max_cards:
            return wanted
        keep = sorted(range(len(wanted)), key=lambda i: _SEVERITY.get(wanted[i].get("indicator"), 3))
        return [wanted[i] for i in sorted(keep[:self.max_cards])]


@dataclass(frozen=True)
class Assertion:
    """One coverage assertion issued: what the extension says, kept in the database under its id."""

    id: str
    order_ref: str
    coverage_ref: str
    policy: str
    decision: str
    covered: str
    pa_needed: str | None
    doc_needed: str | None
    questionnaire: str | None
    reason: str
    assertion_date: date

    def row(self) -> dict[str, Any]:
        """The columns of the coverage_assertions table."""
        return {"id": self.id, "order_ref": self.order_ref, "coverage_ref": self.coverage_ref, "policy": self.policy,
                "decision": self.decision, "covered": self.covered, "pa_needed": self.pa_needed,
                "doc_needed": self.doc_needed, "questionnaire": self.questionnaire,
                "assertion_date": self.assertion_date}

    def extension(self) -> dict[str, Any]:
        """The ext-coverage-information extension, sub-extensions in the profile's order."""
        parts: list[dict[str, Any]] = [
            {"url": "coverage", "valueReference": {"reference": self.coverage_ref}},
            {"url": "covered", "valueCode": self.covered},
        ]
        if self.pa_needed:
            parts.append({"url": "pa-needed", "valueCode": self.pa_needed})
        if self.doc_needed:
            parts.append({"url": "doc-needed", "valueCode": self.doc_needed})
            parts.append({"url": "doc-purpose", "valueCode": "withpa"})
        parts.append({"url": "reason", "valueCodeableConcept": {"text": self.reason}})
        if self.questionnaire:
            parts.append({"url": "questionnaire", "valueCanonical": self.questionnaire})
        parts.append({"url": "date", "valueDate": self.assertion_date.isoformat()})
        parts.append({"url": "coverage-assertion-id", "valueString": self.id})
        return {"url": COVERAGE_INFO_URL, "extension": parts}


def _reason(evaluation: Evaluation, asks_documentation: bool) -> str:
    number = evaluation.policy.number
    if evaluation.decision is Decision.NOT_COVERED:
        excl = evaluation.exclusion
        if excl is None:
            return f"Not covered under {number}"
        # Name the exclusion that applies (the met clauses under the exclusion root), not just its section.
        under = evaluation.policy.tree.within((excl.id,))
        met = [e for e in evaluation.entries(Status.MET) if e.criterion.children == () and e.id in under
               and e.id != excl.id]
        said = "; ".join(f"{e.id}: {e.criterion.text}" for e in met[:3]) or f"{excl.id}: {excl.criterion.text}"
        return f"Not covered under {number} ({said})"
    said = {
        Decision.CRITERIA_MET: "the record meets its criteria",
        Decision.CRITERIA_NOT_MET: "the record does not meet its criteria (see the card)",
        Decision.DOCUMENTATION_NEEDED: "documentation is needed to decide its criteria",
    }[evaluation.decision]
    if evaluation.decision is Decision.DOCUMENTATION_NEEDED and asks_documentation:
        ids = ", ".join(e.id for e in evaluation.unknown_leaves()[:8])
        said += f" ({ids})" if ids else ""
    return f"Prior authorization required by {number}; {said}"


def assertions_for(evaluation: Evaluation, record: PatientRecord, hook: str, questionnaire_url: str,
                   today: date) -> list[Assertion]:
    """One assertion per active Coverage on record (none without one). order-select never asks for documents."""
    coverages = [c for c in record.coverages or () if c.status == "active"]
    if not coverages:
        return []
    asks = hook == "order-sign" and evaluation.decision is Decision.DOCUMENTATION_NEEDED
    not_covered = evaluation.decision is Decision.NOT_COVERED
    reason = _reason(evaluation, asks)  # the same for every coverage
    return [Assertion(
        id=uuid.uuid4().hex, order_ref=evaluation.order.ref, coverage_ref=cov.ref, policy=evaluation.policy.key,
        decision=evaluation.decision.value, covered="not-covered" if not_covered else "covered",
        pa_needed=None if not_covered else "auth-needed", doc_needed="clinical" if asks else None,
        questionnaire=questionnaire_url if asks else None, reason=reason, assertion_date=today,
    ) for cov in coverages]


def coverage_action(raw_order: Mapping[str, Any], assertions: list[Assertion], policy_number: str) -> dict[str, Any]:
    """The draft order unchanged but for its coverage-information extensions (earlier ones for the same
    coverage are replaced: this assertion supersedes them)."""
    resource = copy_json(raw_order)
    ours = {a.coverage_ref for a in assertions}
    kept = [e for e in resource.get("extension") or () if not _is_coverage_info_for(e, ours)]
    resource["extension"] = kept + [a.extension() for a in assertions]
    ref = f"{resource.get('resourceType')}/{resource.get('id')}"
    return {"type": "update", "description": f"Add {policy_number} coverage information to {ref}",
            "resource": resource}


def _is_coverage_info_for(extension: Any, coverage_refs: set[str]) -> bool:
    if not isinstance(extension, Mapping) or extension.get("url") != COVERAGE_INFO_URL:
        return False
    refs = [(e.get("valueReference") or {}).get("reference") for e in extension.get("extension") or ()
            if isinstance(e, Mapping) and e.get("url") == "coverage"]
    return any(r in coverage_refs for r in refs)
