"""我的倾诉习惯: a seeker's own month of paid talking, shown to them alone,
and a gentle word toward the people in their life when the month's shape
calls for it.

The brief's example is a client who spent 5,000 of a 9,000 salary a month.
A budget (``wellbeing.service``) stops the money when the seeker asked for
that; this looks at the *pattern* with them, without stopping anything:
many late nights, nearly everything told to one listener, spending that
doubled, a session almost every day.  Each of those is common and none is
wrong; together with a word about friends, family and longer-term help they
are what a good listener would say after a month like that.

The arithmetic is pure (:func:`month_of`, :func:`nudges`) over plain
:class:`Sitting` values; :func:`for_seeker` gathers them from
``orders.service`` and the ledger.  Nothing here is visible to listeners or
staff, and nothing is stored: it is computed when the seeker looks.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from miaohui.ledger import service as ledger
from miaohui.wellbeing import mood
from miaohui.wellbeing.service import get_budget, month_start

LATE_NIGHT_HOURS = frozenset({23, 0, 1, 2, 3, 4})  # a sitting that starts then is a late night
LATE_NIGHTS = 6  # late nights in a month before the word about sleep and daytime people
ONE_LISTENER_SHARE = 0.8  # share of the month's sittings with one listener ...
ONE_LISTENER_MIN = 6  # ... out of at least this many
RISING_FACTOR = 2  # this month's spending against last month's ...
RISING_MIN_FEN = 50_000  # ... once it is at least ¥500
MANY_SITTINGS = 20  # sittings in a month before the word about longer-term help
MAX_NUDGES = 2
NOT_HELPING_RUN = 3  # sittings in a row after which the seeker felt no better (wellbeing.mood)
MOOD_DAYS = 60  # how far back 心情 is looked at


@dataclass(frozen=True)
class Sitting:
    """One paid sitting: an order and the extensions that continued it."""

    listener_id: str
    started_at: datetime  # UTC
    minutes: int  # served, extensions included


@dataclass(frozen=True)
class Month:
    sittings: int
    minutes: int
    late_nights: int
    listeners: int
    top_share: float  # share of sittings with the listener seen most
    spent_fen: int


@dataclass(frozen=True)
class Nudge:
    key: str
    text: str
    link: tuple[str, str] | None = None  # (label, path)


def _late_night(s: Sitting, zone: ZoneInfo) -> date | None:
    """The night a sitting fell in (01:00 on the 5th is the night of the 4th), if it did."""
    local = s.started_at.astimezone(zone)
    if local.hour not in LATE_NIGHT_HOURS:
        return None
    return local.date() - timedelta(days=1 if local.hour < 12 else 0)


def month_of(sittings: list[Sitting], spent_fen: int, tz: str) -> Month:
    zone = ZoneInfo(tz)
    per_listener: dict[str, int] = {}
    for s in sittings:
        per_listener[s.listener_id] = per_listener.get(s.listener_id, 0) + 1
    n = len(sittings)
    return Month(
        sittings=n,
        minutes=sum(s.minutes for s in sittings),
        late_nights=len({_late_night(s, zone) for s in sittings} - {None}),
        listeners=len(per_listener),
        top_share=max(per_listener.values()) / n if n else 0.0,
        spent_fen=spent_fen,
    )


def not_helping(moods: list[tuple[int, int]]) -> bool:
    """The last :data:`NOT_HELPING_RUN` sittings' (before, after) moods: none better after."""
    run = moods[-NOT_HELPING_RUN:]
    return len(run) == NOT_HELPING_RUN and all(after <= before for before, after in run)


def nudges(this: Month, last: Month, *, has_budget: bool, moods: list[tuple[int, int]] = ()) -> list[Nudge]:
    """At most :data:`MAX_NUDGES`, the most pressing first.  Worded as an
    observation and an invitation, never a verdict.  ``moods``: the seeker's
    recent (before, after) answers, oldest first."""
    out: list[Nudge] = []
    if not_helping(list(moods)):
        out.append(Nudge(
            "not_helping",
            f"最近 {NOT_HELPING_RUN} 次聊完，你的心情都没有比聊之前好。这不是你的问题；也许可以换一位倾听师试试，"
            "或者找专业的心理咨询师、医院的心理科聊聊。",
            ("看看其他倾听师", "/listeners"),
        ))
    if this.late_nights >= LATE_NIGHTS:
        out.append(Nudge(
            "late_nights",
            f"这个月有 {this.late_nights} 个深夜是在倾诉里度过的。深夜的难受很真实；"
            "白天也试着约一位信任的人聊聊，或者早点休息，让身体帮你缓一缓。",
        ))
    if this.sittings >= ONE_LISTENER_MIN and this.top_share >= ONE_LISTENER_SHARE:
        out.append(Nudge(
            "one_listener",
            "这个月你的心事大多说给了同一位倾听师。被懂得很珍贵；也试着把一部分讲给身边的朋友或家人，"
            "支持多一个来源，会更稳。",
        ))
    if (this.spent_fen >= RISING_MIN_FEN and this.spent_fen >= RISING_FACTOR * last.spent_fen
            and not has_budget):
        times = f"{this.spent_fen / last.spent_fen:.1f} 倍" if last.spent_fen else "明显多于上个月"
        out.append(Nudge(
            "rising",
            f"本月的倾诉花费是上个月的 {times}。" if last.spent_fen else f"本月的倾诉花费{times}。",
            ("设一个月度预算，让花费也在你的掌控里", "#budget"),
        ))
    if this.sittings >= MANY_SITTINGS:
        out.append(Nudge(
            "many",
            f"这个月你倾诉了 {this.sittings} 次。常来说说没关系；如果难受一直放不下，"
            "学校或单位的心理咨询、医院的心理科能陪你走得更久。",
        ))
    return out[:MAX_NUDGES]


async def for_seeker(db: AsyncSession, ctx, seeker_id: str) -> dict:
    """This natural month so far (platform time zone) against last month."""
    # orders.service calls wellbeing.service on every purchase; importing it
    # here, not at the top, keeps that dependency one-way at import time.
    from miaohui.orders import service as orders

    tz = ctx.settings.timezone
    now = ctx.clock.now()
    this_start = month_start(now, tz)
    last_start = month_start(this_start - timedelta(days=1), tz)
    sittings = await orders.sittings_of(db, seeker_id, since=last_start, now=now)
    spent_since_last = await ledger.spent_since(db, seeker_id, last_start)
    spent_this = await ledger.spent_since(db, seeker_id, this_start)
    this = month_of([s for s in sittings if s.started_at >= this_start], spent_this, tz)
    last = month_of([s for s in sittings if s.started_at < this_start], spent_since_last - spent_this, tz)
    moods = await mood.recent_pairs(db, seeker_id, now - timedelta(days=MOOD_DAYS))
    found = nudges(this, last, has_budget=await get_budget(db, seeker_id) is not None, moods=moods)
    return {
        "this_month": asdict(this),
        "last_month": asdict(last),
        # 心情: sittings with both answers in the last MOOD_DAYS days, and after how many the seeker felt better.
        "mood": {"days": MOOD_DAYS, "pairs": len(moods), "better": sum(a > b for b, a in moods)},
        "nudges": [{"key": n.key, "text": n.text, "link": {"label": n.link[0], "href": n.link[1]} if n.link else None}
                   for n in found],
    }
