"""Recognising orders (contract §4): by a routed code first, else by the drug's name in the order's text."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .policies import Policy, PolicyLibrary
from .record import MedicationFact


@dataclass(frozen=True)
class RoutedOrder:
    policy: Policy
    order: MedicationFact
    recognised_by: str  # "code" or "name"


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
