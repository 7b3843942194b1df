"""Ranking listeners for "帮我找人" — pure functions, no I/O.

Score (0–1) = weighted sum of five parts, each in [0, 1]::

    topic fit      0.40   BM25 of the request over each listener's document
    available now  0.25   online and free 1 · online but full 0.3 · offline 0.1 (0.2 if usually on
                          duty at this hour) · resting 0.05 online, 0 offline
    reply speed    0.15   measured 秒回率 (once there are enough turns) and the committed window
    rating         0.10   Bayesian mean of the stars (prior 4.0 weighted as 3 reviews)
    price          0.10   1 within budget, falling to 0 at twice the budget; 1 when no budget

The parts are independent and every weight is positive, so a listener who is
online never ranks below an otherwise identical one who is not.

**Topic fit.**  A listener's document is their headline, bio and declared
topics (topics count three times), plus *concept tokens* — the labels of
:func:`miaohui.nlp.topics.detect_topics` — for their declared topics and for
the topics of the conversations they have served (one token per served
order, at most five per label).  The request is tokenised the same way
(jieba, stop words out) with its concept tokens doubled, so "男朋友跟我分手了"
meets a listener whose topics say 失恋 through the shared ``§失恋/情感``
label even with no word in common.  BM25 (k1 1.2, b 0.75, IDF over the
candidates) is divided by the best score, floored at ``FIT_FLOOR``, so a
weak best match does not look perfect.

**Hard rules.**  Only listeners who can take orders now (verified, trained,
listed) are ranked.  A crisis request (the safety model's tier ≥ ideation,
or the seeker's recent risk history) keeps only listeners with a verified
professional qualification (counselor, registered psychologist, social
worker) — and the page shows the hotlines first.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field

from miaohui.nlp.text import normalise
from miaohui.nlp.tokenize import tokenize
from miaohui.nlp.topics import TOPICS, detect_topics

WEIGHTS = {"topic": 0.40, "available": 0.25, "speed": 0.15, "rating": 0.10, "price": 0.10}
FIT_FLOOR = 3.0
K1, B = 1.2, 0.75
RATING_PRIOR, RATING_PRIOR_N = 4.0, 3
MIN_TURNS_FOR_RATE = 5
WINDOW_SCORE = {10: 1.0, 30: 0.75, 60: 0.5, 120: 0.25}
CONCEPT = "§"
SERVED_TOKENS = 5

STOP = frozenset(
    "我 你 他 她 它 的 了 是 在 有 和 就 都 也 很 不 吗 吧 呢 啊 呀 嗯 哦 这 那 个 一 着 过 还 又 会 能 要 想 说 "
    "把 被 让 给 对 跟 与 及 或 但 而 所以 因为 如果 然后 还是 就是 自己 我们 你们 他们 她们 什么 怎么 这个 那个 "
    "一个 一些 一直 一下 现在 最近 今天 感觉 觉得 真的 有点 有些 好像 可能 已经 时候 知道 没有 不是 不想 可以 "
    "这样 那样 这么 那么 非常 特别 其实 还有 之后 以后 之前 以前".split()
)


def words(text: str) -> list[str]:
    """Content words of ``text``: jieba tokens without stop words and punctuation."""
    t = normalise(text)
    return [w for w in tokenize(t) if w not in STOP and any(ch.isalnum() for ch in w)]


_PARTNER = re.compile(r"[男女]朋友")


def concepts(text: str) -> tuple[str, ...]:
    """Detector labels; 男朋友/女朋友 alone do not make a request about 人际 (friendship)."""
    labels = detect_topics(text)
    if "人际" in labels and "人际" not in detect_topics(_PARTNER.sub("对象", text)):
        labels = tuple(lab for lab in labels if lab != "人际")
    return labels


@dataclass
class Candidate:
    listener_id: str
    name: str = ""
    headline: str = ""
    bio: str = ""
    topics: list[str] = field(default_factory=list)
    served_topics: dict[str, int] = field(default_factory=dict)  # detector label → served orders
    online: bool = False
    accepting: bool = True
    load: int = 0
    capacity: int = 1
    ready: bool = True  # verified, trained and listed: can take an order
    instant_rate: float | None = None
    turns: int = 0
    window_s: int | None = None  # shortest committed response window
    rating: float | None = None
    review_count: int = 0
    price_fen: int = 0
    night_price_fen: int = 0
    badges: list[dict] = field(default_factory=list)  # verified qualifications
    usual_now: bool = False  # usually on duty at this hour of the day (measured)

    @property
    def professional(self) -> bool:
        return any(b.get("professional") for b in self.badges)


@dataclass
class Request:
    text: str = ""
    tags: list[str] = field(default_factory=list)
    budget_fen: int | None = None  # per hour
    window_s: int | None = None  # "reply within" preference
    night: bool = False  # compare the night price with the budget
    crisis: bool = False


@dataclass
class Ranked:
    candidate: Candidate
    score: float
    parts: dict[str, float]
    matched_topics: list[str]
    reasons: list[str]

    @property
    def explanation(self) -> str:
        return " · ".join(self.reasons)


# ------------------------------------------------------------------ documents


def _topic_labels(topics: list[str]) -> dict[str, list[str]]:
    """Detector label → the listener's own topic words that map to it (by
    the detector, or by naming part of the label: 学业 → 学业/考试)."""
    out: dict[str, list[str]] = {}
    for t in topics:
        for label in dict.fromkeys(concepts(t) + _LABEL_PARTS.get(normalise(t), ())):
            out.setdefault(label, []).append(t)
    return out


def document(c: Candidate) -> list[str]:
    toks = words(f"{c.headline} {c.bio}")
    for t in c.topics:
        toks += words(t) * 3
    for label in _topic_labels(c.topics) | dict.fromkeys(concepts(f"{c.headline} {c.bio}"), []):
        toks += [CONCEPT + label] * 3
    top = max(c.served_topics.values(), default=0)
    for label, n in c.served_topics.items():
        # In proportion to the listener's most served topic, at most SERVED_TOKENS:
        # what they mostly talk about, not every topic that ever came up.
        toks += [CONCEPT + label] * round(n * min(1.0, SERVED_TOKENS / top))
    return toks


def query(r: Request) -> tuple[list[str], tuple[str, ...]]:
    text = " ".join([r.text, *r.tags])
    labels = tuple(dict.fromkeys(concepts(text) + tuple(t for t in r.tags if CONCEPT + t in _KNOWN_LABELS)))
    toks = words(text) + [CONCEPT + lab for lab in labels] * 2
    return toks, labels


_KNOWN_LABELS = frozenset(CONCEPT + name for name, _ in TOPICS)
_LABEL_PARTS: dict[str, tuple[str, ...]] = {}
for _name, _ in TOPICS:
    for _part in _name.split("/"):
        _LABEL_PARTS[_part] = (*_LABEL_PARTS.get(_part, ()), _name)


class BM25:
    def __init__(self, docs: list[list[str]]) -> None:
        self.tf = [Counter(d) for d in docs]
        self.len = [len(d) for d in docs]
        self.avg = (sum(self.len) / len(docs)) if docs else 0.0
        df: Counter[str] = Counter()
        for tf in self.tf:
            df.update(tf.keys())
        n = len(docs)
        self.idf = {t: math.log(1 + (n - k + 0.5) / (k + 0.5)) for t, k in df.items()}

    def scores(self, q: list[str]) -> list[float]:
        out = []
        qtf = Counter(q)
        for tf, dl in zip(self.tf, self.len, strict=True):
            s = 0.0
            for term, qn in qtf.items():
                f = tf.get(term, 0)
                if f:
                    s += qn * self.idf.get(term, 0.0) * f * (K1 + 1) / (f + K1 * (1 - B + B * dl / (self.avg or 1)))
            out.append(s)
        return out


def _matched_topics(c: Candidate, r: Request, labels: tuple[str, ...]) -> list[str]:
    """The listener's own topic words that fit the request, one per concept:
    words the request uses literally first, then one word per shared label."""
    own = _topic_labels(c.topics)
    said = r.text + "".join(r.tags)
    out = [t for t in c.topics if t in said]
    covered = {lab for lab, words in own.items() if any(t in words for t in out)}
    for lab in labels:
        if lab in own and lab not in covered:
            out.append(own[lab][0])
            covered.add(lab)
    return out


# ---------------------------------------------------------------------- parts


def availability(c: Candidate) -> float:
    if not c.accepting:  # resting: reachable by message at best
        return 0.05 if c.online else 0.0
    if not c.online:
        return 0.2 if c.usual_now else 0.1  # likely back soon: a message will be seen tonight
    return 1.0 if c.load < c.capacity else 0.3


def speed(c: Candidate, preferred_window_s: int | None = None) -> float:
    committed = WINDOW_SCORE.get(c.window_s or 0, 0.0)
    if c.instant_rate is not None and c.turns >= MIN_TURNS_FOR_RATE:
        s = 0.7 * c.instant_rate + 0.3 * committed
    else:
        s = 0.6 * committed + 0.4 * 0.5  # unmeasured: the promise, and a neutral half
    if preferred_window_s and (c.window_s is None or c.window_s > preferred_window_s):
        s *= 0.3
    return s


def rating(c: Candidate) -> float:
    total = (c.rating or 0.0) * c.review_count + RATING_PRIOR * RATING_PRIOR_N
    return ((total / (c.review_count + RATING_PRIOR_N)) - 1.0) / 4.0


def price_of(c: Candidate, night: bool) -> int:
    return c.night_price_fen if night else c.price_fen


def price(c: Candidate, budget_fen: int | None, night: bool) -> float:
    if not budget_fen:
        return 1.0
    p = price_of(c, night)
    if p <= budget_fen:
        return 1.0
    return max(0.0, 1.0 - (p - budget_fen) / budget_fen)


def eligible(c: Candidate, crisis: bool) -> bool:
    return c.ready and (c.professional or not crisis)


# ---------------------------------------------------------------- explanation


def _yuan(fen: int) -> str:
    return f"¥{fen // 100}" if fen % 100 == 0 else f"¥{fen / 100:.2f}"


def reasons(c: Candidate, r: Request, fit: float, matched: list[str], served_hits: list[tuple[str, int]]) -> list[str]:
    out: list[str] = []
    if r.crisis:
        pro = next((b for b in c.badges if b.get("professional")), None)
        if pro:
            out.append(f"持证：{pro['title']}")
    if matched:
        out.append(f"擅长{'、'.join(matched[:2])}话题")
    elif served_hits:
        label, n = served_hits[0]
        out.append(f"服务过 {n} 次{label.split('/')[0]}话题")
    elif fit >= 0.5:
        out.append("介绍与你说的情况相近")
    if not c.accepting:
        out.append("休息中")
    elif not c.online:
        out.append("现在不在线，通常这个时段在线，可先留言" if c.usual_now else "现在不在线，可先留言")
    elif c.load >= c.capacity:
        out.append("在线 · 当前已满员")
    else:
        out.append("现在在线")
    if c.instant_rate is not None and c.turns >= MIN_TURNS_FOR_RATE:
        out.append(f"近30天秒回率 {round(c.instant_rate * 100)}%")
    elif c.window_s:
        out.append(f"承诺 {c.window_s} 秒内回复")
    if c.review_count and c.rating is not None:
        out.append(f"{c.rating:.1f} 分（{c.review_count} 条评价）")
    if r.budget_fen:
        p = price_of(c, r.night)
        out.append("在预算内" if p <= r.budget_fen else f"超出预算 {_yuan(p - r.budget_fen)}/小时")
    return out


# ----------------------------------------------------------------------- rank


def rank(candidates: list[Candidate], r: Request, limit: int | None = None) -> list[Ranked]:
    pool = [c for c in candidates if eligible(c, r.crisis)]
    if not pool:
        return []
    q, labels = query(r)
    raw = BM25([document(c) for c in pool]).scores(q) if q else [0.0] * len(pool)
    top = max(max(raw), FIT_FLOOR)
    out = []
    for c, s in zip(pool, raw, strict=True):
        fit = s / top
        matched = _matched_topics(c, r, labels)
        served_hits = sorted(((lab, c.served_topics[lab]) for lab in labels if c.served_topics.get(lab)),
                             key=lambda kv: -kv[1])
        parts = {"topic": fit, "available": availability(c), "speed": speed(c, r.window_s), "rating": rating(c),
                 "price": price(c, r.budget_fen, r.night)}
        score = sum(WEIGHTS[k] * v for k, v in parts.items())
        out.append(Ranked(c, round(score, 6), parts, matched, reasons(c, r, fit, matched, served_hits)))
    out.sort(key=lambda x: (-x.score, -x.parts["available"], -x.parts["topic"], x.candidate.listener_id))
    return out[:limit] if limit else out
