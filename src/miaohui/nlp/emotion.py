"""Seven-way emotion classifier (CLUEmotion2020 labels), char n-gram logistic regression.

``classify(text)`` returns the best labels with their Chinese names and
probabilities; the model is ``data/emotion.npz`` (see ``miaohui.nlp.linear``),
rebuilt by ``scripts/train_safety.py``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from miaohui.nlp.linear import LinearTextModel, softmax
from miaohui.nlp.text import normalise

EMOTION_ARTIFACT = Path(__file__).resolve().parent / "data" / "emotion.npz"
ZH: dict[str, str] = {
    "like": "喜爱", "happiness": "快乐", "sadness": "悲伤", "anger": "愤怒",
    "disgust": "厌恶", "fear": "恐惧", "surprise": "惊讶",
}


@dataclass(frozen=True)
class Emotion:
    label: str
    zh: str
    prob: float


class EmotionModel:
    def __init__(self, text_model: LinearTextModel):
        self.text_model = text_model
        self.labels = text_model.outputs

    def classify(self, text: str, top: int = 3, *, normalised: bool = False) -> list[Emotion]:
        t = text if normalised else normalise(text)
        return self.from_outputs(self.text_model.decision(t), top)

    def from_outputs(self, outputs: list[float], top: int = 3) -> list[Emotion]:
        """Ranked emotions from the model's raw outputs (e.g. from a ``JointScorer``)."""
        return self.from_probs(softmax(outputs), top)

    def from_probs(self, probs: list[float], top: int = 3) -> list[Emotion]:
        """:meth:`from_outputs` from the outputs' softmax, computed already."""
        ranked = sorted(zip(self.labels, probs, strict=True), key=lambda lp: -lp[1])[: max(1, top)]
        return [Emotion(lab, ZH.get(lab, lab), round(p, 4)) for lab, p in ranked]


@lru_cache(maxsize=1)
def default_model() -> EmotionModel:
    return EmotionModel(LinearTextModel.load(EMOTION_ARTIFACT))


def classify(text: str, top: int = 3, *, normalised: bool = False) -> list[Emotion]:
    """Top ``top`` emotions of ``text``, best first."""
    return default_model().classify(text, top, normalised=normalised)


# ---- scores(text): the seven CLUE labels, and ``miaohui.nlp.emotion(text)`` ---------------------------

LABELS: tuple[str, ...] = ("like", "happiness", "sadness", "anger", "disgust", "fear", "surprise")


def scores(text: str, *, normalised: bool = False) -> dict[str, float]:
    """Probabilities over the seven CLUE labels (best first), from the enhanced model
    (``miaohui.nlp.emotion_plus``: n-grams + lexicon, negation, intensity, emoji cues,
    calibrated) when its artifact is present, else the n-gram model."""
    from miaohui.nlp import emotion_plus

    t = text if normalised else normalise(text)
    model = emotion_plus.default_model()
    if model is not None:
        return model.scores(t)
    return {e.label: e.prob for e in default_model().classify(t, top=len(LABELS), normalised=True)}


class _CallableModule(sys.modules[__name__].__class__):
    """Makes ``miaohui.nlp.emotion(text)`` work: the module itself is callable (= :func:`scores`)."""

    def __call__(self, text: str, *, normalised: bool = False) -> dict[str, float]:
        return scores(text, normalised=normalised)


sys.modules[__name__].__class__ = _CallableModule
