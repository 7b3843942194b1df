#!/usr/bin/env python
"""Rebuild the safety and emotion model artifacts from ../shared/data, then print 5-fold CV metrics.

    pip install -e '.[train]'          # scikit-learn, training time only
    python scripts/train_safety.py     # writes src/miaohui/safety/data/risk.npz and src/miaohui/nlp/data/emotion.npz
    python scripts/train_safety.py --no-cv   # artifacts only (about a minute)

Deterministic for a given data set and scikit-learn version (fixed seeds, liblinear/lbfgs).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from miaohui.nlp.emotion import EMOTION_ARTIFACT  # noqa: E402
from miaohui.safety import training  # noqa: E402
from miaohui.safety.model import RISK_ARTIFACT  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--risk-out", type=Path, default=RISK_ARTIFACT)
    ap.add_argument("--emotion-out", type=Path, default=EMOTION_ARTIFACT)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-cv", action="store_true", help="skip the 5-fold cross-validation")
    args = ap.parse_args(argv)

    def log(msg: str) -> None:
        print(f"[train] {msg}", file=sys.stderr, flush=True)

    sos, smile = training.load_sos(args.data), training.load_smile(args.data)
    emo = training.load_emotion(args.data)
    t0 = time.perf_counter()
    cfg = training.RiskConfig(seed=args.seed)
    everyday = [t for t, _ in emo]
    corpus = training.load_unlabelled(args.data)
    risk = training.train_risk(sos, [t for d in smile for t in d], cfg, everyday, log=log, embed_corpus=corpus)
    args.risk_out.parent.mkdir(parents=True, exist_ok=True)
    risk.save(args.risk_out)
    log(f"risk model -> {args.risk_out} ({args.risk_out.stat().st_size / 1e6:.2f} MB) in {time.perf_counter() - t0:.0f}s")
    t0 = time.perf_counter()
    emotion = training.train_emotion(emo)
    args.emotion_out.parent.mkdir(parents=True, exist_ok=True)
    emotion.save(args.emotion_out)
    log(f"emotion model -> {args.emotion_out} ({args.emotion_out.stat().st_size / 1e6:.2f} MB) in {time.perf_counter() - t0:.0f}s")
    if args.no_cv:
        return 0
    report = training.cross_validate(sos, smile, folds=5, seed=args.seed, cfg=cfg, everyday=everyday, log=log,
                                     embed_corpus=corpus)
    report["emotion"] = training.cross_validate_emotion(emo, folds=5, seed=args.seed)
    print(json.dumps(report, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
