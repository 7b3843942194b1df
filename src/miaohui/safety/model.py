"""The learned part of the risk model: two stages, numpy/stdlib only at run time.

Stage 1 — one character 1–3-gram TF-IDF vector (on the normalised, masked text
from ``knowledge.detect``) feeds two linear heads trained together:

* ``logit``: logistic regression for SOS-1K ``high_risk`` (SmileChat client
  turns added as ordinary-talk negatives, 死-words left in them);
* ``level``: ridge regression of the SOS-1K level 0–10 (SmileChat turns that
  do not talk about death added as level 1, everyday distress).

Stage 2 — a logistic regression over ``[logit, level, knowledge signals]``,
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

The artifact ``data/risk.npz`` holds the stage-1 vocabulary/idf/weights and, in
its JSON ``meta``, the stage-2 weights, threshold and training summary.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from miaohui.nlp.linear import LinearTextModel, sigmoid
from miaohui.safety.knowledge import Detection

DATA_DIR = Path(__file__).resolve().parent / "data"
RISK_ARTIFACT = DATA_DIR / "risk.npz"

# Knowledge signals the second stage learns weights for (see the module docstring).
STAGE2_SIGNALS: tuple[str, ...] = (
    "method", "method_intent", "method_seeking", "together", "plan", "time", "now", "farewell", "attempt",
    "self_harm", "ideation", "hopelessness", "protective", "past", "third_party", "advice", "joke", "negation",
)


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

    @classmethod
    def load(cls, path: str | Path = RISK_ARTIFACT) -> RiskModel:
        return cls(LinearTextModel.load(path))

    def stage2_vector(self, outputs: list[float], signals: dict[str, float]) -> list[float]:
        base = dict(zip(self.text_model.outputs, outputs, strict=True))
        return [base[f] if f in base else signals.get(f, 0.0) for f in self.stage2_features]

    def score(self, det: Detection, outputs: list[float] | None = None) -> RiskScore:
        """Score a detection; ``outputs`` are stage-1 outputs already computed for ``det.text``."""
        outputs = outputs or self.text_model.decision(det.text)
        logit, level = outputs[0], outputs[1]
        z = self.stage2_bias + math.fsum(
            w * x for w, x in zip(self.stage2_coef, self.stage2_vector(outputs, det.signals), strict=True)
        )
        p = sigmoid(z)
        return RiskScore(p, logit, level, p >= self.threshold)


@lru_cache(maxsize=1)
def default_model() -> RiskModel:
    """The shipped model, loaded once per process."""
    return RiskModel.load()
