"""The patient record as plain, typed facts.

Everything past `fhir_facts` speaks these dataclasses, never FHIR models: the evaluator reads
ages, codes, dated quantities and dated doses, and `None` always means "not supplied or not
readable" (unknown), while an empty tuple means "supplied, and there is nothing".
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum

SYSTEMS = {
    "rxnorm": "http://www.nlm.nih.gov/research/umls/rxnorm",
    "icd10cm": "http://hl7.org/fhir/sid/icd-10-cm",
    "snomed": "http://snomed.info/sct",
    "loinc": "http://loinc.org",
    "nucc": "http://nucc.org/provider-taxonomy",
    "hcpcs": "https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets",
    "ndc": "http://hl7.org/fhir/sid/ndc",
    "ucum": "http://unitsofmeasure.org",
    # Site-configured codes where no standard one exists (e.g. the EDSS score has no LOINC).
    "local": "urn:cds-service:local",
}
_ALIASES = {
    "http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets": "hcpcs",
    "http://hl7.org/fhir/sid/icd-10": "icd10cm",
    "urn:oid:2.16.840.1.113883.6.90": "icd10cm",
    "urn:oid:2.16.840.1.113883.6.96": "snomed",
    "urn:oid:2.16.840.1.113883.6.88": "rxnorm",
    "urn:oid:2.16.840.1.113883.6.1": "loinc",
}
_BY_URI = {uri: alias for alias, uri in SYSTEMS.items()} | _ALIASES


def system_alias(uri: str | None) -> str:
    """Map a FHIR system URI to the short alias the policy files use ('' when unknown)."""
    if not uri:
        return ""
    return _BY_URI.get(uri.rstrip("/"), uri)


def normalise_code(alias: str, code: str) -> str:
    """Normalise a code for comparison: ICD-10-CM dotted and upper-case, others stripped."""
    code = code.strip()
    if alias == "icd10cm":
        code = code.upper().replace(".", "")
        return code if len(code) <= 3 else f"{code[:3]}.{code[3:]}"
    if alias == "ndc":
        return code.replace("-", "")
    return code


class Facts(tuple):
    """One data set's facts (a tuple), with room for what evaluations derive from them alone.

    The fact cache hands back the very same Facts whenever the same chart arrives again, so an index built over
    them (which observations carry which code, the body size on a day) is built once per chart, not once per call.
    Only work that depends on nothing but these facts may be kept here (`EvalContext.derived`).
    """

    def derived(self) -> dict:
        """The memo of work derived from these facts (made on first use)."""
        memo = self.__dict__.get("_derived")
        if memo is None:
            memo = self.__dict__["_derived"] = {}
        return memo


@dataclass(frozen=True)
class Code:
    """One coding, with its system reduced to a policy-file alias (icd10cm, snomed, ...)."""

    system: str
    code: str
    display: str = ""


@dataclass(frozen=True)
class Quantity:
    value: float
    unit: str  # UCUM code where given, else the unit text


class Sex(StrEnum):
    MALE = "male"
    FEMALE = "female"
    OTHER = "other"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class PartialDate:
    """A FHIR date that may be a year or a year-month: age can only be decided if every consistent day agrees."""

    year: int
    month: int | None = None
    day: int | None = None

    _PATTERN = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?")

    @classmethod
    def parse(cls, text: str) -> PartialDate | None:
        m = cls._PATTERN.match(text or "")
        if not m:
            return None
        year, month, day = (int(g) if g else None for g in m.groups())
        try:
            date(year, month or 1, day or 1)
        except ValueError:
            return None
        return cls(year, month, day)

    def earliest(self) -> date:
        return date(self.year, self.month or 1, self.day or 1)

    def latest(self) -> date:
        if self.day:
            return date(self.year, self.month, self.day)
        if self.month:
            nxt = date(self.year + (self.month == 12), self.month % 12 + 1, 1)
            return date.fromordinal(nxt.toordinal() - 1)
        return date(self.year, 12, 31)


@dataclass(frozen=True)
class ConditionFact:
    ref: str
    codes: tuple[Code, ...]
    onset: date | None = None
    recorded: date | None = None
    text: str = ""


@dataclass(frozen=True)
class ObservationFact:
    ref: str
    codes: tuple[Code, ...]
    effective: date | None
    value: Quantity | None = None
    value_codes: tuple[Code, ...] = ()
    value_text: str = ""
    interpretation: tuple[Code, ...] = ()
    reference_high: Quantity | None = None


@dataclass(frozen=True)
class Timing:
    """The parts of a FHIR Timing the dose arithmetic reads (clauses.md 0.5 §3)."""

    events: tuple[date, ...] = ()
    frequency: int | None = None
    period: float | None = None
    period_unit: str | None = None
    count: int | None = None
    day_of_week: int = 0
    time_of_day: int = 0
    bounds_start: date | None = None
    bounds_end: date | None = None
    bounds_duration_days: float | None = None


@dataclass(frozen=True)
class Dosage:
    sequence: int | None
    dose: Quantity | None
    timing: Timing | None


@dataclass(frozen=True)
class MedicationFact:
    """One medication on record: a request, administration, statement, dispense, or a draft order."""

    ref: str
    source: str  # draft | request | administration | statement | dispense
    status: str
    codes: tuple[Code, ...]
    text: str
    start: date | None = None
    end: date | None = None
    dose: Quantity | None = None  # dose as given (administrations) or first dose (requests)
    dosages: tuple[Dosage, ...] = ()
    quantity: Quantity | None = None  # dispensed or requested quantity
    days_supply: float | None = None
    repeats: int = 0
    group: str | None = None
    prior_prescription: bool = False
    reason_codes: tuple[Code, ...] = ()
    requester: str | None = None
    authored_on: date | None = None
    strength_mg: float | None = None  # per unit (capsule, tablet, mL) when the record states it
    # What names the drug (text, then each coding), as plain strings: drug groups remember their verdict by it.
    drug_key: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "drug_key", (self.text, *(part for c in self.codes
                                                           for part in (c.system, c.code, c.display))))


@dataclass(frozen=True)
class CoverageFact:
    ref: str
    status: str
    payer: str
    line_of_business: str | None  # medicaid | commercial | marketplace | medicare, when readable
    period_start: date | None = None
    period_end: date | None = None


@dataclass(frozen=True)
class Answer:
    """A documentation answer (DTR QuestionnaireResponse item) for one clause id."""

    clause_id: str
    value: bool | float | str | None
    unit: str | None = None
    authored: date | None = None
    source: str = ""


@dataclass
class PatientRecord:
    """Everything the policies may read about one patient, for one hook call."""

    patient_ref: str
    as_of: date
    birth_date: PartialDate | None = None
    sex: Sex = Sex.UNKNOWN
    conditions: tuple[ConditionFact, ...] | None = None
    observations: tuple[ObservationFact, ...] | None = None
    medications: tuple[MedicationFact, ...] | None = None  # history: requests, administrations, statements, dispenses
    drafts: tuple[MedicationFact, ...] = ()
    specialties: tuple[Code, ...] | None = None
    coverages: tuple[CoverageFact, ...] | None = None
    intolerances: tuple[Code, ...] | None = None
    procedures: tuple[Code, ...] | None = None
    answers: dict[str, Answer] = field(default_factory=dict)
    supplied: frozenset[str] = frozenset()  # which data sets were read (prefetch keys)
    unreadable: tuple[str, ...] = ()  # what could not be read, said on the card without identifiers

    def has(self, key: str) -> bool:
        """True when the data set named by a prefetch key was supplied and readable."""
        return key in self.supplied
