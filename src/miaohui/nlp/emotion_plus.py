"""The enhanced emotion model behind ``miaohui.nlp.emotion(text)``.

Feature blocks, scaled by a block weight and concatenated.  Sparse blocks are
sublinear, l2-normalised TF-IDF vectors (as scikit-learn's
``TfidfVectorizer(sublinear_tf=True)``):

* ``char`` — character n-grams of the normalised text (first/last 128 chars);
* ``word`` — :func:`word_ngrams`: jieba words and word bigrams of the same;
* ``cue`` — :func:`cue_tokens`: lexicon hits per CLUE label and per fine
  feeling (``miaohui.nlp.lexicon``), each marked when negated (不开心 is not
  开心) or intensified (好开心, 开心死了), Weibo bracket emoticons and emoji,
  punctuation (！？~ 。。。), laughter, length.

Dense blocks (``kind: "embed"``, tokens ``char`` or ``word``) are the mean of
the text's in-vocabulary token vectors (PPMI+SVD embeddings learnt without
labels from in-domain text at training time).  The mean is linear, so the
artifact stores each token's vector already multiplied by the layer's weights:
a ``(tokens, labels)`` table whose mean row is the block's contribution.

One linear layer maps the blocks to the seven labels (a linear SVM whose
scores are recalibrated by a small multinomial logistic regression fitted on
out-of-fold scores — both linear, so composed into one layer at training
time); the outputs are then divided by a temperature and shifted by
per-label biases fitted on out-of-fold predictions before the softmax.  The
artifact is ``data/emotion_plus.npz`` (no pickle), rebuilt by
``scripts/train_emotion.py`` (scikit-learn at training time only).
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from functools import lru_cache
from pathlib import Path

import numpy as np

from miaohui.nlp import lexicon
from miaohui.nlp.linear import ngram_counts, softmax
from miaohui.nlp.text import clip
from miaohui.nlp.tokenize import tokenize

ARTIFACT = Path(__file__).resolve().parent / "data" / "emotion_plus.npz"
_BRACKET = re.compile(r"\[[^\[\]]{1,6}\]")
_PUNCT = (("!", "exc"), ("?", "q"), ("~", "tilde"), ("。。。", "dots"), ("...", "dots"), ("哈哈", "haha"),
          ("呵呵", "hehe"), ("!!", "exc2"), ("??", "q2"), ("?!", "qexc"), ("…", "ellipsis"))


def cue_tokens(text: str) -> list[str]:
    """Lexicon, negation, intensity, emoticon and punctuation cues of normalised ``text``."""
    out: list[str] = []
    for h in lexicon.scan(text):
        neg = ":neg" if h.negated else ""
        out.append(f"L:{h.label}{neg}")
        if h.intense and not h.negated:
            out.append(f"L:{h.label}:int")
        if h.feeling:
            out.append(f"F:{h.feeling}{neg}")
        else:
            out.append(f"E:{h.word}")
    for e in _BRACKET.findall(text):
        out.append("B:" + e)
    for s, name in _PUNCT:
        if s in text:
            out.append("P:" + name)
    n = len(text)
    out.append("N:" + ("s" if n < 15 else "m" if n < 40 else "l" if n < 100 else "xl"))
    return out


@lru_cache(maxsize=4096)
def words(text: str) -> tuple[str, ...]:
    """jieba words of the clipped normalised ``text`` (memoised: training revisits each text per fold)."""
    return tuple(tokenize(clip(text)))


def word_ngrams(text: str) -> list[str]:
    """Words and adjacent word pairs (``"a b"``) of normalised ``text``."""
    w = words(text)
    return [*w, *(f"{a} {b}" for a, b in zip(w, w[1:], strict=False))]


def embed_tokens(kind: str, text: str) -> list[str] | tuple[str, ...]:
    """The tokens an ``embed`` block averages over: characters or words of the clipped text."""
    return list(clip(text)) if kind == "char" else words(text)


class EmotionPlus:
    def __init__(self, blocks: list[dict], vocabs: list[list[str]], idfs: list[np.ndarray], coef: np.ndarray,
                 bias: np.ndarray, labels: list[str], temperature: float = 1.0, shift: np.ndarray | None = None,
                 meta: dict | None = None, embeds: list[tuple[dict, list[str], np.ndarray]] | None = None):
        """``blocks``/``vocabs``/``idfs`` are the sparse blocks, in ``coef``'s row order; ``embeds``
        the dense blocks: ``(block, tokens, table)`` with a ``(len(tokens), len(labels))`` table."""
        self.blocks = blocks
        self.index = [{g: i for i, g in enumerate(v)} for v in vocabs]
        self.idfs = [np.asarray(x, np.float64) for x in idfs]
        self.offsets = np.cumsum([0] + [len(v) for v in vocabs])
        self.embed_blocks = [b for b, _, _ in embeds or []]
        self.embeds = {b["name"]: ({t: i for i, t in enumerate(toks)}, np.ascontiguousarray(table, np.float64))
                       for b, toks, table in embeds or []}
        self.coef = np.ascontiguousarray(coef, np.float64)
        self.bias = np.asarray(bias, np.float64)
        self.labels = list(labels)
        self.temperature = float(temperature)
        self.shift = np.zeros(len(labels)) if shift is None else np.asarray(shift, np.float64)
        self.meta = meta or {}

    @classmethod
    def load(cls, path: str | Path = ARTIFACT) -> EmotionPlus:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            blocks = meta["blocks"]
            vocabs = [z[f"vocab_{b['name']}"].tolist() for b in blocks]
            idfs = [z[f"idf_{b['name']}"] for b in blocks]
            embeds = [(b, z[f"tokens_{b['name']}"].tolist(), z[f"table_{b['name']}"])
                      for b in meta.get("embed_blocks", [])]
            return cls(blocks, vocabs, idfs, z["coef"], z["bias"], meta["labels"], meta.get("temperature", 1.0),
                       z["shift"] if "shift" in z else None, meta, embeds)

    def save(self, path: str | Path) -> None:
        arrays = {}
        for b, index, idf in zip(self.blocks, self.index, self.idfs, strict=True):
            vocab = sorted(index, key=index.__getitem__)
            arrays[f"vocab_{b['name']}"] = np.array(vocab, dtype=f"<U{max(1, max(map(len, vocab), default=1))}")
            arrays[f"idf_{b['name']}"] = idf.astype(np.float32)
        for b in self.embed_blocks:
            index, table = self.embeds[b["name"]]
            toks = sorted(index, key=index.__getitem__)
            arrays[f"tokens_{b['name']}"] = np.array(toks, dtype=f"<U{max(1, max(map(len, toks), default=1))}")
            arrays[f"table_{b['name']}"] = table.astype(np.float32)
        meta = {**self.meta, "blocks": self.blocks, "labels": self.labels, "temperature": self.temperature,
                "embed_blocks": self.embed_blocks}
        np.savez_compressed(path, coef=self.coef.astype(np.float32), bias=self.bias.astype(np.float32),
                            shift=self.shift.astype(np.float32), meta=np.array(json.dumps(meta, ensure_ascii=False)),
                            **arrays)

    def _tokens(self, block: dict, text: str) -> Counter:
        if block["kind"] == "char":
            return ngram_counts(clip(text), int(block["lo"]), int(block["hi"]))
        if block["kind"] == "word":
            return Counter(word_ngrams(text))
        return Counter(cue_tokens(text))

    def logits(self, text: str) -> np.ndarray:
        """Raw linear outputs (before calibration) for normalised ``text``."""
        z = self.bias.copy()
        for bi, block in enumerate(self.blocks):
            counts = self._tokens(block, text)
            index = self.index[bi]
            pairs = [(index[g], c) for g, c in counts.items() if g in index]
            if not pairs:
                continue
            idx = np.fromiter((p[0] for p in pairs), np.intp, len(pairs))
            tf = np.fromiter((p[1] for p in pairs), np.float64, len(pairs))
            v = (1.0 + np.log(tf)) * self.idfs[bi][idx]
            v *= float(block.get("weight", 1.0)) / math.sqrt(float(v @ v))
            z += v @ self.coef[idx + self.offsets[bi]]
        for block in self.embed_blocks:
            index, table = self.embeds[block["name"]]
            ids = [i for i in map(index.get, embed_tokens(block["tokens"], text)) if i is not None]
            if ids:
                z += table[ids].mean(0)
        return z

    def scores(self, text: str) -> dict[str, float]:
        """Calibrated probabilities, best first."""
        z = self.logits(text) / self.temperature + self.shift
        probs = softmax(z.tolist())
        return dict(sorted(zip(self.labels, (round(p, 4) for p in probs), strict=True), key=lambda lp: -lp[1]))


@lru_cache(maxsize=1)
def default_model() -> EmotionPlus | None:
    return EmotionPlus.load(ARTIFACT) if ARTIFACT.exists() else None
