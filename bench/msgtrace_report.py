"""Summarise a ``msgtrace`` file (``bench/server_variants.py``): where the
messages of the last load phase spent their time inside the server.

    MIAOHUI_BENCH_MSGTRACE=/tmp/trace.json .venv/bin/python bench/chat_latency.py \\
        --conversations 1000 --rates 2000 --no-search --targets miaohui --server-variant msgtrace
    .venv/bin/python bench/msgtrace_report.py /tmp/trace.json

Prints JSON, milliseconds. ``read`` is from the generator's scheduled send to
the loop reading the frame; the generator stamps the schedule on its own
clock, so the fastest message of the phase is taken as zero (it includes the
generator's own lateness). Then ``queue`` (read → batch start), ``commit``
(batch start → durable), ``fanout`` (durable → ack and delivery written) and
``total`` (scheduled send → fanned out). ``tail`` is the mean of each part
over the slowest 1 % by ``total``; ``batches`` the one-statement batches of
the window (wall, on-CPU and run-queue time of the loop thread).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def last_phase(sched: np.ndarray, gap_s: float = 1.0) -> np.ndarray:
    """Indices of the rows after the last pause in the schedule (phases are
    separated by settling, drains and reconnects)."""
    order = np.argsort(sched)
    gaps = np.nonzero(np.diff(sched[order]) > gap_s)[0]
    return order[gaps[-1] + 1 :] if len(gaps) else order


def pct(x: np.ndarray) -> dict:
    if not len(x):
        return {}
    return {k: round(float(np.percentile(x, q)), 3) for k, q in (("p50", 50), ("p90", 90), ("p99", 99))} | {
        "max": round(float(x.max()), 3)}


def report(trace: dict | list, warmup_s: float = 2.0) -> dict:
    if isinstance(trace, list):  # the first format: the rows alone
        trace = {"rows": trace}
    rows = np.asarray(trace["rows"], dtype=float)
    sched = rows[:, 0] / 1e6
    keep = last_phase(sched)
    rows, sched = rows[keep], sched[keep]
    window = sched - sched.min() >= warmup_s
    rows, sched = rows[window], sched[window]
    read_at, start, durable, out, size = rows[:, 1], rows[:, 2], rows[:, 3], rows[:, 4], rows[:, 5]
    offset = np.min(read_at - sched)
    parts = {
        "read": (read_at - sched - offset) * 1e3,
        "queue": (start - read_at) * 1e3,
        "commit": (durable - start) * 1e3,
        "fanout": (out - durable) * 1e3,
        "total": (out - sched - offset) * 1e3,
    }
    slow = parts["total"] >= np.percentile(parts["total"], 99)
    t0, t1 = start.min(), out.max()
    steps = np.asarray([s[:4] for s in trace.get("steps", []) if t0 <= s[0] <= t1], dtype=float).reshape(-1, 4)
    span = max(t1 - t0, 1e-9)
    return {
        "messages": len(rows),
        **{k: pct(v) for k, v in parts.items()},
        "batch_size": pct(size),
        "tail": {k: round(float(v[slow].mean()), 3) for k, v in parts.items()} | {
            "batch_size": round(float(size[slow].mean()), 1)},
        "batches": {
            "count": len(steps),
            "per_s": round(len(steps) / span, 1),
            "wall_ms": pct(steps[:, 1] * 1e3),
            "on_cpu_ms": pct(steps[:, 2] * 1e3),
            "run_queue_ms": pct(steps[:, 3] * 1e3),
            "share_of_wall": round(float(steps[:, 1].sum()) / span, 3),
        },
        "checkpoint_passes_ms": pct(np.asarray([c[1] * 1e3 for c in trace.get("checkpoints", []) if t0 <= c[0] <= t1])),
        "catch_ups_ms": pct(np.asarray([c[1] * 1e3 for c in trace.get("catch_ups", []) if t0 <= c[0] <= t1])),
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("trace", type=Path)
    p.add_argument("--warmup", type=float, default=2.0, help="seconds at the phase's start left out (the bench's warmup)")
    a = p.parse_args(argv)
    json.dump(report(json.loads(a.trace.read_text()), a.warmup), sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
