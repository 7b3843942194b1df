"""Text normalisation and character n-grams.

``normalise`` is applied identically at training and at run time:

* Unicode NFKC: full-width letters, digits and punctuation become half-width
  (``ＡＢＣ１２３！`` → ``ABC123!``), compatibility forms are folded.
* Lower case (Latin only changes).
* Traditional → simplified for a small table of frequent characters (enough for
  messages typed on a traditional-Chinese keyboard: 殺/藥/樓/遺書/這…); a full
  OpenCC conversion would cost a dependency for little gain.
* Runs of more than three identical characters are cut to three
  (``哈哈哈哈哈`` keeps ``哈哈哈``; ``啊啊啊啊啊啊`` → ``啊啊啊``; ``。。。。。。`` → ``。。。``),
  so elongation neither inflates n-gram counts nor dodges patterns.
* Whitespace runs become one space; the ends are stripped.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator

import numpy as np

from miaohui.nlp.regex_gate import char_class

_TRAD = (
    "兩两殺杀藥药樓楼遺遗書书這这個个們们來来為为麼么沒没開开關关時时後后過过體体臺台燒烧車车錢钱銀银"
    "說说讓让幾几會会覺觉應应還还對对裡里裏里嗎吗們们學学習习愛爱聽听見见難难謝谢點点頭头錯错發发"
    "給给經经歲岁帶带媽妈爺爷奶奶歡欢樂乐號号話话認认識识讀读寫写動动電电視视夢梦傷伤淚泪憂忧鬱郁"
    "煩烦悶闷懼惧驚惊厭厌氣气壓压絕绝滅灭結结終终訣诀別别僅仅將将從从實实現现種种樣样邊边遠远間间"
    "離离開开橋桥藥药腸肠戶户窗窗陽阳颱台緒绪頁页雙双親亲爸爸無无準准備备劃划畫画線线層层頂顶風风"
    "跳跳脈脉腕腕吊吊繩绳屍尸墳坟喪丧葬葬槍枪彈弹醫医療疗術术劑剂瓶瓶顆颗粒粒罐罐農农計计謀谋"
)
_TRAD_TABLE = str.maketrans({_TRAD[i]: _TRAD[i + 1] for i in range(0, len(_TRAD), 2) if _TRAD[i] != _TRAD[i + 1]})
# ``str.translate`` with a dict raises and catches a KeyError for every character
# the table lacks (~130 ns each): a class search first, and most messages skip it.
_TRAD_RX = re.compile("[" + "".join(map(chr, _TRAD_TABLE)) + "]")
_REPEAT = re.compile(r"(.)\1{3,}", re.DOTALL)
_SPACE = re.compile(r"\s+")


# NFKC a character at a time, for text made only of characters where that is
# exact: ASCII, CJK ideographs and punctuation, full-width forms and general
# punctuation whose forms are starters no canonical composition pairs (no
# combining marks, no Hangul or Indic pairs), so decomposing each on its own
# and concatenating is the whole string's NFKC (no reordering, no
# composition).  Most chat lines are such text; NFKC of the whole line cost
# ~12 µs of the ~18 µs of ``normalise``.  Anything else takes
# ``unicodedata.normalize`` (tests/test_nlp_batch.py checks both agree).
_IDEOGRAPHS = ((0x3400, 0x4DBF), (0x4E00, 0x9FFF))  # NFKC leaves unified ideographs as they are
_NFKC_SMALL = ((0x20, 0x7E), (0x2010, 0x205E), (0x3000, 0x303F), (0xFF01, 0xFF5E))


def _nfkc_safe() -> re.Pattern[str]:
    """A search for any character outside the safe set."""

    def in_safe(ch: str) -> bool:
        return any(a <= ord(ch) <= b for a, b in (*_NFKC_SMALL, *_IDEOGRAPHS))

    safe = [chr(cp) for lo, hi in _NFKC_SMALL for cp in range(lo, hi + 1)
            if all(unicodedata.combining(x) == 0 and in_safe(x) for x in unicodedata.normalize("NFKC", chr(cp)))]
    safe += [chr(cp) for lo, hi in _IDEOGRAPHS for cp in range(lo, hi + 1)]
    return re.compile(f"[^{char_class(safe)}]")


class _NfkcTable(dict):
    """``str.translate`` table: each safe character's NFKC, filled on first
    sight (a table that lacks a character costs a raised KeyError each)."""

    def __missing__(self, cp: int) -> str:
        f = self[cp] = unicodedata.normalize("NFKC", chr(cp))
        return f


_NFKC_UNSAFE = _nfkc_safe()
_NFKC_TABLE = _NfkcTable()
# The characters NFKC changes that Chinese chat types most (the full-width ，？！ and a few more; in
# SmileChat, 99 % of lines hold one, and ， is 88 % of all such characters): one ``str.replace``
# each, a C scan of the line. Only a line that still holds a changing character is translated:
# ``translate`` reads every character through the table (~80 ns each, ~7 µs a chat line).
_NFKC_FREQUENT = tuple((c, unicodedata.normalize("NFKC", c)) for c in "，？！：；（）")
_NFKC_CHANGES = re.compile(
    "[" + char_class([chr(cp) for lo, hi in _NFKC_SMALL for cp in range(lo, hi + 1)
                      if unicodedata.normalize("NFKC", chr(cp)) != chr(cp)]) + "]"
)


def nfkc(text: str) -> str:
    """``unicodedata.normalize("NFKC", text)``, a character at a time where that is exact."""
    if _NFKC_UNSAFE.search(text) is None:
        for a, b in _NFKC_FREQUENT:  # each maps to one ASCII character, which NFKC keeps
            text = text.replace(a, b)
        return text if _NFKC_CHANGES.search(text) is None else text.translate(_NFKC_TABLE)
    return unicodedata.normalize("NFKC", text)


def normalise(text: str) -> str:
    """Return the canonical form of ``text`` that every model and pattern sees."""
    return _tidy(_fold(text))


def normalise_many(texts: list[str]) -> list[str]:
    """``[normalise(t) for t in texts]``; the runs of four equal characters are found for
    the whole batch in one array (``_REPEAT`` tries a match at every position of a text, ~3 µs
    a chat line, and one line in 200 has such a run), and only the texts with one are cut."""
    folded = [_fold(t) for t in texts]
    if sum(map(len, folded)) < _MANY:
        return [_tidy(t) for t in folded]
    cp = code_points("\x00".join(folded))
    same = cp[1:] == cp[:-1]
    at = np.flatnonzero(same[:-2] & same[1:-1] & same[2:])  # cp[i] == … == cp[i + 3]
    runs: set[int] = set()
    if len(at):  # (a run through a \x00 between two texts only costs a needless cut)
        runs.update(np.searchsorted(np.cumsum([len(t) + 1 for t in folded]), at, "right").tolist())
    return [_tidy(t, i in runs) for i, t in enumerate(folded)]


_MANY = 400  # characters: below this the array's fixed cost (~20 µs) is more than the regex saves


def _fold(text: str) -> str:
    text = nfkc(text).lower()
    if _TRAD_RX.search(text):
        text = text.translate(_TRAD_TABLE)
    return text


def _tidy(text: str, runs: bool = True) -> str:
    if runs:
        text = _REPEAT.sub(r"\1\1\1", text)
    # A printable text holds no whitespace but U+0020 (every other is a separator or a control
    # character): with no two spaces in a row and none at an end, ``\s+`` → " " and strip keep it.
    if text.isprintable() and "  " not in text and text[:1] != " " and text[-1:] != " ":
        return text
    return _SPACE.sub(" ", text).strip()


def code_points(text: str) -> np.ndarray:
    """The code points of ``text``, a uint32 array: one encode in C, no loop per character."""
    return np.frombuffer(text.encode("utf-32-le"), np.uint32)


def char_ngrams(text: str, lo: int = 1, hi: int = 3) -> Iterator[str]:
    """Character n-grams of length ``lo``..``hi`` (spaces included, as scikit-learn's ``analyzer="char"``)."""
    n = len(text)
    for k in range(lo, hi + 1):
        for i in range(n - k + 1):
            yield text[i : i + k]


MAX_MODEL_CHARS = 256


def clip(text: str, max_chars: int = MAX_MODEL_CHARS) -> str:
    """What the n-gram models read of a long message: its first and last ``max_chars // 2`` characters.

    Bounds the per-message cost (n-gram look-ups are linear in length); the knowledge patterns
    still read the whole message. Training clips the same way.
    """
    if len(text) <= max_chars:
        return text
    half = max_chars // 2
    return text[:half] + " " + text[-half:]
