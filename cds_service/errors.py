"""The service's exceptions, converted to HTTP once, at the blueprint boundary.

    ServiceError
    ├── InvalidRequest      400: the body is not JSON or breaks the CDS Hooks request schema
    ├── UnknownService      404: no service with that id
    ├── PrefetchUnavailable 412: needed data was neither prefetched nor fetchable
    ├── PayloadTooLarge     413: the body is over the configured limit
    ├── UnprocessableResource 422: a valid FHIR resource the service cannot accept (unknown form, linkId)
    └── StorageUnavailable  503: a write could not be stored, so nothing is acknowledged
    PolicyFileError         the service refuses to start (a file in cards/ is invalid)
    ConfigurationError      the service refuses to start (unsafe or invalid settings, e.g. no JWT issuers in production)

Missing clinical data is not an error: it becomes an unknown criterion.
"""
from __future__ import annotations


class ServiceError(Exception):
    """An error a caller caused or must retry; carries its HTTP status and an OperationOutcome issue."""

    status = 500
    code = "exception"

    def __init__(self, diagnostics: str, expression: str | None = None):
        super().__init__(diagnostics)
        self.diagnostics = diagnostics
        self.expression = expression

    def outcome(self) -> dict:
        """Render as a FHIR OperationOutcome."""
        issue = {"severity": "error", "code": self.code, "diagnostics": self.diagnostics}
        if self.expression:
            issue["expression"] = [self.expression]
        return {"resourceType": "OperationOutcome", "issue": [issue]}


class InvalidRequest(ServiceError):
    status = 400
    code = "invalid"


class UnknownService(ServiceError):
    status = 404
    code = "not-found"


class PrefetchUnavailable(ServiceError):
    status = 412
    code = "incomplete"


class PayloadTooLarge(ServiceError):
    status = 413
    code = "too-costly"


class UnprocessableResource(ServiceError):
    status = 422
    code = "processing"


class StorageUnavailable(ServiceError):
    status = 503
    code = "transient"


class PolicyFileError(Exception):
    """A policy file is invalid: names the file, the JSON path and the reason."""

    def __init__(self, file: str, path: str, reason: str):
        super().__init__(f"{file}: {path}: {reason}")
        self.file, self.path, self.reason = file, path, reason


class ConfigurationError(Exception):
    """The settings are invalid or unsafe; the service refuses to start rather than run open."""
