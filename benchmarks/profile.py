"""`python -m benchmarks.profile --policy mitoxantrone --size 5000`: where one hook call spends its time.

Runs the app in-process (Flask test client, no gunicorn) on one generated request, repeated, under
pyinstrument, and prints the call tree, the CPU time per call and the number of Python function calls per call
(a deterministic measure of work: on a shared machine even CPU time moves by 30% between runs).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time

from cds_service import create_app

from .records import PROFILE_BY_POLICY, TODAY, order_sign_request
from .run import SERVICE_PATH


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile", description=__doc__)
    parser.add_argument("--policy", default="mitoxantrone", choices=sorted(PROFILE_BY_POLICY))
    parser.add_argument("--size", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--no-profile", action="store_true", help="only the CPU time per call")
    args = parser.parse_args(argv)
    body = json.dumps(order_sign_request(PROFILE_BY_POLICY[args.policy], args.size)).encode()
    # A database of its own: the shared instance/ file grows with every run and other runs may write to it.
    work = tempfile.TemporaryDirectory(prefix="cds-profile-")
    client = create_app({"CDS_TODAY": TODAY.isoformat(),
                         "CDS_DATABASE_URL": f"sqlite:///{work.name}/profile.sqlite3"}).test_client()

    def call() -> None:
        response = client.post(SERVICE_PATH, data=body, content_type="application/json")
        assert response.status_code == 200, response.get_data(as_text=True)[:500]

    call()  # warm caches, as the benchmark's warm-up does
    costs = []
    for _ in range(args.repeat):
        started = time.process_time()
        call()
        costs.append((time.process_time() - started) * 1000)
    costs.sort()
    print(f"{args.policy}, {args.size} resources, {len(body) / 1024:,.0f} KB: CPU per call "
          f"median {costs[len(costs) // 2]:.1f} ms, min {costs[0]:.1f} ms")
    import cProfile
    import pstats

    counter = cProfile.Profile()
    counter.runcall(call)
    calls = pstats.Stats(counter).total_calls  # deterministic: the same work gives the same count on any machine
    print(f"  Python function calls per call: {calls:,}")
    if not args.no_profile:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.0005)
        with profiler:
            for _ in range(args.repeat):
                call()
        print(profiler.output_text(unicode=True, color=False, short_mode=False, show_all=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
