"""The CDS Hooks request: schema check and a typed view of what the service reads from it."""
from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

import fastjsonschema
from jsonschema import Draft7Validator, Draft202012Validator
from jsonschema.exceptions import ValidationError

from .errors import InvalidRequest
from .raw_resources import Prefetched, prefetched

ORDER_HOOKS = ("order-sign", "order-select")
DRAFT_07 = "http://json-schema.org/draft-07/schema#"
# Keywords jsonschema (Draft 7) and fastjsonschema both implement, and alike. The schema may use no other: a keyword
# one of them skipped would let the fast check pass what the thorough one rejects.
_VALUE_KEYWORDS = {"type", "required", "enum", "const", "minLength", "maxLength", "minimum", "maximum", "minItems",
                   "maxItems", "title", "description", "$id"}
_SCHEMA_KEYWORDS = {"items", "additionalProperties", "if", "then", "else", "not"}
_SCHEMA_LIST_KEYWORDS = {"allOf", "anyOf", "oneOf"}
_UNESCAPED_DOLLAR = re.compile(r"(?<!\\)\$")  # what fastjsonschema rewrites in a pattern


@cache
def request_validator() -> Draft7Validator:
    """The thorough check: every error, with its path, so the 400 can name the offending field."""
    return Draft7Validator(_draft7_schema(fast=False))


@cache
def fast_request_check() -> Callable[[Any], Any]:
    """The compiled check: Python code generated from the schema, answering "valid?" in microseconds."""
    return fastjsonschema.compile(_draft7_schema(fast=True), use_default=False)


def _draft7_schema(fast: bool) -> dict[str, Any]:
    """The request schema file (JSON Schema 2020-12, as the OpenAPI document quotes it) in the draft-07 form both
    validators read alike: its local $refs inlined, `dependentRequired` spelled `dependencies`."""
    schema = json.loads(resources.files(__package__).joinpath("schemas/hook-request.schema.json").read_text())
    Draft202012Validator.check_schema(schema)
    body = {k: v for k, v in schema.items() if k not in ("$schema", "$defs")}
    draft7 = {"$schema": DRAFT_07, **_as_draft7(_inline_refs(body, schema.get("$defs", {})), fast)}
    Draft7Validator.check_schema(draft7)
    return draft7


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


def _as_draft7(node: Any, fast: bool) -> Any:
    """A draft-07 copy of an inlined 2020-12 schema node, refusing any keyword outside the shared set. With `fast`,
    patterns are respelled for fastjsonschema (see `_fast_pattern`)."""
    if isinstance(node, bool):
        return node
    if not isinstance(node, dict):
        raise ValueError(f"hook-request schema: {node!r} is not a schema")
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "pattern":
            out[key] = _fast_pattern(value) if fast else value
        elif key in _VALUE_KEYWORDS:
            out[key] = value
        elif key == "properties":
            out[key] = {name: _as_draft7(sub, fast) for name, sub in value.items()}
        elif key in _SCHEMA_KEYWORDS:
            out[key] = _as_draft7(value, fast)  # so `items` must be one schema: 2020-12 reads a list apart
        elif key in _SCHEMA_LIST_KEYWORDS:
            out[key] = [_as_draft7(sub, fast) for sub in value]
        elif key == "dependentRequired":
            out["dependencies"] = value  # draft 07's array form: the same check, the same error message
        else:
            raise ValueError(f"hook-request schema: {key!r} is not read alike by jsonschema and fastjsonschema")
    return out


def _fast_pattern(pattern: str) -> str:
    """fastjsonschema compiles every `$` of a pattern as `\\Z` (end of string), where jsonschema's `re.search` reads
    it as Python does: the end, or just before a final newline. Spell that out so both accept the same strings."""
    if _UNESCAPED_DOLLAR.search(pattern.removesuffix("$")):
        raise ValueError(f"hook-request schema: pattern {pattern!r} uses `$` other than as its final anchor")
    return _UNESCAPED_DOLLAR.sub(lambda _: r"(?=\n?\Z)", pattern)


@dataclass(frozen=True)
class HookRequest:
    hook: str
    hook_instance: str
    context: Mapping[str, Any]
    prefetch: Mapping[str, Prefetched]
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
    elif error.validator == "dependencies":
        parts.append(next(iter(error.validator_value.values()))[0])
    path = "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts)
    name = next((str(p) for p in reversed(parts) if not isinstance(p, int)), "body")
    return name, path


def parse_hook_request(body: Any, prefetch: Mapping[str, Prefetched] | None = None) -> HookRequest:
    """Check a decoded JSON body against the schema and return the typed request, or raise InvalidRequest.

    `prefetch`: the prefetch as `split_body` read it (resources in bytes; `body` then holds a Bundle without its
    entries, which the schema does not look into); None reads it from the body.

    Two validators read the same schema: the compiled one answers "valid?" in microseconds, which is all a valid
    request (nearly every one) needs; only when it says no does jsonschema run, to say what is wrong and where.
    """
    if not isinstance(body, Mapping):
        raise InvalidRequest("The request body must be a JSON object (a CDS Hooks request)", "$")
    if not _passes_fast_check(body):
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
        prefetch=prefetch if prefetch is not None else
        {key: prefetched(value) for key, value in (body.get("prefetch") or {}).items()},
        fhir_server=body.get("fhirServer"),
        access_token=auth.get("access_token"),
        extension=body.get("extension") or {},
    )


def _passes_fast_check(body: Any) -> bool:
    """True when the compiled check accepts the body; any failure of it (not only a JsonSchemaException) leaves
    the verdict to jsonschema. The body must be decoded JSON: fastjsonschema would also take a tuple for an array."""
    try:
        fast_request_check()(body)
    except Exception:
        return False
    return True


def _deepest(error: ValidationError) -> ValidationError:
    """Descend into allOf/anyOf context so the message names the real field, not the combinator."""
    while error.context:
        error = max(error.context, key=lambda e: len(list(e.absolute_path)))
    return error
