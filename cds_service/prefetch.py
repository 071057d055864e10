"""Prefetch: the templates discovery declares, and the data of one call gathered from prefetch or the FHIR server.

A prefetch value may be a resource, a searchset Bundle (possibly paged), an OperationOutcome, or
`null`. CDS Hooks 2.0 says a client with no data for a key sends `null`, so `null` reads as
"supplied, nothing there"; an OperationOutcome says the client failed, so that data is unknown.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .errors import PrefetchUnavailable
from .fhir_client import Fetched, fetch_all
from .hook_request import HookRequest
from .raw_resources import PrefetchBundle, RawResource, Resources, UnreadableJSON

PATIENT = "{{context.patientId}}"
PREFETCH_TEMPLATES: dict[str, str] = {
    "patient": f"Patient/{PATIENT}",
    "user": "{{context.userId}}",
    "practitionerRoles": "PractitionerRole?practitioner={{userPractitionerId}}",
    "coverage": f"Coverage?patient={PATIENT}&status=active",
    "conditions": f"Condition?patient={PATIENT}",
    "observations": f"Observation?patient={PATIENT}",
    "medicationRequests": f"MedicationRequest?patient={PATIENT}",
    "medicationAdministrations": f"MedicationAdministration?patient={PATIENT}",
    "medicationStatements": f"MedicationStatement?patient={PATIENT}",
    "medicationDispenses": f"MedicationDispense?patient={PATIENT}",
    "procedures": f"Procedure?patient={PATIENT}",
}


@dataclass
class Gathered:
    """Resources per prefetch key (None: unknown), and what failed."""

    data: dict[str, Resources | None]
    unreadable: list[str] = field(default_factory=list)


def _fill(template: str, request: HookRequest) -> str | None:
    user = request.user_id
    values = {
        "{{context.patientId}}": request.patient_id,
        "{{context.userId}}": user,
        "{{userPractitionerId}}": user.split("/", 1)[1] if user.startswith("Practitioner/") else None,
    }
    for token, value in values.items():
        if token in template:
            if not value:
                return None
            template = template.replace(token, value)
    return template


def _normalise(key: str, value: Any) -> tuple[Resources | None, str | None, str | None]:
    """(resources or None, next-page URL, reason unreadable) for one prefetch value."""
    if value is None:
        return Resources(), None, None
    if isinstance(value, PrefetchBundle):
        return value.resources, value.next_url, None
    if not isinstance(value, RawResource):
        return None, None, f"prefetch '{key}' is not a FHIR resource"
    if value.resource_type == "OperationOutcome":
        return None, None, f"the EHR could not prefetch '{key}'"
    return Resources([value]), None, None


def gather(request: HookRequest, keys: Iterable[str], budget_s: float) -> Gathered:
    """Collect the data for `keys`: prefetch first, then the FHIR server for what is missing or paged.

    Raises PrefetchUnavailable when a key is absent from prefetch and there is no FHIR server to ask.
    """
    out = Gathered(data={})
    to_fetch: dict[str, str] = {}
    partial: dict[str, Resources] = {}
    for key in keys:
        if key in request.prefetch:
            resources, next_url, reason = _normalise(key, request.prefetch[key])
            if reason:
                out.unreadable.append(reason)
            if next_url and request.fhir_server:
                partial[key] = resources
                to_fetch[key] = next_url
            elif next_url:
                out.unreadable.append(f"prefetch '{key}' is paged and there is no FHIR server to read the rest")
                resources = None
            out.data[key] = resources
            continue
        query = _fill(PREFETCH_TEMPLATES[key], request)
        if not request.fhir_server:
            if key == "practitionerRoles" and query is None:
                out.data[key] = None
                continue
            raise PrefetchUnavailable(
                f"Prefetch '{key}' was not supplied and the request has no fhirServer to read it from",
                f"$.prefetch.{key}")
        if query is None:
            out.data[key] = None
            continue
        to_fetch[key] = query
    if to_fetch:
        fetched = fetch_all(request.fhir_server, to_fetch, request.access_token, budget_s)
        for key, result in fetched.items():
            out.data[key] = _merge(partial.get(key), result)
            if result.error:
                out.unreadable.append(f"{key}: {result.error}")
    return out


def _merge(first_page: Resources | None, result: Fetched) -> Resources | None:
    if result.resources is None:
        return None
    try:
        first = first_page.items if first_page is not None else []
    except UnreadableJSON:
        return None  # the first page cannot be read: the data set is unknown
    return Resources(first + result.resources)
