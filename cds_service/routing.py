"""Recognising orders (contract §4): by a routed code first, else by the drug's name in the order's text."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .fhir_facts import raw_medication
from .policies import Policy, PolicyLibrary
from .record import MedicationFact


@dataclass(frozen=True)
class RoutedOrder:
    policy: Policy
    order: MedicationFact
    recognised_by: str  # "code" or "name"


def may_route(library: PolicyLibrary, raw_drafts: Iterable[Mapping[str, Any]],
              medications: Mapping[str, Mapping[str, Any]]) -> bool:
    """Whether any raw draft MedicationRequest carries a routed code or a policy drug's name.

    Most orders an EHR signs are for drugs no policy covers; this answers them before any FHIR model is built.
    False only when `route` would find nothing either (same codes, same names, read from the same JSON).
    """
    for raw in raw_drafts:
        if raw.get("resourceType") != "MedicationRequest":
            continue
        codings, text = raw_medication(raw, medications)
        if any(c in library.routing for c in codings) or any(p.own_drug.matches_name(text) for p in library):
            return True
    return False


def route(library: PolicyLibrary, drafts: Iterable[MedicationFact]) -> list[RoutedOrder]:
    """The draft orders some policy covers, each with the policy that covers it."""
    routed = []
    for order in drafts:
        key = next((library.routing[(c.system, c.code)] for c in order.codes
                    if (c.system, c.code) in library.routing), None)
        if key:
            routed.append(RoutedOrder(library.policies[key], order, "code"))
            continue
        policy = next((p for p in library if p.own_drug.matches_name(order.text)
                       or any(p.own_drug.matches_name(c.display) for c in order.codes)), None)
        if policy:
            routed.append(RoutedOrder(policy, order, "name"))
    return routed
