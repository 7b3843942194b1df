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
registered in ``VIEWS`` (or parsed by ``view``); stage-2 experiments pass
``replay(..., sample_weight=, signals=, stage2_C=)``. Variants kept as view names:

    --views base+bag dense             # held-out rows scored by the mean of the 5 inner-fold n-gram fits
    --views ngram-aug2w0.5 dense       # 2 augmented copies of each SOS-1K training row at weight 0.5
    --views ngram-ordC1.0 dense        # one cumulative-link ordinal head instead of the level heads

Training time only (scikit-learn, ../shared/data); caches under /tmp/miaohui-safety-replay, keyed by seed
and view name only: delete it after changing a view, the training data or the knowledge table's masking.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from miaohui.nlp.emotion import default_model as emotion_model  # noqa: E402
from miaohui.nlp.text import clip, normalise  # noqa: E402
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


# ---- candidate n-gram views: augmented SOS-1K rows, a cumulative-link ordinal head (see the doc's list) ----
_CLAUSE = re.compile(r"[，,。.！!？?；;、\s]+")


def augment(text: str, rng: np.random.Generator) -> str:
    """One character-level variant of a (masked) text: random deletion (each character with p 0.1),
    one or two adjacent swaps, or clause order shuffled (when it has >= 2 clauses)."""
    clauses = [c for c in _CLAUSE.split(text) if c]
    op = rng.integers(3 if len(clauses) > 1 else 2)
    if op == 2:
        return "，".join(clauses[i] for i in rng.permutation(len(clauses)))
    if op == 0 or len(text) < 3:
        kept = "".join(c for c in text if rng.random() >= 0.1)
        return kept or text
    t = list(text)
    for _ in range(rng.integers(1, 3)):
        i = int(rng.integers(len(t) - 1))
        t[i], t[i + 1] = t[i + 1], t[i]
    return "".join(t)


def fit_ordinal(X, level: np.ndarray, w: np.ndarray, C: float, ks=range(1, 11)):
    """All-threshold cumulative-link logistic regression: one weight vector ``coef`` and one intercept per
    threshold k (label level >= k), objective ||coef||^2 / 2 + C * sum_i w_i sum_k logloss (liblinear's
    scaling; intercepts unpenalised), L-BFGS. Returns (coef, intercepts)."""
    from scipy.optimize import minimize

    ks = np.asarray(list(ks))
    Y = (level[:, None] >= ks[None, :]).astype(float)
    prev = np.clip((w[:, None] * Y).sum(0) / w.sum(), 1e-3, 1 - 1e-3)
    nf = X.shape[1]
    Xt = X.T.tocsr()

    def f(theta):
        coef, b = theta[:nf], theta[nf:]
        z = np.asarray(X @ coef)[:, None] + b[None, :]
        loss = C * float((w[:, None] * (np.logaddexp(0.0, z) - Y * z)).sum()) + 0.5 * float(coef @ coef)
        g = C * w[:, None] * (1.0 / (1.0 + np.exp(-z)) - Y)
        return loss, np.r_[np.asarray(Xt @ g.sum(1)) + coef, g.sum(0)]

    theta0 = np.r_[np.zeros(nf), np.log(prev / (1 - prev))]
    res = minimize(f, theta0, jac=True, method="L-BFGS-B", options={"maxiter": 2000})
    return res.x[:nf], res.x[nf:]


def view_ngram(D: Data, sos_idx: np.ndarray, smile_idx: np.ndarray, cfg: training.RiskConfig, aug: int = 0,
               aug_w: float = 0.5, ordinal_C: float | None = None):
    """The shipped n-gram stage 1 with two options. ``aug``: each SOS-1K training row gets ``aug`` augmented
    copies (:func:`augment`, weight ``aug_w``) for all three heads; the vocabulary and idf come from the
    original texts only. ``ordinal_C``: the level ridge and the level >= 6 head are replaced by one
    cumulative-link ordinal head (:func:`fit_ordinal`, on the ridge's rows and weights); its columns are
    ``level`` = the expected level sum_k P(level >= k) (what the tiering reads) and ``level_ge_6`` = its
    logit of level >= 6."""
    from sklearn.linear_model import LogisticRegression, Ridge

    neg = [D.smile_masked[i] for i in smile_idx] + D.every_masked
    death = np.r_[D.smile_death[smile_idx], D.every_death]
    sos_t = [D.sos_det[i].text for i in sos_idx]
    y_s, lv_s = D.y[sos_idx], D.lv[sos_idx]
    vec = training._vectorizer(cfg.min_df).fit([clip(t) for t in sos_t + neg])
    rng = np.random.default_rng(cfg.seed)
    aug_t = [augment(t, rng) for _ in range(aug) for t in sos_t]
    n_a = len(aug_t)
    X = vec.transform([clip(t) for t in sos_t + aug_t + neg])
    n_s, n_n = len(sos_t) + n_a, len(neg)
    y = np.r_[np.tile(y_s, aug + 1), np.zeros(n_n, int)]
    lv = np.r_[np.tile(lv_s, aug + 1), np.full(len(smile_idx), cfg.smile_level), np.zeros(len(D.every_masked))]
    w_s = np.r_[np.ones(len(sos_t)), np.full(n_a, aug_w)]
    w = np.r_[w_s, np.full(n_n, cfg.smile_weight)]
    lw = np.r_[w_s, np.where(death, 0.0, cfg.smile_weight)]
    lr = LogisticRegression(C=cfg.C, solver="liblinear").fit(X, y, sample_weight=w)
    keep = lw > 0
    if ordinal_C is None:
        rg = Ridge(alpha=cfg.alpha).fit(X[keep], lv[keep], sample_weight=lw[keep])
        l6 = LogisticRegression(C=cfg.C, solver="liblinear").fit(X[:n_s], (lv[:n_s] >= 6).astype(int),
                                                                   sample_weight=w_s)
        W = np.column_stack([lr.coef_[0], rg.coef_, l6.coef_[0]])
        b = np.array([lr.intercept_[0], rg.intercept_, l6.intercept_[0]])

        def predict(texts):
            return np.asarray(vec.transform([clip(t) for t in texts]) @ W) + b
        return predict
    coef, cuts = fit_ordinal(X[keep], lv[keep], lw[keep], ordinal_C)

    def predict_ord(texts):
        Xq = vec.transform([clip(t) for t in texts])
        s = np.asarray(Xq @ coef)
        z = s[:, None] + cuts[None, :]
        return np.c_[np.asarray(Xq @ lr.coef_[0]) + lr.intercept_[0], (1.0 / (1.0 + np.exp(-z))).sum(1), z[:, 5]]
    return predict_ord


def view(name: str):
    """(fit, columns) of a view name: a key of VIEWS, ``ngram-aug{copies}w{weight}`` (augmented rows) or
    ``ngram-ordC{C}`` (ordinal head instead of the level heads); ``NAME+bag``: NAME with held-out rows
    scored by the mean of the five inner-fold fits instead of the refit on the whole training part."""
    name = name.removesuffix("+bag")
    if name in VIEWS:
        return VIEWS[name]
    if m := re.fullmatch(r"ngram-aug(\d+)w([\d.]+)", name):
        return (lambda D, s, m_, c: view_ngram(D, s, m_, c, aug=int(m[1]), aug_w=float(m[2])),
                ["logit", "level", "level_ge_6"])
    if m := re.fullmatch(r"ngram-ordC([\d.]+)", name):
        return lambda D, s, m_, c: view_ngram(D, s, m_, c, ordinal_C=float(m[1])), ["logit", "level", "level_ge_6"]
    raise KeyError(name)


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


def build(D: Data, seed: int, name: str, log) -> dict:
    from sklearn.model_selection import StratifiedKFold

    path = CACHE / f"seed{seed}" / f"{name}.npz"
    if path.exists():
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    fn, _ = view(name)
    bag = name.endswith("+bag")
    cfg = training.RiskConfig(seed=seed)
    out = {}
    t0 = time.perf_counter()
    for k, ((tr, te), (smtr, smte)) in enumerate(splits(D, seed)):
        sm_tr = np.flatnonzero(np.isin(D.smile_dlg, smtr))
        sm_te = np.flatnonzero(np.isin(D.smile_dlg, smte) & ~D.smile_death)
        te_texts, sm_texts = [D.sos_det[i].text for i in te], [D.smile_masked[i] for i in sm_te]
        inner = None
        bagged = [0.0, 0.0]
        for itr, ite in StratifiedKFold(cfg.inner_folds, shuffle=True, random_state=cfg.seed).split(
                np.zeros(len(tr)), D.y[tr]):
            pred = fn(D, tr[itr], sm_tr, cfg)
            o = pred([D.sos_det[i].text for i in tr[ite]])
            if inner is None:
                inner = np.zeros((len(tr), o.shape[1]))
            inner[ite] = o
            if bag:
                bagged = [bagged[0] + pred(te_texts) / cfg.inner_folds, bagged[1] + pred(sm_texts) / cfg.inner_folds]
        if not bag:
            pred = fn(D, tr, sm_tr, cfg)
            bagged = [pred(te_texts), pred(sm_texts)]
        out[f"inner{k}"] = inner
        out[f"test{k}"], out[f"smile{k}"] = bagged
        log(f"seed {seed} view {name} fold {k + 1} ({time.perf_counter() - t0:.0f}s)")
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
    names = [c for v in views for c in view(v)[1]]
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
