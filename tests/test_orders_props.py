"""Property test: whatever people and time do to an order, in whatever order,
the books balance, money is conserved, and the hold closes exactly once —
settled or refunded, never both, never twice."""

from __future__ import annotations

import asyncio
import shutil
import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from miaohui.accounts.models import User
from miaohui.app import build_context
from miaohui.clock import FakeClock
from miaohui.core.errors import AppError
from miaohui.ledger import service as ledger
from miaohui.ledger.models import Transfer
from miaohui.orders import service as orders
from miaohui.orders.models import Order
from tests.conftest import make_settings

ACTIONS = st.lists(
    st.one_of(
        st.tuples(st.just("advance"), st.integers(1, 40 * 60)),
        st.tuples(st.just("seeker_says"), st.just(0)),
        st.tuples(st.just("listener_says"), st.just(0)),
        st.tuples(st.just("seeker_ends"), st.just(0)),
        st.tuples(st.just("listener_ends"), st.just(0)),
        st.tuples(st.just("block"), st.just(0)),
        st.tuples(st.just("dispute"), st.just(0)),
        st.tuples(st.just("resolve"), st.integers(0, 3000)),
        st.tuples(st.just("tick"), st.just(0)),
    ),
    max_size=14,
)
EXPECTED = {"scheduled": "pending", "active": "pending", "ended": "pending", "disputed": "pending",
            "settled": "posted", "refunded": "voided"}


async def scenario(url: str, tmp, actions) -> None:
    clock = FakeClock()
    ctx = build_context(make_settings(url, tmp), clock)
    await ctx.writer.start()
    try:
        async with ctx.sessionmaker() as db:
            users = {u.username: u for u in await db.scalars(select(User))}
        seeker, listener, sup = users["xiaoyu"], users["linqing"], users["supervisor"]
        order, _ = await orders.purchase(ctx, seeker, listener.id, "30m")
        n = 0

        async def say(user):
            nonlocal n
            n += 1
            from miaohui.chat.writer import PendingMessage
            from miaohui.core.crypto import message_aad

            cid = f"p{n}"
            role = "seeker" if user is seeker else "listener"
            kid, ct = ctx.keyring.encrypt("x", message_aad(order.conversation_id, user.id, cid))
            await ctx.writer.submit(PendingMessage(order.conversation_id, user.id, role, cid, kid, ct, "x", ()))
            await orders.on_messages(ctx, order.id)

        for action, arg in actions:
            try:
                if action == "advance":
                    clock.advance(arg)
                elif action == "seeker_says":
                    await say(seeker)
                elif action == "listener_says":
                    await say(listener)
                elif action == "seeker_ends":
                    await orders.end_by(ctx, seeker, order.id)
                elif action == "listener_ends":
                    await orders.end_by(ctx, listener, order.id)
                elif action == "block":
                    await orders.end_by(ctx, listener, order.id, block=True)
                elif action == "dispute":
                    await orders.open_dispute(ctx, seeker, order.id, "不满意")
                elif action == "resolve":
                    await orders.resolve_dispute(ctx, sup, order.id, arg, "")
                elif action == "tick":
                    await ctx.orders.run_due()
            except AppError as e:
                assert e.status_code < 500
            await check(ctx, order.id)
        # Whatever happened, the end of time closes the order exactly once.
        clock.advance(hours=72)
        await ctx.orders.run_due()
        async with ctx.sessionmaker() as db:
            status = (await orders.get_for(db, sup, order.id)).status
        if status == "disputed":
            await orders.resolve_dispute(ctx, sup, order.id, 1500, "")
        await ctx.orders.run_due()
        final = await check(ctx, order.id)
        assert final in ("settled", "refunded")
    finally:
        await ctx.orders.stop()
        await ctx.writer.stop()
        await ctx.engine.dispose()


async def check(ctx, order_id: str) -> str:
    async with ctx.sessionmaker() as db:
        books = await ledger.check_books(db)
        assert books["ok"], books
        order = await db.get(Order, order_id)
        state = await ledger.hold_state(db, f"order:{order_id}")
        assert state == EXPECTED[order.status], (order.status, state)
        # A post or a void of the hold references it; there is at most one.
        closings = await db.scalar(
            select(func.count()).select_from(Transfer)
            .where(Transfer.ref == f"order:{order_id}", Transfer.pending_id.is_not(None))
        )
        assert closings == (0 if state == "pending" else 1)
        return order.status


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(actions=ACTIONS)
def test_any_sequence_closes_the_order_exactly_once(actions, sqlite_template, tmp_path):
    path = tmp_path / f"{uuid.uuid4().hex}.db"
    shutil.copy(sqlite_template, path)
    asyncio.run(scenario(f"sqlite+aiosqlite:///{path}", tmp_path, actions))
