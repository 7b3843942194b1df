"""Topics of served conversations, indexed once per finished order.

For each order whose service took place and is over, the seeker's messages
during the service are decrypted in memory, run through the topic detector,
and only the labels are kept (``served_topics``).  The index catches up
lazily — a bounded batch of orders that ended in the last 90 days, at the
start of each matching request — and is idempotent: the order id is the primary key, so two processes indexing the
same order store it once.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from miaohui.chat import service as chat
from miaohui.core.db import begin_write
from miaohui.matching.models import ServedTopics
from miaohui.nlp.topics import detect_topics
from miaohui.orders import service as orders

log = logging.getLogger("miaohui.matching")
LOOKBACK_DAYS = 90  # the scan stays bounded; an order is indexed within a request or two of ending anyway


async def catch_up(ctx, limit: int = 20) -> int:
    """Index up to ``limit`` finished orders; returns how many were indexed."""
    found: list[ServedTopics] = []
    async with ctx.sessionmaker() as db:
        since = ctx.clock.now() - timedelta(days=LOOKBACK_DAYS)
        for o in await orders.finished_served(db, since=since, exclude=select(ServedTopics.order_id), limit=limit):
            counts: Counter[str] = Counter()
            for _seq, sender, at, body, _chain in await chat.evidence_rows(db, ctx.keyring, o.conversation_id):
                if sender == o.seeker_id and o.activated_at <= at <= o.ended_at:
                    counts.update(detect_topics(body))
            found.append(ServedTopics(order_id=o.id, listener_id=o.listener_id,
                                      topics=[t for t, _ in counts.most_common()], indexed_at=ctx.clock.now()))
    done = 0
    for row in found:  # one short write each; a row another process stored first is skipped
        async with ctx.sessionmaker() as db:
            await begin_write(db)
            db.add(row)
            try:
                await db.commit()
                done += 1
            except IntegrityError:
                await db.rollback()
    if done:
        log.info("served topics indexed orders=%d", done)
    return done


# A label is public (on the card, in match reasons, in ranking) only once this many served
# orders touched it: with a count of 1, anyone comparing a card before and after one person's
# order would learn what that person talked about.
MIN_SHOWN = 3


async def counts(db: AsyncSession, listener_ids: list[str]) -> dict[str, dict[str, int]]:
    """Label → number of served orders that touched it, per listener; labels of fewer
    than :data:`MIN_SHOWN` orders are left out."""
    out: dict[str, dict[str, int]] = {lid: {} for lid in listener_ids}
    if not listener_ids:
        return out
    for lid, topics in await db.execute(
        select(ServedTopics.listener_id, ServedTopics.topics).where(ServedTopics.listener_id.in_(listener_ids))
    ):
        for t in topics or []:
            out[lid][t] = out[lid].get(t, 0) + 1
    return {lid: {t: n for t, n in c.items() if n >= MIN_SHOWN} for lid, c in out.items()}
