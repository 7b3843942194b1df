"""Public listener cards and profiles, computed — not self-declared.

One place gathers everything a card shows and the ranker uses, in a fixed
number of queries for any number of listeners: presence, measured reply
stats (``sla.stats``), ratings (``reviews``), verified badges and readiness
(``verification.records``), current load and committed windows
(``orders``), the topics of served conversations, and whether the listener
is usually on duty at this hour (``listeners.duty``).  Declared text passes
the wording rule on the way out: 心理咨询 wording disappears from a listing
whose counseling qualification has expired or been revoked.  Profiles and
a seeker's 收藏 add the measured usual hours (``listeners.duty``); for a
seeker, cards say which listeners they keep (``favorite``).
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from miaohui.accounts.models import User
from miaohui.accounts.service import get_user
from miaohui.listeners import duty
from miaohui.listeners import service as listeners
from miaohui.matching import favorites, served
from miaohui.matching.ranker import Candidate
from miaohui.orders import service as orders
from miaohui.reviews import service as reviews
from miaohui.sla import stats as sla_stats
from miaohui.verification import records as trust
from miaohui.wellbeing import mood


async def cards(ctx, db: AsyncSession, rows: list[tuple]) -> list[dict]:
    """``rows`` are ``(profile, user)`` pairs from the listeners domain."""
    ids = [u.id for _, u in rows]
    if not ids:
        return []
    now = ctx.clock.now()
    presence = await ctx.presence.statuses(ids)
    stats = await sla_stats.many(db, ids, now)
    rating = await reviews.ratings(db, ids)
    badges = await trust.badges_many(db, ids, now)
    ready = await trust.readiness_many(db, ids, now)
    load = await orders.current_load(db, ids, now)
    windows = await orders.best_windows(db, ids)
    topics = await served.counts(db, ids)
    usual_now = await duty.usual_now_many(db, ids, now, ctx.settings.timezone)
    tariff = orders.tariff(ctx.settings)
    out = []
    for p, u in rows:
        c = listeners.card(p, u, presence[u.id])
        b = badges[u.id]
        c.update(
            headline=trust.scrub_claims(c["headline"], b),
            bio=trust.scrub_claims(c["bio"], b),
            qualifications_declared=trust.allowed_claims(c["qualifications_declared"], b),
            badges=b,
            ready=ready[u.id].ready,
            stats=stats[u.id],
            rating=rating[u.id]["rating"],
            review_count=rating[u.id]["review_count"],
            load=load[u.id],
            full=load[u.id] >= p.capacity,
            response_window_s=windows[u.id],
            night_price_per_hour_fen=tariff.night_hourly(p.price_per_hour_fen),
            served_topics=topics[u.id],
            usual_now=usual_now[u.id],
        )
        out.append(c)
    return out


def candidate(c: dict) -> Candidate:
    st = c["stats"]
    return Candidate(
        listener_id=c["user_id"], name=c["display_name"], headline=c["headline"], bio=c["bio"], topics=c["topics"],
        served_topics=c["served_topics"], online=c["presence"] != "offline", accepting=c["accepting"],
        load=c["load"], capacity=c["capacity"], ready=c["ready"], instant_rate=st["instant_rate"], turns=st["turns"],
        window_s=c["response_window_s"], rating=c["rating"], review_count=c["review_count"],
        price_fen=c["price_per_hour_fen"], night_price_fen=c["night_price_per_hour_fen"], badges=c["badges"],
        usual_now=c["usual_now"],
    )


async def listed_cards(ctx, db: AsyncSession, viewer: User | None = None) -> list[dict]:
    """Every listed listener's card; for a seeker ``viewer`` each says whether they keep it (``favorite``)."""
    out = await cards(ctx, db, await listeners.directory(db))
    await _mark_favorites(db, out, viewer)
    return out


async def _mark_favorites(db: AsyncSession, out: list[dict], viewer: User | None) -> None:
    if viewer is not None and viewer.role == "seeker":
        kept = set(await favorites.ids(db, viewer.id))
        for c in out:
            c["favorite"] = c["user_id"] in kept


async def usual_hours(ctx, db: AsyncSession, ids: list[str]) -> dict[str, dict]:
    """Measured usual hours (:mod:`miaohui.listeners.duty`), in platform time."""
    return await duty.usual_hours_many(db, ids, ctx.clock.now(), ctx.settings.timezone)


async def favorite_cards(ctx, db: AsyncSession, seeker: User) -> list[dict]:
    """A seeker's 收藏 that are still listed, most recently added first, each
    with its usual hours."""
    rows = await listeners.directory(db, only=await favorites.ids(db, seeker.id))
    out = await cards(ctx, db, rows)
    hours = await usual_hours(ctx, db, [u.id for _, u in rows])
    for c in out:
        c["favorite"] = True
        c["duty"] = hours[c["user_id"]]
    return out


async def public_profile(ctx, db: AsyncSession, listener_id: str, viewer: User | None = None) -> dict | None:
    """A listed listener's card plus the verification record, reviews,
    tag counts, all-time stats and measured usual hours; ``favorite`` says
    whether ``viewer`` (a seeker) keeps this listener."""
    p = await listeners.get_listed(db, listener_id)
    if p is None:
        return None
    user = await get_user(db, listener_id)
    (card,) = await cards(ctx, db, [(p, user)])
    await _mark_favorites(db, [card], viewer)
    now = ctx.clock.now()
    card["duty"] = (await usual_hours(ctx, db, [listener_id]))[listener_id]
    record = await trust.public_record(db, listener_id, now)
    card["record"] = record
    card["reviews"] = await reviews.for_listener(db, listener_id)
    card["review_tags"] = await reviews.tag_counts(db, listener_id)
    card["all_stats"] = await sla_stats.listener_stats(db, listener_id, now)
    # 心情: the share of sittings after which seekers felt better (wellbeing.mood; shown from 5 on).
    card["outcome"] = (await mood.outcomes(db, [listener_id], now)).get(listener_id)
    return card
