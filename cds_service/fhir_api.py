"""The FHIR endpoints of the documentation loop (DTR-style): forms, the questionnaire package, stored answers."""
from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, json

from .db import storage
from .errors import InvalidRequest, ServiceError, UnprocessableResource
from .fhir_facts import read_drafts, resource_problem
from .hooks import json_body
from .policies import Policy
from .questionnaire import (
    RESPONSE_STATUSES,
    build_questionnaire,
    canonical,
    parse_authored,
    policy_for_canonical,
    prefilled_response,
    read_answers,
)
from .routing import route
from .state import service_state

bp = Blueprint("fhir", __name__, url_prefix="/fhir")
FHIR_JSON = "application/fhir+json"


class NotFound(ServiceError):
    status = 404
    code = "not-found"


def fhir_response(resource: Mapping[str, Any], status: int = 200, headers: Mapping[str, str] | None = None):
    return Response(json.dumps(resource), status=status, mimetype=FHIR_JSON, headers=dict(headers or {}))


def _checked(raw: Any, resource_type: str) -> Mapping[str, Any]:
    problem = resource_problem(raw, resource_type)
    if problem:
        raise InvalidRequest(f"Invalid {resource_type}: {problem[0]}", problem[1])
    return raw


@bp.get("/Questionnaire/<policy_key>")
def get_questionnaire(policy_key: str):
    state = service_state()
    policy = state.library.policies.get(policy_key)
    if policy is None:
        raise NotFound(f"No Questionnaire '{policy_key}'")
    return fhir_response(build_questionnaire(policy, state.base_url()))


def _patient_id(reference: Any) -> str | None:
    """The id of a Patient reference, relative or absolute ('Patient/p1', 'https://ehr/fhir/Patient/p1')."""
    if not isinstance(reference, str):
        return None
    parts = reference.rstrip("/").split("/")
    return parts[-1] if len(parts) >= 2 and parts[-2] == "Patient" and parts[-1] else None


@bp.post("/QuestionnaireResponse")
def post_questionnaire_response():
    """Validate and store a completed form; its answers count in every later evaluation (contract §6)."""
    state = service_state()
    resource = dict(_checked(json_body(), "QuestionnaireResponse"))
    if resource.get("status") not in RESPONSE_STATUSES:
        raise InvalidRequest(f"status must be one of {sorted(RESPONSE_STATUSES)}", "QuestionnaireResponse.status")
    policy = policy_for_canonical(state.library, resource.get("questionnaire"))
    if policy is None:
        raise UnprocessableResource("'questionnaire' must be the canonical of a policy's form "
                                    f"({state.base_url()}/fhir/Questionnaire/<policy>)",
                                    "QuestionnaireResponse.questionnaire")
    patient = _patient_id((resource.get("subject") or {}).get("reference"))
    if patient is None:
        raise UnprocessableResource("'subject' must reference the Patient", "QuestionnaireResponse.subject")
    answers = read_answers(resource, policy) if resource["status"] in ("in-progress", "completed", "amended") \
        else []
    response_id = uuid.uuid4().hex
    now = datetime.now(UTC)
    resource["id"] = response_id
    resource["meta"] = {**(resource.get("meta") or {}), "lastUpdated": now.isoformat().replace("+00:00", "Z")}
    storage().save_questionnaire_response(
        response_id=response_id, patient_id=patient, policy=policy.key, questionnaire=canonical(policy,
                                                                                               state.base_url()),
        status=resource["status"], authored=parse_authored(resource.get("authored")) or now, resource=resource,
        answers=answers)
    location = f"{state.base_url()}/fhir/QuestionnaireResponse/{response_id}"
    return fhir_response(resource, 201, {"Location": location})


@bp.get("/QuestionnaireResponse/<response_id>")
def get_questionnaire_response(response_id: str):
    found = storage().questionnaire_response(response_id)
    if found is None:
        raise NotFound(f"No QuestionnaireResponse '{response_id}'")
    return fhir_response(found)


def _parameters(body: Any) -> dict[str, list[Any]]:
    """Parameters by name: resources, or primitive values."""
    _checked(body, "Parameters")
    out: dict[str, list[Any]] = {}
    for p in body.get("parameter") or ():
        value = p.get("resource")
        if value is None:
            value = next((v for k, v in p.items() if k.startswith("value")), None)
        out.setdefault(p.get("name", ""), []).append(value)
    return out


def _policies_asked(params: Mapping[str, list[Any]]) -> tuple[list[Policy], str | None]:
    """The forms asked for: by canonical, by the orders' drugs, or by a coverage assertion id (`context`)."""
    state = service_state()
    chosen: dict[str, Policy] = {}
    for url in params.get("questionnaire", ()):
        policy = policy_for_canonical(state.library, url if isinstance(url, str) else None)
        if policy is None:
            raise UnprocessableResource(f"No form with canonical '{url}'", "Parameters.parameter")
        chosen[policy.key] = policy
    orders = [o for o in params.get("order", ()) if isinstance(o, Mapping)]
    meds = {f"Medication/{o.get('id')}": o for o in orders if o.get("resourceType") == "Medication"}
    drafts, _ = read_drafts(orders, meds)
    for routed in route(state.library, drafts):
        chosen.setdefault(routed.policy.key, routed.policy)
    assertion_id = next((c for c in params.get("context", ()) if isinstance(c, str)), None)
    if assertion_id:
        found = storage().assertion(assertion_id)
        if found is not None and found.policy in state.library.policies:
            chosen.setdefault(found.policy, state.library.policies[found.policy])
    return list(chosen.values()), assertion_id


def _package_patient(params: Mapping[str, list[Any]], assertion_id: str | None) -> str | None:
    for cov in params.get("coverage", ()):
        if isinstance(cov, Mapping):
            found = _patient_id((cov.get("beneficiary") or {}).get("reference"))
            if found:
                return found
    for order in params.get("order", ()):
        if isinstance(order, Mapping):
            found = _patient_id((order.get("subject") or {}).get("reference"))
            if found:
                return found
    if assertion_id:
        found = storage().assertion(assertion_id)
        return found.patient_id if found else None
    return None


@bp.post("/Questionnaire/$questionnaire-package")
def questionnaire_package():
    """DTR $questionnaire-package: for each form, a Bundle of the Questionnaire and a pre-filled response."""
    state = service_state()
    params = _parameters(json_body())
    for cov in params.get("coverage", ()):
        _checked(cov, "Coverage")
    policies, assertion_id = _policies_asked(params)
    if not policies:
        raise UnprocessableResource("No form applies: give a questionnaire canonical, an order for a covered "
                                    "drug, or a coverage-assertion-id as context", "Parameters")
    patient = _package_patient(params, assertion_id)
    answers = storage().answers_for(patient, [p.key for p in policies]) if patient else {}
    orders = {f"{o.get('resourceType')}/{o.get('id')}" for o in params.get("order", ()) if isinstance(o, Mapping)}
    authored = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    out = []
    for policy in policies:
        trace = None
        if patient:
            trace = storage().latest_trace(patient, policy.key, next(iter(orders), None) if len(orders) == 1
                                           else None, assertion_id)
        entries = [{"resource": build_questionnaire(policy, state.base_url())}]
        if patient:
            entries.append({"resource": prefilled_response(policy, state.base_url(), f"Patient/{patient}", trace,
                                                           answers, authored)})
        out.append({"name": "PackageBundle", "resource": {
            "resourceType": "Bundle", "type": "collection", "entry": entries}})
    return fhir_response({"resourceType": "Parameters", "parameter": out})
