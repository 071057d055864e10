"""Reads from the EHR's FHIR server, within one total time budget per hook call.

Queries run in parallel threads and the caller waits at most the budget: a server that refuses,
hangs, trickles bytes or pages forever costs the clinician no more than `CDS_FHIR_TIMEOUT_S`.
Each call gets its own threads, so a server that held one call's threads past its deadline
cannot delay the next call. A thread still blocked after the deadline is abandoned; its socket
timeout (the budget) and the deadline check between reads end it soon after.
"""
from __future__ import annotations

import json
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

import requests

from .raw_resources import RawResource, bundle_of

MAX_PAGES = 20
MAX_BYTES = 20 * 1024 * 1024  # per query, all pages together
MAX_THREADS = 12  # one per prefetch key
READ_SIZE = 65536


@dataclass(frozen=True)
class Fetched:
    """What one query produced: resources, or the reason it failed (said without identifiers)."""

    resources: list[RawResource] | None
    error: str | None = None


class _Deadline:
    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()

    def check(self) -> None:
        if self.left() <= 0:
            raise TimeoutError("time budget spent")


class _Budget:
    """Bytes one query may still read, over all its pages."""

    def __init__(self, limit: int):
        self.left = limit

    def spend(self, size: int) -> None:
        self.left -= size
        if self.left < 0:
            raise ValueError("response too large")


def _get_json(session: requests.Session, url: str, token: str | None, deadline: _Deadline, budget: _Budget) -> Any:
    deadline.check()
    headers = {"Accept": "application/fhir+json, application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    timeout = max(0.05, deadline.left())
    with session.get(url, headers=headers, timeout=(timeout, timeout), stream=True, allow_redirects=False) as resp:
        if resp.status_code != 200:
            raise ValueError(f"HTTP {resp.status_code}")
        chunks = []
        while True:
            # read1 returns whatever has arrived: a server trickling one byte at a time cannot keep
            # this loop from seeing the deadline (a plain read(n) would wait for n bytes).
            chunk = resp.raw.read1(READ_SIZE, decode_content=True)
            if not chunk:
                break
            budget.spend(len(chunk))
            chunks.append(chunk)
            deadline.check()
    try:
        return json.loads(b"".join(chunks))
    except (ValueError, RecursionError) as exc:
        raise ValueError("response is not JSON") from exc


def _same_server(base: str, url: str) -> bool:
    return url.startswith(base.rstrip("/") + "/") or url == base


def fetch_query(base: str, query: str, token: str | None, deadline: _Deadline) -> Fetched:
    """Run one read or search, following `next` links on the same server, and return its resources."""
    session = requests.Session()
    url = urljoin(base.rstrip("/") + "/", query)
    resources: list[RawResource] = []
    budget = _Budget(MAX_BYTES)
    try:
        for _ in range(MAX_PAGES):
            body = _get_json(session, url, token, deadline, budget)
            if not isinstance(body, Mapping):
                return Fetched(None, "the FHIR server did not answer with a resource")
            if body.get("resourceType") == "OperationOutcome":
                return Fetched(None, "the FHIR server answered with an OperationOutcome")
            if body.get("resourceType") != "Bundle":
                return Fetched([RawResource.of(body)])
            page = bundle_of(body)
            resources.extend(page.resources.items)
            next_url = page.next_url
            if not next_url:
                return Fetched(resources)
            if not _same_server(base, next_url):
                return Fetched(None, "the FHIR server paged to another host")
            url = next_url
        return Fetched(None, "the FHIR server kept paging")
    except (TimeoutError, requests.Timeout):
        return Fetched(None, "the FHIR server did not answer in time")
    except (requests.RequestException, OSError):
        return Fetched(None, "the FHIR server could not be reached")
    except ValueError as exc:
        return Fetched(None, f"the FHIR server's answer could not be read ({exc})")
    finally:
        session.close()


def fetch_all(base: str, queries: Mapping[str, str], token: str | None, budget_s: float) -> dict[str, Fetched]:
    """Run the queries in parallel; whatever has not finished within the budget counts as failed."""
    deadline = _Deadline(budget_s)
    pool = ThreadPoolExecutor(max_workers=min(MAX_THREADS, max(1, len(queries))), thread_name_prefix="fhir-fetch")
    try:
        futures = {key: pool.submit(fetch_query, base, query, token, deadline) for key, query in queries.items()}
        wait(futures.values(), timeout=max(0.0, deadline.left()))
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    out = {}
    for key, future in futures.items():
        if future.done() and not future.cancelled() and future.exception() is None:
            out[key] = future.result()
        elif future.done() and not future.cancelled():
            out[key] = Fetched(None, "the FHIR server's answer could not be read")
        else:
            out[key] = Fetched(None, "the FHIR server did not answer in time")
    return out
