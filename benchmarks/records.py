"""Realistic order-sign requests for load tests: one draft order of a policy's drug and a record of N resources.

A record is what an oncology or neurology EHR would prefetch: a few conditions, a long history of vital signs and
labs (most of the record), medication requests, administrations (chemotherapy visits with their supportive drugs),
statements and dispenses. Most of it is data no policy reads; what a policy does read (its indication, its labs,
height and weight, its own and related drugs) is spread through it, as in a real chart.

Codes come from ../shared/terminology/codes.json (routing codes of the five drugs, diagnoses, labs, specialties);
filler codes (hypertension, metformin, blood pressure...) are common real codes no policy names. Generation is
seeded, so the same size always gives the same bytes.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"
LOINC = "http://loinc.org"
NUCC = "http://nucc.org/provider-taxonomy"
HCPCS = "https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets"
UCUM = "http://unitsofmeasure.org"
OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
TODAY = date(2026, 11, 26)  # the evaluation date the benchmark gives the service (CDS_TODAY)
PATIENT_ID = "bench-pat-1"
SIZES = (20, 200, 2000, 5000)

Coding = tuple[str, str, str]  # (system, code, display)


@dataclass(frozen=True)
class DrugProfile:
    """One policy's drug as an EHR orders it, and the chart of a patient who would receive it."""

    policy: str
    order: Coding
    dose: tuple[float, str]
    every: tuple[float, str]  # repeat period of the order
    indication: tuple[Coding, ...]
    specialty: str  # NUCC taxonomy of the prescriber
    history: tuple[Coding, ...]  # related drugs given before (prior lines of therapy, steps)
    gender: str = "female"
    birth_date: str = "1968-05-14"


def _rx(code: str, display: str) -> Coding:
    return (RXNORM, code, display)


PROFILES: tuple[DrugProfile, ...] = (
    DrugProfile(
        "mitoxantrone", _rx("197989", "mitoxantrone 2 MG/ML Injectable Solution"), (12.0, "mg/m2"), (3, "mo"),
        ((ICD10, "G35.A", "Relapsing-remitting multiple sclerosis"),), "2084N0400X",
        (_rx("1373478", "dimethyl fumarate"), _rx("1310520", "teriflunomide"), _rx("1012892", "fingolimod"),
         _rx("84375", "glatiramer")),
    ),
    DrugProfile(
        "ixazomib", _rx("1723770", "ixazomib 4 MG Oral Capsule"), (4.0, "mg"), (1, "wk"),
        ((ICD10, "C90.00", "Multiple myeloma not having achieved remission"),), "207RX0202X",
        (_rx("342369", "lenalidomide"), _rx("3264", "dexamethasone"), _rx("358258", "bortezomib")),
        gender="male", birth_date="1955-09-30",
    ),
    DrugProfile(
        # No RxNorm code of dexrazoxane is confirmed in the terminology file: the order routes by HCPCS J1190.
        "dexrazoxane", (HCPCS, "J1190", "Injection, dexrazoxane hydrochloride, per 250 mg"), (500.0, "mg/m2"),
        (3, "wk"), ((ICD10, "C50.411", "Malignant neoplasm of upper-outer quadrant of right female breast"),),
        "207RX0202X", (_rx("3639", "DOXOrubicin"), _rx("3002", "cyclophosphamide")),
    ),
    DrugProfile(
        "inotuzumab", _rx("1942954", "inotuzumab ozogamicin 0.9 MG Injection"), (0.8, "mg/m2"), (3, "wk"),
        ((ICD10, "C91.02", "Acute lymphoblastic leukemia, in relapse"),), "207RH0000X",
        (_rx("11202", "vincristine"), _rx("3041", "cytarabine"), _rx("6851", "methotrexate")),
        gender="male", birth_date="1990-02-11",
    ),
    DrugProfile(
        "ixabepilone", _rx("1726271", "ixabepilone 45 MG Injection"), (40.0, "mg/m2"), (3, "wk"),
        ((ICD10, "C50.411", "Malignant neoplasm of upper-outer quadrant of right female breast"),), "207RX0202X",
        (_rx("194000", "capecitabine"), _rx("3639", "DOXOrubicin"), _rx("56946", "PACLitaxel")),
    ),
)
PROFILE_BY_POLICY = {p.policy: p for p in PROFILES}

FILLER_CONDITIONS: tuple[Coding, ...] = (
    (ICD10, "I10", "Essential (primary) hypertension"), (ICD10, "E11.9", "Type 2 diabetes mellitus without "
                                                                          "complications"),
    (ICD10, "E78.5", "Hyperlipidemia, unspecified"), (ICD10, "K21.9", "Gastro-esophageal reflux disease"),
    (ICD10, "F41.1", "Generalized anxiety disorder"), (ICD10, "G47.33", "Obstructive sleep apnea"),
    (ICD10, "E03.9", "Hypothyroidism, unspecified"), (ICD10, "J45.909", "Unspecified asthma, uncomplicated"),
    (ICD10, "M54.50", "Low back pain, unspecified"), (ICD10, "D64.9", "Anemia, unspecified"),
)
# (LOINC, display, unit, typical value, spread); height and weight are what dose clauses read, the rest is filler.
VITALS: tuple[tuple[str, str, str, float, float], ...] = (
    ("8302-2", "Body height", "cm", 168.0, 0.5), ("29463-7", "Body weight", "kg", 72.0, 3.0),
    ("8480-6", "Systolic blood pressure", "mm[Hg]", 124.0, 12.0),
    ("8462-4", "Diastolic blood pressure", "mm[Hg]", 78.0, 8.0), ("8867-4", "Heart rate", "/min", 74.0, 9.0),
    ("8310-5", "Body temperature", "Cel", 36.8, 0.3), ("9279-1", "Respiratory rate", "/min", 16.0, 2.0),
    ("59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry", "%", 97.0, 1.5),
    ("39156-5", "Body mass index (BMI) [Ratio]", "kg/m2", 25.5, 1.0),
)
# (LOINC, display, unit, typical value, spread, reference high): CBC and CMP as drawn before each cycle.
LABS: tuple[tuple[str, str, str, float, float, float], ...] = (
    ("6690-2", "Leukocytes [#/volume] in Blood by Automated count", "10*3/uL", 6.5, 1.5, 11.0),
    ("718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL", 12.8, 1.0, 17.0),
    ("777-3", "Platelets [#/volume] in Blood by Automated count", "10*3/uL", 230.0, 40.0, 400.0),
    ("751-8", "Neutrophils [#/volume] in Blood by Automated count", "10*3/uL", 3.9, 1.0, 7.5),
    ("2160-0", "Creatinine [Mass/volume] in Serum or Plasma", "mg/dL", 0.9, 0.15, 1.3),
    ("2951-2", "Sodium [Moles/volume] in Serum or Plasma", "mmol/L", 139.0, 2.0, 145.0),
    ("2823-3", "Potassium [Moles/volume] in Serum or Plasma", "mmol/L", 4.2, 0.3, 5.1),
    ("2345-7", "Glucose [Mass/volume] in Serum or Plasma", "mg/dL", 98.0, 12.0, 99.0),
    ("1742-6", "Alanine aminotransferase [Enzymatic activity/volume] in Serum or Plasma", "U/L", 24.0, 6.0, 41.0),
    ("1920-8", "Aspartate aminotransferase [Enzymatic activity/volume] in Serum or Plasma", "U/L", 22.0, 5.0, 40.0),
    ("1975-2", "Bilirubin.total [Mass/volume] in Serum or Plasma", "mg/dL", 0.6, 0.2, 1.2),
)
FILLER_MEDS: tuple[Coding, ...] = (
    _rx("29046", "lisinopril"), _rx("6809", "metformin"), _rx("83367", "atorvastatin"), _rx("7646", "omeprazole"),
    _rx("17767", "amlodipine"), _rx("10582", "levothyroxine"), _rx("36437", "sertraline"),
    _rx("161", "acetaminophen"),
)
SUPPORTIVE_MEDS: tuple[Coding, ...] = (
    _rx("26225", "ondansetron"), _rx("3498", "diphenhydramine"), _rx("9863", "sodium chloride"),
    _rx("5224", "heparin"), _rx("161", "acetaminophen"),
)
# Share of the record per data set (the rest is vital signs): a chart is mostly observations.
SHARES = {"conditions": 0.03, "labs": 0.35, "medicationRequests": 0.08, "medicationAdministrations": 0.06,
          "medicationStatements": 0.02, "medicationDispenses": 0.02}


def _concept(coding: Coding, text: str | None = None) -> dict[str, Any]:
    system, code, display = coding
    out: dict[str, Any] = {"coding": [{"system": system, "code": code, "display": display}]}
    out["text"] = text or display
    return out


def _quantity(value: float, unit: str) -> dict[str, Any]:
    return {"value": value, "unit": unit, "system": UCUM, "code": unit}


def _subject() -> dict[str, str]:
    return {"reference": f"Patient/{PATIENT_ID}"}


def _when(day: date, hour: int = 9) -> str:
    return f"{day.isoformat()}T{hour:02d}:15:00-05:00"


def counts(size: int) -> dict[str, int]:
    """How many resources of each data set a record of `size` resources holds (they add up to `size`)."""
    out = {key: max(1, round(size * share)) for key, share in SHARES.items()}
    out["conditions"] = max(2, out["conditions"])
    out["vitals"] = size - sum(out.values())
    if out["vitals"] < 2:
        raise ValueError(f"a record needs at least 12 resources, not {size}")
    return out


class _Chart:
    """Builds one patient's resources, dated backwards from TODAY."""

    def __init__(self, profile: DrugProfile, rng: random.Random):
        self.p = profile
        self.rng = rng

    def conditions(self, n: int) -> list[dict[str, Any]]:
        codings = list(self.p.indication) + [FILLER_CONDITIONS[i % len(FILLER_CONDITIONS)]
                                             for i in range(n - len(self.p.indication))]
        out = []
        for i, coding in enumerate(codings[:n]):
            onset = TODAY - timedelta(days=400 + 97 * i)
            out.append({
                "resourceType": "Condition", "id": f"cond-{i}", "meta": {"lastUpdated": _when(onset)},
                "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                               "code": "active"}]},
                "verificationStatus": {"coding": [{
                    "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "confirmed"}]},
                "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-category",
                                          "code": "problem-list-item"}]}],
                "code": _concept(coding), "subject": _subject(), "onsetDateTime": onset.isoformat(),
                "recordedDate": onset.isoformat(),
            })
        return out

    def _observation(self, oid: str, day: date, category: str, loinc: str, display: str, unit: str, value: float,
                     high: float | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "resourceType": "Observation", "id": oid, "meta": {"lastUpdated": _when(day, 10)}, "status": "final",
            "category": [{"coding": [{"system": OBS_CATEGORY, "code": category}]}],
            "code": _concept((LOINC, loinc, display)), "subject": _subject(),
            "encounter": {"reference": f"Encounter/enc-{day.isoformat()}"},
            "effectiveDateTime": _when(day), "issued": _when(day, 11).replace("-05:00", ".000-05:00"),
            "valueQuantity": _quantity(round(value, 2), unit),
        }
        if high is not None:
            out["referenceRange"] = [{"high": _quantity(high, unit)}]
            flag = "H" if value > high else "N"
            out["interpretation"] = [{"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "code": flag}]}]
        return out

    def vitals(self, n: int) -> list[dict[str, Any]]:
        out = []
        for i in range(n):
            visit, slot = divmod(i, len(VITALS))
            loinc, display, unit, mean, spread = VITALS[slot]
            day = TODAY - timedelta(days=3 + 14 * visit)
            value = mean + self.rng.uniform(-spread, spread)
            out.append(self._observation(f"vs-{i}", day, "vital-signs", loinc, display, unit, value))
        return out

    def labs(self, n: int) -> list[dict[str, Any]]:
        out = []
        for i in range(n):
            draw, slot = divmod(i, len(LABS))
            loinc, display, unit, mean, spread, high = LABS[slot]
            day = TODAY - timedelta(days=5 + 21 * draw)
            value = mean + self.rng.uniform(-spread, spread)
            out.append(self._observation(f"lab-{i}", day, "laboratory", loinc, display, unit, value, high))
        return out

    def _med_base(self, rtype: str, rid: str, coding: Coding, status: str) -> dict[str, Any]:
        return {"resourceType": rtype, "id": rid, "status": status, "medicationCodeableConcept": _concept(coding),
                "subject": _subject()}

    def requests(self, n: int) -> list[dict[str, Any]]:
        out = []
        drugs = list(self.p.history) + list(FILLER_MEDS)
        for i in range(n):
            coding = drugs[i % len(drugs)] if i < len(self.p.history) else FILLER_MEDS[i % len(FILLER_MEDS)]
            day = TODAY - timedelta(days=30 + 45 * i)
            # Prior lines were stopped; the chronic filler drugs of the last year are still active.
            status = "stopped" if coding in self.p.history else ("active" if i < 16 else "completed")
            res = self._med_base("MedicationRequest", f"medreq-{i}", coding, status)
            res.update({
                "intent": "order", "authoredOn": day.isoformat(), "requester": {"reference": "Practitioner/prac-2"},
                "dosageInstruction": [{"sequence": 1, "text": "as directed",
                                       "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d",
                                                             "boundsPeriod": {"start": day.isoformat()}}},
                                       "doseAndRate": [{"doseQuantity": _quantity(1, "{tbl}")}]}],
                "dispenseRequest": {"quantity": _quantity(30, "{tbl}"), "numberOfRepeatsAllowed": 2,
                                    "expectedSupplyDuration": _quantity(30, "d")},
            })
            out.append(res)
        return out

    def administrations(self, n: int) -> list[dict[str, Any]]:
        """Treatment visits: a prior-line drug now and then, supportive drugs around it (most of the list)."""
        out = []
        for i in range(n):
            visit = i // 4
            day = TODAY - timedelta(days=400 + 21 * visit)
            if i % 4 == 0:
                coding = self.p.history[visit % len(self.p.history)]
                dose = _quantity(60.0, "mg")
            else:
                coding = SUPPORTIVE_MEDS[i % len(SUPPORTIVE_MEDS)]
                dose = _quantity(8.0, "mg")
            res = self._med_base("MedicationAdministration", f"medadm-{i}", coding, "completed")
            res.update({"effectiveDateTime": _when(day, 10 + i % 4),
                        "performer": [{"actor": {"reference": "Practitioner/prac-3"}}],
                        "dosage": {"route": {"text": "intravenous"}, "dose": dose}})
            out.append(res)
        return out

    def statements(self, n: int) -> list[dict[str, Any]]:
        out = []
        for i in range(n):
            coding = self.p.history[i] if i < len(self.p.history) else FILLER_MEDS[i % len(FILLER_MEDS)]
            start = TODAY - timedelta(days=1500 - 200 * i)
            res = self._med_base("MedicationStatement", f"medst-{i}", coding, "completed")
            res.update({"effectivePeriod": {"start": start.isoformat(),
                                            "end": (start + timedelta(days=180)).isoformat()},
                        "dateAsserted": start.isoformat()})
            out.append(res)
        return out

    def dispenses(self, n: int) -> list[dict[str, Any]]:
        out = []
        for i in range(n):
            handed = TODAY - timedelta(days=20 + 30 * i)
            res = self._med_base("MedicationDispense", f"meddisp-{i}", FILLER_MEDS[i % len(FILLER_MEDS)],
                                 "completed")
            res.update({"whenHandedOver": _when(handed), "quantity": _quantity(30, "{tbl}"),
                        "daysSupply": _quantity(30, "d")})
            out.append(res)
        return out


def _searchset(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "searchset", "total": len(resources),
            "entry": [{"fullUrl": f"https://ehr.example.org/fhir/{r['resourceType']}/{r['id']}", "resource": r,
                       "search": {"mode": "match"}} for r in resources]}


def draft_order(profile: DrugProfile) -> dict[str, Any]:
    """The order being signed: the policy's drug at its usual dose and schedule, starting next week."""
    start = (TODAY + timedelta(days=7)).isoformat()
    value, unit = profile.every
    return {
        "resourceType": "MedicationRequest", "id": "bench-order-1", "status": "draft", "intent": "order",
        "medicationCodeableConcept": _concept(profile.order), "subject": _subject(),
        "authoredOn": TODAY.isoformat(), "requester": {"reference": "Practitioner/prac-1"},
        "dosageInstruction": [{"sequence": 1, "timing": {"repeat": {"frequency": 1, "period": value,
                                                                    "periodUnit": unit, "count": 4,
                                                                    "boundsPeriod": {"start": start}}},
                               "doseAndRate": [{"doseQuantity": _quantity(*profile.dose)}]}],
    }


def order_sign_request(profile: DrugProfile, size: int, seed: int = 7) -> dict[str, Any]:
    """A complete order-sign request whose prefetch holds a record of exactly `size` clinical resources."""
    n = counts(size)
    chart = _Chart(profile, random.Random(f"{profile.policy}-{size}-{seed}"))
    observations = chart.vitals(n["vitals"]) + chart.labs(n["labs"])
    observations.sort(key=lambda r: r["effectiveDateTime"], reverse=True)
    prefetch = {
        "patient": {"resourceType": "Patient", "id": PATIENT_ID, "gender": profile.gender,
                    "birthDate": profile.birth_date, "name": [{"family": "Benchmark", "given": ["Pat"]}]},
        "user": {"resourceType": "PractitionerRole", "id": "role-1",
                 "practitioner": {"reference": "Practitioner/prac-1"},
                 "specialty": [{"coding": [{"system": NUCC, "code": profile.specialty}]}]},
        "practitionerRoles": _searchset([]),
        "coverage": _searchset([{
            "resourceType": "Coverage", "id": "cov-1", "status": "active", "beneficiary": _subject(),
            "payor": [{"reference": "Organization/payer-1"}],
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "SUBSIDIZ",
                                 "display": "subsidized health program"}]},
            "class": [{"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/coverage-class",
                                            "code": "plan"}]}, "value": "medicaid", "name": "medicaid plan"}]}]),
        "conditions": _searchset(chart.conditions(n["conditions"])),
        "observations": _searchset(observations),
        "medicationRequests": _searchset(chart.requests(n["medicationRequests"])),
        "medicationAdministrations": _searchset(chart.administrations(n["medicationAdministrations"])),
        "medicationStatements": _searchset(chart.statements(n["medicationStatements"])),
        "medicationDispenses": _searchset(chart.dispenses(n["medicationDispenses"])),
        "procedures": _searchset([]),
    }
    return {
        "hook": "order-sign",
        "hookInstance": f"bench-{profile.policy}-{size}",
        "context": {"userId": "Practitioner/prac-1", "patientId": PATIENT_ID,
                    "draftOrders": {"resourceType": "Bundle", "type": "collection",
                                    "entry": [{"resource": draft_order(profile)}]}},
        "prefetch": prefetch,
    }


def record_size(request: dict[str, Any]) -> int:
    """Clinical resources in a request's prefetch (searchset entries; Patient, user and Coverage not counted)."""
    keys = ("conditions", "observations", "medicationRequests", "medicationAdministrations", "medicationStatements",
            "medicationDispenses")
    return sum(len(request["prefetch"][k]["entry"]) for k in keys)
