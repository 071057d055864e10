"""Leaf and guard kinds. Importing this package registers every kind (and every mode a module adds to a kind)."""
from . import (
    bsa_limits,
    course,
    cycles,
    demographics,
    diagnosis,
    documentation,
    doses,
    guards,
    lab_limits,
    labs,
    medications,
    prescriber,
)

__all__ = ["bsa_limits", "course", "cycles", "demographics", "diagnosis", "doses", "documentation", "guards",
           "lab_limits", "labs", "medications", "prescriber"]
