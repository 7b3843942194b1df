"""jieba word segmentation, initialised once, lazily.

jieba builds its prefix dictionary on first use (about a second); ``tokenize``
pays that once per process, under a lock, with jieba's logging silenced.
Call ``warm_up()`` at start-up to move the cost out of the first request.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

_lock = threading.Lock()
_tokenizer: Any = None


def _get() -> Any:
    global _tokenizer
    if _tokenizer is None:
        with _lock:
            if _tokenizer is None:
                import jieba

                jieba.setLogLevel(logging.WARNING)
                tok = jieba.Tokenizer()
                tok.initialize()
                _tokenizer = tok
    return _tokenizer


def warm_up() -> None:
    """Load jieba's dictionary now rather than on the first ``tokenize`` call."""
    _get()


def tokenize(text: str) -> list[str]:
    """Words of ``text`` (jieba precise mode, HMM on), whitespace tokens dropped."""
    return [w for w in _get().lcut(text) if not w.isspace()]
