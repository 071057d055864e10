"""`python -m benchmarks.run`: the service against a bare Flask endpoint, both under gunicorn, on loopback.

Starts both apps with the same gunicorn settings, generates order-sign requests for records of each size and
each of the five policies, drives each app with wrk (or the Python fallback) and writes
benchmarks/results/benchmark.{md,json,png}. About 80 s per record size with the defaults.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from cds_service.cli import GUNICORN_CONFIG

from .loadgen import Measurement, run_python, run_wrk, wrk_available
from .readme_table import update_readme
from .records import PROFILES, SIZES, TODAY, order_sign_request, record_size
from .report import markdown, write_report

ROOT = Path(__file__).resolve().parent.parent
SERVICE_PATH = "/cds-services/prior-auth-order-sign"
WORKERS = 2
DEFAULT_OUT = ROOT / "benchmarks" / "results"
NO_CARD = "no card"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def gunicorn(app: str, env: dict[str, str], log: Path):
    """One gunicorn (the service's config file, WORKERS sync workers, no access log) on a free loopback port;
    yields its base URL. Both apps get the same settings."""
    port = _free_port()
    cmd = [sys.executable, "-m", "gunicorn", "--config", GUNICORN_CONFIG, "--workers", str(WORKERS),
           "--bind", f"127.0.0.1:{port}",
           "--log-level", "warning", "--timeout", "120", app]
    with log.open("w") as log_file:
        proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **env}, stdout=log_file, stderr=subprocess.STDOUT)
        try:
            base = f"http://127.0.0.1:{port}"
            _wait_healthy(base, proc, log)
            yield base
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait_healthy(base: str, proc: subprocess.Popen, log: Path, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited at start-up:\n{log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{base} did not answer /healthz within {timeout_s:g} s")


def write_bodies(sizes: tuple[int, ...], work: Path) -> dict[int, list[Path]]:
    """One JSON body per (size, policy), written once so both apps get the very same bytes."""
    out: dict[int, list[Path]] = {}
    for size in sizes:
        out[size] = []
        for profile in PROFILES:
            request = order_sign_request(profile, size)
            assert record_size(request) == size
            path = work / f"{profile.policy}-{size}.json"
            path.write_text(json.dumps(request, separators=(",", ":")), encoding="utf-8")
            out[size].append(path)
    return out


def check_answers(base: str, bodies: dict[int, list[Path]]) -> dict[str, dict[str, Any]]:
    """Post each body once: every answer must be 200; note which policies answered with a card and its decision."""
    seen: dict[str, dict[str, Any]] = {}
    for size, paths in bodies.items():
        for path in paths:
            req = urllib.request.Request(f"{base}{SERVICE_PATH}", data=path.read_bytes(),
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=60) as response:
                answer = json.loads(response.read())
            policy = path.stem.rsplit("-", 1)[0]
            decisions = [c["extension"]["prior-auth.evaluation"]["decision"] for c in answer["cards"]]
            seen.setdefault(policy, {})[str(size)] = decisions[0] if decisions else NO_CARD
    return seen


def measure_size(size: int, paths: list[Path], answered: dict[str, dict[str, Any]], bare: str, service: str,
                 cold: str, args: argparse.Namespace) -> dict[str, Any]:
    """The apps on one record size, in interleaved rounds so a noisy neighbour hits all alike.

    Each round runs the bare endpoint, the service on the mix of the five policies, the same mix on a service
    that remembers no facts (every resource validated on every call: a chart's first call), then the service
    on each policy that answers with a card alone (the mix hides a full evaluation behind orders no policy
    covers).
    """
    run = run_wrk if args.loadgen == "wrk" else run_python
    carded = [p for p in paths if answered[p.stem.rsplit("-", 1)[0]][str(size)] != NO_CARD]
    targets: list[tuple[str, str, list[Path]]] = [("bare", bare, paths), ("service", service, paths),
                                                  ("cold", cold, paths)]
    targets += [(p.stem.rsplit("-", 1)[0], service, [p]) for p in carded]
    slices: dict[str, list[Measurement]] = {name: [] for name, *_ in targets}
    for _name, base, bodies in targets:
        if args.warmup > 0:
            run(base, SERVICE_PATH, bodies, args.warmup, args.connections)
    for _ in range(args.rounds):
        for name, base, bodies in targets:
            slices[name].append(run(base, SERVICE_PATH, bodies, args.duration / args.rounds, args.connections))
    combined = {name: Measurement.combine(runs).as_dict() for name, runs in slices.items()}
    row: dict[str, Any] = {"size": size, "body_bytes": round(sum(p.stat().st_size for p in paths) / len(paths)),
                           "bare": combined.pop("bare"), "service": combined.pop("service"),
                           "cold": combined.pop("cold"), "per_policy": combined}
    for name, m in [("bare", row["bare"]), ("service", row["service"]), ("cold", row["cold"]), *combined.items()]:
        print(f"{size:>6} {name:<12} p50 {m['p50_ms']:8.1f} ms  p99 {m['p99_ms']:8.1f} ms  "
              f"{m['throughput']:7.1f} req/s", flush=True)
    return row


def _commit() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                ":!benchmarks/results"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
        return rev + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument("--sizes", type=lambda s: tuple(int(x) for x in s.split(",")), default=SIZES,
                        help="record sizes, comma-separated (default: %(default)s)")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds measured per app and size (all rounds)")
    parser.add_argument("--rounds", type=int, default=4, help="interleaved rounds the duration is split into")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of unmeasured load per app and size")
    parser.add_argument("--connections", type=int, default=WORKERS, help="concurrent connections (closed loop)")
    parser.add_argument("--loadgen", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results directory (README is updated only "
                        "for the default one)")
    parser.add_argument("--no-plot", action="store_true", help="skip the PNG (no matplotlib)")
    args = parser.parse_args(argv)
    if args.loadgen == "auto":
        args.loadgen = "wrk" if wrk_available() else "python"
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print(f"load generator: {args.loadgen}; sizes {args.sizes}; {args.duration:g} s per run", flush=True)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="cds-bench-") as tmp, ExitStack() as stack:
        work = Path(tmp)
        bodies = write_bodies(args.sizes, work)
        service_env = {"CDS_DATABASE_URL": f"sqlite:///{work / 'bench.sqlite'}", "CDS_TODAY": TODAY.isoformat(),
                       "CDS_ENV": "development"}
        service = stack.enter_context(gunicorn("cds_service:create_app()", service_env, work / "service.log"))
        cold_env = {**service_env, "CDS_DATABASE_URL": f"sqlite:///{work / 'cold.sqlite'}", "CDS_FACT_CACHE_SIZE": "0"}
        cold = stack.enter_context(gunicorn("cds_service:create_app()", cold_env, work / "cold.log"))
        bare = stack.enter_context(gunicorn("benchmarks.bare_app:create_app()", {}, work / "bare.log"))
        answered = check_answers(service, bodies)
        rows = [measure_size(size, bodies[size], answered, bare, service, cold, args) for size in args.sizes]
    loaded = sorted(p.stem for p in (ROOT / "cards").glob("*.json"))
    results = {
        "meta": {"loadgen": args.loadgen, "connections": args.connections, "duration_s": args.duration,
                 "rounds": args.rounds, "warmup_s": args.warmup, "workers": WORKERS, "cpus": os.cpu_count(),
                 "commit": _commit(), "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
                 "policies": [p.policy for p in PROFILES], "policies_loaded": loaded, "answers": answered,
                 "command": "make bench"},
        "rows": rows,
    }
    written = write_report(results, args.out, with_plot=not args.no_plot)
    if args.out.resolve() == DEFAULT_OUT and update_readme(markdown(results)):
        written.append(ROOT / "README.md")
    print(markdown(results))
    print("wrote " + ", ".join(str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(p) for p in written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
