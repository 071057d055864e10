"""The benchmark report: a markdown table of latency and throughput against the bare endpoint, and a plot.

`results` is what run.py measured: {"meta": {...}, "rows": [{"size", "body_bytes", "bare", "service", "cold"},
...]} where bare, service and cold are Measurement.as_dict() values. "service" remembers the facts of resources
it has read (the benchmark posts the same charts again, as EHRs do on order-select and order-sign); "cold" is
the same service with that memory off, so every call validates every resource a policy reads: a chart's first
call. Rows of older runs have no "cold".
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# Targets of the issue, as ratios service / bare measured in the same run: (size, metric, limit, "max"|"min").
# Each is checked for both kinds of call.
TARGETS = ((200, "p50_ms", 2.0, "max"), (200, "p99_ms", 3.0, "max"), (200, "throughput", 0.5, "min"),
           (5000, "p50_ms", 3.0, "max"))
METRICS = ("p50_ms", "p95_ms", "p99_ms", "throughput")
APPS = {"service": "charts seen before", "cold": "every resource read afresh"}


def ratios(row: dict[str, Any], app: str = "service") -> dict[str, float]:
    """`app` divided by the bare endpoint, per metric (latency: lower is better; throughput: higher is better)."""
    out = {}
    for metric in METRICS:
        bare = row["bare"][metric]
        out[metric] = row[app][metric] / bare if bare else float("inf")
    return out


def target_checks(results: dict[str, Any]) -> list[tuple[str, float, bool]]:
    """(description, measured ratio, met) for each target, for each kind of call measured at its record size."""
    rows = {row["size"]: row for row in results["rows"]}
    checks = []
    for app, label in APPS.items():
        for size, metric, limit, sense in TARGETS:
            if size not in rows or app not in rows[size]:
                continue
            value = ratios(rows[size], app)[metric]
            # A run in which the service answered nothing has a ratio of 0: a failure, never a met target.
            answered = rows[size][app].get("requests", 0) > 0 and value > 0
            met = answered and (value <= limit if sense == "max" else value >= limit)
            sign = "≤" if sense == "max" else "≥"
            text = f"{size} resources: {metric.removesuffix('_ms')} ratio {sign} {limit:g}"
            checks.append((text if app == "service" else f"{text} ({label})", value, met))
    return checks


def _ms(m: dict[str, Any]) -> str:
    return f"{m['p50_ms']:.1f} / {m['p95_ms']:.1f} / {m['p99_ms']:.1f}"


def markdown(results: dict[str, Any]) -> str:
    """The table (one row per record size) and the targets, as markdown."""
    meta = results["meta"]
    lines = [
        "| record (resources) | body (KB) | bare p50 / p95 / p99 (ms) | service p50 / p95 / p99 (ms) "
        "| bare req/s | service req/s | p50 × | p95 × | p99 × | throughput × |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in results["rows"]:
        r = ratios(row)
        errors = sum(row["bare"].get("errors", {}).values()) + sum(row["service"].get("errors", {}).values())
        flag = f" ⚠ {errors} errors" if errors else ""
        lines.append(
            f"| {row['size']:,} | {row['body_bytes'] / 1024:,.0f} | {_ms(row['bare'])} | {_ms(row['service'])} "
            f"| {row['bare']['throughput']:.1f} | {row['service']['throughput']:.1f} | {r['p50_ms']:.2f} "
            f"| {r['p95_ms']:.2f} | {r['p99_ms']:.2f} | {r['throughput']:.2f}{flag} |")
    cold = [row for row in results["rows"] if "cold" in row]
    if cold:
        lines += ["", "The same mix with every resource read afresh (CDS_FACT_CACHE_SIZE=0: a chart's first call; "
                  "ratios to the bare endpoint):", "",
                  "| record (resources) | p50 / p95 / p99 (ms) | req/s | p50 × | p95 × | p99 × | throughput × |",
                  "|---:|---:|---:|---:|---:|---:|---:|"]
        for row in cold:
            r = ratios(row, "cold")
            lines.append(f"| {row['size']:,} | {_ms(row['cold'])} | {row['cold']['throughput']:.1f} "
                         f"| {r['p50_ms']:.2f} | {r['p95_ms']:.2f} | {r['p99_ms']:.2f} | {r['throughput']:.2f} |")
    per_policy = [(row, policy, m) for row in results["rows"] for policy, m in row.get("per_policy", {}).items()]
    if per_policy:
        lines += ["", "One policy's requests alone (service; ratios to the bare endpoint's mix of the same size):", "",
                  "| record (resources) | policy | p50 / p95 / p99 (ms) | req/s | p50 × | p99 × | throughput × |",
                  "|---:|---|---:|---:|---:|---:|---:|"]
        for row, policy, m in per_policy:
            r = ratios({"bare": row["bare"], "service": m})
            lines.append(f"| {row['size']:,} | {policy} | {_ms(m)} | {m['throughput']:.1f} | {r['p50_ms']:.2f} "
                         f"| {r['p99_ms']:.2f} | {r['throughput']:.2f} |")
    lines.append("")
    checks = target_checks(results)
    lines.append("Targets (the mix, ratios in this run): "
                 + "; ".join(f"{text}: {value:.2f} {'met' if met else '**not met**'}" for text, value, met in checks)
                 + ".")
    lines.append("")
    answers = "; ".join(f"{policy}: {', '.join(sorted(set(by_size.values())))}"
                        for policy, by_size in meta.get("answers", {}).items())
    lines.append(f"The mix rotates over one request per policy. Answers: {answers}.")
    lines.append("")
    lines.append(f"{meta['loadgen']}, {meta['connections']} connections, {meta['duration_s']:g} s per app and size in "
                 f"{meta.get('rounds', 1)} interleaved rounds (percentiles: median of the rounds) after "
                 f"{meta['warmup_s']:g} s warm-up; gunicorn {meta['workers']} sync workers per app; "
                 f"{meta['cpus']} CPUs; policies in cards/: {', '.join(meta['policies_loaded'])}; "
                 f"commit {meta['commit']}.")
    if "load_average" in meta:
        before = meta["load_average"][0]
        busy = " (other work shared the CPUs: absolute figures are inflated, ratios much less)" \
            if before > 0.5 else ""
        lines.append(f"Machine load average (1 min) before the run: {before:g}{busy}.")
    return "\n".join(lines) + "\n"


def plot(results: dict[str, Any], path: Path) -> None:
    """Latency (p50, p99) of both apps by record size, and the service/bare ratios beside their targets."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = results["rows"]
    sizes = [row["size"] for row in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for app, colour in (("bare", "tab:gray"), ("service", "tab:blue"), ("cold", "tab:orange")):
        if not all(app in row for row in rows):
            continue
        label = "service, read afresh" if app == "cold" else app
        left.plot(sizes, [row[app]["p50_ms"] for row in rows], "o-", color=colour, label=f"{label} p50")
        left.plot(sizes, [row[app]["p99_ms"] for row in rows], "s--", color=colour, label=f"{label} p99")
    left.set(xscale="log", yscale="log", xlabel="resources in the record", ylabel="latency (ms)",
             title="Latency by record size")
    left.legend()
    for metric, style in (("p50_ms", "o-"), ("p95_ms", "^-"), ("p99_ms", "s-"), ("throughput", "d:")):
        right.plot(sizes, [ratios(row)[metric] for row in rows], style, label=f"{metric.removesuffix('_ms')} ×")
    if all("cold" in row for row in rows):
        for metric, style in (("p50_ms", "o--"), ("p99_ms", "s--"), ("throughput", "d:")):
            right.plot(sizes, [ratios(row, "cold")[metric] for row in rows], style, color="tab:orange",
                       label=f"{metric.removesuffix('_ms')} × (read afresh)")
    for size, metric, limit, _ in TARGETS:
        right.plot([size], [limit], "k_", markersize=18)
        right.annotate(f"{metric.removesuffix('_ms')} {limit:g}", (size, limit), textcoords="offset points",
                       xytext=(6, 2), fontsize=7)
    right.axhline(1.0, color="0.8", linewidth=0.8)
    right.set(xscale="log", xlabel="resources in the record", ylabel="service / bare",
              title="Ratio to the bare endpoint (targets: black ticks)")
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(results: dict[str, Any], out_dir: Path, with_plot: bool = True) -> list[Path]:
    """Write benchmark.json, benchmark.md and (when asked) benchmark.png under out_dir; return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [out_dir / "benchmark.json", out_dir / "benchmark.md"]
    written[0].write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    written[1].write_text(markdown(results), encoding="utf-8")
    if with_plot:
        written.append(out_dir / "benchmark.png")
        plot(results, written[-1])
    return written
