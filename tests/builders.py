"""Small FHIR R4 resource builders for fixtures and tests: valid resources, readable at a glance."""
from __future__ import annotations

from typing import Any

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"
SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
NUCC = "http://nucc.org/provider-taxonomy"
HCPCS = "https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets"
UCUM = "http://unitsofmeasure.org"
SYSTEMS = {"rxnorm": RXNORM, "icd10cm": ICD10, "snomed": SNOMED, "loinc": LOINC, "nucc": NUCC, "hcpcs": HCPCS}
PATIENT_ID = "pat-1"


def concept(system: str, code: str, display: str = "", text: str | None = None) -> dict[str, Any]:
    coding = {"system": SYSTEMS.get(system, system), "code": code}
    if display:
        coding["display"] = display
    out: dict[str, Any] = {"coding": [coding]}
    if text:
        out["text"] = text
    return out


def quantity(value: float, unit: str) -> dict[str, Any]:
    return {"value": value, "unit": unit, "system": UCUM, "code": unit}


def patient(birth_date: str | None = "1979-04-02", pid: str = PATIENT_ID, gender: str = "female") -> dict[str, Any]:
    out: dict[str, Any] = {"resourceType": "Patient", "id": pid, "gender": gender,
                           "name": [{"family": "Testpatient", "given": ["Ada"]}]}
    if birth_date:
        out["birthDate"] = birth_date
    return out


def condition(cid: str, system: str, code: str, display: str = "", status: str = "active",
              onset: str | None = None) -> dict[str, Any]:
    out = {
        "resourceType": "Condition", "id": cid, "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "clinicalStatus": concept("http://terminology.hl7.org/CodeSystem/condition-clinical", status),
        "verificationStatus": concept("http://terminology.hl7.org/CodeSystem/condition-ver-status", "confirmed"),
        "code": concept(system, code, display),
    }
    if onset:
        out["onsetDateTime"] = onset
    return out


def observation(oid: str, system: str, code: str, when: str, value: float | None = None, unit: str | None = None,
                value_code: tuple[str, str, str] | None = None, value_text: str | None = None,
                high: float | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"resourceType": "Observation", "id": oid, "status": "final",
                           "subject": {"reference": f"Patient/{PATIENT_ID}"},
                           "code": concept(system, code), "effectiveDateTime": when}
    if value is not None:
        out["valueQuantity"] = quantity(value, unit or "1")
    if value_code is not None:
        out["valueCodeableConcept"] = concept(*value_code)
    if value_text is not None:
        out["valueString"] = value_text
    if high is not None:
        out["referenceRange"] = [{"high": quantity(high, unit or "1")}]
    return out


def vitals(when: str, height_cm: float = 170.0, weight_kg: float = 70.0, prefix: str = "v") -> list[dict[str, Any]]:
    """Height and weight on one day (Mosteller BSA of 170 cm / 70 kg is 1.82 m²)."""
    return [observation(f"{prefix}-h-{when}", "loinc", "8302-2", when, height_cm, "cm"),
            observation(f"{prefix}-w-{when}", "loinc", "29463-7", when, weight_kg, "kg")]


def timing(period: float | None = None, unit: str | None = None, count: int | None = None, frequency: int = 1,
           start: str | None = None, events: list[str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if events:
        out["event"] = events
    repeat: dict[str, Any] = {}
    if period is not None:
        repeat.update(frequency=frequency, period=period, periodUnit=unit)
    if count is not None:
        repeat["count"] = count
    if start:
        repeat["boundsPeriod"] = {"start": start}
    if repeat:
        out["repeat"] = repeat
    return out


def med_request(mid: str, med: dict[str, Any], dose: tuple[float, str] | None = None, timing_: dict | None = None,
                status: str = "draft", authored: str | None = "2026-11-20", **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"resourceType": "MedicationRequest", "id": mid, "status": status, "intent": "order",
                           "subject": {"reference": f"Patient/{PATIENT_ID}"}, "medicationCodeableConcept": med,
                           "requester": {"reference": "Practitioner/prac-1"}}
    if authored:
        out["authoredOn"] = authored
    if dose is not None or timing_ is not None:
        inst: dict[str, Any] = {"sequence": 1}
        if timing_:
            inst["timing"] = timing_
        if dose is not None:
            inst["doseAndRate"] = [{"doseQuantity": quantity(*dose)}]
        out["dosageInstruction"] = [inst]
    out.update(extra)
    return out


def med_admin(aid: str, med: dict[str, Any], when: str, dose: tuple[float, str] | None = None,
              status: str = "completed") -> dict[str, Any]:
    out: dict[str, Any] = {"resourceType": "MedicationAdministration", "id": aid, "status": status,
                           "subject": {"reference": f"Patient/{PATIENT_ID}"}, "medicationCodeableConcept": med,
                           "effectiveDateTime": when}
    if dose is not None:
        out["dosage"] = {"dose": quantity(*dose)}
    return out


def med_statement(sid: str, med: dict[str, Any], status: str = "active", start: str = "2025-01-01") -> dict[str, Any]:
    return {"resourceType": "MedicationStatement", "id": sid, "status": status,
            "subject": {"reference": f"Patient/{PATIENT_ID}"}, "medicationCodeableConcept": med,
            "effectivePeriod": {"start": start}}


def med_dispense(did: str, med: dict[str, Any], handed: str, qty: float, days: float) -> dict[str, Any]:
    return {"resourceType": "MedicationDispense", "id": did, "status": "completed",
            "subject": {"reference": f"Patient/{PATIENT_ID}"}, "medicationCodeableConcept": med,
            "whenHandedOver": handed, "quantity": {"value": qty}, "daysSupply": quantity(days, "d")}


def practitioner_role(*specialties: str, rid: str = "role-1") -> dict[str, Any]:
    return {"resourceType": "PractitionerRole", "id": rid, "practitioner": {"reference": "Practitioner/prac-1"},
            "specialty": [concept("nucc", s) for s in specialties]}


def coverage(line_of_business: str = "medicaid", cid: str = "cov-1", status: str = "active") -> dict[str, Any]:
    codes = {"medicaid": ("SUBSIDIZ", "subsidized health program"), "commercial": ("EHCPOL", "extended healthcare"),
             "marketplace": ("HIP", "health insurance plan policy")}
    code, display = codes[line_of_business]
    return {"resourceType": "Coverage", "id": cid, "status": status,
            "beneficiary": {"reference": f"Patient/{PATIENT_ID}"}, "payor": [{"reference": "Organization/payer-1"}],
            "type": concept("http://terminology.hl7.org/CodeSystem/v3-ActCode", code, display),
            "class": [{"type": concept("http://terminology.hl7.org/CodeSystem/coverage-class", "plan"),
                       "value": line_of_business, "name": f"{line_of_business} plan"}]}


def bundle(resources: list[dict[str, Any]] | None, btype: str = "searchset") -> dict[str, Any] | None:
    if resources is None:
        return None
    return {"resourceType": "Bundle", "type": btype, "entry": [{"resource": r} for r in resources]}


def operation_outcome(text: str = "could not prefetch") -> dict[str, Any]:
    return {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "exception",
                                                           "diagnostics": text}]}


def hook_request(drafts: list[dict[str, Any]], hook: str = "order-sign", patient_: dict | None = None,
                 specialties: list[str] | None = None, conditions: list | None = (),
                 observations: list | None = (), requests: list | None = (),
                 administrations: list | None = (), statements: list | None = (),
                 dispenses: list | None = (), coverages: list | None = None,
                 instance: str = "7f3a1c2e-0000-4000-8000-000000000001", **prefetch_override: Any) -> dict[str, Any]:
    """A full CDS Hooks request. Each data list defaults to empty (supplied, nothing there); None sends an
    OperationOutcome instead (the EHR could not read it), which makes that data unknown."""
    def key(resources):
        return operation_outcome() if resources is None else bundle(list(resources))

    prefetch = {
        "patient": patient_ if patient_ is not None else patient(),
        "user": practitioner_role(*(specialties or [])),
        "practitionerRoles": bundle([]),
        "coverage": key(coverages if coverages is not None else [coverage()]),
        "conditions": key(conditions),
        "observations": key(observations),
        "medicationRequests": key(requests),
        "medicationAdministrations": key(administrations),
        "medicationStatements": key(statements),
        "medicationDispenses": key(dispenses),
        "procedures": bundle([]),
    }
    prefetch.update(prefetch_override)
    context: dict[str, Any] = {"userId": "Practitioner/prac-1", "patientId": PATIENT_ID,
                               "draftOrders": bundle(drafts, "collection")}
    if hook == "order-select":
        context["selections"] = [f"MedicationRequest/{d['id']}" for d in drafts if d["resourceType"] ==
                                 "MedicationRequest"][:1]
    return {"hook": hook, "hookInstance": instance, "context": context, "prefetch": prefetch}
