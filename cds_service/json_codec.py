"""JSON in and out of the service: orjson where it can, the standard library where only it can.

orjson parses a hook body in about half the time of `json` and serialises a card ten times faster; it is
stricter (no NaN or Infinity, no number that overflows a double, no lone surrogate), so anything it refuses
goes to the standard library, which either accepts it as it always did or names the error as it always did.
Integers beyond 64 bits are the one difference: orjson reads them as floats, as every dose is read anyway.
"""
from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import orjson
from flask.json.provider import DefaultJSONProvider

MAX_DEPTH = 64  # FHIR resources nest about 15 deep; deeper is an attack on the parser or the validators


_KEEP_STRUCTURE = (bytes.maketrans(b"[]", b"{}"), bytes(range(256)).translate(None, b'"{}[]'))
_QUOTED = re.compile(rb'"[^"]*"')


def too_deep(raw: bytes, limit: int = MAX_DEPTH) -> bool:
    """True when the (already parsed, so well-formed) JSON value nests deeper than `limit` (a part of a document
    is given what is left of MAX_DEPTH where it sits).

    Done with C-speed bytes methods (a Python walk of the decoded objects, or regular expressions over every
    character, cost 20 ms on a 200-resource record and half a second on 5,000): escapes out, then everything
    but quotes and brackets, with `[]` read as `{}` (the document is well formed, so only depth is left to
    tell); then strings (two adjacent quotes are an empty string or the end of one and the start of the next:
    removing them keeps every bracket inside a string inside quotes); then one innermost layer of pairs peeled
    per pass (one `replace` never matches a pair its own removals made).
    """
    if b"\\" in raw:
        raw = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
    structure = raw.translate(*_KEEP_STRUCTURE).replace(b'""', b"")
    if b'"' in structure:
        structure = _QUOTED.sub(b"", structure)
    for _ in range(limit):
        if not structure:
            return False
        structure = structure.replace(b"{}", b"")
    return bool(structure)


class NotANumber(ValueError):
    """NaN, Infinity or an out-of-range float: not a JSON number (RFC 8259)."""


def _reject_constant(name: str) -> float:
    raise NotANumber(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise NotANumber(f"{text} is out of range")
    return value


def strict_loads(raw: bytes) -> Any:
    """The standard library's decoder, refusing NaN, Infinity and 1e400: they would poison dose arithmetic."""
    return json.loads(raw, parse_constant=_reject_constant, parse_float=_finite)


def loads(raw: bytes, fallback: Callable[[bytes], Any]) -> Any:
    """Decode with orjson; on anything it refuses, `fallback(raw)` decides (and raises the caller's errors)."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return fallback(raw)


def dumps_bytes(value: Any) -> bytes:
    """Compact UTF-8 JSON; integers beyond 64 bits or non-string keys fall back to the standard library."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str).encode()


class Encoded:
    """JSON already serialised, for a JSON column to store as it is: an answer is serialised once, for the response
    and the audit trail alike. Given as bytes, it is decoded to text only when a column takes it (off the answer's
    path, when the audit journal writes it)."""

    __slots__ = ("_value",)

    def __init__(self, value: str | bytes):
        self._value = value

    @property
    def text(self) -> str:
        value = self._value
        return value if value.__class__ is str else value.decode()


def dumps_text(value: Any) -> str:
    """As `dumps_bytes`, as text: what the database's JSON columns store (an `Encoded` value as it is)."""
    if value.__class__ is Encoded:
        return value.text
    return dumps_bytes(value).decode()


class FastJSONProvider(DefaultJSONProvider):
    """Flask's JSON provider with orjson for responses; key order is kept (cards read top to bottom)."""

    sort_keys = False

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        if kwargs:
            return super().dumps(obj, **kwargs)
        try:
            return orjson.dumps(obj).decode()
        except TypeError:
            return super().dumps(obj)

    def response(self, *args: Any, **kwargs: Any):
        obj = self._prepare_response_obj(args, kwargs)
        try:
            body = orjson.dumps(obj)
        except TypeError:
            body = super().dumps(obj).encode()
        return self._app.response_class(body, mimetype=self.mimetype)
