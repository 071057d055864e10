"""Leaf and guard kinds. Importing this package registers every kind (and every mode a module adds to a kind)."""
from . import (
    bsa_limits,
    clause_guard,
    course,
    cycles,
    demographics,
    diagnosis,
    documentation,
    dose_limits,
    doses,
    guards,
    lab_limits,
    labs,
    medications,
    prescriber,
)

__all__ = ["bsa_limits", "clause_guard", "course", "cycles", "demographics", "diagnosis", "documentation",
           "dose_limits", "doses", "guards", "lab_limits", "labs", "medications", "prescriber"]
