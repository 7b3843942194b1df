#!/usr/bin/env python
"""Fast, honest experiments on the risk model: cache stage-1 outputs per CV fold, replay stage 2 + rules.

``training.cross_validate`` retrains the whole pipeline per fold (minutes). Most experiments change
stage 2, the knowledge table or the rules, or add one stage-1 view; this harness caches, for each
outer fold of a CV seed and each stage-1 *view*, the view's out-of-fold outputs on the fold's
training rows (inner 5-fold, as ``train_risk``) and its outputs on the held-out SOS-1K rows and
held-out SmileChat turns (trained on the fold's training part) — exactly the numbers
``cross_validate`` computes — then replays stage 2, the threshold and the runtime ``assess`` rules
from the cache in seconds. With the shipped configuration the replay reproduces
``cross_validate``'s figures (checked on seed 0, with and without the dense view: same F1, P, R and
false alarms).

    python scripts/safety_replay.py --seeds 0 1 --views base          # n-gram stage 1 only
    python scripts/safety_replay.py --seeds 0 1 --views base dense    # the shipped configuration

A new candidate view is a function ``fit(D, sos_idx, smile_idx, cfg) -> predict(texts) -> (n, k)``
registered in ``VIEWS``; stage-2 experiments pass ``replay(..., sample_weight=, signals=, stage2_C=)``.

Training time only (scikit-learn, ../shared/data); caches under /tmp/miaohui-safety-replay, keyed by seed
and view name only: delete it after changing a view, the training data or the knowledge table's masking.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from miaohui.nlp.emotion import default_model as emotion_model  # noqa: E402
from miaohui.nlp.text import normalise  # noqa: E402
from miaohui.safety import training  # noqa: E402
from miaohui.safety.knowledge import detect  # noqa: E402
from miaohui.safety.model import STAGE2_SIGNALS, RiskModel  # noqa: E402

CACHE = Path("/tmp/miaohui-safety-replay")


@dataclass
class Data:
    sos: list
    smile: list  # dialogues of client turns
    everyday: list[str]
    sos_det: list
    y: np.ndarray
    lv: np.ndarray
    smile_turns: list[str]  # flat
    smile_dlg: np.ndarray  # dialogue of each flat turn
    smile_masked: list[str]
    smile_death: np.ndarray
    every_masked: list[str]
    every_death: np.ndarray
    data_dir: Path


def load(data_dir: Path) -> Data:
    sos, smile = training.load_sos(data_dir), training.load_smile(data_dir)
    everyday = [t for t, _ in training.load_emotion(data_dir)]
    flat = [t for d in smile for t in d]
    dlg = np.array([i for i, d in enumerate(smile) for _ in d])
    sm_det = [detect(t) for t in flat]
    ev_det = [detect(t) for t in everyday]
    return Data(
        sos, smile, everyday, [detect(r.text) for r in sos], np.array([r.high_risk for r in sos]),
        np.array([r.level for r in sos], float), flat, dlg, [d.text for d in sm_det],
        np.array([bool(training.DEATH_TALK.search(normalise(t))) for t in flat]), [d.text for d in ev_det],
        np.array([bool(training.DEATH_TALK.search(normalise(t))) for t in everyday]), Path(data_dir),
    )


# ---- views: fit(D, sos_idx, smile_idx, cfg) -> predict(list_of_masked_texts) -> (n, k) ------------------
def view_base(D: Data, sos_idx: np.ndarray, smile_idx: np.ndarray, cfg: training.RiskConfig):
    """The shipped stage 1 (training._fit_stage1), same inputs as train_risk."""
    neg = [D.smile_masked[i] for i in smile_idx] + D.every_masked
    death = np.r_[D.smile_death[smile_idx], D.every_death]
    n_sm = len(neg)
    texts = [D.sos_det[i].text for i in sos_idx] + neg
    lv_sm = np.r_[np.full(len(smile_idx), cfg.smile_level), np.zeros(len(D.every_masked))]
    lw_sm = np.where(death, 0.0, cfg.smile_weight)
    s1 = training._fit_stage1(
        texts, np.r_[D.y[sos_idx], np.zeros(n_sm, int)], np.r_[np.ones(len(sos_idx)), np.full(n_sm, cfg.smile_weight)],
        np.r_[D.lv[sos_idx], lv_sm], np.r_[np.ones(len(sos_idx)), lw_sm], cfg,
    )
    return s1.outputs


_POOLED: dict = {}


def view_dense(D: Data, sos_idx: np.ndarray, smile_idx: np.ndarray, cfg: training.RiskConfig):
    """The shipped dense view (character embeddings, training._fit_dense), same inputs as train_risk."""
    from miaohui.safety.model import CharEmbeddingHead

    if "head" not in _POOLED:
        chars, vectors = training.char_embeddings(training.load_unlabelled(D.data_dir), cfg)
        head = CharEmbeddingHead(chars, vectors, np.zeros((2 * vectors.shape[1], 0)), np.zeros(0), [])
        _POOLED.update(head=head, sos=np.array([head.pooled(d.text) for d in D.sos_det]),
                       smile=np.array([head.pooled(t) for t in D.smile_masked]),
                       every=np.array([head.pooled(t) for t in D.every_masked]))
    n_neg = len(smile_idx) + len(D.every_masked)
    X = np.r_[_POOLED["sos"][sos_idx], _POOLED["smile"][smile_idx], _POOLED["every"]]
    y = np.r_[D.y[sos_idx], np.zeros(n_neg, int)]
    w = np.r_[np.ones(len(sos_idx)), np.full(n_neg, cfg.smile_weight)]
    sos_rows = np.r_[np.ones(len(sos_idx), bool), np.zeros(n_neg, bool)]
    level = np.r_[D.lv[sos_idx], np.zeros(n_neg)]
    return training._fit_dense(_POOLED["head"], X, y, w, sos_rows, level, cfg).outputs


VIEWS = {"base": (view_base, ["logit", "level", "level_ge_6"]), "dense": (view_dense, training.DENSE_OUTPUTS)}


def register(name: str, cols: list[str]):
    def deco(fn):
        VIEWS[name] = (fn, cols)
        return fn
    return deco


# ---- cache ------------------------------------------------------------------------------------------
def splits(D: Data, seed: int, folds: int = 5):
    from sklearn.model_selection import KFold, StratifiedKFold

    a = StratifiedKFold(folds, shuffle=True, random_state=seed).split(np.zeros(len(D.sos)), D.y)
    b = KFold(folds, shuffle=True, random_state=seed).split(np.zeros(len(D.smile)))
    return list(zip(a, b, strict=True))


def build(D: Data, seed: int, view: str, log) -> dict:
    from sklearn.model_selection import StratifiedKFold

    path = CACHE / f"seed{seed}" / f"{view}.npz"
    if path.exists():
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    fn, _ = VIEWS[view]
    cfg = training.RiskConfig(seed=seed)
    out = {}
    t0 = time.perf_counter()
    for k, ((tr, te), (smtr, smte)) in enumerate(splits(D, seed)):
        sm_tr = np.flatnonzero(np.isin(D.smile_dlg, smtr))
        sm_te = np.flatnonzero(np.isin(D.smile_dlg, smte) & ~D.smile_death)
        inner = None
        for itr, ite in StratifiedKFold(cfg.inner_folds, shuffle=True, random_state=cfg.seed).split(
                np.zeros(len(tr)), D.y[tr]):
            pred = fn(D, tr[itr], sm_tr, cfg)
            o = pred([D.sos_det[i].text for i in tr[ite]])
            if inner is None:
                inner = np.zeros((len(tr), o.shape[1]))
            inner[ite] = o
        pred = fn(D, tr, sm_tr, cfg)
        out[f"inner{k}"] = inner
        out[f"test{k}"] = pred([D.sos_det[i].text for i in te])
        out[f"smile{k}"] = pred([D.smile_masked[i] for i in sm_te])
        log(f"seed {seed} view {view} fold {k + 1} ({time.perf_counter() - t0:.0f}s)")
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **out)
    return out


class _FakeText:
    def __init__(self, outputs, meta):
        self.outputs, self.meta = outputs, meta


def replay(D: Data, seed: int, views: list[str], log=lambda _: None, stage2_C: float = 1.0,
           signals: tuple[str, ...] = STAGE2_SIGNALS, emo=None, rows: bool = False,
           sample_weight=None) -> dict:
    """Stage 2 + threshold + runtime rules on cached stage-1 outputs (one CV seed)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    from miaohui.safety.assess import _assess

    cfg = training.RiskConfig(seed=seed)
    caches = [build(D, seed, v, log) for v in views]
    names = [c for v in views for c in VIEWS[v][1]]
    sig = np.array([[d.signals.get(s, 0.0) for s in signals] for d in D.sos_det])
    pred = np.zeros(len(D.sos), bool)
    prob = np.zeros(len(D.sos))
    thr_row = np.zeros(len(D.sos))
    tiers = [""] * len(D.sos)
    fa_n = fa_hit = 0
    emo = emo if emo is not None else emotions(D)
    for k, ((tr, te), (_smtr, smte)) in enumerate(splits(D, seed)):
        F = np.c_[np.column_stack([c[f"inner{k}"] for c in caches]), sig[tr]]
        st2 = LogisticRegression(C=stage2_C, max_iter=5000)
        sw = None if sample_weight is None else sample_weight[tr]
        p_oof = cross_val_predict(st2, F, D.y[tr], cv=StratifiedKFold(5, shuffle=True, random_state=cfg.seed + 1),
                                  method="predict_proba", params={"sample_weight": sw} if sw is not None else None)[:, 1]
        thr = training._best_threshold(D.y[tr], p_oof)
        st2.fit(F, D.y[tr], sample_weight=sw)
        meta = {"stage2": {"features": [*names, *signals], "coef": st2.coef_[0].tolist(),
                           "bias": float(st2.intercept_[0])}, "threshold": thr,
                "tiering": {"ideation_level": cfg.ideation_level, "ideation_prob": cfg.ideation_prob,
                            "distress_emotion": cfg.distress_emotion, "confident_prob": cfg.confident_prob}}
        model = RiskModel(_FakeText(names, meta))
        test = np.column_stack([c[f"test{k}"] for c in caches])
        for j, i in enumerate(te):
            a = _assess(normalise(D.sos[i].text), (), model, False, D.sos_det[i], (test[j].tolist(), emo["sos"][i]))
            tiers[i] = a.tier
            prob[i], thr_row[i] = model.score(D.sos_det[i], test[j].tolist()).prob, thr
            pred[i] = a.tier in ("plan", "imminent")
        sm = np.column_stack([c[f"smile{k}"] for c in caches])
        sm_te = np.flatnonzero(np.isin(D.smile_dlg, smte) & ~D.smile_death)
        for j, i in enumerate(sm_te):
            a = _assess(normalise(D.smile_turns[i]), (), model, False, emo["smile_det"][i],
                        (sm[j].tolist(), emo["smile"][i]))
            fa_n += 1
            fa_hit += a.tier in ("ideation", "plan", "imminent")
    p, r, f1 = training._prf(D.y, pred)
    out = {"f1": round(f1, 4), "p": round(p, 4), "r": round(r, 4), "fa": round(fa_hit / max(1, fa_n), 4),
           "fa_hits": fa_hit}
    if rows:
        out["pred"] = pred
        out["tiers"] = tiers
        out["prob"], out["threshold"] = prob, thr_row
    return out


_EMO = {}


def emotions(D: Data) -> dict:
    if not _EMO:
        em = emotion_model().text_model
        _EMO["sos"] = [em.decision(normalise(r.text)) for r in D.sos]
        idx = np.flatnonzero(~D.smile_death)
        _EMO["smile"] = {i: em.decision(normalise(D.smile_turns[i])) for i in idx}
        _EMO["smile_det"] = {i: detect(normalise(D.smile_turns[i]), normalised=True) for i in idx}
    return _EMO


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--views", nargs="+", default=["base", "dense"])
    ap.add_argument("--stage2-C", type=float, default=1.0)
    args = ap.parse_args(argv)

    def log(m):
        print(f"[replay] {m}", file=sys.stderr, flush=True)

    D = load(args.data)
    res = {s: replay(D, s, args.views, log, args.stage2_C) for s in args.seeds}
    res["mean_f1"] = round(float(np.mean([res[s]["f1"] for s in args.seeds])), 4)
    print(json.dumps({"views": args.views, **{str(k): v for k, v in res.items()}}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
