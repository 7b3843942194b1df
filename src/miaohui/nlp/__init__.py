"""Shared Chinese text utilities for the language models (safety, emotion, topics).

Everything here runs on the standard library, numpy and jieba only; model
weights are plain ``.npz`` arrays (loaded with ``allow_pickle=False``), never
pickles. Training code (scikit-learn) lives in ``miaohui.safety.training`` and
is never imported at run time.
"""

from miaohui.nlp import emotion  # callable: ``miaohui.nlp.emotion(text)`` → {label: probability}
from miaohui.nlp.text import char_ngrams, normalise
from miaohui.nlp.tokenize import tokenize

__all__ = ["char_ngrams", "emotion", "normalise", "tokenize"]
