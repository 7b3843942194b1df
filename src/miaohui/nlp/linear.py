"""A tiny linear-model runtime over character n-gram TF-IDF features.

The artifact is an ``.npz`` file (read with ``allow_pickle=False``) holding

* ``vocab``  — the n-grams, a unicode array; position = feature index,
* ``idf``    — float32 inverse document frequencies, one per n-gram,
* ``coef``   — float32 ``(n_features, n_outputs)`` weights,
* ``bias``   — float32 ``(n_outputs,)``,
* ``meta``   — a JSON string: n-gram range, output names, whatever the trainer adds;
* any further arrays the trainer adds (``extra``), loaded back as they are.

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

from miaohui.nlp.text import clip, code_points


class LinearTextModel:
    def __init__(self, vocab: list[str], idf: np.ndarray, coef: np.ndarray, bias: np.ndarray, meta: dict[str, Any],
                 extra: dict[str, np.ndarray] | None = None):
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
        # Further arrays stored in the same .npz (e.g. the risk model's dense character head); kept as loaded.
        self.extra: dict[str, np.ndarray] = dict(extra or {})

    # ---- persistence -------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path) -> LinearTextModel:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            extra = {k: z[k] for k in z.files if k not in _CORE}
            return cls(z["vocab"].tolist(), z["idf"], z["coef"], z["bias"], meta, extra)

    def save(self, path: str | Path) -> None:
        vocab = sorted(self.index, key=self.index.__getitem__)
        np.savez_compressed(
            path,
            vocab=np.array(vocab, dtype=f"<U{max(1, self.hi)}"),
            idf=self._idf_np.astype(np.float32),
            coef=self._coef.astype(np.float32),
            bias=self.bias.astype(np.float32),
            meta=np.array(json.dumps(self.meta, ensure_ascii=False)),
            **self.extra,
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
        return (self.bias + v @ self._coef.take(idx, axis=0)).tolist()

    def decision_sparse(self, idx: np.ndarray, ltf: np.ndarray) -> list[float]:
        """Outputs from feature indices and their sublinear term frequencies (``1 + log tf``)."""
        if not len(idx):
            return self.bias.tolist()
        v = ltf * self._idf_np[idx]
        return (self.bias + (v / math.sqrt(float(v @ v))) @ self._coef.take(idx, axis=0)).tolist()


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


class BatchScorer:
    """:class:`JointScorer` for many texts at once, with no Python loop per n-gram.

    Each character n-gram (length 1–3) is packed into one integer — 21 bits per
    code point, offset by one so that lengths never collide (unigrams below
    2**21, bigrams below 2**42, trigrams below 2**63) — so a whole batch is
    keyed with a few vectorised shifts.  The texts are joined with a chunk no
    n-gram holds after each, so the n-grams that would span two texts are
    simply not found.  Unigrams are looked up by code point in a plain table;
    bigrams and trigrams in an open-addressing hash
    table probed in vectorised rounds (a sorted-array ``searchsorted`` cost four
    times more: cache misses), or for a small batch in a plain dict; a long
    probe chain's last few keys go to the dict too.  Rows are gathered with
    ``ndarray.take``: numpy's fancy indexing of 2-D rows (``a[idx]``) costs 3-13
    times more for the same rows (16-byte rows: 23 ns against 2).  Term
    frequencies come from one sort
    of (text, n-gram) pairs; every model's weights sit side by side in one
    joint matrix, so each n-gram found costs one row gather and each text's sums
    one ``np.add.reduceat``.  The cost of a batch is a few dozen numpy calls
    plus work linear in its characters (≈ 30 µs per chat message at 32 per
    batch, against ≈ 250 µs for :class:`JointScorer`), which is why the safety
    step assesses the messages of a writer batch together
    (``supervision.monitor``).  ``decisions_many(texts)[i]`` equals
    ``JointScorer.decisions(texts[i])`` up to float rounding (tested to 1e-9).
    """

    BITS = 21  # Unicode code points fit in 21 bits
    _END = np.uint64((1 << BITS) - 1)  # a chunk above every code point + 1: no n-gram holds it
    _MUL = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing

    def __init__(self, models: list[LinearTextModel]):
        joint = JointScorer(models)
        if joint.hi > 3 or joint.lo < 1:
            raise ValueError("batch scoring packs n-grams of length 1..3")
        self.models = models
        self.lo, self.hi = joint.lo, joint.hi
        v = len(joint.index)
        keys = np.fromiter(map(self.key, joint.index), np.uint64, v)  # in joint-id order
        # One row per joint id: each model's idf (0 when absent), then each model's weights times
        # its idf — one gather per n-gram found.  A text's sums are then Σ (1 + log tf) · idf·w,
        # with no per-pair repeat of tf·idf across each model's columns.  float64 rows: the
        # artifacts store float32, whose products are exact in float64.
        self.widths = [m._coef.shape[1] for m in models]
        self.nm = len(models)
        self.rows = np.zeros((v, self.nm + sum(self.widths)), np.float64)
        col = self.nm
        for i, (m, mp) in enumerate(zip(models, joint.maps, strict=True)):
            has = np.flatnonzero(mp >= 0)
            idf = m._idf_np[mp[has]].astype(np.float64)
            self.rows[has, i] = idf
            self.rows[has, col : col + self.widths[i]] = idf[:, None] * m._coef[mp[has]].astype(np.float64)
            col += self.widths[i]
        self._model_of = np.repeat(np.arange(self.nm), self.widths)  # each weight column's model
        self._shift = max(1, (v - 1).bit_length())  # (text, n-gram) pairs packed as text << shift | id
        self.bias = np.concatenate([m.bias for m in models])
        cuts = np.cumsum([0, *self.widths]).tolist()
        self._spans = list(zip(cuts[:-1], cuts[1:], strict=True))  # each model's columns of an output row
        multi = keys >= (1 << self.BITS)
        self._build_table(keys[multi], np.flatnonzero(multi))
        self._ids = dict(zip(self._scramble(keys).tolist(), range(v), strict=True))  # the same map, for small look-ups
        # Unigrams by code point + 1: one ``take``, no hashing (a third of a text's n-grams).
        uni = np.flatnonzero(~multi)
        self._unigrams = np.full(int(keys[uni].max()) + 2 if len(uni) else 1, -1, np.int64)  # last entry: "beyond"
        self._unigrams[keys[uni].astype(np.intp)] = uni

    @classmethod
    def key(cls, gram: str) -> int:
        k = 0
        for c in gram:
            k = (k << cls.BITS) | (ord(c) + 1)
        return k

    def _slots(self, keys: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore"):
            return ((keys * self._MUL) >> np.uint64(64 - self._tbits)).astype(np.int64)

    def _build_table(self, keys: np.ndarray, values: np.ndarray) -> None:
        """Linear probing, inserted in vectorised rounds: a key that finds its slot taken (earlier, or
        by another key this round) tries the next one, so a look-up that probes from the home slot
        meets it before any empty slot."""
        self._tbits = max(10, int(len(keys) * 2 - 1).bit_length())  # load factor ≤ 1/2
        size = 1 << self._tbits
        tkeys = np.zeros(size, np.uint64)  # 0 = empty (no n-gram packs to 0)
        tvals = np.full(size, -1, np.int64)
        slot = self._slots(keys)
        rest = np.arange(len(keys))
        self._rounds = 0
        while len(rest):
            self._rounds += 1
            s = slot[rest]
            free = tkeys[s] == 0
            cand, cs = rest[free], s[free]
            _, first = np.unique(cs, return_index=True)
            won = cand[first]
            tkeys[slot[won]] = keys[won]
            tvals[slot[won]] = values[won]
            placed = np.zeros(len(keys), bool)
            placed[won] = True
            rest = rest[~placed[rest]]
            slot[rest] = (slot[rest] + 1) & (size - 1)
        # key and value side by side: a probe touches one 16-byte slot, not two arrays
        self._table = np.stack([tkeys, tvals.astype(np.uint64)], axis=1)

    SMALL = 128  # below this many keys (a line of ~65 characters) a dict look-up per key (~0.25 µs) beats the table's rounds (~45 µs)
    TAIL = 64  # ... and so it does for the few keys still probing after the first rounds

    @classmethod
    def _scramble(cls, keys: np.ndarray) -> np.ndarray:
        """A bijection of the packed keys whose low bits depend on all of a key.  A Python dict
        starts probing at a key's low bits, and a packed n-gram's low bits are its last
        character: every n-gram ending in 的 would start at one slot, and a look-up walked long
        chains (~0.7 µs a key; scrambled, ~0.25, most of it cache misses)."""
        with np.errstate(over="ignore"):
            x = keys * cls._MUL  # odd: invertible modulo 2**64
        return (x >> np.uint64(32)) | (x << np.uint64(32))

    def _dict_lookup(self, keys: np.ndarray) -> np.ndarray:
        return np.fromiter(map(self._ids.get, self._scramble(keys).tolist(), repeat(-1, len(keys))), np.int64, len(keys))

    def lookup(self, keys: np.ndarray) -> np.ndarray:
        """Joint ids of packed n-grams (-1 when not in any vocabulary)."""
        out = np.empty(len(keys), np.int64)
        uni = keys < np.uint64(1 << self.BITS)
        out[uni] = self._unigram_ids(keys[uni])
        out[~uni] = self._longer_ids(keys[~uni])
        return out

    def _unigram_ids(self, keys: np.ndarray) -> np.ndarray:
        return self._unigrams.take(np.minimum(keys, np.uint64(len(self._unigrams) - 1)).astype(np.intp))

    def _longer_ids(self, keys: np.ndarray) -> np.ndarray:
        """:meth:`lookup` of bigrams and trigrams: the hash table, or the dict for a few."""
        if len(keys) < self.SMALL:  # one or two messages: no fixed cost
            return self._dict_lookup(keys)
        out = np.full(len(keys), -1, np.int64)
        s = self._slots(keys)
        pending = np.arange(len(keys))
        q = keys
        mask = len(self._table) - 1
        for _ in range(self._rounds):
            # ``take``, not ``self._table[s]``: numpy's fancy indexing of whole rows costs
            # ~20-50 ns a row here, ``take`` 2-4 (the same rows).
            slot = self._table.take(s, axis=0)
            got = slot[:, 0]
            hit = got == q
            out[pending[hit]] = slot[:, 1][hit].view(np.int64)
            go = (got != 0) & ~hit
            pending, q, s = pending[go], q[go], (s[go] + 1) & mask
            if len(q) < self.TAIL:  # a long probe chain's last few keys: a round costs more than their dict look-ups
                break
        if len(q):
            out[pending] = self._dict_lookup(q)
        return out

    def decisions_many(self, texts: list[str]) -> list[list[list[float]]]:
        """Per text, per model: the raw linear outputs (as ``LinearTextModel.decision``)."""
        n = len(texts)
        if n == 0:
            return []
        clipped = [clip(t) for t in texts]
        lens = np.fromiter(map(len, clipped), np.int64, n) + 1
        cp = code_points("\x00".join(clipped) + "\x00").astype(np.uint64) + np.uint64(1)
        # After each text a chunk that no n-gram holds (code points + 1 stay below it), so the
        # n-grams that span two texts are simply not found: no mask, no filtering per length.
        cp[np.cumsum(lens) - 1] = self._END
        doc = np.repeat(np.arange(n, dtype=np.int64), lens)
        b = np.uint64(self.BITS)
        grams, docs = [], []
        g = cp
        for k in range(1, self.hi + 1):
            if k > 1:
                g = (g[:-1] << b) | cp[k - 1 :]
            if k >= self.lo:
                grams.append(g)
                docs.append(doc[: len(g)])
        parts = []
        if self.lo == 1:  # unigrams by code point from a plain table; longer n-grams through the hash table
            parts.append(self._unigram_ids(grams.pop(0)))
        if grams:
            parts.append(self._longer_ids(np.concatenate(grams)))
        jid, alld = np.concatenate(parts), np.concatenate(docs)
        out = np.empty((n, len(self.bias)))
        out[:] = self.bias
        sh = self._shift
        pair = (alld << sh) | jid  # by text, then n-gram; negative where not found (jid = -1)
        pair = pair[pair >= 0]
        if len(pair):
            if n < 1 << (31 - sh):  # numpy sorts 32-bit integers about twice as fast
                pair = pair.astype(np.int32)
            pair, tf = _unique_counts(pair)
            pdoc, pj = pair >> sh, pair & ((1 << sh) - 1)
            r = self.rows.take(pj, axis=0)
            lt = (1.0 + np.log(tf))[:, None]  # sublinear tf
            v = lt * r[:, : self.nm]  # (pairs, models): tf-idf
            starts = _run_starts(pdoc)
            norms = np.sqrt(np.add.reduceat(v * v, starts))
            norms[norms == 0.0] = 1.0  # a model with none of a text's n-grams keeps its bias
            sums = np.add.reduceat(lt * r[:, self.nm :], starts)
            out[pdoc[starts]] += sums / norms.take(self._model_of, axis=1)
        spans = self._spans
        return [[r[a:b] for a, b in spans] for r in out.tolist()]


def _run_starts(a: np.ndarray) -> np.ndarray:
    """Where each run of equal values in ``a`` (non-empty) starts."""
    first = np.empty(len(a), bool)
    first[0] = True
    np.not_equal(a[1:], a[:-1], out=first[1:])
    return np.flatnonzero(first)


def _unique_counts(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(a, return_counts=True)`` without its fixed cost (~50 µs a call here, a few
    hundred values a chat line): the safety step scores writer batches of one or two lines."""
    if not len(a):
        return a, np.zeros(0, np.intp)
    a = np.sort(a)
    starts = _run_starts(a)
    counts = np.empty(len(starts), np.intp)  # (np.diff with append= costs ~10 µs of Python a call)
    np.subtract(starts[1:], starts[:-1], out=counts[:-1])
    counts[-1] = len(a) - starts[-1]
    return a[starts], counts


_CORE = frozenset(("vocab", "idf", "coef", "bias", "meta"))
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
