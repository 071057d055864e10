"""The two CDS services this server offers (contract §1, §3), as discovery lists them."""
from __future__ import annotations

from typing import Any

from .crd import CONFIGURATION_OPTIONS
from .prefetch import PREFETCH_TEMPLATES

SERVICES: dict[str, dict[str, Any]] = {
    "prior-auth-order-sign": {
        "hook": "order-sign",
        "id": "prior-auth-order-sign",
        "title": "Prior authorization criteria for drug orders (order-sign)",
        "description": "Evaluates signed drug orders against the payer's prior-authorization policies: unmet "
                       "criteria, dose caps, missing documentation, and CRD coverage information.",
        "prefetch": PREFETCH_TEMPLATES,
        "usageRequirements": "Send the draft MedicationRequest(s) in context.draftOrders.",
        "extension": {"davinci-crd.configuration-options": CONFIGURATION_OPTIONS},
    },
    "prior-auth-order-select": {
        "hook": "order-select",
        "id": "prior-auth-order-select",
        "title": "Prior authorization criteria for drug orders (order-select)",
        "description": "Early view of the prior-authorization criteria for a selected drug order; never asks for "
                       "clinical documentation at selection time.",
        "prefetch": PREFETCH_TEMPLATES,
        "usageRequirements": "Send the draft MedicationRequest(s) in context.draftOrders.",
        "extension": {"davinci-crd.configuration-options": CONFIGURATION_OPTIONS},
    },
}


def discovery_document() -> dict[str, Any]:
    """The CDS Hooks discovery response."""
    return {"services": list(SERVICES.values())}
