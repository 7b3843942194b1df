"""Property tests for the ledger (hypothesis), against a database migrated
with Alembic: a big run on SQLite, a smaller one on PostgreSQL.

Random sequences of top-ups, holds, settles with random (and invalid)
splits, voids, withdrawals, approvals, rejections and replays run against
both the real ledger and a tiny in-memory model.  After every step:

* each operation succeeded or failed exactly as the model says, with the
  expected error code (insufficient funds, bad split, closed hold, …);
* every wallet and earnings view equals the model — so nothing is ever
  settled or refunded twice, and no wallet goes below zero;
* ``check_books`` holds: debits == credits, every account's totals equal its
  transfers, every escrow nets to zero, and the money inside the platform
  equals what came in from the gateway minus what went out.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event

from miaohui.core.db import make_engine, make_sessionmaker
from miaohui.core.errors import AppError
from miaohui.ledger import service as ledger
from tests.conftest import _clone_pg

USERS, LISTENERS, REFS, PAYMENTS, WITHDRAWALS = 3, 2, 4, 3, 3

amounts = st.integers(min_value=1, max_value=30_000)
op = st.one_of(
    st.tuples(st.just("topup"), st.integers(0, PAYMENTS - 1), st.integers(0, USERS - 1), amounts),
    st.tuples(st.just("hold"), st.integers(0, REFS - 1), st.integers(0, USERS - 1), amounts),
    st.tuples(
        st.just("settle"), st.integers(0, REFS - 1), st.integers(0, LISTENERS - 1),
        st.integers(0, 100), st.integers(0, 100), st.sampled_from([0, 0, 0, 1, -1]),
    ),
    st.tuples(st.just("void"), st.integers(0, REFS - 1)),
    st.tuples(st.just("withdraw"), st.integers(0, WITHDRAWALS - 1), st.integers(0, LISTENERS - 1), amounts),
    st.tuples(st.just("approve"), st.integers(0, WITHDRAWALS - 1)),
    st.tuples(st.just("reject"), st.integers(0, WITHDRAWALS - 1)),
    st.just(("replay",)),
)
programs = st.lists(op, min_size=1, max_size=25)


@dataclass
class Model:
    tag: str
    wallet: dict[str, list[int]] = field(default_factory=dict)  # user -> [balance, held]
    earn: dict[str, list[int]] = field(default_factory=dict)  # listener -> [balance, held]
    topups: dict[str, tuple] = field(default_factory=dict)  # payment -> (user, amount)
    holds: dict[str, dict] = field(default_factory=dict)  # ref -> payer, amount, state, split
    withdrawals: dict[str, dict] = field(default_factory=dict)  # ref -> listener, amount, state

    def user(self, i: int) -> str:
        return f"u{i}-{self.tag}"

    def lis(self, i: int) -> str:
        return f"l{i}-{self.tag}"

    def w(self, user: str) -> list[int]:
        return self.wallet.setdefault(user, [0, 0])

    def e(self, user: str) -> list[int]:
        return self.earn.setdefault(user, [0, 0])


def split_of(amount: int, a: int, b: int, skew: int) -> tuple[int, int, int]:
    """payee_net, commission, refund: a random split of ``amount``, off by ``skew`` when invalid."""
    net = amount * a // 100
    commission = (amount - net) * b // 100
    refund = amount - net - commission + skew
    return net, commission, refund


async def apply(m: Model, db, step: tuple) -> str:
    """Run ``step`` on the ledger and on the model; return the ledger's outcome ("ok" or an error code)."""
    kind = step[0]
    expect, effect = "ok", None
    if kind == "topup":
        pid, user, amount = f"p{step[1]}-{m.tag}", m.user(step[2]), step[3]
        prior = m.topups.get(pid)
        if prior is None:
            def effect():
                m.topups[pid] = (user, amount)
                m.w(user)[0] += amount
        elif prior != (user, amount):
            expect = "idempotency_conflict"
        call = ledger.topup(db, payment_id=pid, user_id=user, amount=amount)
    elif kind == "hold":
        ref, payer, amount = f"order:{step[1]}-{m.tag}", m.user(step[2]), step[3]
        prior = m.holds.get(ref)
        bal, held = m.w(payer)
        if prior is not None:
            expect = "ok" if (prior["payer"], prior["amount"]) == (payer, amount) else "idempotency_conflict"
        elif amount > bal - held:
            expect = "insufficient_funds"
        else:
            def effect():
                m.holds[ref] = {"payer": payer, "amount": amount, "state": "pending", "split": None}
                m.w(payer)[1] += amount
        call = ledger.hold(db, ref=ref, payer_id=payer, amount=amount)
    elif kind == "settle":
        ref, payee = f"order:{step[1]}-{m.tag}", m.lis(step[2])
        h = m.holds.get(ref)
        net, commission, refund = split_of(h["amount"] if h else 1000, step[3], step[4], step[5])
        split = (payee, net, commission, refund)
        if refund < 0:
            expect = "bad_split"
        elif h is None:
            expect = "hold_not_found"
        elif h["state"] == "voided":
            expect = "hold_closed"
        elif h["state"] == "posted":
            expect = "ok" if h["split"] == split else "idempotency_conflict"
        elif net + commission + refund != h["amount"]:
            expect = "bad_split"
        else:
            def effect():
                h["state"], h["split"] = "posted", split
                w = m.w(h["payer"])
                w[0] += refund - h["amount"]
                w[1] -= h["amount"]
                m.e(payee)[0] += net
        call = ledger.settle(db, ref=ref, payee_id=payee, payee_net=net, commission=commission, refund=refund)
    elif kind == "void":
        ref = f"order:{step[1]}-{m.tag}"
        h = m.holds.get(ref)
        if h is None:
            expect = "hold_not_found"
        elif h["state"] == "posted":
            expect = "hold_closed"
        elif h["state"] == "pending":
            def effect():
                h["state"] = "voided"
                m.w(h["payer"])[1] -= h["amount"]
        call = ledger.void(db, ref=ref)
    elif kind == "withdraw":
        ref, user, amount = f"withdrawal:{step[1]}-{m.tag}", m.lis(step[2]), step[3]
        prior = m.withdrawals.get(ref)
        bal, held = m.e(user)
        if prior is not None:
            expect = "ok" if (prior["user"], prior["amount"]) == (user, amount) else "idempotency_conflict"
        elif amount > bal - held:
            expect = "insufficient_funds"
        else:
            def effect():
                m.withdrawals[ref] = {"user": user, "amount": amount, "state": "pending"}
                m.e(user)[1] += amount
        call = ledger.request_withdrawal(db, ref=ref, user_id=user, amount=amount)
    elif kind in ("approve", "reject"):
        ref = f"withdrawal:{step[1]}-{m.tag}"
        w = m.withdrawals.get(ref)
        done = "posted" if kind == "approve" else "voided"
        if w is None:
            expect = "hold_not_found"
        elif w["state"] not in ("pending", done):
            expect = "hold_closed"
        elif w["state"] == "pending":
            def effect():
                w["state"] = done
                e = m.e(w["user"])
                e[1] -= w["amount"]
                if kind == "approve":
                    e[0] -= w["amount"]
        call = (ledger.complete_withdrawal if kind == "approve" else ledger.cancel_withdrawal)(db, ref=ref)
    else:
        raise AssertionError(step)

    try:
        await call
        await db.commit()
        outcome = "ok"
    except AppError as e:
        await db.rollback()
        outcome = e.code
    assert outcome == expect, (step, outcome, expect)
    if effect is not None:
        effect()
    return outcome


async def check(m: Model, db) -> None:
    for user, (bal, held) in m.wallet.items():
        view = await ledger.wallet(db, user)
        assert (view.balance, view.held, view.available) == (bal, held, bal - held), (user, view)
        assert view.available >= 0
    for user, (bal, held) in m.earn.items():
        view = await ledger.earnings(db, user)
        assert (view.balance, view.held) == (bal, held), (user, view)
        assert view.available >= 0
    for ref, h in m.holds.items():
        assert await ledger.hold_state(db, ref) == h["state"]
    books = await ledger.check_books(db)
    assert books["ok"], books["problems"]
    inside = books["wallets"] + books["earnings"] + books["platform_revenue"]
    assert inside == books["money_in"] - books["money_out"]


def _no_fsync(dbapi_conn, _record) -> None:
    # Throw-away test data: skip SQLite's fsync per commit (like fsync=off on the test PostgreSQL).
    dbapi_conn.cursor().execute("PRAGMA synchronous=OFF")


async def run_program(sessionmaker, program: list[tuple]) -> None:
    async with sessionmaker() as db:
        m = Model(tag=uuid.uuid4().hex[:8])
        last = None
        for step in program:
            if step[0] == "replay":
                if last is None:
                    continue
                step = last
            await apply(m, db, step)
            await check(m, db)
            last = step


def run_property(url: str, examples: int) -> None:
    """One event loop and one engine for the whole run; each example gets
    fresh users and refs (a tag), so examples never interfere, while the
    books are checked over everything written so far."""
    loop = asyncio.new_event_loop()
    engine = make_engine(url)
    if url.startswith("sqlite"):
        event.listen(engine.sync_engine, "connect", _no_fsync)
    sessionmaker = make_sessionmaker(engine)

    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(programs)
    def prop(program):
        loop.run_until_complete(run_program(sessionmaker, program))

    try:
        prop()
    finally:
        loop.run_until_complete(engine.dispose())
        loop.close()


def test_ledger_properties_sqlite(sqlite_url):
    run_property(sqlite_url, 60)


def test_ledger_properties_postgres(pg_server, pg_template):
    run_property(_clone_pg(pg_server, pg_template), 30)


def test_spent_since_statement_and_labels(sqlite_url):
    """Monthly spend counts holds (pending or posted) less voids and refunds;
    statements page newest-first with Chinese labels; times come from the clock."""
    from datetime import timedelta

    from miaohui.clock import FakeClock

    clock = FakeClock()
    t0 = clock.now()

    async def go():
        engine = make_engine(sqlite_url)
        try:
            async with make_sessionmaker(engine)() as db:
                db.info["clock"] = clock
                u, listener = "u-spend", "l-spend"
                await ledger.topup(db, payment_id="spend", user_id=u, amount=50_000)
                await ledger.hold(db, ref="order:old", payer_id=u, amount=1_000)  # before the window
                clock.advance(hours=1)
                await ledger.hold(db, ref="order:a", payer_id=u, amount=6_000)
                await ledger.settle(db, ref="order:a", payee_id=listener, payee_net=3_500, commission=1_500, refund=1_000)
                await ledger.hold(db, ref="order:b", payer_id=u, amount=2_000)
                await ledger.void(db, ref="order:b")
                await ledger.hold(db, ref="gift:g", payer_id=u, amount=800)
                await db.commit()
                assert await ledger.spent_since(db, u, t0 + timedelta(minutes=30)) == 6_000 - 1_000 + 800
                assert await ledger.spent_since(db, u, t0) == 1_000 + 5_000 + 800
                assert await ledger.spent_since(db, "nobody", t0) == 0

                lines = await ledger.statement(db, u, limit=3)
                assert [(x.label, x.state_label, x.amount) for x in lines] == [
                    ("礼物", "托管中", -800), ("订单付款", "已全额退回", -2_000), ("退款", "", 1_000),
                ]
                assert lines[0].created_at == clock.now()
                older = await ledger.statement(db, u, limit=3, before=lines[-1].id)
                assert [(x.label, x.state_label, x.amount) for x in older] == [
                    ("订单付款", "已结算", -6_000), ("订单付款", "托管中", -1_000), ("充值", "", 50_000),
                ]
                earned = await ledger.statement(db, listener, "earnings")
                assert [(x.label, x.amount) for x in earned] == [("服务收入", 3_500)]
                try:
                    await ledger.statement(db, u, "escrow")
                    raise AssertionError("escrow statements are not for users")
                except AppError as e:
                    assert e.code == "bad_account"
                assert ledger.yuan(123_456) == "¥1234.56" and ledger.parse_yuan("88.8") == 8_880
        finally:
            await engine.dispose()

    asyncio.run(go())
