"""The benchmark's request generator and report writer on tiny inputs (no load, no timing)."""
from __future__ import annotations

import json

import pytest

from benchmarks.loadgen import percentile
from benchmarks.records import PROFILES, counts, order_sign_request, record_size
from benchmarks.report import markdown, target_checks, write_report
from cds_service.hook_request import parse_hook_request


@pytest.mark.parametrize("size", [20, 200])
def test_counts_add_up_to_the_record_size(size):
    n = counts(size)
    assert sum(n.values()) == size
    assert n["vitals"] + n["labs"] > size / 2  # a chart is mostly observations


@pytest.mark.parametrize("profile", PROFILES, ids=[p.policy for p in PROFILES])
def test_generated_request_is_a_valid_order_sign_call_of_the_asked_size(profile):
    request = order_sign_request(profile, 20)
    assert record_size(request) == 20
    parsed = parse_hook_request(json.loads(json.dumps(request)))
    assert parsed.hook == "order-sign"
    [draft] = parsed.draft_entries
    assert draft["medicationCodeableConcept"]["coding"][0]["code"] == profile.order[1]


def test_generation_is_deterministic():
    assert order_sign_request(PROFILES[1], 200) == order_sign_request(PROFILES[1], 200)


def test_mitoxantrone_request_is_evaluated_by_the_service(client):
    request = order_sign_request(PROFILES[0], 200)
    response = client.post("/cds-services/prior-auth-order-sign", json=request)
    assert response.status_code == 200
    [card] = response.get_json()["cards"]
    trace = card["extension"]["prior-auth.evaluation"]
    assert trace["policy"] == "mitoxantrone"
    statuses = {c["id"]: c["status"] for c in trace["criteria"]}
    # The generated chart holds the RRMS diagnosis, the four step agents (stopped) and a neurologist.
    assert statuses["I.A.1.a.dx"] == "met"
    assert statuses["I.A.1.a"] == "met"
    assert statuses["I.A.4"] == "met"


def test_percentile_is_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile([], 50) == 0.0


def _measurement(p50, p95, p99, throughput):
    return {"tool": "wrk", "requests": int(throughput * 10), "duration_s": 10.0, "p50_ms": p50, "p95_ms": p95,
            "p99_ms": p99, "errors": {}, "throughput": throughput}


RESULTS = {
    "meta": {"loadgen": "wrk", "connections": 2, "duration_s": 10, "warmup_s": 2, "workers": 2, "cpus": 2,
             "commit": "abc1234", "policies": ["mitoxantrone"], "policies_loaded": ["mitoxantrone"],
             "answers": {"mitoxantrone": {"200": "documentation-needed"}}, "command": "make bench"},
    "rows": [
        {"size": 200, "body_bytes": 170000, "bare": _measurement(2.0, 3.0, 4.0, 800.0),
         "service": _measurement(3.0, 9.0, 14.0, 300.0), "cold": _measurement(8.0, 12.0, 16.0, 100.0),
         "per_policy": {"mitoxantrone": _measurement(5.0, 9.0, 12.0, 200.0)}},
        {"size": 5000, "body_bytes": 4200000, "bare": _measurement(70.0, 90.0, 100.0, 26.0),
         "service": _measurement(140.0, 200.0, 300.0, 13.0)},
    ],
}


def test_targets_are_ratios_to_the_bare_endpoint():
    checks = {text: (round(value, 3), met) for text, value, met in target_checks(RESULTS)}
    assert checks == {
        "200 resources: p50 ratio ≤ 2": (1.5, True),
        "200 resources: p99 ratio ≤ 3": (3.5, False),
        "200 resources: throughput ratio ≥ 0.5": (0.375, False),
        "5000 resources: p50 ratio ≤ 3": (2.0, True),
        "200 resources: p50 ratio ≤ 2 (every resource read afresh)": (4.0, False),
        "200 resources: p99 ratio ≤ 3 (every resource read afresh)": (4.0, False),
        "200 resources: throughput ratio ≥ 0.5 (every resource read afresh)": (0.125, False),
    }


def test_markdown_has_one_row_per_size_and_the_per_policy_table():
    text = markdown(RESULTS)
    assert "| 200 | 166 | 2.0 / 3.0 / 4.0 | 3.0 / 9.0 / 14.0 | 800.0 | 300.0 | 1.50 | 3.00 | 3.50 | 0.38 |" in text
    assert "| 5,000 | 4,102 |" in text
    assert "| 200 | mitoxantrone | 5.0 / 9.0 / 12.0 | 200.0 | 2.50 | 3.00 | 0.25 |" in text
    assert "| 200 | 8.0 / 12.0 / 16.0 | 100.0 | 4.00 | 4.00 | 4.00 | 0.12 |" in text  # read afresh


def test_write_report_writes_table_json_and_plot(tmp_path):
    pytest.importorskip("matplotlib")
    written = write_report(RESULTS, tmp_path)
    assert [p.name for p in written] == ["benchmark.json", "benchmark.md", "benchmark.png"]
    assert json.loads(written[0].read_text())["rows"][0]["size"] == 200
    assert written[2].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_readme_table_is_replaced_under_its_marker(tmp_path):
    from benchmarks.readme_table import MARK, update_readme

    readme = tmp_path / "README.md"
    readme.write_text(f"## Benchmarks\n\n{MARK}\n| old |\n\nold note\n\n![latency and ratios](x.png)\n\nafter\n")
    assert update_readme("| new |\n", readme)
    assert readme.read_text() == f"## Benchmarks\n\n{MARK}\n| new |\n\n![latency and ratios](x.png)\n\nafter\n"
    other = tmp_path / "other.md"
    other.write_text("no marker here\n")
    assert not update_readme("| new |", other)
    assert other.read_text() == "no marker here\n"


def test_compare_reads_each_burst_against_the_first_app_in_the_same_round():
    from benchmarks.compare import paired_ratios

    # A neighbour slows round 2 for every app alike: the paired ratio still reads 0.5.
    assert paired_ratios([1.0, 4.0, 1.0], [2.0, 8.0, 2.0]) == 0.5
    with pytest.raises(ValueError):
        paired_ratios([1.0], [1.0, 2.0])
