"""A tiny linear-model runtime over character n-gram TF-IDF features.

The artifact is an ``.npz`` file (read with ``allow_pickle=False``) holding

* ``vocab``  — the n-grams, a unicode array; position = feature index,
* ``idf``    — float32 inverse document frequencies, one per n-gram,
* ``coef``   — float32 ``(n_features, n_outputs)`` weights,
* ``bias``   — float32 ``(n_outputs,)``,
* ``meta``   — a JSON string: n-gram range, output names, whatever the trainer adds.

Features reproduce scikit-learn's ``TfidfVectorizer(analyzer="char",
ngram_range=(lo, hi), sublinear_tf=True, norm="l2")`` exactly (n-grams outside
the vocabulary are ignored), so a model trained there scores identically here.
Long messages are read through ``miaohui.nlp.text.clip`` (first and last 128
characters), in training as here.
Scoring is sparse: only the n-grams present in the text are touched (counted
once with ``collections.Counter``, shared between models through a small memo),
then one gather-and-dot in numpy.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from functools import lru_cache
from itertools import repeat
from pathlib import Path
from typing import Any

import numpy as np

from miaohui.nlp.text import clip


class LinearTextModel:
    def __init__(self, vocab: list[str], idf: np.ndarray, coef: np.ndarray, bias: np.ndarray, meta: dict[str, Any]):
        if coef.ndim == 1:
            coef = coef[:, None]
        if not (len(vocab) == len(idf) == coef.shape[0]):
            raise ValueError("vocab, idf and coef disagree in length")
        self.meta = meta
        self.lo, self.hi = (int(x) for x in meta.get("ngram_range", (1, 3)))
        self.outputs: list[str] = list(meta.get("outputs", [str(i) for i in range(coef.shape[1])]))
        self.index: dict[str, int] = {g: i for i, g in enumerate(vocab)}
        self._idf_np = idf.astype(np.float64)
        self._coef = np.ascontiguousarray(coef, dtype=np.float64)
        self.bias = bias.astype(np.float64)

    # ---- persistence -------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path) -> LinearTextModel:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            return cls(z["vocab"].tolist(), z["idf"], z["coef"], z["bias"], meta)

    def save(self, path: str | Path) -> None:
        vocab = sorted(self.index, key=self.index.__getitem__)
        np.savez_compressed(
            path,
            vocab=np.array(vocab, dtype=f"<U{max(1, self.hi)}"),
            idf=self._idf_np.astype(np.float32),
            coef=self._coef.astype(np.float32),
            bias=self.bias.astype(np.float32),
            meta=np.array(json.dumps(self.meta, ensure_ascii=False)),
        )

    # ---- scoring -----------------------------------------------------------------------------
    def _sparse(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """Indices and l2-normalised sublinear TF-IDF values of the in-vocabulary n-grams of ``text``."""
        counts = ngram_counts(clip(text), self.lo, self.hi)
        n = len(counts)
        # map() keeps the per-n-gram loop in C: dict look-ups with a -1 default, then numpy masks.
        idx = np.fromiter(map(self.index.get, counts.keys(), repeat(-1, n)), np.intp, n)
        keep = idx >= 0
        if not keep.any():
            return _EMPTY_I, _EMPTY_F
        idx = idx[keep]
        tf = np.fromiter(counts.values(), np.float64, n)[keep]
        v = (1.0 + np.log(tf)) * self._idf_np[idx]
        return idx, v / math.sqrt(float(v @ v))

    def features(self, text: str) -> dict[int, float]:
        """Sparse l2-normalised sublinear TF-IDF vector: {feature index: value}."""
        idx, v = self._sparse(text)
        return dict(zip(idx.tolist(), v.tolist(), strict=True))

    def decision(self, text: str) -> list[float]:
        """Raw linear outputs (one per output name) for already-normalised ``text``."""
        idx, v = self._sparse(text)
        if not len(idx):
            return self.bias.tolist()
        return (self.bias + v @ self._coef[idx]).tolist()

    def decision_sparse(self, idx: np.ndarray, ltf: np.ndarray) -> list[float]:
        """Outputs from feature indices and their sublinear term frequencies (``1 + log tf``)."""
        if not len(idx):
            return self.bias.tolist()
        v = ltf * self._idf_np[idx]
        return (self.bias + (v / math.sqrt(float(v @ v))) @ self._coef[idx]).tolist()


class JointScorer:
    """Several models over the same text with one dictionary look-up per n-gram.

    The look-ups dominate the cost of a long message; with a joint vocabulary (the union, built
    once) each model only maps joint ids to its own through a numpy array. ``decisions(text)`` equals
    ``[m.decision(text) for m in models]``.
    """

    def __init__(self, models: list[LinearTextModel]):
        if len({(m.lo, m.hi) for m in models}) != 1:
            raise ValueError("joint scoring needs one n-gram range")
        self.models = models
        self.lo, self.hi = models[0].lo, models[0].hi
        joint: dict[str, int] = {}
        for m in models:
            for g in m.index:
                joint.setdefault(g, len(joint))
        self.index = joint
        self.maps = []
        for m in models:
            mp = np.full(len(joint), -1, np.intp)
            mp[np.fromiter(map(joint.__getitem__, m.index), np.intp, len(m.index))] = np.fromiter(
                m.index.values(), np.intp, len(m.index))
            self.maps.append(mp)

    def decisions(self, text: str) -> list[list[float]]:
        counts = ngram_counts(clip(text), self.lo, self.hi)
        n = len(counts)
        j = np.fromiter(map(self.index.get, counts.keys(), repeat(-1, n)), np.intp, n)
        keep = j >= 0
        j = j[keep]
        ltf = 1.0 + np.log(np.fromiter(counts.values(), np.float64, n)[keep])
        out = []
        for m, mp in zip(self.models, self.maps, strict=True):
            idx = mp[j]
            k = idx >= 0
            out.append(m.decision_sparse(idx[k], ltf[k]))
        return out


_EMPTY_I = np.zeros(0, np.intp)
_EMPTY_F = np.zeros(0, np.float64)


@lru_cache(maxsize=256)
def ngram_counts(text: str, lo: int, hi: int) -> Counter[str]:
    """Counts of the character n-grams of ``text`` (memoised: the risk and emotion models share them)."""
    n = len(text)
    grams: list[str] = []
    for k in range(lo, hi + 1):
        if k == 1:
            grams.extend(text)
        else:
            grams.extend([text[i : i + k] for i in range(n - k + 1)])
    return Counter(grams)


def softmax(z: list[float]) -> list[float]:
    m = max(z)
    e = [math.exp(x - m) for x in z]
    s = sum(e)
    return [x / s for x in e]


def sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)
