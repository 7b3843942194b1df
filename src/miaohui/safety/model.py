"""The learned part of the risk model: two stages, numpy/stdlib only at run time.

Stage 1 — one character 1–3-gram TF-IDF vector (on the normalised, masked text
from ``knowledge.detect``) feeds three linear heads:

* ``logit``: logistic regression for SOS-1K ``high_risk`` (SmileChat client
  turns added as ordinary-talk negatives, 死-words left in them);
* ``level``: ridge regression of the SOS-1K level 0–10 (SmileChat turns that
  do not talk about death added as level 1, everyday distress);
* ``level_ge_6``: logistic regression for SOS-1K level ≥ 6 (SOS-1K rows only).

A second, dense stage-1 view (:class:`CharEmbeddingHead`, when the artifact has
one): character embeddings learnt without labels (PPMI + SVD on SmileChat and
CLUEmotion text), mean- and max-pooled over the message, with two logistic
heads (``emb_logit``: high risk, same rows and weights as ``logit``;
``emb_level_ge_6``). It generalises across phrasings the n-grams never saw.

Stage 2 — a logistic regression over ``[stage-1 outputs, knowledge signals]``,
fitted on *out-of-fold* stage-1 outputs (5-fold inside the training set), so it
learns how far to trust the n-gram model versus each explicit signal (a method
word, a partner search, a past attempt, a third person, comfort, ambivalence…)
without seeing the n-gram model's over-confident in-sample scores. This is
classic stacking; it was chosen over a hand-weighted rule sum because SOS-1K's
label is subtle (a wish to die without a method is *low* risk) and the data,
not our intuition, should set those trade-offs. The decision threshold is the
one that maximised F1 on the out-of-fold stage-2 predictions.

Signals SOS-1K barely contains (means in hand, standing on a rooftop, last
messages, conversation history) are not stage-2 features: they act through the
explicit rule table in ``miaohui.safety.assess``.

The artifact ``data/risk.npz`` holds the stage-1 vocabulary/idf/weights, the
dense view's arrays (``emb_chars``, ``emb_vectors``, ``emb_coef``, ``emb_bias``)
and, in its JSON ``meta``, the stage-2 weights, threshold and training summary.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from miaohui.nlp.linear import LinearTextModel, code_points, sigmoid
from miaohui.nlp.text import clip
from miaohui.safety.knowledge import Detection

DATA_DIR = Path(__file__).resolve().parent / "data"
RISK_ARTIFACT = DATA_DIR / "risk.npz"

# Knowledge signals the second stage learns weights for (see the module docstring).
STAGE2_SIGNALS: tuple[str, ...] = (
    "method", "method_intent", "method_seeking", "together", "plan", "time", "now", "farewell", "attempt",
    "self_harm", "ideation", "hopelessness", "protective", "past", "third_party", "advice", "joke", "negation",
)


class CharEmbeddingHead:
    """Dense stage-1 view: character embeddings pooled over the text, then linear heads.

    The embeddings (``chars`` × ``d``) were learnt without labels at training time (PPMI + truncated SVD
    of character co-occurrences in SmileChat and CLUEmotion texts, no SOS-1K text). A text's feature
    vector is ``[mean, max]`` over the vectors of its in-vocabulary characters (of ``clip(text)``, as the
    n-gram model reads it; zeros when none is known); ``coef`` (``2d`` × heads, standardisation folded in)
    and ``bias`` map it to the heads' raw outputs. Where the n-gram model knows only the exact strings it
    saw, similar characters get similar vectors, so an unseen phrasing of a seen idea scores close to it.
    """

    def __init__(self, chars: list[str], vectors: np.ndarray, coef: np.ndarray, bias: np.ndarray,
                 names: list[str]):
        self.index: dict[str, int] = {c: i for i, c in enumerate(chars)}
        self.vectors = np.ascontiguousarray(vectors, np.float64)
        self.coef = np.ascontiguousarray(coef, np.float64)
        self.bias = np.asarray(bias, np.float64)
        self.names = list(names)
        self.dim = self.vectors.shape[1]
        # For decisions_many: the mean half of the heads is linear, so each
        # character's vector is projected once (chars × heads) and a text sums
        # a few numbers per character instead of ``dim``; the max half needs
        # the vectors, gathered in float32 — the artifact's own precision, in
        # which the max is the same number.
        self._proj = self.vectors @ self.coef[: self.dim]
        # Code point -> vector id (-1: not in the vocabulary), up to the largest code point known; any
        # larger one is clipped onto the last slot, which is -1.  A batch's characters are then
        # looked up with one ``take`` instead of a dict look-up each (~160 ns a character).
        self._by_cp = np.full(max(map(ord, chars), default=0) + 2, -1, np.int32)
        self._by_cp[np.fromiter(map(ord, chars), np.intp, len(chars))] = np.arange(len(chars))
        self._vec32 = np.ascontiguousarray(vectors, np.float32)
        self._coef_max = np.ascontiguousarray(self.coef[self.dim :])

    @classmethod
    def from_extra(cls, extra: dict[str, np.ndarray], names: list[str]) -> CharEmbeddingHead:
        return cls(extra["emb_chars"].tolist(), extra["emb_vectors"], extra["emb_coef"], extra["emb_bias"], names)

    def pooled(self, text: str) -> np.ndarray:
        return self.pooled_many([text])[0]

    def _ids(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """The vector ids of the texts' in-vocabulary characters, in order,
        and how many each text has (of ``clip(text)``)."""
        clipped = [clip(t) for t in texts]
        cps = code_points("".join(clipped))
        ids = self._by_cp.take(np.minimum(cps, len(self._by_cp) - 1)).astype(np.intp)
        known = ids >= 0
        owner = np.repeat(np.arange(len(texts)), np.fromiter(map(len, clipped), np.intp, len(texts)))
        return ids[known], np.bincount(owner[known], minlength=len(texts))

    def pooled_many(self, texts: list[str]) -> np.ndarray:
        """``[mean, max]`` rows of many texts from one gather and two ``reduceat``:
        per text, the numpy calls alone cost ~30 µs."""
        ids, lens = self._ids(texts)
        out = np.zeros((len(texts), 2 * self.dim))
        if len(ids):
            have = lens > 0
            v = self.vectors.take(ids, axis=0)
            starts = (np.cumsum(lens) - lens)[have]
            out[have, : self.dim] = np.add.reduceat(v, starts) / lens[have, None]
            out[have, self.dim :] = _segment_max(v, starts)
        return out

    def decisions_many(self, texts: list[str]) -> np.ndarray:
        """``bias + pooled_many(texts) @ coef`` (equal up to float rounding),
        without pooling the mean in ``dim`` dimensions (see ``__init__``)."""
        ids, lens = self._ids(texts)
        out = np.empty((len(texts), len(self.bias)))
        out[:] = self.bias
        if len(ids):
            have = lens > 0
            starts = (np.cumsum(lens) - lens)[have]
            out[have] += (np.add.reduceat(self._proj.take(ids, axis=0), starts) / lens[have, None]
                          + _segment_max(self._vec32.take(ids, axis=0), starts).astype(np.float64) @ self._coef_max)
        return out

    def decision(self, text: str) -> list[float]:
        return self.decisions_many([text])[0].tolist()


def _segment_max(v: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """``np.maximum.reduceat(v, starts)`` (non-empty segments): one ``max`` over the rows of each
    segment.  reduceat walks a 2-D array a column at a time, across rows (~6 instructions a
    value); a segment's own ``max(axis=0)`` compares whole rows, vectorised — half the time for
    a batch of chat lines, even with a Python loop over the texts.  A maximum is exact in any order."""
    out = np.empty((len(starts), v.shape[1]), v.dtype)
    bounds = [*starts.tolist(), len(v)]
    for i in range(len(starts)):
        np.maximum.reduce(v[bounds[i] : bounds[i + 1]], axis=0, out=out[i])
    return out


@dataclass(frozen=True)
class RiskScore:
    prob: float  # stage-2 probability of SOS-1K high risk
    logit: float  # stage-1 n-gram logit
    level: float  # stage-1 level estimate (unclipped)
    high: bool  # prob >= threshold


class RiskModel:
    def __init__(self, text_model: LinearTextModel):
        self.text_model = text_model
        meta = text_model.meta
        s2 = meta["stage2"]
        self.stage2_features: list[str] = list(s2["features"])
        self.stage2_coef: list[float] = [float(x) for x in s2["coef"]]
        self.stage2_bias = float(s2["bias"])
        self.threshold = float(meta["threshold"])
        self.tiering: dict[str, float] = {k: float(v) for k, v in meta.get("tiering", {}).items()}
        dense = meta.get("dense")
        extra = getattr(text_model, "extra", {})
        self.dense = CharEmbeddingHead.from_extra(extra, dense["outputs"]) if dense and "emb_coef" in extra else None
        self.output_names: list[str] = [*text_model.outputs, *(self.dense.names if self.dense else ())]
        # Stage 2 as score() sums it: each stage-1 output's weight and position, and the signals' weights.
        # A message has a few of the signals, so only those terms are summed; math.fsum is exactly
        # rounded, so neither the order nor the zero terms left out change z.
        pos = {n: i for i, n in enumerate(self.output_names)}
        weights = list(zip(self.stage2_features, self.stage2_coef, strict=True))
        self._s2_outputs: list[tuple[float, int]] = [(w, pos[f]) for f, w in weights if f in pos]
        self._s2_signals: dict[str, float] = {f: w for f, w in weights if f not in pos}

    @classmethod
    def load(cls, path: str | Path = RISK_ARTIFACT) -> RiskModel:
        return cls(LinearTextModel.load(path))

    def score(self, det: Detection, outputs: list[float] | None = None) -> RiskScore:
        """Score a detection; ``outputs`` are the n-gram model's outputs already computed for ``det.text``
        (the dense head, when the model has one, is computed here)."""
        outputs = outputs or self.text_model.decision(det.text)
        if self.dense is not None and len(outputs) < len(self.output_names):
            outputs = [*outputs, *self.dense.decision(det.text)]
        logit, level = outputs[0], outputs[1]
        terms = [w * outputs[i] for w, i in self._s2_outputs]
        s2 = self._s2_signals
        terms += [s2[k] * v for k, v in det.signals.items() if k in s2]
        z = self.stage2_bias + math.fsum(terms)
        p = sigmoid(z)
        return RiskScore(p, logit, level, p >= self.threshold)


@lru_cache(maxsize=1)
def default_model() -> RiskModel:
    """The shipped model, loaded once per process."""
    return RiskModel.load()
