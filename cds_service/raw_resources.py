"""Prefetched resources as the EHR sent them: exact JSON bytes, decoded only when a policy reads them.

A hook body is mostly prefetch, and most of the prefetch is a long lab and vital-sign history of which a policy
reads a few codes. Decoding all of it into dicts cost more than everything else the service does on a call (and
freeing those dicts again cost half as much), so `split_body` reads the body with msgspec: every member but the
prefetch is decoded, and each prefetched resource is kept as its bytes with its `resourceType` and `id`. Those
bytes are also what the fact cache remembers the resource's facts by.

A body of any other shape (a prefetch that is not an object, a value without a `resourceType`, text that is not
UTF-8, a lone surrogate, a number out of range or nesting past MAX_DEPTH outside the Bundles' entries) is decoded
whole, as before, so the schema check and every error message see exactly what they always saw. A Bundle's entries
are read when a policy reads that data set: entries of an odd shape as a decoded Bundle's are read, and entries
nesting too deep or holding a number out of range make only that data set unreadable (contract section 7).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import msgspec
import orjson

from . import json_codec
from .json_codec import MAX_DEPTH, too_deep


class UnreadableJSON(ValueError):
    """A prefetched resource whose bytes are well-formed JSON but not readable data (a number out of range)."""


class RawResource:
    """One FHIR resource: its JSON bytes (as sent, or as serialised from decoded JSON) and, once read, its data."""

    __slots__ = ("_json", "_data", "resource_type", "id")

    def __init__(self, json: bytes | None, resource_type: Any, id: Any, data: Mapping[str, Any] | None = None):
        self._json = json
        self._data = data
        self.resource_type = resource_type if isinstance(resource_type, str) else None
        self.id = id if isinstance(id, str) else None

    @classmethod
    def of(cls, data: Mapping[str, Any]) -> RawResource:
        """A resource already decoded (a FHIR server's page, a test's dict)."""
        return cls(None, data.get("resourceType"), data.get("id"), data)

    @property
    def data(self) -> Mapping[str, Any]:
        """The decoded resource; UnreadableJSON when its numbers are out of range (NaN, Infinity, 1e400)."""
        if self._data is None:
            try:
                self._data = json_codec.loads(self._json, json_codec.strict_loads)
            except (ValueError, RecursionError) as exc:
                raise UnreadableJSON(str(exc)) from None
        return self._data

    @property
    def screening(self) -> Mapping[str, Any]:
        """The elements screening reads (`fhir_facts._is_relevant`), decoded without the rest of the resource: most
        of a record is screened out, and decoding only its codes costs a fraction of decoding it whole."""
        if self._data is not None:
            return self._data
        return msgspec.structs.asdict(_SCREEN.decode(self._json))

    @property
    def json(self) -> bytes | None:
        """The exact bytes (what the fact cache keys on); None when decoded data cannot be serialised by orjson."""
        if self._json is None:
            try:
                self._json = orjson.dumps(self._data)
            except TypeError:
                return None
        return self._json


class Resources:
    """The resources of one data set: a Bundle's entries kept in bytes until something reads them, or a list.

    Kept in bytes, the entries are also what the fact cache remembers a whole data set's facts by
    (`entries_json`), so a chart seen before costs one look-up per data set, not one per resource.
    """

    __slots__ = ("_items", "entries_json")

    def __init__(self, items: list[RawResource] | None = None, entries_json: bytes | None = None):
        self._items = items if items is not None or entries_json is not None else []
        self.entries_json = entries_json

    @property
    def items(self) -> list[RawResource]:
        """The resources (search outcomes left out); UnreadableJSON when entries of an odd shape (not objects)
        also hold a number out of range, so the data set cannot be read at all."""
        if self._items is None:
            self._items = _entries(self.entries_json)
        return self._items

    def may_hold(self, resource_type: str) -> bool:
        """False only when no resource of this type can be among the entries (so they need not be read to tell)."""
        raw = self.entries_json
        return raw is None or f'"{resource_type}"'.encode() in raw or b"\\u" in raw


@dataclass(frozen=True)
class PrefetchBundle:
    """A prefetched searchset Bundle: its resources and its `next` link, if any."""

    resources: Resources
    next_url: str | None = None


Prefetched = RawResource | PrefetchBundle | None  # None: the EHR sent `null` (supplied, nothing there)


@dataclass(frozen=True)
class SplitBody:
    """A hook body read in two parts: what the schema checks, and the prefetch as resources kept in bytes."""

    checked: Any  # every member decoded, but each prefetched Bundle only as {"resourceType": "Bundle"}
    prefetch: dict[str, Prefetched] | None  # None: the body was decoded whole; read the prefetch from `checked`


class _NotPlain(Exception):
    """The body is not of the plain shape split_body reads; it is decoded whole instead."""


class _Head(msgspec.Struct):
    resourceType: Any = None
    id: Any = None


class _Screen(msgspec.Struct):
    resourceType: Any = None
    code: Any = None
    medicationCodeableConcept: Any = None
    medicationReference: Any = None
    contained: Any = None


_ABSENT = msgspec.Raw(b"null")


class _Search(msgspec.Struct):
    mode: Any = None


class _Entry(msgspec.Struct):
    resource: msgspec.Raw = _ABSENT
    search: _Search | None = None  # a `search` that is not an object fails the decode: read as bundle_of reads it


class _Bundle(msgspec.Struct):
    resourceType: Any = None
    entry: msgspec.Raw = msgspec.Raw(b"[]")
    link: msgspec.Raw = _ABSENT


class _Top(msgspec.Struct, forbid_unknown_fields=True):
    hook: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    hookInstance: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    fhirServer: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    fhirAuthorization: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    context: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    extension: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    prefetch: dict[str, msgspec.Raw] | msgspec.UnsetType = msgspec.UNSET


_TOP_MEMBERS = tuple(name for name in _Top.__struct_fields__ if name != "prefetch")
_TOP = msgspec.json.Decoder(_Top)
_MEMBERS = msgspec.json.Decoder(dict[str, msgspec.Raw])
_HEAD = msgspec.json.Decoder(_Head)
_SCREEN = msgspec.json.Decoder(_Screen)
_BUNDLE = msgspec.json.Decoder(_Bundle)
_ENTRIES = msgspec.json.Decoder(list[_Entry])


def split_body(raw: bytes) -> SplitBody | None:
    """The body split for the schema and the record, or None when it must be decoded whole (see the module doc).

    The schema asks of a prefetch value only that it be null or an object with a non-empty string `resourceType`:
    that is checked here for every value, so a Bundle can reach the schema without its entries.
    """
    if not raw.isascii():
        try:
            raw.decode()  # msgspec keeps bytes it skips unchecked; the whole-body decoder refuses broken UTF-8
        except UnicodeDecodeError:
            return None
    try:
        members, values = _members(raw)
        checked = {name: _shallow(value, MAX_DEPTH - 1) for name, value in members.items()}
        if values is None:
            return SplitBody(checked, {})
        prefetch = {key: _prefetched(value) for key, value in values.items()}
    except (msgspec.DecodeError, msgspec.ValidationError, orjson.JSONDecodeError, RecursionError, _NotPlain):
        return None
    checked["prefetch"] = {key: value.data if isinstance(value, RawResource) else
                           None if value is None else {"resourceType": "Bundle"} for key, value in prefetch.items()}
    return SplitBody(checked, prefetch)


def _members(raw: bytes) -> tuple[dict[str, msgspec.Raw], dict[str, msgspec.Raw | _Bundle | None] | None]:
    """The body's members but the prefetch, in bytes, and the prefetch's values (None: no prefetch member).

    One pass over the body when its members and prefetch keys are the ones CDS Hooks and discovery name and each
    search key holds a Bundle (or null): its Bundles are read in that pass. Otherwise the prefetch values are
    kept in bytes (a second pass reads each), and a body with other members takes one more pass."""
    try:
        fast = _fast_top().decode(raw)
    except msgspec.ValidationError:
        fast = None
    if fast is not None and fast.prefetch is msgspec.UNSET:
        return _named_members(fast), None
    if fast is not None and (values := _plain_values(fast.prefetch)) is not None:
        return _named_members(fast), values
    try:
        top = _TOP.decode(raw)
    except msgspec.ValidationError:
        members = _MEMBERS.decode(raw)
        prefetch = members.pop("prefetch", None)
        return members, _MEMBERS.decode(prefetch) if prefetch is not None else None
    return _named_members(top), top.prefetch if top.prefetch is not msgspec.UNSET else None


def _named_members(top: Any) -> dict[str, msgspec.Raw]:
    return {name: value for name in _TOP_MEMBERS if (value := getattr(top, name)) is not msgspec.UNSET}


def _plain_values(prefetch: Any) -> dict[str, msgspec.Raw | _Bundle | None] | None:
    """The values of a prefetch read in the one pass; None when a search key holds something else than a Bundle
    (an OperationOutcome, a lone resource): read in bytes instead, as any other value."""
    values = {}
    for key in prefetch.__struct_fields__:
        value = getattr(prefetch, key)
        if value is msgspec.UNSET:
            continue
        if value.__class__ is _Bundle and value.resourceType != "Bundle":
            return None
        values[key] = value
    return values


@cache
def _fast_top() -> msgspec.json.Decoder:
    """A decoder for a body whose prefetch keys are the discovery document's, each search key's value read as a
    Bundle (its entries still in bytes) and each other key's kept in bytes."""
    from .prefetch import PREFETCH_TEMPLATES  # prefetch imports this module: read at first use

    fields = [(key, (_Bundle | None | msgspec.UnsetType) if "?" in template else (msgspec.Raw | msgspec.UnsetType),
               msgspec.UNSET) for key, template in PREFETCH_TEMPLATES.items()]
    prefetch = msgspec.defstruct("_Prefetch", fields, forbid_unknown_fields=True)
    top = msgspec.defstruct("_FastTop", [(name, msgspec.Raw | msgspec.UnsetType, msgspec.UNSET)
                                          for name in _TOP_MEMBERS] +
                            [("prefetch", prefetch | msgspec.UnsetType, msgspec.UNSET)], forbid_unknown_fields=True)
    return msgspec.json.Decoder(top)


def _shallow(value: msgspec.Raw, limit: int) -> Any:
    """A part of the body decoded, when it nests no deeper than is left of MAX_DEPTH where it sits."""
    if too_deep(bytes(value), limit):
        raise _NotPlain  # decoded whole, the body is refused with the usual message
    return _loads(value)


def _loads(value: msgspec.Raw) -> Any:
    return orjson.loads(memoryview(value))  # JSONDecodeError (1e400, a lone surrogate): decoded whole instead


def _starts(value: msgspec.Raw, prefix: bytes) -> bool:
    return memoryview(value)[:len(prefix)] == prefix


def _prefetched(value: msgspec.Raw | _Bundle | None) -> Prefetched:
    """One prefetch value: null, a Bundle (entries kept in bytes) or a single resource (decoded: it is small)."""
    if value is None:
        return None
    if value.__class__ is _Bundle:
        return _bundle(value)
    if len(value) == 4 and _starts(value, b"null"):
        return None
    try:
        bundle = _BUNDLE.decode(value)
    except msgspec.ValidationError:  # not an object
        return _decoded_value(_shallow(value, MAX_DEPTH - 2))
    if bundle.resourceType != "Bundle":
        return _decoded_value(_shallow(value, MAX_DEPTH - 2))
    return _bundle(bundle)


def _bundle(bundle: _Bundle) -> PrefetchBundle:
    # The entries are checked for depth when they are read (`_entries`); a copy, so the fact cache never keeps
    # the whole body alive.
    return PrefetchBundle(Resources(entries_json=bytes(bundle.entry)), next_link(_shallow(bundle.link, MAX_DEPTH - 3)))


def _entries(raw: bytes) -> list[RawResource]:
    """A Bundle's `entry` array read as `bundle_of` reads a decoded one, each resource kept in bytes."""
    if too_deep(raw, MAX_DEPTH - 3):  # the array sits in the body, in the prefetch, in its Bundle
        raise UnreadableJSON(f"nests deeper than {MAX_DEPTH} levels")
    try:
        entries = _ENTRIES.decode(raw)
    except msgspec.ValidationError:
        # Not an array of objects (or a `search` that is not an object): read as the decoded entries are.
        try:
            decoded = json_codec.loads(raw, json_codec.strict_loads)
        except (ValueError, RecursionError) as exc:
            raise UnreadableJSON(str(exc)) from None
        return bundle_of({"entry": decoded}).resources.items
    # One comprehension: it runs for every entry of every Bundle read. Each resource is copied out, so a cached
    # resource never keeps its Bundle alive; entries are left out as `bundle_of` leaves them out.
    return [RawResource(data, head.resourceType, head.id) for entry in entries
            if (data := bytes(entry.resource))[:1] == b"{"
            and (head := _HEAD.decode(data)).resourceType != "OperationOutcome"
            and (entry.search is None or entry.search.mode != "outcome")]


def _decoded_value(value: Any) -> Prefetched:
    """A decoded prefetch value the schema accepts, as split_body reads it; _NotPlain for one it may reject."""
    if value.__class__ is not dict or not isinstance(value.get("resourceType"), str) or not value["resourceType"]:
        raise _NotPlain
    return prefetched(value)


def bundle_of(bundle: Mapping[str, Any]) -> PrefetchBundle:
    """A decoded Bundle's resources (non-object entries, OperationOutcomes and search outcomes left out)."""
    resources = [RawResource.of(resource) for entry in _list(bundle.get("entry")) if entry.__class__ is dict
                 and (resource := entry.get("resource")).__class__ is dict
                 and resource.get("resourceType") != "OperationOutcome"
                 and not ((search := entry.get("search")).__class__ is dict and search.get("mode") == "outcome")]
    return PrefetchBundle(Resources(resources), next_link(bundle.get("link")))


def next_link(links: Any) -> str | None:
    """The `next` link's URL among a Bundle's links, if any."""
    return next((link.get("url") for link in _list(links) if isinstance(link, Mapping)
                 and link.get("relation") == "next" and isinstance(link.get("url"), str)), None)


def prefetched(value: Any) -> Prefetched | Any:
    """A decoded prefetch value as split_body reads it; a value that is not a resource is passed on as it is."""
    if value is None or not isinstance(value, Mapping):
        return value
    if value.get("resourceType") == "Bundle":
        return bundle_of(value)
    return RawResource.of(value)


def _list(value: Any) -> list:
    """A JSON array as a list; anything else (a hostile or broken Bundle) as empty."""
    return value if isinstance(value, list) else []
