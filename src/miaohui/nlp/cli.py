"""``miaohui nlp eval-emotion FILE.jsonl``: accuracy, macro-F1 and latency of
``miaohui.nlp.emotion`` on a CLUEmotion-format file (``{"content", "label"}``
per line), choosing the best of the seven labels.  Prints JSON."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from miaohui.nlp import emotion


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("nlp", help="language model tools")
    nsub = p.add_subparsers(dest="nlp_cmd", required=True)
    p_eval = nsub.add_parser("eval-emotion", help="evaluate the emotion model on a CLUE-format JSONL file; prints JSON")
    p_eval.add_argument("file", type=Path)


def evaluate(path: Path) -> dict:
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                r = json.loads(line)
                rows.append((r["content"], r["label"]))
    if not rows:
        raise ValueError("no rows")
    emotion("预热")  # load the model outside the timings
    labels = list(emotion.LABELS)
    pred, lat = [], []
    for text, _ in rows:
        t = time.perf_counter()
        s = emotion(text)
        lat.append((time.perf_counter() - t) * 1000)
        pred.append(max((lab for lab in labels), key=lambda lab: s.get(lab, 0.0)))
    gold = [g for _, g in rows]
    f1s = {}
    for lab in labels:
        tp = sum(p == lab and g == lab for p, g in zip(pred, gold, strict=True))
        fp = sum(p == lab and g != lab for p, g in zip(pred, gold, strict=True))
        fn = sum(p != lab and g == lab for p, g in zip(pred, gold, strict=True))
        f1s[lab] = round(2 * tp / (2 * tp + fp + fn), 4) if tp else 0.0
    lat.sort()

    def pct(q: float) -> float:
        return round(lat[min(len(lat) - 1, int(q * len(lat)))], 3)

    return {"n": len(rows), "accuracy": round(sum(p == g for p, g in zip(pred, gold, strict=True)) / len(rows), 4),
            "macro_f1": round(sum(f1s.values()) / len(labels), 4), "f1": f1s,
            "latency_ms": {"p50": pct(0.5), "p99": pct(0.99), "mean": round(sum(lat) / len(lat), 3)}}


def run(args: argparse.Namespace) -> int:
    if args.nlp_cmd == "eval-emotion":
        try:
            result = evaluate(args.file)
        except (OSError, ValueError, KeyError) as e:
            print(json.dumps({"error": f"cannot read {args.file}: {type(e).__name__}"}))
            return 2
        print(json.dumps(result, ensure_ascii=False, indent=2))
        return 0
    return 2
