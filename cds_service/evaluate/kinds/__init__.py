"""Leaf and guard kinds. Importing this package registers every kind with the registry."""
from . import (
    clause_guard,
    course,
    demographics,
    diagnosis,
    documentation,
    dose_limits,
    doses,
    guards,
    labs,
    medications,
    prescriber,
)

__all__ = ["clause_guard", "course", "demographics", "diagnosis", "doses", "dose_limits", "documentation", "guards",
           "labs", "medications", "prescriber"]
