"""Value sets and drug groups compiled from a policy file into fast matchers."""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .record import Code, MedicationFact, normalise_code


@dataclass(frozen=True)
class ValueSet:
    """Codes of one concept; ICD-10-CM codes marked `descendants` match every code below them."""

    name: str
    text: str
    codes: frozenset[tuple[str, str]]
    prefixes: tuple[str, ...] = ()

    @classmethod
    def compile(cls, name: str, data: Mapping[str, Any]) -> ValueSet:
        codes, prefixes = set(), []
        for c in data.get("codes", ()):
            code = normalise_code(c["system"], c["code"])
            codes.add((c["system"], code))
            if c.get("descendants"):
                prefixes.append(code)
        return cls(name, data.get("text", name), frozenset(codes), tuple(prefixes))

    def matches(self, code: Code) -> bool:
        if (code.system, code.code) in self.codes:
            return True
        return code.system == "icd10cm" and any(code.code.startswith(p) for p in self.prefixes)

    def first_match(self, codes: Iterable[Code]) -> Code | None:
        return next((c for c in codes if self.matches(c)), None)


@dataclass(frozen=True)
class DrugGroup:
    """One drug (or class) by code and by name: whole word, any case (contract §4)."""

    name: str
    display: str
    codes: frozenset[tuple[str, str]]
    names: tuple[str, ...]
    pattern: re.Pattern[str]
    exclude: re.Pattern[str] | None = None  # words naming another product (liposomal doxorubicin is not doxorubicin)
    # Verdicts by MedicationFact.drug_key: a record names the same few drugs over and over, and every dose,
    # prior-therapy and partner row asks about them again.
    _verdicts: dict[tuple[str, ...], bool] = field(default_factory=dict, init=False, repr=False, compare=False)

    @classmethod
    def compile(cls, name: str, data: Mapping[str, Any]) -> DrugGroup:
        codes = frozenset((c["system"], normalise_code(c["system"], c["code"])) for c in data.get("codes", ()))
        names = tuple(n.lower() for n in data["names"])
        excluded = data.get("excludeNames")
        return cls(name, data.get("display", name), codes, names, _words(data["names"]),
                   _words(excluded) if excluded else None)

    def matches_codes(self, codes: Iterable[Code]) -> bool:
        return any((c.system, c.code) in self.codes for c in codes)

    def matches_name(self, text: str) -> bool:
        if not text or self.pattern.search(text) is None:
            return False
        return self.exclude is None or self.exclude.search(text) is None

    def matches(self, med: MedicationFact) -> bool:
        """True when the medication carries one of the group's codes or names the drug."""
        verdict = self._verdicts.get(med.drug_key)
        if verdict is None:
            if len(self._verdicts) >= _VERDICTS:
                self._verdicts.clear()
            verdict = self._verdicts[med.drug_key] = self.matches_codes(med.codes) or self.matches_name(
                med.text) or any(self.matches_name(c.display) for c in med.codes)
        return verdict


_VERDICTS = 4096  # distinct drug namings remembered per group before starting over


def _words(names: Iterable[str]) -> re.Pattern[str]:
    """Whole-word, any-case alternation of the names, longest first."""
    words = sorted((re.escape(n.lower()) for n in names), key=len, reverse=True)
    return re.compile(r"\b(?:" + "|".join(words) + r")\b", re.I)
