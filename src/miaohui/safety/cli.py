"""``miaohui safety eval FILE`` and ``miaohui safety assess TEXT``.

``eval`` reads a TSV with a ``text`` column and one gold column — ``high_risk``
(0/1), ``level`` (0–10) or ``tier`` — and prints JSON: precision, recall and F1
of high risk, accuracy, n, and p50/p99 latency of ``assess`` per message in ms.
A prediction is high risk when its tier is ``plan`` or ``imminent``; a gold row
is high risk when ``high_risk`` = 1, ``level`` ≥ 6 or its tier is ``plan``/``imminent``.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

GOLD_COLUMNS = ("high_risk", "level", "tier")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("safety", help="crisis-risk model tools")
    ssub = p.add_subparsers(dest="safety_cmd", required=True)
    p_eval = ssub.add_parser("eval", help="evaluate on a TSV (text + high_risk | level | tier); prints JSON")
    p_eval.add_argument("file", type=Path)
    p_assess = ssub.add_parser("assess", help="assess one message; prints the assessment as JSON")
    p_assess.add_argument("text")
    p_assess.add_argument("--history", action="append", default=[], help="an earlier message (repeatable, oldest first)")


def _gold(row: dict[str, str], column: str) -> bool:
    value = (row.get(column) or "").strip()
    if column == "high_risk":
        return value in ("1", "true", "True", "yes")
    if column == "level":
        return float(value) >= 6
    return value.lower() in ("plan", "imminent")


def evaluate(path: Path) -> dict:
    from miaohui.safety.assess import assess

    csv.field_size_limit(1 << 24)
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        fields = reader.fieldnames or []
        if "text" not in fields:
            raise ValueError("the TSV needs a 'text' column")
        column = next((c for c in GOLD_COLUMNS if c in fields), None)
        if column is None:
            raise ValueError("the TSV needs one of the columns high_risk, level, tier")
        rows = [r for r in reader if (r.get("text") or "").strip() and (r.get(column) or "").strip()]
    assess("预热")  # load the models before timing
    tp = fp = fn = tn = 0
    times: list[float] = []
    for r in rows:
        t0 = time.perf_counter()
        a = assess(r["text"])
        times.append((time.perf_counter() - t0) * 1000.0)
        gold, pred = _gold(r, column), a.high_risk
        tp += gold and pred
        fp += pred and not gold
        fn += gold and not pred
        tn += not gold and not pred
    n = len(rows)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    times.sort()

    def pct(q: float) -> float:
        return round(times[min(n - 1, int(q * n))], 3) if n else 0.0

    return {
        "file": str(path), "gold_column": column, "n": n,
        "precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4),
        "accuracy": round((tp + tn) / n, 4) if n else 0.0,
        "confusion": {"tp": tp, "fp": fp, "fn": fn, "tn": tn},
        "latency_ms": {"p50": pct(0.50), "p99": pct(0.99)},
    }


def run(args: argparse.Namespace) -> int:
    if args.safety_cmd == "eval":
        try:
            report = evaluate(args.file)
        except (OSError, ValueError) as e:
            print(json.dumps({"error": str(e)}, ensure_ascii=False), file=sys.stderr)
            return 2
        print(json.dumps(report, ensure_ascii=False, indent=2))
        return 0
    from miaohui.safety.assess import assess

    print(json.dumps(assess(args.text, history=args.history).to_dict(), ensure_ascii=False, indent=2))
    return 0
