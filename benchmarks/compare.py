"""`python -m benchmarks.compare d202020 HEAD`: two revisions of the service, side by side, in lockstep.

On a shared two-core machine the same run moves by 30% from one minute to the next, so two `make bench` runs
cannot tell a 10% change. This checks out each revision (git worktrees under a temporary folder), serves each
under one gunicorn worker with its own gunicorn settings, adds the bare endpoint, and posts the mix of one
record size with wrk on a single connection in short alternating bursts, so a busy neighbour hits every app
alike. Per burst it reads the worker's CPU time (user + system, from /proc) and wrk's median latency; it
reports each app's median over the bursts and, burst by burst, its ratio to the first revision. CPU per
request is the figure to read: on one connection it is what throughput on a busy server divides by.
Linux only (/proc), needs wrk; about 2 minutes with the defaults.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from contextlib import ExitStack, contextmanager
from pathlib import Path

from .loadgen import LUA_SCRIPT
from .records import TODAY
from .run import GUNICORN_CONFIG, ROOT, SERVICE_PATH, _free_port, _wait_healthy, write_bodies

BARE = "bare"


@contextmanager
def worktree(rev: str, parent: Path):
    """A checkout of `rev` (detached, throw-away); yields its folder."""
    folder = parent / rev.replace("/", "_")
    subprocess.run(["git", "worktree", "add", "--detach", "--force", str(folder), rev], cwd=ROOT, check=True,
                   capture_output=True)
    try:
        yield folder
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(folder)], cwd=ROOT, capture_output=True)


@contextmanager
def one_worker(tree: Path, app: str, env: dict[str, str], log: Path):
    """The app of `tree` under one gunicorn sync worker; yields (base URL, worker pid)."""
    port = _free_port()
    cmd = [sys.executable, "-m", "gunicorn", "--config", GUNICORN_CONFIG, "--workers", "1", "--bind",
           f"127.0.0.1:{port}", "--log-level", "warning", app]
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=tree, env={**os.environ, **env, "PYTHONPATH": str(tree)}, stdout=out,
                                stderr=subprocess.STDOUT)
        try:
            base = f"http://127.0.0.1:{port}"
            _wait_healthy(base, proc, log)
            worker = int(subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True,
                                        check=True).stdout.split()[0])
            yield base, worker
        finally:
            proc.terminate()
            proc.wait(timeout=15)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def burst(base: str, bodies: list[Path], seconds: int) -> dict:
    env = {**os.environ, "BENCH_BODIES": ",".join(map(str, bodies)), "BENCH_PATH": SERVICE_PATH}
    out = subprocess.run(["wrk", "-t1", "-c1", f"-d{seconds}s", "--timeout", "30s", "-s", str(LUA_SCRIPT), base],
                         env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(next(line for line in reversed(out.splitlines()) if line.startswith("{")))


def paired_ratios(runs: list[float], first: list[float]) -> float:
    """The median, over bursts, of each burst's figure over the first app's figure in the same round."""
    return statistics.median(a / b for a, b in zip(runs, first, strict=True))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.compare", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("revisions", nargs="+", help="git revisions (the first is the baseline)")
    parser.add_argument("--size", type=int, default=200, help="record size of the mix (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--seconds", type=int, default=2, help="length of one burst")
    parser.add_argument("--cold", action="store_true", help="services that remember no facts (CDS_FACT_CACHE_SIZE=0)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="cds-compare-") as tmp, ExitStack() as stack:
        work = Path(tmp)
        bodies = write_bodies((args.size,), work)[args.size]
        apps: list[tuple[str, str, int]] = []
        for i, rev in enumerate(args.revisions):
            tree = stack.enter_context(worktree(rev, work))
            env = {"CDS_DATABASE_URL": f"sqlite:///{work / f'{i}.sqlite'}", "CDS_TODAY": TODAY.isoformat(),
                   "CDS_ENV": "development", **({"CDS_FACT_CACHE_SIZE": "0"} if args.cold else {})}
            apps.append((rev, *stack.enter_context(one_worker(tree, "cds_service:create_app()", env,
                                                              work / f"{i}.log"))))
        apps.append((BARE, *stack.enter_context(one_worker(ROOT, "benchmarks.bare_app:create_app()", {},
                                                           work / "bare.log"))))
        cpu: dict[str, list[float]] = {name: [] for name, *_ in apps}
        p50: dict[str, list[float]] = {name: [] for name, *_ in apps}
        for _, base, _ in apps:
            burst(base, bodies, args.seconds)  # warm-up: caches, compiled statements
        for n in range(args.rounds):
            for name, base, worker in apps if n % 2 == 0 else apps[::-1]:
                before = cpu_seconds(worker)
                done = burst(base, bodies, args.seconds)
                cpu[name].append((cpu_seconds(worker) - before) * 1000 / done["requests"])
                p50[name].append(done["p50_us"] / 1000)
    first = args.revisions[0]
    print(f"{args.size} resources, mix of {len(bodies)} policies{' (cold)' if args.cold else ''}, "
          f"{args.rounds} rounds of {args.seconds} s, wrk -c1")
    print("| app | CPU per request (ms) | p50 (ms) | CPU / first | p50 / first |\n|---|---:|---:|---:|---:|")
    for name, *_ in apps:
        print(f"| {name} | {statistics.median(cpu[name]):.2f} | {statistics.median(p50[name]):.2f} | "
              f"{paired_ratios(cpu[name], cpu[first]):.3f} | {paired_ratios(p50[name], p50[first]):.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
