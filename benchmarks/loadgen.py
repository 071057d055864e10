"""Load generators: wrk (preferred) or a Python closed loop (fallback), each returning one Measurement.

wrk is a C event loop: on a two-core machine it uses a few percent of a core to keep two gunicorn
workers busy, so the numbers measure the server. The Python fallback runs where wrk cannot be installed;
it competes with the server for the CPU and can add a millisecond or so per request, which
inflates the bare endpoint's latency more than the service's, so its ratios are optimistic: the report says
which generator made it.
"""
from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

LUA_SCRIPT = Path(__file__).with_name("post_bodies.lua")


@dataclass
class Measurement:
    """Latency percentiles (ms) and throughput of one load run against one app."""

    tool: str
    requests: int
    duration_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    errors: dict[str, int] = field(default_factory=dict)

    @property
    def throughput(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0

    @classmethod
    def combine(cls, runs: list[Measurement]) -> Measurement:
        """Rounds of one app as one: each percentile the median of the rounds' (one noisy round cannot move it),
        throughput all requests over all time."""
        def median(values: list[float]) -> float:
            ordered = sorted(values)
            mid = len(ordered) // 2
            return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2

        errors: dict[str, int] = {}
        for run in runs:
            for kind, count in run.errors.items():
                errors[kind] = errors.get(kind, 0) + count
        return cls(runs[0].tool, sum(r.requests for r in runs), sum(r.duration_s for r in runs),
                   median([r.p50_ms for r in runs]), median([r.p95_ms for r in runs]),
                   median([r.p99_ms for r in runs]), errors)

    def as_dict(self) -> dict:
        return {**asdict(self), "throughput": round(self.throughput, 2)}


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def run_wrk(base_url: str, path: str, bodies: list[Path], duration_s: float, connections: int) -> Measurement:
    """One wrk run posting `bodies` in turn; timeouts are generous so slow answers are measured, not dropped."""
    env = {**os.environ, "BENCH_BODIES": ",".join(str(b) for b in bodies), "BENCH_PATH": path}
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration_s))}s", "--timeout", "30s",
           "-s", str(LUA_SCRIPT), base_url]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True, timeout=duration_s + 60)
    line = next(ln for ln in reversed(out.stdout.splitlines()) if ln.startswith("{"))
    data = json.loads(line)
    return Measurement("wrk", data["requests"], data["duration_us"] / 1e6, data["p50_us"] / 1000,
                       data["p95_us"] / 1000, data["p99_us"] / 1000,
                       {k: v for k, v in data["errors"].items() if v})


def percentile(sorted_values: list[float], pct: float) -> float:
    """Nearest-rank percentile of an already sorted list (0.0 when empty)."""
    if not sorted_values:
        return 0.0
    rank = max(1, -(-len(sorted_values) * pct // 100))  # ceil without floats drifting
    return sorted_values[int(rank) - 1]


def run_python(base_url: str, path: str, bodies: list[Path], duration_s: float, connections: int) -> Measurement:
    """A closed loop of `connections` threads, one request at a time each, a new connection per request."""
    host, port = base_url.removeprefix("http://").rstrip("/").split(":")
    payloads = [b.read_bytes() for b in bodies]
    latencies: list[float] = []
    errors = {"status": 0, "connect": 0}
    lock = threading.Lock()
    deadline = time.perf_counter() + duration_s

    def loop(offset: int) -> None:
        i = offset
        while time.perf_counter() < deadline:
            body = payloads[i % len(payloads)]
            i += 1
            started = time.perf_counter()
            try:
                conn = http.client.HTTPConnection(host, int(port), timeout=30)
                conn.request("POST", path, body, {"Content-Type": "application/json"})
                response = conn.getresponse()
                response.read()
                conn.close()
            except OSError:
                with lock:
                    errors["connect"] += 1
                continue
            elapsed = (time.perf_counter() - started) * 1000
            with lock:
                latencies.append(elapsed)
                if response.status >= 300:
                    errors["status"] += 1

    started = time.perf_counter()
    threads = [threading.Thread(target=loop, args=(n,)) for n in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    ordered = sorted(latencies)
    return Measurement("python", len(ordered), elapsed, percentile(ordered, 50), percentile(ordered, 95),
                       percentile(ordered, 99), {k: v for k, v in errors.items() if v})
