"""Races on real databases (SQLite with BEGIN IMMEDIATE, PostgreSQL with row
locks): every contender has its own session and connection, all start at
once, and the books must show exactly one outcome."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from miaohui.core.db import make_engine, make_sessionmaker
from miaohui.core.errors import AppError
from miaohui.ledger import service as ledger
from tests.conftest import run_sync


async def attempt(sm, fn) -> str:
    async with sm() as db:
        try:
            await fn(db)
            await db.commit()
            return "ok"
        except AppError as e:
            await db.rollback()
            return e.code


def race(url: str, setup, contenders, after):
    async def go():
        engine = make_engine(url)
        sm = make_sessionmaker(engine)
        try:
            async with sm() as db:
                await setup(db)
                await db.commit()
            outcomes = await asyncio.gather(*(attempt(sm, fn) for fn in contenders))
            async with sm() as db:
                books = await ledger.check_books(db)
                assert books["ok"], books["problems"]
                return outcomes, await after(db)
        finally:
            await engine.dispose()

    return run_sync(go())


@pytest.fixture
def tag() -> str:
    return uuid.uuid4().hex[:10]


def test_concurrent_settle_and_void_have_one_outcome(database_url, tag):
    payer, payee, ref = f"u-{tag}", f"l-{tag}", f"order:{tag}"

    async def setup(db):
        await ledger.topup(db, payment_id=tag, user_id=payer, amount=10_000)
        await ledger.hold(db, ref=ref, payer_id=payer, amount=6_000)

    def settle(db):
        return ledger.settle(db, ref=ref, payee_id=payee, payee_net=4_000, commission=1_500, refund=500)

    def void(db):
        return ledger.void(db, ref=ref)

    async def after(db):
        return (await ledger.hold_state(db, ref), await ledger.wallet(db, payer), await ledger.earnings(db, payee))

    outcomes, (state, wallet, earnings) = race(database_url, setup, [settle, void] * 5, after)
    settles, voids = outcomes[0::2], outcomes[1::2]
    if state == "posted":
        assert set(settles) == {"ok"} and set(voids) == {"hold_closed"}, outcomes
        assert (wallet.balance, wallet.held, earnings.balance) == (4_500, 0, 4_000)
    else:
        assert state == "voided" and set(voids) == {"ok"} and set(settles) == {"hold_closed"}, outcomes
        assert (wallet.balance, wallet.held, earnings.balance) == (10_000, 0, 0)


def test_concurrent_settles_with_different_splits(database_url, tag):
    payer, ref = f"u-{tag}", f"order:{tag}"

    async def setup(db):
        await ledger.topup(db, payment_id=tag, user_id=payer, amount=5_000)
        await ledger.hold(db, ref=ref, payer_id=payer, amount=5_000)

    def settle(net):
        return lambda db: ledger.settle(
            db, ref=ref, payee_id=f"l-{tag}", payee_net=net, commission=0, refund=5_000 - net
        )

    async def after(db):
        return await ledger.earnings(db, f"l-{tag}")

    outcomes, earnings = race(database_url, setup, [settle(n) for n in (1000, 2000, 3000, 4000, 5000, 1000)], after)
    winners = [n for n, o in zip((1000, 2000, 3000, 4000, 5000, 1000), outcomes, strict=True) if o == "ok"]
    assert len(set(winners)) == 1 and earnings.balance == winners[0], outcomes
    assert all(o in ("ok", "idempotency_conflict") for o in outcomes), outcomes


def test_concurrent_holds_only_those_that_fit(database_url, tag):
    payer = f"u-{tag}"

    async def setup(db):
        await ledger.topup(db, payment_id=tag, user_id=payer, amount=10_000)

    def hold(i):
        return lambda db: ledger.hold(db, ref=f"order:{tag}-{i}", payer_id=payer, amount=3_000)

    async def after(db):
        return await ledger.wallet(db, payer)

    outcomes, wallet = race(database_url, setup, [hold(i) for i in range(8)], after)
    assert sorted(outcomes) == ["insufficient_funds"] * 5 + ["ok"] * 3, outcomes
    assert (wallet.balance, wallet.held, wallet.available) == (10_000, 9_000, 1_000)


def test_concurrent_replays_move_money_once(database_url, tag):
    payer = f"u-{tag}"

    async def setup(db):
        pass

    def topup(db):
        return ledger.topup(db, payment_id=tag, user_id=payer, amount=2_500)

    def hold(db):
        return ledger.hold(db, ref=f"order:{tag}", payer_id=payer, amount=2_000)

    async def after(db):
        return await ledger.wallet(db, payer)

    outcomes, wallet = race(database_url, setup, [topup] * 6, after)
    assert outcomes == ["ok"] * 6 and wallet.balance == 2_500
    outcomes, wallet = race(database_url, setup, [hold] * 6, after)
    assert outcomes == ["ok"] * 6 and (wallet.held, wallet.available) == (2_000, 500)


def test_concurrent_first_use_of_an_account(database_url, tag):
    """Concurrent withdrawals from one (existing) earnings account into the
    ``payouts`` account, which does not exist yet: whoever creates it must not
    deadlock with those that already see it and lock in id order."""
    payee = f"l-{tag}"

    async def setup(db):
        await ledger.topup(db, payment_id=tag, user_id=f"u-{tag}", amount=8_000)
        await ledger.hold(db, ref=f"order:{tag}", payer_id=f"u-{tag}", amount=8_000)
        await ledger.settle(db, ref=f"order:{tag}", payee_id=payee, payee_net=8_000, commission=0, refund=0)

    def withdraw(i):
        return lambda db: ledger.request_withdrawal(db, ref=f"withdrawal:{tag}-{i}", user_id=payee, amount=1_000)

    async def after(db):
        return await ledger.earnings(db, payee)

    outcomes, earnings = race(database_url, setup, [withdraw(i) for i in range(8)], after)
    assert outcomes == ["ok"] * 8, outcomes
    assert (earnings.balance, earnings.held, earnings.available) == (8_000, 8_000, 0)


def test_books_check_is_one_snapshot_while_money_moves(database_url, tag):
    """The books check, run over and over while holds open and close on other
    connections, never reports a problem: it reads accounts and transfers from one
    snapshot (on PostgreSQL's READ COMMITTED two reads a moment apart disagreed,
    a false "books broken" on the admin's page)."""

    async def go():
        engine = make_engine(database_url)
        sm = make_sessionmaker(engine)
        payers = [f"u{i}-{tag}" for i in range(4)]
        try:
            async with sm() as db:
                for p in payers:
                    await ledger.topup(db, payment_id=f"{p}-pay", user_id=p, amount=1_000_000)
                await db.commit()
            stop = asyncio.Event()
            cycles = [0]  # holds opened and voided so far, by all payers

            async def churn(payer):
                n = 0
                while not stop.is_set():
                    ref = f"order:{payer}:{n}"
                    async with sm() as db:
                        await ledger.hold(db, ref=ref, payer_id=payer, amount=100)
                        await db.commit()
                    async with sm() as db:
                        await ledger.void(db, ref=ref)
                        await db.commit()
                    n += 1
                    cycles[0] += 1
                return n

            async def check(times, moves):
                """At least ``times`` checks, and on until ``moves`` holds came and
                went under them (a loaded machine moves money slowly), within a minute."""
                bad, done = [], 0
                deadline = asyncio.get_running_loop().time() + 60
                while done < times or (cycles[0] < moves and asyncio.get_running_loop().time() < deadline):
                    async with sm() as db:
                        books = await ledger.check_books(db)
                        if not books["ok"]:
                            bad.append(books["problems"])
                    done += 1
                stop.set()
                return bad

            *moved, bad = await asyncio.gather(*(churn(p) for p in payers), check(60, 40))
            assert sum(moved) >= 20, moved
            assert bad == [], bad[:3]
        finally:
            await engine.dispose()

    run_sync(go())
