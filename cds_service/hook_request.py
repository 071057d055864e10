"""The CDS Hooks request: schema check and a typed view of what the service reads from it."""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from .errors import InvalidRequest

ORDER_HOOKS = ("order-sign", "order-select")


@cache
def request_validator() -> Draft202012Validator:
    """The CDS Hooks 2.0 request schema (both order hooks' contexts), compiled once, its local $refs inlined."""
    schema = json.loads(resources.files(__package__).joinpath("schemas/hook-request.schema.json").read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(_inline_refs(schema, schema.get("$defs", {})))


def _inline_refs(node: Any, defs: Mapping[str, Any], depth: int = 0) -> Any:
    """Replace each `{"$ref": "#/$defs/x"}` by its definition: resolving a $ref on every request costs a third of
    the validation, and the schema has no recursive definition to keep them for."""
    if depth > 20:
        raise ValueError("hook-request schema: $ref nesting too deep (a recursive definition?)")
    if isinstance(node, list):
        return [_inline_refs(item, defs, depth) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/") and len(node) == 1:
        return _inline_refs(defs[ref.removeprefix("#/$defs/")], defs, depth + 1)
    return {key: value if key == "$defs" else _inline_refs(value, defs, depth) for key, value in node.items()}


@dataclass(frozen=True)
class HookRequest:
    hook: str
    hook_instance: str
    context: Mapping[str, Any]
    prefetch: Mapping[str, Any]
    fhir_server: str | None = None
    access_token: str | None = None
    extension: Mapping[str, Any] = field(default_factory=dict)

    @property
    def patient_id(self) -> str:
        return str(self.context.get("patientId", ""))

    @property
    def user_id(self) -> str:
        return str(self.context.get("userId", ""))

    @property
    def draft_entries(self) -> list[Mapping[str, Any]]:
        """Resources of `context.draftOrders` (a Bundle), skipping entries that are not objects."""
        bundle = self.context.get("draftOrders") or {}
        return [e["resource"] for e in bundle.get("entry") or () if isinstance(e, Mapping)
                and isinstance(e.get("resource"), Mapping)]

    @property
    def selections(self) -> list[str]:
        return list(self.context.get("selections") or ())

    @property
    def is_order_hook(self) -> bool:
        return self.hook in ORDER_HOOKS


def _json_path(error: ValidationError) -> tuple[str, str]:
    """The offending field's name and JSONPath, pointing at a missing property itself."""
    parts = list(error.absolute_path)
    if error.validator == "required":
        missing = next((p for p in error.validator_value if p not in error.instance), None)
        if missing:
            parts.append(missing)
    elif error.validator == "dependentRequired":
        parts.append(next(iter(error.validator_value.values()))[0])
    path = "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts)
    name = next((str(p) for p in reversed(parts) if not isinstance(p, int)), "body")
    return name, path


def parse_hook_request(body: Any) -> HookRequest:
    """Check a decoded JSON body against the schema and return the typed request, or raise InvalidRequest."""
    if not isinstance(body, Mapping):
        raise InvalidRequest("The request body must be a JSON object (a CDS Hooks request)", "$")
    errors = sorted(request_validator().iter_errors(body), key=lambda e: (len(list(e.absolute_path)), e.path))
    if errors:
        err = _deepest(errors[0])
        name, path = _json_path(err)
        raise InvalidRequest(f"Invalid field '{name}': {err.message[:300]}", path)
    auth = body.get("fhirAuthorization") or {}
    return HookRequest(
        hook=body["hook"],
        hook_instance=body["hookInstance"],
        context=body["context"],
        prefetch=body.get("prefetch") or {},
        fhir_server=body.get("fhirServer"),
        access_token=auth.get("access_token"),
        extension=body.get("extension") or {},
    )


def _deepest(error: ValidationError) -> ValidationError:
    """Descend into allOf/anyOf context so the message names the real field, not the combinator."""
    while error.context:
        error = max(error.context, key=lambda e: len(list(e.absolute_path)))
    return error
