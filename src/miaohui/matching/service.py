"""帮我找人: rank the listed listeners for what a seeker describes.

Nothing about the request is stored: the text is assessed and ranked in
memory and answered.  Crisis signals come from two places — the request
itself (``miaohui.safety.assess``, tier ideation or above) and, for a
signed-in seeker, their risk cases of the last 30 days (supervision) — and
either one restricts the results to listeners with a verified professional
qualification and puts the hotlines first.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta

from miaohui.accounts.models import User
from miaohui.core.errors import AppError
from miaohui.matching import profiles, ranker, served
from miaohui.nlp.topics import TOPICS
from miaohui.orders.pricing import Tariff
from miaohui.safety import assess
from miaohui.supervision import service as supervision

CRISIS_TIERS = ("ideation", "plan", "imminent")
# Routing is more cautious than alarms: a wrong "crisis" here only narrows the
# list to verified professionals and shows the hotlines first.
CRISIS_SIGNALS = frozenset({"acquired_means", "method_intent", "method_seeking", "attempt", "self_harm", "farewell",
                            "plan"})
CRISIS_RANK = 2  # supervision ranks tiers 0–4; ideation is 2
HISTORY_DAYS = 30
WINDOW_CHOICES = {10: "10 秒内", 30: "30 秒内", 60: "1 分钟内"}
MAX_TEXT = 300


@dataclass(frozen=True)
class MatchIn:
    text: str = ""
    tags: tuple[str, ...] = ()
    budget_fen: int | None = None
    window_s: int | None = None
    limit: int = 5


def tag_choices() -> list[str]:
    return [name for name, _ in TOPICS]


def _night(ctx) -> bool:
    t = Tariff.from_settings(ctx.settings)
    return t.is_night_hour(ctx.clock.now().astimezone(t.tz).hour)


def is_crisis(a) -> bool:
    """Tier ideation or above, a strong signal, or distress with a method named."""
    signals = set(a.signals)
    return a.tier in CRISIS_TIERS or bool(signals & CRISIS_SIGNALS) or (a.tier == "distress" and "method" in signals)


def _rank(cards: list[dict], m: MatchIn, night: bool, history_crisis: bool):
    request_crisis = is_crisis(assess(m.text, extras=False)) if m.text else False
    req = ranker.Request(text=m.text, tags=list(m.tags), budget_fen=m.budget_fen, window_s=m.window_s, night=night,
                         crisis=request_crisis or history_crisis)
    return req, request_crisis, ranker.query(req)[1], ranker.rank([profiles.candidate(c) for c in cards], req, m.limit)


async def recommend(ctx, user: User | None, m: MatchIn) -> dict:
    text = " ".join((m.text or "").split())[:MAX_TEXT]
    tags = tuple(t for t in dict.fromkeys(m.tags) if t in tag_choices())[:6]
    if len(text) < 2 and not tags:
        raise AppError("describe_more", "简单说说你遇到的事，或者选一个话题", "describe the situation or pick a topic", 400)
    m = MatchIn(text=text, tags=tags, budget_fen=m.budget_fen if m.budget_fen and m.budget_fen > 0 else None,
                window_s=m.window_s if m.window_s in WINDOW_CHOICES else None, limit=max(1, min(m.limit, 10)))
    await served.catch_up(ctx)
    history_crisis = False
    async with ctx.sessionmaker() as db:
        if user is not None and user.role == "seeker":
            since = ctx.clock.now() - timedelta(days=HISTORY_DAYS)
            history_crisis = await supervision.recent_risk_rank(db, user.id, since) >= CRISIS_RANK
        cards = await profiles.listed_cards(ctx, db)
    # assess() and jieba are CPU work: off the event loop.
    req, request_crisis, labels, ranked = await asyncio.to_thread(_rank, cards, m, _night(ctx), history_crisis)
    by_id = {c["user_id"]: c for c in cards}
    return {
        "crisis": req.crisis,
        "crisis_from": "request" if request_crisis else ("history" if history_crisis else None),
        "topics": list(labels),
        "night": req.night,
        "results": [
            {"card": by_id[r.candidate.listener_id], "score": r.score, "explanation": r.explanation,
             "reasons": r.reasons, "parts": {k: round(v, 4) for k, v in r.parts.items()},
             "matched_topics": r.matched_topics}
            for r in ranked
        ],
        "hotlines": ctx.settings.hotlines,
    }
