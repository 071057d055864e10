"""Leaf and guard kinds. Importing this package registers every kind with the registry."""
from . import course, demographics, diagnosis, documentation, doses, guards, labs, medications, prescriber

__all__ = ["course", "demographics", "diagnosis", "doses", "documentation", "guards", "labs", "medications",
           "prescriber"]
