#!/usr/bin/env python3
"""Side-by-side table of `make bench-compare` runs: DIR/<operator>-<run>.json from benches/scale.rs.

Prints, per operator, the median and range over the runs of each phase's wall time (and its ratio
to the raw API time measured in the same run), the operator's CPU over the whole run, its peak
RSS, its API requests per job, and the control plane's CPU in the phases where the API server is
the limit (all Running, the collection delete); writes all of it to DIR/summary.json.
"""
import json
import statistics
import sys
from pathlib import Path

PHASES = {"2 all Running": "all Running", "3 all Succeeded": "all Succeeded",
          "4 collection delete": "collection delete until all gone"}
# Phases whose control-plane CPU is shown: the API server, and all of the control plane.
PLANE_PHASES = {"2 all Running": "all Running", "4 collection delete": "collection delete"}


def runs_of(out: Path, op: str):
    return [json.loads(p.read_text()) for p in sorted(out.glob(f"{op}-*.json"))]


def figures(run):
    phases = {p["name"]: p for p in run["phases"]}
    row = {}
    for key in PHASES:
        p = phases[key]
        row[key] = (p["wall_seconds"], p.get("ratio_to_raw"))
    row["cpu"] = sum(p["operator_cpu_seconds"] for p in run["phases"])
    row["rss"] = max(p["operator_peak_rss_mib"] for p in run["phases"])
    row["requests_per_job"] = run["requests_per_job"]
    row["answered"] = run.get("collection_delete", {}).get("answered_seconds")
    for key in PLANE_PHASES:
        plane = phases[key].get("control_plane_cpu_seconds") or {}
        row[f"apiserver {key}"] = plane.get("kube-apiserver")
        row[f"plane {key}"] = sum(plane.values()) if plane else None
    return row


def spread(values, fmt):
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    lo, hi, mid = min(values), max(values), statistics.median(values)
    return fmt(mid) if lo == hi else f"{fmt(mid)} ({fmt(lo)}–{fmt(hi)})"


def delete_wall(run):
    """A run's collection delete, until every TFJob, pod and service was gone (seconds)."""
    return run["4 collection delete"][0]


# The targets of ours against the lifted Go operator, each checked in every round.
TARGETS = [
    ("all Running", lambda r: r["2 all Running"][0], 1.0),
    ("collection delete until all gone", delete_wall, 1.0),
    ("operator CPU", lambda r: r["cpu"], 1 / 3),
    ("operator peak RSS", lambda r: r["rss"], 0.25),
    ("API requests per job", lambda r: r["requests_per_job"], 1.0),
]


def round_ratios(summary, other, value):
    """Ours ÷ `other` for `value` of a run, round by round (each round runs both on one control
    plane within minutes)."""
    return [value(o) / value(g) if value(g) else float("inf")
            for o, g in zip(summary["ours"]["runs"], summary[other]["runs"])]


def print_round_ratios(summary):
    """Ours against the lifted Go operator round by round (each round runs both on one control
    plane within minutes): the targets are per round, and the spread between rounds is wider
    than the difference between the operators. Returns whether every round met every target."""
    if "ours" not in summary or "go-lifted" not in summary:
        return True
    print("\nours ÷ go-lifted, round by round (target in brackets; * = missed):")
    met = True
    for label, value, target in TARGETS:
        cells = []
        for ratio in round_ratios(summary, "go-lifted", value):
            missed = ratio > target
            met &= not missed
            cells.append(f"{ratio:.2f}{'*' if missed else ''}")
        print(f"- {label} (≤ {target:.2f}): {', '.join(cells)}")
    print("every round within every target" if met else "some round missed a target (*)")
    return met


def print_foreground_ratios(summary):
    """Ours against the lifted Go operator whose jobs were deleted in the foreground (the garbage
    collector keeps each TFJob until its pods and services are gone: our finalizer's guarantee),
    round by round, for the collection delete; no target, a like-for-like reading."""
    if "ours" not in summary or "go-foreground" not in summary:
        return
    cells = [f"{ratio:.2f}" for ratio in round_ratios(summary, "go-foreground", delete_wall)]
    print(f"\nours ÷ go-foreground, collection delete until all gone, round by round: {', '.join(cells)}")


def print_request_breakdown(out: Path, ops):
    """What each operator's requests per job were for, by verb and resource (the audit log's
    count over each whole run, divided by the jobs; the median of the runs)."""
    per_op = {}
    for op in ops:
        runs = runs_of(out, op)
        if runs:
            keys = sorted({k for r in runs for k in r["requests_total"]})
            per_op[op] = {k: statistics.median(r["requests_total"].get(k, 0) / r["jobs"] for r in runs)
                          for k in keys}
    keys = sorted({k for v in per_op.values() for k in v})
    print("\nAPI requests per job by verb and resource (median of the runs):")
    print("| request | " + " | ".join(per_op) + " |")
    print("|---|" + "---|" * len(per_op))
    for k in keys:
        print(f"| {k} | " + " | ".join(f"{v.get(k, 0):.2f}" for v in per_op.values()) + " |")
    print("| all | " + " | ".join(f"{sum(v.values()):.2f}" for v in per_op.values()) + " |")
    return per_op


def main():
    out, ops = Path(sys.argv[1]), sys.argv[2:]
    table, summary = [], {}
    for op in ops:
        rows = [figures(r) for r in runs_of(out, op)]
        if not rows:
            continue
        jobs = runs_of(out, op)[0]["jobs"]
        cells = {}
        for key in PHASES:
            wall = spread([r[key][0] for r in rows], lambda v: f"{v:.1f} s")
            ratio = spread([r[key][1] for r in rows], lambda v: f"{v:.2f}×")
            cells[key] = f"{wall}, {ratio} raw" if ratio != "-" else wall
        cells["cpu"] = spread([r["cpu"] for r in rows], lambda v: f"{v:.1f} s")
        cells["rss"] = spread([r["rss"] for r in rows], lambda v: f"{v:.0f} MiB")
        cells["answered"] = spread([r["answered"] for r in rows], lambda v: f"{v:.1f} s")
        cells["requests_per_job"] = spread([r["requests_per_job"] for r in rows], lambda v: f"{v:.1f}")
        for key in PLANE_PHASES:
            for what in ("apiserver", "plane"):
                cells[f"{what} {key}"] = spread([r[f"{what} {key}"] for r in rows], lambda v: f"{v:.1f} s")
        table.append((op, cells))
        summary[op] = {"jobs": jobs, "runs": rows, "cells": cells}
    names = [f"{op} ({len(summary[op]['runs'])} run{'s' if len(summary[op]['runs']) > 1 else ''})"
             for op, _ in table]
    print(f"\nN={jobs} jobs (1 PS + 2 Workers), median (range) of the runs")
    print("| | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    labels = [(k, v) for k, v in PHASES.items()] + [
              ("answered", "collection delete answered by the API server"), ("cpu", "operator CPU, whole run"),
              ("rss", "operator peak RSS"), ("requests_per_job", "API requests per job")]
    for key, label in PLANE_PHASES.items():
        labels += [(f"apiserver {key}", f"API server CPU, {label}"),
                   (f"plane {key}", f"control plane CPU (API server, etcd, controller-manager, scheduler, kwok), {label}")]
    for key, label in labels:
        print(f"| {label} | " + " | ".join(c[key] for _, c in table) + " |")
    met = print_round_ratios(summary)
    print_foreground_ratios(summary)
    breakdown = print_request_breakdown(out, [op for op, _ in table])
    summary["requests_per_job_by_kind"] = breakdown
    summary["every_round_within_targets"] = met
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"\nwrote {out / 'summary.json'}")


if __name__ == "__main__":
    main()
