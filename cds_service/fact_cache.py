"""Facts already read from byte-identical FHIR resources, so a record seen again is not decoded or validated again.

An EHR sends the same chart many times: order-select on each selection, then order-sign, then again for the
next order of the session. Reading a resource (screening it against what the policies read, R4B validation, then
the facts) is a pure function of its JSON, of the Medications it may name and of the policies reading it, so
the facts of an identical resource are the facts already read. The reader builds the key (see
`fhir_facts._Reader`); it holds the resource's exact bytes as the EHR sent them (an EHR serialises a resource
the same way each time), so a resource that merely looks alike is read afresh. A resource no policy reads is
remembered too, as "nothing to read", and a Bundle's entries as a whole. Bounded (least recently used out first:
`CDS_FACT_CACHE_SIZE` entries, `CDS_FACT_CACHE_MB` of keys), per worker process, in memory only: nothing is
written anywhere.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

Key = tuple[Any, ...]  # hashable, and holding the resource's exact bytes
Read = tuple[Any, tuple[str, ...]]  # the fact (or None: filtered out) and the unreadable notes it made


class FactCache:
    """A bounded least-recently-used map from a key (a reader, bytes read and their context) to what reading gave.

    Bounded twice: by entries, and by the bytes the keys hold (a whole Bundle's entries can be megabytes).
    """

    def __init__(self, max_entries: int, max_bytes: int = 64 * 1024 * 1024):
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._entries: OrderedDict[Key, tuple[Read, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size_bytes(self) -> int:
        """The bytes the keys hold now."""
        return self._bytes

    def read(self, key: Key, compute: Callable[[], Read]) -> Read:
        """What `compute()` gives for this key, from the cache when the same key was read before."""
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
                self.hits += 1
                return found[0]
        value = compute()
        weight = sum(len(part) for part in key if part.__class__ is bytes)
        if weight > self.max_bytes:
            return value
        with self._lock:
            self.misses += 1
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            self._entries[key] = (value, weight)
            self._bytes += weight
            while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
                self._bytes -= self._entries.popitem(last=False)[1][1]
        return value
