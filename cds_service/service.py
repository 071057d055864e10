"""One hook call end to end: request -> patient record -> policy evaluation -> cards and system actions."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from .cards import render_card
from .crd import Assertion, Configuration, assertions_for, coverage_action
from .evaluate import Evaluation, evaluate_order
from .fact_cache import FactCache
from .fhir_facts import build_record, medications_in, read_drafts
from .hook_request import HookRequest
from .policies import PolicyLibrary
from .prefetch import gather
from .record import Answer
from .routing import may_route, route

AnswersLookup = Callable[[str, list[str]], dict[str, Answer]]


@dataclass
class HookResult:
    """The response body and what was evaluated (for the audit trail and the logs)."""

    body: dict[str, Any]
    evaluations: list[Evaluation]
    assertions: list[Assertion] = field(default_factory=list)


def _medications_in(resources: list[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    return {f"Medication/{r['id']}": r for r in resources
            if r.get("resourceType") == "Medication" and isinstance(r.get("id"), str)}


def answer_hook(request: HookRequest, library: PolicyLibrary, *, today: date, timeout_s: float,
                base_url: str, answers: AnswersLookup | None = None, facts: FactCache | None = None) -> HookResult:
    """Evaluate every routed draft order and render the response (no card for orders no policy covers).

    `facts` remembers what byte-identical resources read as, across calls (the same chart arrives again).
    """
    # systemActions is always present (CDS Hooks 2.0 allows it on every hook; order-sign and the CRD suites
    # require it there), also when a request for another hook reaches the order-sign service.
    empty: dict[str, Any] = {"cards": [], "systemActions": []}
    if not request.is_order_hook:
        return HookResult(empty, [])
    raw_drafts = request.draft_entries
    draft_meds = _medications_in(raw_drafts)
    if not may_route(library, raw_drafts, draft_meds):
        return HookResult(empty, [])
    drafts, draft_unreadable = read_drafts(raw_drafts, draft_meds, facts)
    routed = route(library, drafts)
    if request.hook == "order-select" and request.selections:
        # Only the newly selected orders are evaluated; the other drafts are context (concurrent drugs).
        selected = set(request.selections)
        routed = [r for r in routed if r.order.ref in selected or r.order.ref.split("/", 1)[-1] in selected]
    if not routed:
        return HookResult(empty, [])
    keys = sorted({k for r in routed for k in r.policy.reads} | {"coverage"})
    gathered = gather(request, keys, timeout_s)
    medications = {**medications_in(gathered.data, facts, gathered.unreadable), **draft_meds}
    # Only what the routed policies read is validated: the cost follows their data, not the record's size.
    interest = library.interest_for(r.policy.key for r in routed)
    record = build_record(request.patient_id, gathered.data, drafts, medications, interest, today,
                          [*draft_unreadable, *gathered.unreadable], facts)
    if answers is not None:
        record.answers = answers(request.patient_id, sorted({r.policy.key for r in routed}))
    raw_by_ref = {f"MedicationRequest/{r.get('id')}": r for r in raw_drafts
                  if r.get("resourceType") == "MedicationRequest"}
    evaluations = [evaluate_order(r.policy, record, r.order, r.recognised_by) for r in routed]
    cards = [render_card(e, raw_by_ref.get(e.order.ref), f"{base_url}{e.policy.canonical_path}")
             for e in evaluations]
    config = Configuration.from_request(request.extension)
    body = {**empty, "cards": config.select_cards(cards)}
    issued: list[Assertion] = []
    if config.coverage_info:
        for e in evaluations:
            raw = raw_by_ref.get(e.order.ref)
            found = assertions_for(e, record, request.hook, f"{base_url}{e.policy.canonical_path}", today)
            if raw is not None and found:
                body["systemActions"].append(coverage_action(raw, found, e.policy.number))
                issued += found
    return HookResult(body, evaluations, issued)
