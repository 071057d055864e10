"""FHIR R4 resources -> plain facts. The only module that imports `fhir.resources`.

Resources are first screened on their raw JSON (only the codes, decoded from the bytes the EHR sent: see
`raw_resources`) against what the policies read (`Interest`): a 2,000-resource record is mostly vital signs
and labs no policy asks for, and validating them all would cost hundreds of milliseconds. What survives is
validated with the R4B models, on the elements facts are read from (`READS`) plus those R4 requires; a
resource that fails validation is dropped and named in `unreadable`, so only the facts it would give become
unknown.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from typing import Any

import orjson
from fhir.resources.R4B.condition import Condition
from fhir.resources.R4B.coverage import Coverage
from fhir.resources.R4B.medicationadministration import MedicationAdministration
from fhir.resources.R4B.medicationdispense import MedicationDispense
from fhir.resources.R4B.medicationrequest import MedicationRequest
from fhir.resources.R4B.medicationstatement import MedicationStatement
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.parameters import Parameters
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.practitionerrole import PractitionerRole
from fhir.resources.R4B.questionnaire import Questionnaire
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse
from pydantic import ValidationError

from .fact_cache import FactCache
from .raw_resources import RawResource, Resources, UnreadableJSON
from .record import (
    Code,
    ConditionFact,
    CoverageFact,
    Dosage,
    Facts,
    MedicationFact,
    ObservationFact,
    PartialDate,
    PatientRecord,
    Quantity,
    Sex,
    Timing,
    normalise_code,
    system_alias,
)

log = logging.getLogger(__name__)

_ACTIVE_CLINICAL = {"active", "recurrence", "relapse"}
_EXCLUDED_VERIFICATION = {"refuted", "entered-in-error"}
_FINAL_OBSERVATION = {"final", "amended", "corrected"}
_MED_KEYS = ("medicationRequests", "medicationAdministrations", "medicationStatements", "medicationDispenses")


@dataclass
class Interest:
    """What the loaded policies can read: codes (normalised, by alias) and drug names.

    Built once at start-up from `cards/`; used to skip resources no policy reads. `compile()` turns the
    names and prefixes into one regex and one tuple, so screening a resource costs a few set lookups and one
    regex search instead of a substring test per drug name.
    """

    codes: set[tuple[str, str]] = field(default_factory=set)
    icd_prefixes: set[str] = field(default_factory=set)
    names: set[str] = field(default_factory=set)
    _prefixes: tuple[str, ...] | None = field(default=None, init=False, repr=False, compare=False)
    _names: re.Pattern[str] | None = field(default=None, init=False, repr=False, compare=False)
    _seen: dict[tuple[bool, bytes], bool] = field(default_factory=dict, init=False, repr=False, compare=False)
    # Stands for this Interest in fact-cache keys (screening depends on it): an object, so no other can share it.
    token: object = field(default_factory=object, init=False, repr=False, compare=False)

    def compile(self) -> Interest:
        """Freeze the matchers; call it after the last update (load_policies does)."""
        self._prefixes = tuple(sorted(self.icd_prefixes))
        words = sorted((re.escape(n.lower()) for n in self.names), key=len, reverse=True)
        self._names = re.compile("|".join(words)) if words else None
        return self

    def wants_codes(self, codings: Iterable[tuple[str, str]]) -> bool:
        prefixes = self._prefixes if self._prefixes is not None else self.compile()._prefixes
        for alias, code in codings:
            if (alias, code) in self.codes:
                return True
            if alias == "icd10cm" and prefixes and code.startswith(prefixes):
                return True
        return False

    def wants_text(self, text: str) -> bool:
        if self._names is None and self._prefixes is None:
            self.compile()
        return bool(text) and self._names is not None and self._names.search(text.lower()) is not None

    def wants_concept(self, concept: Any, *, by_name: bool) -> bool:
        """Whether a raw CodeableConcept may name what a policy reads: by code (drugs by name too); one whose shape
        cannot be told from the raw JSON is left to validation.

        Remembered by the concept's JSON bytes: a long history repeats a few dozen concepts thousands of times,
        and screening each afresh cost more than parsing the record."""
        try:
            key = (by_name, orjson.dumps(concept))
        except TypeError:
            return self._wants_concept(concept, by_name)
        found = self._seen.get(key)
        if found is None:
            if len(self._seen) >= _SEEN_CONCEPTS:
                self._seen.clear()
            found = self._seen[key] = self._wants_concept(concept, by_name)
        return found

    def _wants_concept(self, concept: Any, by_name: bool) -> bool:
        if concept is not None and not _is_concept_shaped(concept):
            return True
        return self.wants_codes(_raw_codings(concept)) or (by_name and self.wants_text(_raw_texts(concept)))


_SEEN_CONCEPTS = 20_000  # distinct concepts remembered per Interest before starting over


# --- raw screening ---------------------------------------------------------------------------

# dict first: decoded JSON is made of dicts, and the Mapping ABC check alone costs more than the rest of screening.
_MAPPING = (dict, Mapping)


@lru_cache(maxsize=8192)
def _coding_key(system: str | None, code: str) -> tuple[str, str]:
    """(alias, normalised code): a long history repeats a few dozen codes thousands of times."""
    alias = system_alias(system)
    return alias, normalise_code(alias, code)


def _raw_codings(concept: Any) -> list[tuple[str, str]]:
    out = []
    if isinstance(concept, _MAPPING):
        for coding in concept.get("coding") or ():
            if isinstance(coding, _MAPPING) and isinstance(coding.get("code"), str):
                system = coding.get("system")
                out.append(_coding_key(system if isinstance(system, str) else None, coding["code"]))
    return out


def _raw_texts(concept: Any) -> str:
    if not isinstance(concept, Mapping):
        return ""
    parts = [concept.get("text")] + [c.get("display") for c in concept.get("coding") or () if isinstance(c, Mapping)]
    return " ".join(p for p in parts if isinstance(p, str))


def _raw_med_concept(resource: Mapping, medications: Mapping[str, Mapping]) -> Any:
    concept = resource.get("medicationCodeableConcept")
    if concept is None:
        ref = resource.get("medicationReference")
        if isinstance(ref, _MAPPING) and isinstance(ref.get("reference"), str):
            med = _resolve_medication(ref["reference"], resource, medications)
            concept = med.get("code") if med else None
            if concept is None and isinstance(ref.get("display"), str):
                concept = {"text": ref["display"]}
    return concept


def _resolve_medication(reference: str, resource: Mapping, medications: Mapping[str, Mapping]) -> Mapping | None:
    if reference.startswith("#"):
        for contained in resource.get("contained") or ():
            if isinstance(contained, Mapping) and contained.get("id") == reference[1:]:
                return contained
        return None
    return medications.get(reference) or medications.get(reference.rsplit("/", 1)[-1])


def raw_medication(resource: Mapping, medications: Mapping[str, Mapping]) -> tuple[list[tuple[str, str]], str]:
    """(alias, code) pairs and text of a medication resource's drug, read from raw JSON without validating it."""
    concept = _raw_med_concept(resource, medications)
    return _raw_codings(concept), _raw_texts(concept)


def _is_relevant(resource: Mapping, interest: Interest, medications: Mapping[str, Mapping]) -> bool:
    rtype = resource.get("resourceType")
    if rtype in ("Condition", "Observation", "Procedure"):
        # Value sets match these by code only; the names policies know are drug names.
        return interest.wants_concept(resource.get("code"), by_name=False)
    if rtype in ("MedicationRequest", "MedicationAdministration", "MedicationStatement", "MedicationDispense"):
        return interest.wants_concept(_raw_med_concept(resource, medications), by_name=True)
    return True


def _is_concept_shaped(concept: Any) -> bool:
    return isinstance(concept, Mapping) and isinstance(concept.get("coding", []), list) and all(
        isinstance(c, Mapping) for c in concept.get("coding", []))


# --- model helpers ---------------------------------------------------------------------------

def _codes(concept: Any) -> tuple[Code, ...]:
    if concept is None:
        return ()
    out = []
    for coding in concept.coding or ():
        if coding.code:
            alias = system_alias(coding.system)
            out.append(Code(alias, normalise_code(alias, coding.code), coding.display or ""))
    return tuple(out)


def _concept_text(concept: Any) -> str:
    if concept is None:
        return ""
    parts = [concept.text or ""] + [c.display or "" for c in concept.coding or ()]
    return " ".join(p for p in parts if p)


def _as_date(value: Any) -> date | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    parsed = PartialDate.parse(str(value))
    return parsed.earliest() if parsed else None


def _quantity(q: Any) -> Quantity | None:
    if q is None or q.value is None:
        return None
    return Quantity(float(q.value), (q.code or q.unit or "").strip())


def _status_code(concept: Any) -> str:
    for coding in (concept.coding or ()) if concept is not None else ():
        if coding.code:
            return coding.code
    return ""


def _period_dates(period: Any) -> tuple[date | None, date | None]:
    if period is None:
        return None, None
    return _as_date(period.start), _as_date(period.end)


def _timing(timing: Any) -> Timing | None:
    if timing is None:
        return None
    events = tuple(d for d in (_as_date(e) for e in timing.event or ()) if d)
    rep = timing.repeat
    if rep is None:
        return Timing(events=events)
    start, end = _period_dates(rep.boundsPeriod)
    duration_days = None
    if rep.boundsDuration is not None and rep.boundsDuration.value is not None:
        bounds = rep.boundsDuration
        duration_days = _duration_days(float(bounds.value), bounds.code or bounds.unit)
    return Timing(
        events=events,
        frequency=rep.frequencyMax or rep.frequency,
        period=float(rep.period) if rep.period is not None else None,
        period_unit=rep.periodUnit,
        count=rep.countMax or rep.count,
        day_of_week=len(rep.dayOfWeek or ()),
        time_of_day=len(rep.timeOfDay or ()),
        bounds_start=start,
        bounds_end=end,
        bounds_duration_days=duration_days,
    )


_DAYS_PER_UNIT = {"d": 1, "day": 1, "days": 1, "wk": 7, "week": 7, "weeks": 7, "mo": 30.4375, "month": 30.4375,
                  "months": 30.4375, "h": 1 / 24, "a": 365.25}


def _duration_days(value: float, unit: str | None) -> float | None:
    factor = _DAYS_PER_UNIT.get((unit or "").strip().lower())
    return value * factor if factor else None


def _dosages(instructions: Any) -> tuple[Dosage, ...]:
    out = []
    for inst in instructions or ():
        dose = None
        for dr in inst.doseAndRate or ():
            if dr.doseQuantity is not None:
                dose = _quantity(dr.doseQuantity)
            elif dr.doseRange is not None and dr.doseRange.high is not None:
                dose = _quantity(dr.doseRange.high)
            if dose:
                break
        out.append(Dosage(inst.sequence, dose, _timing(inst.timing)))
    return tuple(out)


def _strength_mg(med: Mapping | None) -> float | None:
    """Strength per unit (mg per capsule) from a Medication's single ingredient, when stated in mg."""
    if not med:
        return None
    try:
        ingredients = med.get("ingredient") or []
        if len(ingredients) != 1:
            return None
        num = ingredients[0]["strength"]["numerator"]
        den = ingredients[0]["strength"].get("denominator") or {"value": 1}
        if (num.get("code") or num.get("unit")) == "mg" and float(den.get("value", 1)) == 1:
            return float(num["value"])
    except (KeyError, TypeError, ValueError, IndexError, AttributeError):
        return None
    return None


# --- per resource type -----------------------------------------------------------------------

_MED = ("medicationCodeableConcept", "medicationReference")
# The top-level elements the readers below take facts from (tests/test_fhir_facts_reads.py keeps this honest).
# Only these, and what R4 requires, are validated: the FHIR models check every element in Python, so a
# resource's meta, category, subject, encounter or performer cost as much as its facts, for nothing.
READS: dict[str, frozenset[str]] = {
    "Condition": frozenset({"id", "clinicalStatus", "verificationStatus", "code", "onsetDateTime", "recordedDate"}),
    "Observation": frozenset({"id", "status", "code", "effectiveDateTime", "effectivePeriod", "issued",
                              "valueQuantity", "valueCodeableConcept", "valueString", "interpretation",
                              "referenceRange"}),
    "MedicationRequest": frozenset({"id", "status", *_MED, "dosageInstruction", "dispenseRequest", "authoredOn",
                                    "reasonCode", "groupIdentifier", "priorPrescription", "requester"}),
    "MedicationAdministration": frozenset({"id", "status", *_MED, "effectiveDateTime", "effectivePeriod", "dosage"}),
    "MedicationStatement": frozenset({"id", "status", *_MED, "effectivePeriod", "effectiveDateTime",
                                      "dateAsserted", "dosage"}),
    "MedicationDispense": frozenset({"id", "status", *_MED, "whenHandedOver", "whenPrepared", "daysSupply",
                                     "dosageInstruction", "quantity"}),
    "Coverage": frozenset({"id", "status", "period", "payor", "type", "class"}),
    "Patient": frozenset({"id", "birthDate", "gender"}),
    "PractitionerRole": frozenset({"id", "specialty", "code"}),
}


def _required(model: type) -> frozenset[str]:
    """Elements R4 requires of a model (1..1, or one of a required choice), by their JSON names."""
    out = set()
    for name, info in model.model_fields.items():
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        if info.is_required() or extra.get("element_required") or extra.get("one_of_many_required"):
            out.add(info.alias or name)
    return frozenset(out)


_KEEP: dict[type, frozenset[str]] = {}


def _read_part(model: type, raw: Mapping) -> Mapping:
    """The raw resource cut to what is read and required, with each kept primitive's `_name` extension."""
    keep = _KEEP.get(model)
    if keep is None:
        read = READS[model.__name__]
        keep = _KEEP[model] = frozenset({"resourceType", *read, *_required(model)} | {f"_{k}" for k in read})
    return {k: v for k, v in raw.items() if k in keep}


_UNSET = object()


def _key(name: str, raw: Mapping, context: Mapping | None) -> tuple[str, bytes, bytes] | None:
    """A decoded resource's cache key, or None when orjson cannot serialise it (an integer beyond 64 bits)."""
    try:
        return name, orjson.dumps(raw), orjson.dumps(context) if context is not None else b""
    except TypeError:
        return None


class _Reader:
    """Accumulates facts from raw resources for one request."""

    def __init__(self, interest: Interest, medications: Mapping[str, Mapping], cache: FactCache | None = None):
        self.interest = interest
        self.medications = medications
        self.cache = cache
        self.unreadable: list[str] = []
        self._medications_json: Any = _UNSET

    def read(self, name: str, raw: Mapping, parse: Callable[[Mapping], Any]) -> Any:
        """`parse(raw)`, or what it gave for the same bytes before (and the unreadable notes it made then)."""
        key = _key(name, raw, self._referenced_medication(raw)) if self.cache is not None else None
        if key is None:
            return parse(raw)
        fact, notes = self.cache.read(key, lambda: self.noting(parse, raw))
        self.unreadable.extend(notes)
        return fact

    def screened(self, name: str, resource: RawResource, parse: Callable[[Mapping], Any], context: bytes | None) -> Any:
        """`parse` of the resource when a policy may read it, else None; remembered by the resource's bytes, so a
        resource seen before is neither decoded nor screened again. `context`: what else its facts depend on
        (`context_key`); None when that cannot be told, and then it is read afresh."""
        json = resource.json if self.cache is not None and context is not None else None
        if json is None:
            return self._screen_and_parse(resource, parse)
        fact, notes = self.cache.read((name, self.interest.token, json, context),
                                      lambda: self.noting(self._screen_and_parse, resource, parse))
        self.unreadable.extend(notes)
        return fact

    def _screen_and_parse(self, resource: RawResource, parse: Callable[[Mapping], Any]) -> Any:
        if not _is_relevant(resource.screening, self.interest, self.medications):
            return None
        data = self.data_of(resource)
        return parse(data) if data is not None else None

    def data_of(self, resource: RawResource) -> Mapping | None:
        """The decoded resource, or None (noted unreadable) when its JSON cannot be read."""
        try:
            return resource.data
        except UnreadableJSON:
            self.unreadable.append(f"{resource.resource_type or 'resource'} could not be read (its JSON has a "
                                   "number out of range)")
            return None

    def noting(self, read: Callable[..., Any], *args: Any) -> tuple[Any, tuple[str, ...]]:
        """`read(*args)` and the unreadable notes it made, taken off this request's list (the cache keeps them)."""
        before = len(self.unreadable)
        fact = read(*args)
        notes = tuple(self.unreadable[before:])
        del self.unreadable[before:]
        return fact, notes

    def context_key(self, names_drugs: bool) -> bytes | None:
        """What a resource's facts depend on besides its own bytes: for one that may name a Medication
        (`names_drugs`), every Medication of the request, as bytes (None when orjson cannot serialise them)."""
        if not names_drugs:
            return b""
        if self._medications_json is _UNSET:
            try:
                self._medications_json = orjson.dumps(self.medications)
            except TypeError:
                self._medications_json = None
        return self._medications_json

    def _referenced_medication(self, raw: Mapping) -> Mapping | None:
        """The Medication a `medicationReference` outside the resource resolves to: part of what is read."""
        ref = raw.get("medicationReference")
        if ref is None or not isinstance(ref, _MAPPING):  # None first: the ABC check of a non-dict is slow
            return None
        if not isinstance(ref.get("reference"), str) or ref["reference"][:1] == "#":
            return None
        return _resolve_medication(ref["reference"], raw, self.medications)

    def validate(self, model: type, raw: Mapping) -> Any | None:
        try:
            return model.model_validate(_read_part(model, raw))
        except (ValidationError, ValueError, TypeError) as exc:
            self.unreadable.append(f"{raw.get('resourceType', 'resource')} could not be read ({_first_error(exc)})")
            return None

    def med_concept(self, res: Any, raw: Mapping) -> tuple[tuple[Code, ...], str, float | None]:
        if res.medicationCodeableConcept is not None:
            return _codes(res.medicationCodeableConcept), _concept_text(res.medicationCodeableConcept), None
        ref = res.medicationReference
        med = _resolve_medication(ref.reference, raw, self.medications) if ref and ref.reference else None
        if med:
            concept = med.get("code") or {}
            codes = tuple(Code(a, c) for a, c in _raw_codings(concept))
            return codes, _raw_texts(concept), _strength_mg(med)
        return (), (ref.display or "") if ref else "", None

    def condition(self, raw: Mapping) -> ConditionFact | None:
        res = self.validate(Condition, raw)
        if res is None:
            return None
        clinical = _status_code(res.clinicalStatus)
        verification = _status_code(res.verificationStatus)
        if (clinical and clinical not in _ACTIVE_CLINICAL) or verification in _EXCLUDED_VERIFICATION:
            return None
        return ConditionFact(f"Condition/{res.id}", _codes(res.code), _as_date(res.onsetDateTime),
                             _as_date(res.recordedDate), _concept_text(res.code))

    def observation(self, raw: Mapping) -> ObservationFact | None:
        res = self.validate(Observation, raw)
        if res is None or res.status not in _FINAL_OBSERVATION:
            return None
        high = None
        for rr in res.referenceRange or ():
            if rr.high is not None:
                high = _quantity(rr.high)
                break
        effective = _as_date(res.effectiveDateTime) or (_period_dates(res.effectivePeriod)[0]) or _as_date(res.issued)
        interp = tuple(c for concept in res.interpretation or () for c in _codes(concept))
        return ObservationFact(
            ref=f"Observation/{res.id}",
            codes=_codes(res.code),
            effective=effective,
            value=_quantity(res.valueQuantity),
            value_codes=_codes(res.valueCodeableConcept),
            value_text=(res.valueString or _concept_text(res.valueCodeableConcept) or ""),
            interpretation=interp,
            reference_high=high,
        )

    def medication_request(self, raw: Mapping, source: str) -> MedicationFact | None:
        res = self.validate(MedicationRequest, raw)
        if res is None:
            return None
        codes, text, strength = self.med_concept(res, raw)
        dosages = _dosages(res.dosageInstruction)
        disp = res.dispenseRequest
        quantity = _quantity(disp.quantity) if disp else None
        supply = None
        if disp and disp.expectedSupplyDuration and disp.expectedSupplyDuration.value is not None:
            supply = _duration_days(float(disp.expectedSupplyDuration.value),
                                    disp.expectedSupplyDuration.code or disp.expectedSupplyDuration.unit)
        starts = [d.timing.bounds_start for d in dosages if d.timing and d.timing.bounds_start]
        starts += [e for d in dosages if d.timing for e in d.timing.events]
        authored = _as_date(res.authoredOn)
        reasons = tuple(c for concept in res.reasonCode or () for c in _codes(concept))
        return MedicationFact(
            ref=f"MedicationRequest/{res.id}",
            source=source,
            status=res.status or "",
            codes=codes,
            text=text,
            start=min(starts) if starts else authored,
            end=max((d.timing.bounds_end for d in dosages if d.timing and d.timing.bounds_end), default=None),
            dose=next((d.dose for d in dosages if d.dose), None),
            dosages=dosages,
            quantity=quantity,
            days_supply=supply,
            repeats=(disp.numberOfRepeatsAllowed or 0) if disp else 0,
            group=res.groupIdentifier.value if res.groupIdentifier else None,
            prior_prescription=res.priorPrescription is not None,
            reason_codes=reasons,
            requester=res.requester.reference if res.requester else None,
            authored_on=authored,
            strength_mg=strength,
        )

    def medication_administration(self, raw: Mapping) -> MedicationFact | None:
        res = self.validate(MedicationAdministration, raw)
        if res is None or res.status not in ("completed", "in-progress"):
            return None
        codes, text, strength = self.med_concept(res, raw)
        when = _as_date(res.effectiveDateTime) or _period_dates(res.effectivePeriod)[0]
        dose = _quantity(res.dosage.dose) if res.dosage else None
        return MedicationFact(f"MedicationAdministration/{res.id}", "administration", res.status, codes, text,
                              start=when, end=when, dose=dose, strength_mg=strength)

    def medication_statement(self, raw: Mapping) -> MedicationFact | None:
        res = self.validate(MedicationStatement, raw)
        if res is None or res.status in ("entered-in-error", "not-taken"):
            return None
        codes, text, strength = self.med_concept(res, raw)
        start, end = _period_dates(res.effectivePeriod)
        start = start or _as_date(res.effectiveDateTime) or _as_date(res.dateAsserted)
        return MedicationFact(f"MedicationStatement/{res.id}", "statement", res.status, codes, text,
                              start=start, end=end, dosages=_dosages(res.dosage), strength_mg=strength)

    def medication_dispense(self, raw: Mapping) -> MedicationFact | None:
        res = self.validate(MedicationDispense, raw)
        if res is None or res.status != "completed":
            return None
        codes, text, strength = self.med_concept(res, raw)
        handed = _as_date(res.whenHandedOver) or _as_date(res.whenPrepared)
        supply = None
        if res.daysSupply is not None and res.daysSupply.value is not None:
            supply = _duration_days(float(res.daysSupply.value), res.daysSupply.code or res.daysSupply.unit or "d")
        return MedicationFact(f"MedicationDispense/{res.id}", "dispense", res.status, codes, text, start=handed,
                              dosages=_dosages(res.dosageInstruction), quantity=_quantity(res.quantity),
                              days_supply=supply, strength_mg=strength)

    def coverage(self, raw: Mapping) -> CoverageFact | None:
        res = self.validate(Coverage, raw)
        if res is None:
            return None
        start, end = _period_dates(res.period)
        payer = res.payor[0].reference or res.payor[0].display or "" if res.payor else ""
        return CoverageFact(f"Coverage/{res.id}", res.status or "", payer, _line_of_business(res), start, end)

    def patient(self, raw: Mapping) -> tuple[PartialDate | None, Sex]:
        """Birth date and sex; (None, unknown) when the Patient breaks R4."""
        res = self.validate(Patient, raw)
        if res is None:
            return None, Sex.UNKNOWN
        birth = PartialDate.parse(str(res.birthDate)) if res.birthDate else None
        return birth, Sex(res.gender) if res.gender in Sex._value2member_map_ else Sex.UNKNOWN

    def specialties(self, raw: Mapping) -> tuple[Code, ...]:
        res = self.validate(PractitionerRole, raw)
        if res is None:
            return ()
        return tuple(c for concept in [*(res.specialty or ()), *(res.code or ())] for c in _codes(concept))


_WHOLE_RESOURCES = {"Questionnaire": Questionnaire, "QuestionnaireResponse": QuestionnaireResponse,
                    "Parameters": Parameters, "Coverage": Coverage}


def resource_problem(raw: Any, resource_type: str) -> tuple[str, str] | None:
    """Why `raw` is not a valid FHIR R4 resource of this type, as (message, FHIRPath), or None when it is.

    The FHIR endpoints (documentation forms) validate whole resources here, so this module stays the only
    one that imports the FHIR models.
    """
    if not isinstance(raw, Mapping) or raw.get("resourceType") != resource_type:
        return f"expected a {resource_type} resource", resource_type
    try:
        _WHOLE_RESOURCES[resource_type].model_validate(raw)
    except (ValidationError, ValueError, TypeError) as exc:
        if isinstance(exc, ValidationError) and exc.errors():
            err = exc.errors()[0]
            path = resource_type + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err.get("loc", ())
                                           if p != "__root__")
            return f"{err.get('msg', 'invalid')[:200]}", path
        return type(exc).__name__, resource_type
    return None


def _first_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError) and exc.errors():
        err = exc.errors()[0]
        return f"{'.'.join(str(p) for p in err.get('loc', ()))}: {err.get('type', 'invalid')}"
    return type(exc).__name__


_LOB_WORDS = {
    "medicaid": "medicaid", "chip": "medicaid", "subsidized": "medicaid",
    "marketplace": "marketplace", "exchange": "marketplace", "him": "marketplace",
    "commercial": "commercial", "employer": "commercial", "group": "commercial", "ppo": "commercial",
    "hmo": "commercial", "medicare": "medicare",
}
# HL7 v3 ActCode / X12 source-of-payment typology codes that name a line of business outright.
# HIP ("health insurance plan policy") is left out: it covers marketplace and employer plans alike, so the class
# or plan name decides.
_LOB_CODES = {"SUBSIDIZ": "medicaid", "MCPOL": "medicaid", "1": "medicare", "2": "medicaid", "5": "commercial",
              "51": "commercial", "EHCPOL": "commercial"}


def _line_of_business(res: Any) -> str | None:
    concepts = [res.type] + [cls.type for cls in res.class_fhir or ()] if hasattr(res, "class_fhir") else [res.type]
    texts = []
    for concept in concepts:
        if concept is None:
            continue
        for coding in concept.coding or ():
            if coding.code in _LOB_CODES:
                return _LOB_CODES[coding.code]
            texts.append((coding.display or "") + " " + (coding.code or ""))
        texts.append(concept.text or "")
    for cls in getattr(res, "class_fhir", None) or ():
        texts.append((cls.value or "") + " " + (cls.name or ""))
    blob = " ".join(texts).lower()
    for word, lob in _LOB_WORDS.items():
        if word in blob:
            return lob
    return None


# --- assembling the record -------------------------------------------------------------------

DataSet = Resources | list[RawResource] | list[Mapping]  # as gathered, or as a caller hands decoded resources


def _collect(reader: _Reader, data_set: DataSet | None, name: str, parse, *,
             names_drugs: bool = False) -> tuple | None:
    """Facts of one data set; None (unknown) when a resource a policy would read breaks R4.

    Dropping it and reading the rest would turn "could not read the MS diagnosis" into "no MS
    diagnosis": an absence the record does not show. Other data sets keep their facts.

    A Bundle's entries still in bytes are remembered as a whole: the same chart again costs one look-up here.
    """
    if data_set is None:
        return None
    context = reader.context_key(names_drugs)
    entries = data_set.entries_json if data_set.__class__ is Resources else None
    if reader.cache is None or context is None or entries is None:
        return _collect_each(reader, data_set, name, parse, context)
    facts, notes = reader.cache.read((name, reader.interest.token, entries, context),
                                     lambda: reader.noting(_collect_each, reader, data_set, name, parse, context))
    reader.unreadable.extend(notes)
    return facts


def _resources(data_set: DataSet) -> list[RawResource]:
    """A data set's resources: prefetch hands them in bytes, a caller may hand decoded ones. UnreadableJSON when a
    Bundle's entries cannot be read at all."""
    if data_set.__class__ is Resources:
        return data_set.items
    return [resource if resource.__class__ is RawResource else RawResource.of(resource) for resource in data_set]


def _collect_each(reader: _Reader, data_set: DataSet, name: str, parse, context: bytes | None) -> tuple | None:
    try:
        resources = _resources(data_set)
    except UnreadableJSON:
        reader.unreadable.append(f"{name} could not be read (its entries have a number out of range)")
        return None
    out = []
    for resource in resources:
        failures = len(reader.unreadable)
        fact = reader.screened(name, resource, parse, context)
        if len(reader.unreadable) > failures:
            return None
        if fact is not None:
            out.append(fact)
    return Facts(out)


def medications_in(data: Mapping[str, DataSet | None], cache: FactCache | None = None,
                   unreadable: list[str] | None = None) -> dict[str, Mapping]:
    """The Medication resources among the gathered data sets, by reference (`Medication/<id>`); one that cannot be
    read is noted in `unreadable`. A Bundle's entries seen before are not read again to tell."""
    found: dict[str, Mapping] = {}
    for key, data_set in data.items():
        if data_set is None:
            continue
        entries = data_set.entries_json if data_set.__class__ is Resources else None
        if cache is None or entries is None:
            pairs, notes = _medications_of(key, data_set)
        else:
            pairs, notes = cache.read(("medications", entries), lambda k=key, d=data_set: _medications_of(k, d))
        found.update(pairs)
        if unreadable is not None:
            unreadable.extend(notes)
    return found


def _medications_of(key: str, data_set: DataSet) -> tuple[tuple[tuple[str, Mapping], ...], tuple[str, ...]]:
    if data_set.__class__ is Resources and not data_set.may_hold("Medication"):
        return (), ()
    try:
        resources = _resources(data_set)
    except UnreadableJSON:
        return (), ()  # the data set itself is noted unreadable when it is read
    pairs, notes = [], []
    for resource in resources:
        if resource.resource_type == "Medication" and resource.id is not None:
            try:
                pairs.append((f"Medication/{resource.id}", resource.data))
            except UnreadableJSON:
                notes.append(f"a Medication in '{key}' could not be read (a number out of range)")
    return tuple(pairs), tuple(notes)


def _resources_of(data_set: DataSet | None, reader: _Reader) -> list[RawResource]:
    """A small data set's resources (the patient, the user), decoded ones wrapped; [] when it cannot be read."""
    if data_set is None:
        return []
    try:
        return _resources(data_set)
    except UnreadableJSON:
        reader.unreadable.append("a prefetched resource could not be read (a number out of range)")
        return []


def read_drafts(drafts: Iterable[Mapping], medications: Mapping[str, Mapping],
                cache: FactCache | None = None) -> tuple[list[MedicationFact], list[str]]:
    """The draft MedicationRequests as facts; one that breaks R4 is kept by its drug, its dose unknown."""
    reader = _Reader(Interest(), medications, cache)
    facts = []
    for raw in drafts:
        if raw.get("resourceType") == "MedicationRequest":
            fact = reader.read("draft", raw, lambda r: reader.medication_request(r, "draft"))
            facts.append(fact or _lenient_draft(raw, medications))
    return facts, reader.unreadable


def build_record(
    patient_id: str,
    data: Mapping[str, DataSet | None],
    drafts: Iterable[MedicationFact],
    medications: Mapping[str, Mapping],
    interest: Interest,
    as_of: date,
    unreadable: Iterable[str] = (),
    cache: FactCache | None = None,
) -> PatientRecord:
    """Turn gathered data (key -> list of resources, or None: unknown) into a PatientRecord."""
    reader = _Reader(interest, medications, cache)
    reader.unreadable.extend(unreadable)
    patients = [reader.data_of(r) for r in _resources_of(data.get("patient"), reader)]
    birth, sex = reader.read("patient", patients[0], reader.patient) if patients and patients[0] else \
        (None, Sex.UNKNOWN)

    meds: list[MedicationFact] | None = None
    parsers = {
        "medicationRequests": lambda raw: reader.medication_request(raw, "request"),
        "medicationAdministrations": reader.medication_administration,
        "medicationStatements": reader.medication_statement,
        "medicationDispenses": reader.medication_dispense,
    }
    unreadable_keys = set()
    for key in _MED_KEYS:
        got = _collect(reader, data.get(key), key, parsers[key], names_drugs=True)
        if got is not None:
            meds = (meds or []) + list(got)
        elif key in data:
            # This source is unknown (record.has(key) is False): kinds that infer an absence from it say unknown,
            # while the sources that were read still show what they show (e.g. an active order).
            unreadable_keys.add(key)

    specialties = None
    for key in ("user", "practitionerRoles"):
        raws = data.get(key)
        if raws is not None:
            roles = [reader.data_of(r) for r in _resources_of(raws, reader) if r.resource_type == "PractitionerRole"]
            specialties = (specialties or ()) + tuple(c for r in roles if r is not None
                                                      for c in reader.read("specialties", r, reader.specialties))

    conditions = _collect(reader, data.get("conditions"), "conditions", reader.condition)
    observations = _collect(reader, data.get("observations"), "observations", reader.observation)
    coverages = _collect(reader, data.get("coverage"), "coverage", reader.coverage)
    for key, facts in (("conditions", conditions), ("observations", observations), ("coverage", coverages)):
        if facts is None:
            unreadable_keys.add(key)
    supplied = frozenset(k for k, v in data.items() if v is not None) - unreadable_keys
    return PatientRecord(
        patient_ref=f"Patient/{patient_id}",
        as_of=as_of,
        birth_date=birth,
        sex=sex,
        conditions=conditions,
        observations=observations,
        medications=tuple(meds) if meds is not None else None,
        drafts=tuple(drafts),
        specialties=specialties,
        coverages=coverages,
        supplied=supplied,
        unreadable=tuple(reader.unreadable),
    )


def _lenient_draft(raw: Mapping, medications: Mapping[str, Mapping]) -> MedicationFact:
    """A draft order that breaks R4 is still recognised by its drug; its dose stays unknown."""
    concept = _raw_med_concept(raw, medications)
    codes = tuple(Code(a, c) for a, c in _raw_codings(concept))
    rid = raw.get("id") if isinstance(raw.get("id"), str) else "unknown"
    return MedicationFact(f"MedicationRequest/{rid}", "draft", str(raw.get("status") or ""), codes,
                          _raw_texts(concept))
