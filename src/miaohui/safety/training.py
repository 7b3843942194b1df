"""Training and cross-validation of the risk and emotion models.

Training-time only: needs scikit-learn (``pip install -e '.[train]'``) and the
data in ``../shared/data``; the running product never imports this module.
``scripts/train_safety.py`` writes the artifacts; ``bench/safety_model.py``
re-runs :func:`cross_validate` to measure honestly (every fold retrains the
whole pipeline, stacking included, on the other folds only).
"""

from __future__ import annotations

import csv
import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from miaohui.nlp.linear import LinearTextModel
from miaohui.nlp.ppmi import ppmi_svd
from miaohui.nlp.text import clip, normalise
from miaohui.safety.knowledge import detect
from miaohui.safety.model import STAGE2_SIGNALS, CharEmbeddingHead, RiskModel

DEFAULT_DATA = Path(__file__).resolve().parents[3] / ".." / "shared" / "data"

# "Talks about death" for the false-alarm measurement and for which SmileChat turns may serve as
# level-1 (everyday distress) examples for the level head: any death word, suicide/self-harm word,
# method word, or a phrase about not wanting to live.
DEATH_TALK = re.compile(
    r"死|自杀|轻生|自残|自尽|寻短见|割腕|跳楼|跳河|上吊|烧炭|安眠药|农药|不想活|活不下去|活着(?:没|有什么|的)意[思义]|"
    r"结束(?:自己的?)?生命|离开这个世界|了结|遗书|一了百了|解脱|伤害自己"
)
TIERS = ("none", "distress", "ideation", "plan", "imminent")
DENSE_OUTPUTS = ["emb_logit", "emb_level_ge_6"]
EMOTION_LABELS = ("like", "happiness", "sadness", "anger", "disgust", "fear", "surprise")


@dataclass(frozen=True)
class SosRow:
    text: str
    high_risk: int
    level: int


@dataclass
class RiskConfig:
    C: float = 10.0  # stage-1 logistic regression
    alpha: float = 1.0  # stage-1 ridge (level)
    min_df: int = 2
    smile_weight: float = 0.15  # per SmileChat turn, relative to an SOS-1K row
    smile_level: float = 1.0  # level given to SmileChat turns without death talk
    stage2_C: float = 1.0
    level_heads: tuple[int, ...] = (6,)  # extra stage-1 heads: logistic P(SOS-1K level >= k)
    inner_folds: int = 5
    seed: int = 0
    # Tier boundaries below "plan" (see assess): level estimate / probability for ideation and distress.
    ideation_level: float = 4.0
    ideation_prob: float = 0.3
    distress_emotion: float = 0.6
    confident_prob: float = 0.8  # a model probability that overrides the "wish without plan" cap
    # Dense stage-1 view (model.CharEmbeddingHead): PPMI+SVD character embeddings from unlabelled text,
    # [mean, max]-pooled, standardised, logistic heads (high risk with the negatives; level >= 6 on SOS-1K).
    embed_dim: int = 100  # 0: no dense view
    embed_window: int = 3
    embed_min_count: int = 3
    embed_C: float = 0.1


# ---- data -------------------------------------------------------------------------------------------
def load_sos(data_dir: Path = DEFAULT_DATA) -> list[SosRow]:
    with open(Path(data_dir) / "sos1k" / "train.tsv", encoding="utf-8", newline="") as f:
        return [SosRow(r["text"], int(r["high_risk"]), int(r["level"])) for r in csv.DictReader(f, delimiter="\t")]


def load_smile(data_dir: Path = DEFAULT_DATA) -> list[list[str]]:
    """Client turns, grouped by dialogue (so folds can split by dialogue)."""
    out = []
    with open(Path(data_dir) / "smilechat" / "dialogues.jsonl", encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            out.append([t["content"] for t in d["turns"] if t["role"] == "client" and t["content"].strip()])
    return out


def load_unlabelled(data_dir: Path = DEFAULT_DATA) -> list[str]:
    """Texts for the character embeddings, labels unused: every SmileChat turn (client and counselor)
    and the CLUEmotion texts, normalised. No SOS-1K text, so cross-validation cannot leak through them."""
    out = []
    with open(Path(data_dir) / "smilechat" / "dialogues.jsonl", encoding="utf-8") as f:
        out += [normalise(t["content"]) for line in f if line.strip() for t in json.loads(line)["turns"]]
    out += [normalise(t) for t, _ in load_emotion(data_dir)]
    return [t for t in out if t]


def load_emotion(data_dir: Path = DEFAULT_DATA) -> list[tuple[str, str]]:
    with open(Path(data_dir) / "cluemotion" / "train.jsonl", encoding="utf-8") as f:
        return [(d["content"], d["label"]) for d in map(json.loads, f)]


# ---- stage 1 --------------------------------------------------------------------------------------
def _vectorizer(min_df: int):
    from sklearn.feature_extraction.text import TfidfVectorizer

    # Texts are already normalised (lower-cased) by miaohui.nlp.normalise; the runtime reproduces this exactly.
    return TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True, min_df=min_df, lowercase=False)


# ---- dense view: character embeddings ----------------------------------------------------------------
_EMBED_MEMO: dict[tuple, tuple[list[str], np.ndarray]] = {}


def char_embeddings(corpus: Sequence[str], cfg: RiskConfig) -> tuple[list[str], np.ndarray]:
    """Character vectors learnt from ``corpus`` (memoised: cross-validation reuses them in every fold —
    they never see a label or an SOS-1K text)."""
    key = (len(corpus), hash(tuple(corpus)), cfg.embed_dim, cfg.embed_window, cfg.embed_min_count)
    if key not in _EMBED_MEMO:
        _EMBED_MEMO[key] = ppmi_svd([list(t) for t in corpus], cfg.embed_dim, window=cfg.embed_window,
                                    min_count=cfg.embed_min_count)
    return _EMBED_MEMO[key]


@dataclass
class _Dense:
    head: CharEmbeddingHead  # coef/bias with the standardisation folded in

    def outputs(self, texts: Sequence[str]) -> np.ndarray:
        return np.array([self.head.decision(t) for t in texts])


def _fit_dense(head: CharEmbeddingHead, X: np.ndarray, y: np.ndarray, w: np.ndarray, sos_rows: np.ndarray,
               level: np.ndarray, cfg: RiskConfig) -> _Dense:
    """Logistic heads on standardised pooled vectors ``X``: high risk (all rows, weighted) and SOS-1K
    level >= 6 (SOS-1K rows); the standardisation is folded into the weights."""
    from sklearn.linear_model import LogisticRegression

    mu, sd = X.mean(0), X.std(0)
    sd[sd == 0] = 1.0
    Z = (X - mu) / sd
    lr = LogisticRegression(C=cfg.embed_C, max_iter=3000).fit(Z, y, sample_weight=w)
    lr6 = LogisticRegression(C=cfg.embed_C, max_iter=3000).fit(Z[sos_rows], (level[sos_rows] >= 6).astype(int))
    W = np.column_stack([lr.coef_[0], lr6.coef_[0]])
    b = np.array([lr.intercept_[0], lr6.intercept_[0]])
    chars = sorted(head.index, key=head.index.__getitem__)
    return _Dense(CharEmbeddingHead(chars, head.vectors, W / sd[:, None], b - (mu / sd) @ W, DENSE_OUTPUTS))


@dataclass
class _Stage1:
    vec: object
    coef: np.ndarray  # (n_features, 2): logit head, level head
    bias: np.ndarray
    dense: _Dense | None = None

    def outputs(self, texts: Sequence[str]) -> np.ndarray:
        out = np.asarray(self.vec.transform([clip(t) for t in texts]) @ self.coef) + self.bias
        return out if self.dense is None else np.c_[out, self.dense.outputs(texts)]


def _fit_stage1(texts: list[str], y: np.ndarray, w: np.ndarray, level: np.ndarray, level_w: np.ndarray,
                cfg: RiskConfig, head: CharEmbeddingHead | None = None, pooled: np.ndarray | None = None) -> _Stage1:
    from sklearn.linear_model import LogisticRegression, Ridge

    vec = _vectorizer(cfg.min_df)
    X = vec.fit_transform([clip(t) for t in texts])
    lr = LogisticRegression(C=cfg.C, solver="liblinear").fit(X, y, sample_weight=w)
    keep = level_w > 0
    rg = Ridge(alpha=cfg.alpha).fit(X[keep], level[keep], sample_weight=level_w[keep])
    cols, bias = [lr.coef_[0], rg.coef_], [lr.intercept_[0], rg.intercept_]
    sos_rows = w >= 1.0
    for k in cfg.level_heads:
        # SOS-1K rows only: P(level >= k) — ordinal views of the annotators' scale; k = 6 is its own "plan"
        # boundary, which differs from high_risk on ~10 % of rows.
        lr_k = LogisticRegression(C=cfg.C, solver="liblinear").fit(X[sos_rows], (level[sos_rows] >= k).astype(int))
        cols.append(lr_k.coef_[0])
        bias.append(lr_k.intercept_[0])
    dense = None if head is None else _fit_dense(head, pooled, y, w, sos_rows, level, cfg)
    return _Stage1(vec, np.column_stack(cols), np.array(bias), dense)


def _best_threshold(y: np.ndarray, p: np.ndarray) -> float:
    grid = np.round(np.arange(0.20, 0.801, 0.01), 2)
    f1 = [_prf(y, p >= t)[2] for t in grid]
    return float(grid[int(np.argmax(f1))])


def _prf(y: np.ndarray, pred: np.ndarray) -> tuple[float, float, float]:
    y, pred = np.asarray(y, bool), np.asarray(pred, bool)
    tp = float(np.sum(y & pred))
    p = tp / max(1.0, float(pred.sum()))
    r = tp / max(1.0, float(y.sum()))
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def train_risk(sos: Sequence[SosRow], smile_turns: Sequence[str], cfg: RiskConfig | None = None,
               everyday: Sequence[str] = (), log: Callable[[str], None] = lambda _: None,
               embed_corpus: Sequence[str] = ()) -> LinearTextModel:
    """Fit the two-stage risk model; returns the runtime model (artifact) with stage 2 in its meta.

    ``smile_turns`` (counseling-chat client turns) and ``everyday`` (short everyday posts, e.g. the
    CLUEmotion texts) are ordinary-talk negatives for the high-risk head, death words included; for the
    level head, those without death talk count as level ``smile_level`` / 0. ``embed_corpus`` (unlabelled
    text, see :func:`load_unlabelled`) enables the dense character-embedding view (``cfg.embed_dim``).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    cfg = cfg or RiskConfig()
    sos_det = [detect(r.text) for r in sos]
    y_sos = np.array([r.high_risk for r in sos])
    lv_sos = np.array([r.level for r in sos], float)
    neg = list(smile_turns) + list(everyday)
    smile_texts = [detect(t).text for t in neg]
    death = np.array([bool(DEATH_TALK.search(normalise(t))) for t in neg])
    n_sm = len(smile_texts)
    y_sm = np.zeros(n_sm, int)
    w_sm = np.full(n_sm, cfg.smile_weight)
    lv_sm = np.r_[np.full(len(smile_turns), cfg.smile_level), np.zeros(len(everyday))]
    lw_sm = np.where(death, 0.0, cfg.smile_weight)

    head = pooled_sos = pooled_neg = None
    if cfg.embed_dim and embed_corpus:
        t0 = time.perf_counter()
        chars, vectors = char_embeddings(list(embed_corpus), cfg)
        head = CharEmbeddingHead(chars, vectors, np.zeros((2 * vectors.shape[1], 0)), np.zeros(0), [])
        pooled_sos = np.array([head.pooled(d.text) for d in sos_det])
        pooled_neg = np.array([head.pooled(t) for t in smile_texts])
        log(f"character embeddings {vectors.shape} and pooled vectors in {time.perf_counter() - t0:.1f}s")

    def fit(idx: np.ndarray) -> _Stage1:
        texts = [sos_det[i].text for i in idx] + smile_texts
        return _fit_stage1(
            texts, np.r_[y_sos[idx], y_sm], np.r_[np.ones(len(idx)), w_sm],
            np.r_[lv_sos[idx], lv_sm], np.r_[np.ones(len(idx)), lw_sm], cfg,
            head, None if head is None else np.r_[pooled_sos[idx], pooled_neg],
        )

    # Out-of-fold stage-1 outputs for the SOS-1K rows.
    t0 = time.perf_counter()
    sparse_outputs = ["logit", "level"] + [f"level_ge_{k}" for k in cfg.level_heads]
    outputs = sparse_outputs + (DENSE_OUTPUTS if head is not None else [])
    oof = np.zeros((len(sos), len(outputs)))
    skf = StratifiedKFold(cfg.inner_folds, shuffle=True, random_state=cfg.seed)
    for tr, te in skf.split(np.zeros(len(sos)), y_sos):
        oof[te] = fit(tr).outputs([sos_det[i].text for i in te])
    log(f"stage-1 out-of-fold outputs in {time.perf_counter() - t0:.1f}s")

    features = [*outputs, *STAGE2_SIGNALS]
    F = np.array([[*o, *(d.signals.get(s, 0.0) for s in STAGE2_SIGNALS)] for o, d in zip(oof, sos_det, strict=True)])
    st2 = LogisticRegression(C=cfg.stage2_C, max_iter=5000)
    p_oof = cross_val_predict(st2, F, y_sos, cv=StratifiedKFold(5, shuffle=True, random_state=cfg.seed + 1),
                              method="predict_proba")[:, 1]
    threshold = _best_threshold(y_sos, p_oof)
    st2.fit(F, y_sos)

    final = fit(np.arange(len(sos)))
    vocab = sorted(final.vec.vocabulary_, key=final.vec.vocabulary_.__getitem__)
    meta = {
        "kind": "miaohui.safety.risk",
        "ngram_range": [1, 3],
        "outputs": sparse_outputs,
        "stage2": {"features": features, "coef": st2.coef_[0].round(6).tolist(), "bias": round(float(st2.intercept_[0]), 6)},
        "threshold": threshold,
        "tiering": {"ideation_level": cfg.ideation_level, "ideation_prob": cfg.ideation_prob,
                    "distress_emotion": cfg.distress_emotion,
                    "confident_prob": cfg.confident_prob},
        "training": {"sos1k_rows": len(sos), "smilechat_turns": len(smile_turns), "everyday_texts": len(everyday),
                     "config": asdict(cfg),
                     "stage2_oof_f1": round(_prf(y_sos, p_oof >= threshold)[2], 4)},
    }
    extra = {}
    if final.dense is not None:
        h = final.dense.head
        meta["dense"] = {"kind": "char_embedding_mean_max", "outputs": DENSE_OUTPUTS, "dim": h.dim,
                         "window": cfg.embed_window, "chars": len(h.index)}
        extra = {"emb_chars": np.array(sorted(h.index, key=h.index.__getitem__), dtype="<U1"),
                 "emb_vectors": h.vectors.astype(np.float32), "emb_coef": h.coef.astype(np.float32),
                 "emb_bias": h.bias.astype(np.float32)}
    log(f"vocabulary {len(vocab)} n-grams; threshold {threshold}; stage-2 OOF F1 {meta['training']['stage2_oof_f1']}")
    return LinearTextModel(vocab, final.vec.idf_.astype(np.float32), final.coef.astype(np.float32),
                           final.bias.astype(np.float32), meta, extra)


# ---- emotion ---------------------------------------------------------------------------------------
def train_emotion(rows: Sequence[tuple[str, str]], C: float = 2.0, min_df: int = 2) -> LinearTextModel:
    from sklearn.linear_model import LogisticRegression

    texts = [clip(normalise(t)) for t, _ in rows]
    vec = _vectorizer(min_df)
    X = vec.fit_transform(texts)
    y = np.array([EMOTION_LABELS.index(lab) for _, lab in rows])
    lr = LogisticRegression(C=C, max_iter=5000).fit(X, y)
    vocab = sorted(vec.vocabulary_, key=vec.vocabulary_.__getitem__)
    meta = {"kind": "miaohui.nlp.emotion", "ngram_range": [1, 3], "outputs": list(EMOTION_LABELS),
            "training": {"cluemotion_rows": len(rows), "C": C, "min_df": min_df}}
    return LinearTextModel(vocab, vec.idf_.astype(np.float32), lr.coef_.T.astype(np.float32),
                           lr.intercept_.astype(np.float32), meta)


def cross_validate_emotion(rows: Sequence[tuple[str, str]], folds: int = 5, seed: int = 0, **kw) -> dict:
    from sklearn.model_selection import StratifiedKFold

    from miaohui.nlp.emotion import EmotionModel

    labels = np.array([lab for _, lab in rows])
    correct = 0
    for tr, te in StratifiedKFold(folds, shuffle=True, random_state=seed).split(np.zeros(len(rows)), labels):
        m = EmotionModel(train_emotion([rows[i] for i in tr], **kw))
        correct += sum(m.classify(rows[i][0], top=1)[0].label == rows[i][1] for i in te)
    return {"accuracy": round(correct / len(rows), 4), "n": len(rows), "folds": folds}


# ---- honest cross-validation of the whole pipeline ----------------------------------------------------
def cross_validate(sos: Sequence[SosRow], smile: Sequence[Sequence[str]], folds: int = 5, seed: int = 0,
                   cfg: RiskConfig | None = None, everyday: Sequence[str] = (),
                   log: Callable[[str], None] = lambda _: None, rows: bool = False,
                   embed_corpus: Sequence[str] = ()) -> dict:
    """K-fold over SOS-1K rows (stratified) and SmileChat dialogues together: each fold trains the whole
    pipeline on the other folds (plus all ``everyday`` texts) and scores its held-out SOS-1K rows and
    SmileChat client turns with the runtime ``assess``."""
    from sklearn.model_selection import KFold, StratifiedKFold

    from miaohui.safety.assess import assess

    cfg = cfg or RiskConfig(seed=seed)
    y = np.array([r.high_risk for r in sos])
    pred = np.zeros(len(sos), bool)
    sos_tiers = [""] * len(sos)
    fa_n = fa_hit = 0
    sos_split = StratifiedKFold(folds, shuffle=True, random_state=seed).split(np.zeros(len(sos)), y)
    smile_split = KFold(folds, shuffle=True, random_state=seed).split(np.zeros(len(smile)))
    for k, ((tr, te), (smtr, smte)) in enumerate(zip(sos_split, smile_split, strict=True)):
        t0 = time.perf_counter()
        model = RiskModel(train_risk([sos[i] for i in tr], [t for i in smtr for t in smile[i]], cfg, everyday,
                                     embed_corpus=embed_corpus))
        for i in te:
            sos_tiers[i] = assess(sos[i].text, model=model, extras=False).tier
            pred[i] = sos_tiers[i] in ("plan", "imminent")
        for i in smte:
            for t in smile[i]:
                if not DEATH_TALK.search(normalise(t)):
                    fa_n += 1
                    fa_hit += TIERS.index(assess(t, model=model, extras=False).tier) >= TIERS.index("ideation")
        log(f"fold {k + 1}/{folds} done in {time.perf_counter() - t0:.1f}s")
    p, r, f1 = _prf(y, pred)
    out = {
        "sos1k": {"f1": round(f1, 4), "precision": round(p, 4), "recall": round(r, 4),
                  "accuracy": round(float(np.mean(pred == y.astype(bool))), 4), "n": len(sos), "folds": folds,
                  "seed": seed, "tiers": {t: sos_tiers.count(t) for t in TIERS}},
        "smilechat_false_alarms": {"rate": round(fa_hit / max(1, fa_n), 4), "n": fa_n, "alarms": int(fa_hit),
                                   "definition": "tier >= ideation on client turns not matching DEATH_TALK"},
    }
    if rows:
        out["sos1k_tiers"] = sos_tiers
    return out
