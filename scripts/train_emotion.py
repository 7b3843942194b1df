#!/usr/bin/env python
"""Rebuild the enhanced emotion model (src/miaohui/nlp/data/emotion_plus.npz) from
../shared/data/cluemotion/train.jsonl and print honest 5-fold cross-validation.

    pip install -e '.[train]'        # scikit-learn, training time only
    python scripts/train_emotion.py  # CV (accuracy, macro-F1, per label), then the artifact

Features (see ``miaohui.nlp.emotion_plus``): character 1–3-gram TF-IDF plus a
block of cue tokens (lexicon hits per label and feeling, negated / intensified,
emoticons, punctuation, length), weighted and concatenated; multinomial
logistic regression; then calibration on out-of-fold outputs: a temperature
(log-loss) and per-label shifts (accuracy), each fold's shifts fitted only on
the *other* folds' out-of-fold outputs so the reported figure stays honest.
Only the training file is read; the dataset's test split is never looked for.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from miaohui.nlp.emotion import LABELS  # noqa: E402
from miaohui.nlp.emotion_plus import ARTIFACT, EmotionPlus, cue_tokens  # noqa: E402
from miaohui.nlp.text import clip, normalise  # noqa: E402


def load(path: Path) -> tuple[list[str], np.ndarray]:
    texts, labels = [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                row = json.loads(line)
                texts.append(normalise(row["content"]))
                labels.append(LABELS.index(row["label"]))
    return texts, np.array(labels)


def fit(texts: list[str], y: np.ndarray, cfg: dict):
    from scipy import sparse
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    blocks = [{"name": "char", "kind": "char", "lo": 1, "hi": cfg["hi"], "weight": 1.0},
              {"name": "cue", "kind": "cue", "weight": cfg["cue_weight"]}]
    vecs = [TfidfVectorizer(analyzer="char", ngram_range=(1, cfg["hi"]), sublinear_tf=True, min_df=cfg["min_df"],
                            lowercase=False, dtype=np.float64),
            TfidfVectorizer(analyzer=cue_tokens, sublinear_tf=True, lowercase=False, dtype=np.float64)]
    docs = [[clip(t) for t in texts], texts]
    Xs = [v.fit_transform(d) * b["weight"] for v, d, b in zip(vecs, docs, blocks, strict=True)]
    vocabs = [sorted(v.vocabulary_, key=v.vocabulary_.__getitem__) for v in vecs]
    meta = {"kind": "miaohui.nlp.emotion_plus", "training": {**cfg, "rows": len(texts)}}
    if not cfg.get("nb"):
        lr = LogisticRegression(C=cfg["C"], max_iter=5000).fit(sparse.hstack(Xs).tocsr(), y)
        return EmotionPlus(blocks, vocabs, [v.idf_ for v in vecs], lr.coef_.T, lr.intercept_, list(LABELS), meta=meta)
    # NB-LR (Wang & Manning 2012), one label against the rest: the character block is scaled by the
    # label's log-count ratio; the scaling folds into the weights, so the runtime stays one linear layer.
    present = (Xs[0] > 0).astype(np.float64)
    coef = np.zeros((Xs[0].shape[1] + Xs[1].shape[1], len(LABELS)))
    bias = np.zeros(len(LABELS))
    for k in range(len(LABELS)):
        p = np.asarray(present[y == k].sum(0)).ravel() + cfg["nb"]
        q = np.asarray(present[y != k].sum(0)).ravel() + cfg["nb"]
        r = np.log((p / p.sum()) / (q / q.sum()))
        X = sparse.hstack([Xs[0].multiply(r).tocsr(), Xs[1]]).tocsr()
        lr = LogisticRegression(C=cfg["C"], max_iter=5000).fit(X, (y == k).astype(int))
        w = lr.coef_.ravel()
        coef[: len(r), k] = w[: len(r)] * r
        coef[len(r):, k] = w[len(r):]
        bias[k] = lr.intercept_[0]
    return EmotionPlus(blocks, vocabs, [v.idf_ for v in vecs], coef, bias, list(LABELS), meta=meta)


def temperature(z: np.ndarray, y: np.ndarray) -> float:
    best, best_t = 1e18, 1.0
    for t in np.exp(np.linspace(np.log(0.3), np.log(3.0), 60)):
        p = z / t
        p = p - p.max(1, keepdims=True)
        nll = -(p[np.arange(len(y)), y] - np.log(np.exp(p).sum(1))).mean()
        if nll < best:
            best, best_t = nll, float(t)
    return best_t


def shifts(z: np.ndarray, y: np.ndarray, rounds: int = 3) -> np.ndarray:
    """Per-label additive shifts that maximise accuracy (coordinate ascent, small grid)."""
    s = np.zeros(z.shape[1])
    grid = np.linspace(-1.0, 1.0, 21)
    for _ in range(rounds):
        for k in range(z.shape[1]):
            accs = []
            for d in grid:
                s2 = s.copy()
                s2[k] = d
                accs.append(((z + s2).argmax(1) == y).mean())
            s[k] = grid[int(np.argmax(accs))]
    return s


def metrics(pred: np.ndarray, y: np.ndarray) -> dict:
    from sklearn.metrics import f1_score

    per = f1_score(y, pred, average=None, labels=list(range(len(LABELS))), zero_division=0)
    return {"accuracy": round(float((pred == y).mean()), 4),
            "macro_f1": round(float(f1_score(y, pred, average="macro", zero_division=0)), 4),
            "f1": {lab: round(float(f), 3) for lab, f in zip(LABELS, per, strict=True)}}


def cross_validate(texts: list[str], y: np.ndarray, cfg: dict, folds: int, seed: int) -> tuple[dict, np.ndarray]:
    from sklearn.model_selection import StratifiedKFold

    z = np.zeros((len(texts), len(LABELS)))
    fold_of = np.zeros(len(texts), int)
    for k, (tr, te) in enumerate(StratifiedKFold(folds, shuffle=True, random_state=seed).split(texts, y)):
        m = fit([texts[i] for i in tr], y[tr], cfg)
        z[te] = np.array([m.logits(texts[i]) for i in te])
        fold_of[te] = k
    raw = metrics(z.argmax(1), y)
    t = temperature(z, y)
    calibrated = np.zeros(len(y), int)
    for k in range(folds):  # nested: shifts for fold k learnt on the other folds only
        other, this = fold_of != k, fold_of == k
        s = shifts(z[other] / t, y[other])
        calibrated[this] = (z[this] / t + s).argmax(1)
    return {"raw": raw, "calibrated": metrics(calibrated, y), "temperature": round(t, 3)}, z


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "cluemotion" / "train.jsonl")
    ap.add_argument("--out", type=Path, default=ARTIFACT)
    ap.add_argument("--C", type=float, default=5.0)
    ap.add_argument("--hi", type=int, default=3)
    ap.add_argument("--min-df", type=int, default=2)
    ap.add_argument("--cue-weight", type=float, default=0.5)
    ap.add_argument("--nb", type=float, default=1.0, help="NB-LR smoothing (0: plain multinomial LR)")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-cv", action="store_true")
    args = ap.parse_args(argv)
    cfg = {"C": args.C, "hi": args.hi, "min_df": args.min_df, "cue_weight": args.cue_weight, "nb": args.nb}
    texts, y = load(args.data)
    report: dict = {"config": cfg, "rows": len(texts)}
    t0 = time.time()
    if not args.no_cv:
        cv, z = cross_validate(texts, y, cfg, args.folds, args.seed)
        report["cv"] = cv
        print(json.dumps(report, ensure_ascii=False), file=sys.stderr, flush=True)
    model = fit(texts, y, cfg)
    if not args.no_cv:  # calibration of the shipped model: from all out-of-fold outputs
        model.temperature = report["cv"]["temperature"]
        model.shift = shifts(z / model.temperature, y)
    model.meta["cv"] = report.get("cv")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    model.save(args.out)
    report["artifact"] = str(args.out.relative_to(ROOT)) if args.out.is_relative_to(ROOT) else str(args.out)
    report["seconds"] = round(time.time() - t0, 1)
    print(json.dumps(report, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
