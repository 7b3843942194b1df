"""Seven-way emotion classifier (CLUEmotion2020 labels), char n-gram logistic regression.

``classify(text)`` returns the best labels with their Chinese names and
probabilities; the model is ``data/emotion.npz`` (see ``miaohui.nlp.linear``),
rebuilt by ``scripts/train_safety.py``.
"""

from __future__ import annotations

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
        probs = softmax(self.text_model.decision(t))
        ranked = sorted(zip(self.labels, probs, strict=True), key=lambda lp: -lp[1])[: max(1, top)]
        return [Emotion(lab, ZH.get(lab, lab), round(p, 4)) for lab, p in ranked]


@lru_cache(maxsize=1)
def default_model() -> EmotionModel:
    return EmotionModel(LinearTextModel.load(EMOTION_ARTIFACT))


def classify(text: str, top: int = 3, *, normalised: bool = False) -> list[Emotion]:
    """Top ``top`` emotions of ``text``, best first."""
    return default_model().classify(text, top, normalised=normalised)
