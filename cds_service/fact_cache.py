"""Facts already read from byte-identical FHIR resources, so a record seen again is not validated again.

An EHR sends the same chart many times: order-select on each selection, then order-sign, then again for the
next order of the session. Reading a resource (R4B validation, then the facts) is a pure function of its JSON
and of the Medication its `medicationReference` resolves to, so the facts of an identical resource are the
facts already read. The key is the resource's exact JSON bytes (orjson, insertion order: the EHR serialises a
resource the same way each time); a resource that merely looks alike is read afresh. Bounded (least recently
used out first), per worker process, in memory only: nothing is written anywhere, and it holds no more than a
request does.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

import orjson

Key = tuple[str, bytes, bytes]
Read = tuple[Any, tuple[str, ...]]  # the fact (or None: filtered out) and the unreadable notes it made


class FactCache:
    """A bounded least-recently-used map from (reader, resource JSON, context JSON) to what reading gave."""

    def __init__(self, max_entries: int):
        self.max_entries = max_entries
        self._entries: OrderedDict[Key, Read] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def read(self, reader: str, raw: Mapping[str, Any], context: Mapping[str, Any] | None,
             compute: Callable[[], Read]) -> Read:
        """What `compute()` gives for this resource, from the cache when the same bytes were read before."""
        key = _key(reader, raw, context)
        if key is None:
            return compute()
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
                self.hits += 1
                return found
        value = compute()
        with self._lock:
            self.misses += 1
            self._entries[key] = value
            if len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return value


def _key(reader: str, raw: Mapping[str, Any], context: Mapping[str, Any] | None) -> Key | None:
    """The cache key, or None when orjson cannot serialise the resource (an integer beyond 64 bits)."""
    try:
        return reader, orjson.dumps(raw), orjson.dumps(context) if context is not None else b""
    except TypeError:
        return None
