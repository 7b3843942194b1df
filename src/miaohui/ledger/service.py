"""The double-entry ledger: every movement of money is a balanced, idempotent
transfer between two accounts.  No HTTP here, and no commits: callers commit,
so the orders domain can change an order and move its money in one
transaction.

Concurrency and exactly-once (see docs/architecture.md, "Money"):

* Every public operation first calls :func:`~miaohui.core.db.begin_write`
  (``BEGIN IMMEDIATE`` on SQLite) and runs inside a SAVEPOINT, so a refused
  operation (insufficient funds, a closed hold, a conflicting key) leaves
  nothing behind even if the caller goes on and commits other work.
* It then locks every account it touches in id order (``SELECT … FOR UPDATE``
  on PostgreSQL; SQLite already holds the write lock), so concurrent
  operations queue instead of deadlocking, and *then* looks for the transfer
  key: a retry finds the original transfer and returns it; the same key with
  other parameters is a 409.
* Balances change with conditional UPDATEs (``… WHERE credits_posted -
  debits_posted - debits_pending >= :amount``): no read-modify-write, and a
  user account can never go below zero.  A pending transfer resolves with
  ``UPDATE … SET state = … WHERE state = 'pending'`` plus a row whose
  ``pending_id`` is UNIQUE: a hold is posted or voided once, never both.

Transfer keys derive from the business reference (``ref``): ``topup:<payment>``,
``<ref>:hold``, ``<ref>:post``, ``<ref>:payee``, ``<ref>:commission``,
``<ref>:refund``, ``<ref>:void``, ``<ref>:payout``.

Timestamps come from ``clock=`` when given, else from the clock the session
was made with (``session.info["clock"]``, set by the app), else wall time.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from sqlalchemy import and_, case, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlalchemy.orm.attributes import set_committed_value

from miaohui.clock import Clock
from miaohui.core.db import begin_write, new_id, upsert
from miaohui.core.errors import AppError
from miaohui.ledger.models import LedgerAccount as Acct
from miaohui.ledger.models import Transfer

log = logging.getLogger("miaohui.ledger")

GATEWAY = ("gateway", "")
PLATFORM = ("platform_revenue", "")
PAYOUTS = ("payouts", "")
MAX_AMOUNT = 10**12  # ¥10 billion: far above any real amount, far below int64

CODE_LABELS = {
    "topup": "充值",
    "hold": "订单付款",
    "gift": "礼物",
    "settle": "服务收入",
    "commission": "平台佣金",
    "refund": "退款",
    "withdrawal": "提现",
    "wallet_refund": "余额退款",
    "payout": "提现打款",
    "adjustment": "调账",
}
# How a two-phase line reads in a statement, by the state of its pending transfer.
STATE_LABELS = {
    "hold": {"pending": "托管中", "posted": "已结算", "voided": "已全额退回"},
    "gift": {"pending": "托管中", "posted": "已送达", "voided": "已退回"},
    "withdrawal": {"pending": "审核中", "posted": "已打款", "voided": "已驳回"},
    "wallet_refund": {"pending": "审核中", "posted": "已退回原支付账户", "voided": "已驳回"},
}

_WALL = Clock()
T = TypeVar("T")


@dataclass(frozen=True)
class WalletView:
    balance: int  # posted: credits - debits
    held: int  # pending debits: in escrow (wallet) or withdrawals in flight (earnings)
    available: int  # balance - held


@dataclass(frozen=True)
class StatementLine:
    id: str
    created_at: datetime
    code: str
    label: str
    state: str  # posted | pending | voided
    state_label: str
    ref: str
    memo: str
    amount: int  # signed: + into the account, - out of it


def yuan(fen: int | None) -> str:
    """``1250`` → ``¥12.50``, ``-300`` → ``-¥3.00`` (integer arithmetic, no floats)."""
    if fen is None:
        return "—"
    sign = "-" if fen < 0 else ""
    fen = abs(int(fen))
    return f"{sign}¥{fen // 100}.{fen % 100:02d}"


def parse_yuan(text: str) -> int | None:
    """``"12.5"`` → ``1250`` fen; None unless it is a plain amount with at most 2 decimals."""
    m = _YUAN.fullmatch(text.strip().removeprefix("¥").strip()) if isinstance(text, str) else None
    if m is None:
        return None
    return int(m[1]) * 100 + int((m[2] or "").ljust(2, "0"))


_YUAN = re.compile(r"(\d{1,9})(?:\.(\d{1,2}))?")


# ------------------------------------------------------------------- errors


def insufficient_funds(kind: str) -> AppError:
    if kind == "earnings":
        return AppError("insufficient_funds", "可提现金额不足", "not enough earnings available", 402)
    if kind == "wallet":
        return AppError("insufficient_funds", "余额不足，请先充值", "insufficient balance; please top up", 402)
    return AppError("insufficient_funds", "账户余额不足", "insufficient funds", 402)


def hold_closed(state: str) -> AppError:
    zh = "这笔款项已结算" if state == "posted" else "这笔款项已退回"
    return AppError("hold_closed", f"{zh}，不能再次处理", f"this hold is already {state}", 409)


def hold_not_found() -> AppError:
    return AppError("hold_not_found", "找不到这笔托管款", "no hold for this reference", 404)


def key_conflict() -> AppError:
    return AppError(
        "idempotency_conflict",
        "同一笔操作的参数与之前不一致",
        "this idempotency key was already used with different parameters",
        409,
    )


def bad_amount() -> AppError:
    return AppError("bad_amount", "金额必须是正整数（单位：分）", "amount must be a positive whole number of fen", 400)


def _check_amount(amount: int) -> None:
    if isinstance(amount, bool) or not isinstance(amount, int) or not 0 < amount <= MAX_AMOUNT:
        raise bad_amount()


def _check_ref(ref: str) -> None:
    if not isinstance(ref, str) or not 0 < len(ref) <= 80 or any(c.isspace() for c in ref):
        raise AppError("bad_ref", "业务编号无效", "invalid reference", 400)


def _now(session: AsyncSession, clock: Clock | None) -> datetime:
    return (clock or session.info.get("clock") or _WALL).now()


# ---------------------------------------------------------------- accounts


def _insert_ignore(session: AsyncSession, rows: list[dict]):
    return upsert(session, Acct).values(rows).on_conflict_do_nothing(index_elements=["kind", "owner"])


async def _lock(
    session: AsyncSession, wanted: Iterable[tuple[str, str]], now: datetime
) -> dict[tuple[str, str], str]:
    """Ids of the (kind, owner) accounts, locked in id order.

    A missing account is not created here: inserting it (or waiting for a
    concurrent creator) while holding locks on the others could deadlock
    with a transaction that sees it and locks in id order.  :class:`_Missing`
    makes :func:`_atomic` roll the savepoint back (which releases the locks),
    create the accounts, and run the operation again."""
    wanted = list(dict.fromkeys(wanted))
    cond = or_(*(and_(Acct.kind == k, Acct.owner == o) for k, o in wanted))
    q = select(Acct.id, Acct.kind, Acct.owner).where(cond).order_by(Acct.id).with_for_update()
    found = {(r.kind, r.owner): r.id for r in await session.execute(q)}
    missing = [w for w in wanted if w not in found]
    if missing:
        raise _Missing([{"id": new_id(), "kind": k, "owner": o, "created_at": now} for k, o in missing])
    return found


class _Missing(Exception):
    def __init__(self, rows: list[dict]):
        super().__init__("missing ledger accounts")
        self.rows = rows


@dataclass
class _Leg:
    key: str
    code: str
    debit: str
    credit: str
    amount: int
    ref: str
    memo: str
    flags: str = ""
    pending_id: int | None = None


def _deltas(legs: list[_Leg]) -> dict[str, list[int]]:
    """Per account: [debits_pending, debits_posted, credits_pending, credits_posted] changes."""
    d: dict[str, list[int]] = {}
    for leg in legs:
        a = leg.amount
        dr = d.setdefault(leg.debit, [0, 0, 0, 0])
        cr = d.setdefault(leg.credit, [0, 0, 0, 0])
        if leg.flags == "":
            dr[1] += a
            cr[3] += a
        elif leg.flags == "pending":
            dr[0] += a
            cr[2] += a
        elif leg.flags == "post_pending":
            dr[0] -= a
            dr[1] += a
            cr[2] -= a
            cr[3] += a
        else:  # void_pending
            dr[0] -= a
            cr[2] -= a
    return d


_COLUMNS = ("debits_pending", "debits_posted", "credits_pending", "credits_posted")


async def _move(session: AsyncSession, now: datetime, legs: list[_Leg], kinds: dict[str, str]) -> list[Transfer]:
    """Apply ``legs`` to the (already locked) accounts and record them."""
    for acct_id, delta in sorted(_deltas(legs).items()):
        values = {c: getattr(Acct, c) + v for c, v in zip(_COLUMNS, delta, strict=True) if v}
        if not values:
            continue
        stmt = update(Acct).where(Acct.id == acct_id).values(**values)
        spend = delta[0] + delta[1] - delta[3]  # how much the spendable balance shrinks
        if spend > 0 and kinds[acct_id] != "gateway":
            stmt = stmt.where(Acct.credits_posted - Acct.debits_posted - Acct.debits_pending >= spend)
        result = await session.execute(stmt.execution_options(synchronize_session=False))
        if result.rowcount != 1:
            raise insufficient_funds(kinds[acct_id])
    rows = [
        Transfer(
            key=leg.key,
            debit_account_id=leg.debit,
            credit_account_id=leg.credit,
            amount=leg.amount,
            code=leg.code,
            flags=leg.flags,
            state="pending" if leg.flags == "pending" else "voided" if leg.flags == "void_pending" else "posted",
            pending_id=leg.pending_id,
            ref=leg.ref,
            memo=(leg.memo or "")[:200],
            created_at=now,
        )
        for leg in legs
    ]
    session.add_all(rows)
    await session.flush()
    return rows


async def _by_key(session: AsyncSession, key: str) -> Transfer | None:
    return await session.scalar(
        select(Transfer).where(Transfer.key == key).execution_options(populate_existing=True)
    )


async def _by_keys(session: AsyncSession, keys: list[str]) -> list[Transfer]:
    rows = await session.scalars(
        select(Transfer).where(Transfer.key.in_(keys)).execution_options(populate_existing=True)
    )
    order = {k: i for i, k in enumerate(keys)}
    return sorted(rows, key=lambda t: order[t.key])


def ledger_conflict() -> AppError:
    return AppError("ledger_conflict", "账务操作冲突，请稍后重试", "ledger conflict; please retry", 409)


async def _atomic(session: AsyncSession, body: Callable[[], Awaitable[T]]) -> T:
    """Run ``body`` as a writer (``begin_write``) inside a SAVEPOINT: when it
    raises, nothing it did remains, even if the caller commits other work.
    Accounts used for the first time are created between attempts (see
    :func:`_lock`); integrity errors become a 409."""
    await begin_write(session)
    for _ in range(4):
        try:
            async with session.begin_nested():
                return await body()
        except _Missing as m:
            await session.execute(_insert_ignore(session, m.rows))
        except IntegrityError as e:
            log.warning("ledger integrity conflict: %s", type(e.orig).__name__ if e.orig else "?")
            raise ledger_conflict() from e
    raise ledger_conflict()


# -------------------------------------------------------- single-phase / open


async def _single_or_open(
    session: AsyncSession,
    *,
    key: str,
    code: str,
    debit: tuple[str, str],
    credit: tuple[str, str],
    amount: int,
    ref: str,
    memo: str,
    flags: str,
    clock: Clock | None,
) -> Transfer:
    _check_ref(ref)
    _check_amount(amount)
    now = _now(session, clock)

    async def body() -> Transfer:
        ids = await _lock(session, [debit, credit], now)
        existing = await _by_key(session, key)
        if existing is not None:
            same = (existing.debit_account_id, existing.credit_account_id, existing.amount, existing.flags, existing.code)
            if same != (ids[debit], ids[credit], amount, flags, code):
                raise key_conflict()
            return existing
        kinds = {ids[debit]: debit[0], ids[credit]: credit[0]}
        leg = _Leg(key, code, ids[debit], ids[credit], amount, ref, memo, flags=flags)
        (row,) = await _move(session, now, [leg], kinds)
        log.info("ledger %s %s amount=%d", code, ref, amount)
        return row

    return await _atomic(session, body)


async def topup(
    session: AsyncSession, *, payment_id: str, user_id: str, amount: int, memo: str = "", clock: Clock | None = None
) -> Transfer:
    """Money in from the gateway: gateway → the user's wallet, once per payment."""
    ref = f"topup:{payment_id}"
    return await _single_or_open(
        session, key=ref, code="topup", debit=GATEWAY, credit=("wallet", user_id), amount=amount,
        ref=ref, memo=memo, flags="", clock=clock,
    )


def hold_code(ref: str) -> str:
    return "gift" if ref.startswith("gift:") else "hold"


async def hold(
    session: AsyncSession, *, ref: str, payer_id: str, amount: int, memo: str = "", clock: Clock | None = None
) -> Transfer:
    """A pending transfer from the payer's wallet to the escrow account of
    ``ref`` (code ``gift`` for ``gift:…`` refs, else ``hold``).  Raises
    ``insufficient_funds`` (402) if the wallet's available balance is short.
    A retry returns the original hold."""
    return await _single_or_open(
        session, key=f"{ref}:hold", code=hold_code(ref), debit=("wallet", payer_id), credit=("escrow", ref),
        amount=amount, ref=ref, memo=memo, flags="pending", clock=clock,
    )


async def request_withdrawal(
    session: AsyncSession, *, ref: str, user_id: str, amount: int, memo: str = "", clock: Clock | None = None,
    account: str = "earnings",
) -> Transfer:
    """A pending transfer to ``payouts``: from a listener's earnings (提现),
    or from a seeker's wallet (``account="wallet"``: 余额退款, the unused
    balance going back to where it was paid from)."""
    if account not in ("earnings", "wallet"):
        raise AppError("bad_account", "账户类型无效", "account must be wallet or earnings", 400)
    return await _single_or_open(
        session, key=f"{ref}:hold", code="withdrawal" if account == "earnings" else "wallet_refund",
        debit=(account, user_id), credit=PAYOUTS, amount=amount, ref=ref, memo=memo, flags="pending", clock=clock,
    )


# ------------------------------------------------------------- post / void

FollowUp = Callable[[dict[tuple[str, str], str], Transfer], list[_Leg]]
SameCheck = Callable[[list[Transfer], dict[tuple[str, str], str]], bool]


async def _resolve(
    session: AsyncSession,
    *,
    ref: str,
    post: bool,
    memo: str,
    clock: Clock | None,
    extra_accounts: tuple[tuple[str, str], ...] = (),
    follow: FollowUp | None = None,
    follow_keys: tuple[str, ...] = (),
    same: SameCheck | None = None,
) -> list[Transfer]:
    """Post (``post=True``) or void the pending transfer of ``ref`` and add
    the ``follow`` legs; return ``[post_or_void, *legs]``.  A repeat of the
    same resolution returns the stored rows; the other resolution is 409."""
    _check_ref(ref)
    now = _now(session, clock)
    done = "posted" if post else "voided"
    keys = [f"{ref}:{'post' if post else 'void'}", *(f"{ref}:{k}" for k in follow_keys)]

    async def body() -> list[Transfer]:
        pending = await _by_key(session, f"{ref}:hold")
        if pending is None:
            raise hold_not_found()
        sides = {
            r.id: (r.kind, r.owner)
            for r in await session.execute(
                select(Acct.id, Acct.kind, Acct.owner).where(
                    Acct.id.in_((pending.debit_account_id, pending.credit_account_id))
                )
            )
        }
        ids = await _lock(session, [*sides.values(), *extra_accounts], now)
        state = await session.scalar(select(Transfer.state).where(Transfer.id == pending.id))
        if state == done:
            rows = await _by_keys(session, keys)
            if same is not None and not same(rows, ids):
                raise key_conflict()
            return rows
        if state != "pending":
            raise hold_closed(state)
        legs = [
            _Leg(
                keys[0], pending.code, pending.debit_account_id, pending.credit_account_id, pending.amount, ref, memo,
                flags="post_pending" if post else "void_pending", pending_id=pending.id,
            )
        ]
        if follow is not None:
            legs += follow(ids, pending)
        flipped = await session.execute(
            update(Transfer)
            .where(Transfer.id == pending.id, Transfer.state == "pending")
            .values(state=done)
            .execution_options(synchronize_session=False)
        )
        if flipped.rowcount != 1:
            raise hold_closed(done)
        rows = await _move(session, now, legs, {i: k for (k, _), i in ids.items()})
        set_committed_value(pending, "state", done)
        log.info("ledger %s %s amount=%d", "post" if post else "void", ref, pending.amount)
        return rows

    return await _atomic(session, body)


def _split_of(rows: list[Transfer], ref: str) -> dict[str, tuple[str, int]]:
    return {t.key.removeprefix(f"{ref}:"): (t.credit_account_id, t.amount) for t in rows}


async def settle(
    session: AsyncSession,
    *,
    ref: str,
    payee_id: str,
    payee_net: int,
    commission: int,
    refund: int,
    memo: str = "",
    clock: Clock | None = None,
) -> list[Transfer]:
    """Post the whole pending hold of ``ref`` into its escrow, then split the
    escrow: ``payee_net`` to the payee's earnings, ``commission`` to platform
    revenue, ``refund`` back to the payer's wallet (zero legs are skipped).
    The three must be ≥ 0 and add up to the held amount (else 400
    ``bad_split``).  Exactly once: a repeat returns the same transfers; after a
    void it is 409 ``hold_closed``."""
    parts = (payee_net, commission, refund)
    if any(isinstance(p, bool) or not isinstance(p, int) or p < 0 for p in parts):
        raise AppError("bad_split", "分账金额必须是非负整数（分）", "split amounts must be whole fen, not negative", 400)
    if not payee_id:
        raise AppError("bad_split", "缺少收款人", "payee missing", 400)
    payee = ("earnings", payee_id)

    def follow(ids, pending: Transfer) -> list[_Leg]:
        if sum(parts) != pending.amount:
            raise AppError(
                "bad_split",
                f"分账合计 {sum(parts)} 分与托管金额 {pending.amount} 分不一致",
                f"split adds up to {sum(parts)} fen, the hold is {pending.amount} fen",
                400,
            )
        escrow = pending.credit_account_id
        code = "gift" if pending.code == "gift" else "settle"
        out = []
        for name, acct, amount, leg_code in (
            ("payee", ids[payee], payee_net, code),
            ("commission", ids[PLATFORM], commission, "commission"),
            ("refund", pending.debit_account_id, refund, "refund"),
        ):
            if amount:
                out.append(_Leg(f"{ref}:{name}", leg_code, escrow, acct, amount, ref, memo))
        return out

    def same(rows: list[Transfer], ids) -> bool:
        got = _split_of(rows, ref)
        return (
            got.get("payee", (ids[payee], 0)) == (ids[payee], payee_net)
            and got.get("commission", (None, 0))[1] == commission
            and got.get("refund", (None, 0))[1] == refund
        )

    return await _resolve(
        session, ref=ref, post=True, memo=memo, clock=clock, extra_accounts=(payee, PLATFORM),
        follow=follow, follow_keys=("payee", "commission", "refund"), same=same,
    )


async def void(session: AsyncSession, *, ref: str, memo: str = "", clock: Clock | None = None) -> Transfer:
    """Return the whole pending hold of ``ref`` to the payer.  Repeating it
    returns the original void; after a settle it is 409 ``hold_closed``."""
    return (await _resolve(session, ref=ref, post=False, memo=memo, clock=clock))[0]


async def complete_withdrawal(
    session: AsyncSession, *, ref: str, memo: str = "", clock: Clock | None = None
) -> list[Transfer]:
    """Post the pending withdrawal of ``ref`` and pay it out (payouts → gateway)."""

    def follow(ids, pending: Transfer) -> list[_Leg]:
        return [_Leg(f"{ref}:payout", "payout", pending.credit_account_id, ids[GATEWAY], pending.amount, ref, memo)]

    return await _resolve(
        session, ref=ref, post=True, memo=memo, clock=clock, extra_accounts=(GATEWAY,),
        follow=follow, follow_keys=("payout",),
    )


async def cancel_withdrawal(session: AsyncSession, *, ref: str, memo: str = "", clock: Clock | None = None) -> Transfer:
    """Void the pending withdrawal of ``ref``: the money is available again."""
    return await void(session, ref=ref, memo=memo, clock=clock)


# ------------------------------------------------------------------- reads


async def hold_state(session: AsyncSession, ref: str) -> str | None:
    """``pending`` | ``posted`` | ``voided``, or None when ``ref`` has no hold."""
    return await session.scalar(select(Transfer.state).where(Transfer.key == f"{ref}:hold"))


async def _view(session: AsyncSession, kind: str, user_id: str) -> WalletView:
    row = (
        await session.execute(
            select(Acct.debits_pending, Acct.debits_posted, Acct.credits_posted).where(
                Acct.kind == kind, Acct.owner == user_id
            )
        )
    ).first()
    if row is None:
        return WalletView(0, 0, 0)
    balance = int(row.credits_posted) - int(row.debits_posted)
    held = int(row.debits_pending)
    return WalletView(balance=balance, held=held, available=balance - held)


async def wallet(session: AsyncSession, user_id: str) -> WalletView:
    """A seeker's wallet: ``balance`` (posted), ``held`` (in escrow), ``available``."""
    return await _view(session, "wallet", user_id)


async def earnings(session: AsyncSession, user_id: str) -> WalletView:
    """A listener's earnings: ``balance``, ``held`` (withdrawals in flight), ``available``."""
    return await _view(session, "earnings", user_id)


async def _account_id(session: AsyncSession, kind: str, owner: str) -> str | None:
    return await session.scalar(select(Acct.id).where(Acct.kind == kind, Acct.owner == owner))


async def spent_since(session: AsyncSession, user_id: str, since: datetime) -> int:
    """What a seeker committed since ``since``: holds (pending or posted)
    created since then, less the voided ones and the refunds of those holds."""
    wallet_id = await _account_id(session, "wallet", user_id)
    if wallet_id is None:
        return 0
    hold = aliased(Transfer)
    mine = and_(
        hold.debit_account_id == wallet_id,
        hold.flags == "pending",
        hold.state != "voided",
        hold.created_at >= since,
    )
    held = await session.scalar(select(func.coalesce(func.sum(hold.amount), 0)).where(mine))
    refunded = await session.scalar(
        select(func.coalesce(func.sum(Transfer.amount), 0)).where(
            Transfer.credit_account_id == wallet_id,
            Transfer.code == "refund",
            Transfer.ref.in_(select(hold.ref).where(mine)),
        )
    )
    return int(held) - int(refunded)


async def statement(
    session: AsyncSession, user_id: str, account: str = "wallet", limit: int = 50, before: str | None = None
) -> list[StatementLine]:
    """Newest first.  A two-phase movement is one line that shows its state
    (托管中 / 已结算 / 已全额退回); its post/void rows are not listed again.
    ``before`` is the ``id`` of the last line of the previous page."""
    if account not in ("wallet", "earnings"):
        raise AppError("bad_account", "账户类型无效", "account must be wallet or earnings", 400)
    limit = max(1, min(int(limit), 200))
    cursor = None
    if before:
        if not before.isdigit() or len(before) > 19:
            raise AppError("bad_cursor", "分页参数无效", "invalid cursor", 400)
        cursor = int(before)
    acct = await _account_id(session, account, user_id)
    if acct is None:
        return []
    rows: list[Transfer] = []
    for side in (Transfer.debit_account_id, Transfer.credit_account_id):
        q = select(Transfer).where(side == acct, Transfer.flags.in_(("", "pending")))
        if cursor is not None:
            q = q.where(Transfer.id < cursor)
        rows += await session.scalars(q.order_by(Transfer.id.desc()).limit(limit))
    rows.sort(key=lambda t: t.id, reverse=True)
    return [
        StatementLine(
            id=str(t.id),
            created_at=t.created_at,
            code=t.code,
            label=CODE_LABELS.get(t.code, t.code),
            state=t.state,
            state_label=STATE_LABELS.get(t.code, {}).get(t.state, "") if t.flags == "pending" else "",
            ref=t.ref,
            memo=t.memo,
            amount=t.amount if t.credit_account_id == acct else -t.amount,
        )
        for t in rows[:limit]
    ]


# ------------------------------------------------------------------- audit


async def check_books(session: AsyncSession) -> dict:
    """Verify the ledger's invariants and return its figures (:func:`_check_books`),
    from one snapshot of the books.

    The check reads the accounts, then the transfers.  On PostgreSQL's default
    READ COMMITTED each statement sees the latest commits, so while money moves
    the two reads disagree and the check cries "books broken" when they are
    not: there it runs on a connection of its own in REPEATABLE READ (read
    only).  SQLite's transaction is one snapshot from its first read already."""
    engine = session.bind
    if engine is None or engine.dialect.name != "postgresql":
        return await _check_books(session)
    async with engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        async with AsyncSession(bind=conn) as snapshot:
            return await _check_books(snapshot)


async def _check_books(session: AsyncSession) -> dict:
    """Verify the ledger's invariants and return its figures.

    * all debits == all credits, posted and pending;
    * each account's four totals == the sums of its transfers;
    * every pending transfer is resolved by exactly the row its state says;
    * no account but the gateway is overdrawn; every escrow nets to zero;
    * money in user and platform accounts == money in from the gateway − money out.
    """
    problems: list[str] = []
    accts = (await session.execute(select(Acct))).scalars().all()
    totals = dict.fromkeys(_COLUMNS, 0)
    by_kind: dict[str, int] = {}
    for a in accts:
        for c in _COLUMNS:
            totals[c] += int(getattr(a, c))
        by_kind[a.kind] = by_kind.get(a.kind, 0) + int(a.credits_posted) - int(a.debits_posted)
    if totals["debits_posted"] != totals["credits_posted"]:
        problems.append(f"posted debits {totals['debits_posted']} != credits {totals['credits_posted']}")
    if totals["debits_pending"] != totals["credits_pending"]:
        problems.append(f"pending debits {totals['debits_pending']} != credits {totals['credits_pending']}")

    posted = Transfer.flags.in_(("", "post_pending"))
    open_pending = and_(Transfer.flags == "pending", Transfer.state == "pending")

    def sums(side):
        return select(
            side.label("acct"),
            func.coalesce(func.sum(case((posted, Transfer.amount), else_=0)), 0),
            func.coalesce(func.sum(case((open_pending, Transfer.amount), else_=0)), 0),
        ).group_by(side)

    expected: dict[str, list[int]] = {a.id: [0, 0, 0, 0] for a in accts}
    for acct, p, q in await session.execute(sums(Transfer.debit_account_id)):
        expected.setdefault(acct, [0, 0, 0, 0])[:2] = [int(q), int(p)]
    for acct, p, q in await session.execute(sums(Transfer.credit_account_id)):
        expected.setdefault(acct, [0, 0, 0, 0])[2:] = [int(q), int(p)]
    for a in accts:
        have = [int(getattr(a, c)) for c in _COLUMNS]
        if have != expected[a.id]:
            problems.append(f"account {a.id} ({a.kind}) totals {have} != transfers {expected[a.id]}")
        available = have[3] - have[1] - have[0]
        if a.kind != "gateway" and (available < 0 or min(have) < 0):
            problems.append(f"account {a.id} ({a.kind}) is negative")
        if a.kind == "escrow" and have[3] != have[1]:
            problems.append(f"escrow {a.owner} holds {have[3] - have[1]} posted")

    resolution = {"pending": None, "posted": "post_pending", "voided": "void_pending"}
    resolver = Transfer.__table__.alias("resolver")
    q = (
        select(Transfer.id, Transfer.state, Transfer.amount, resolver.c.flags, resolver.c.amount)
        .outerjoin(resolver, resolver.c.pending_id == Transfer.id)
        .where(Transfer.flags == "pending")
    )
    pending_count = 0
    for tid, state, amount, rflags, ramount in await session.execute(q):
        pending_count += 1
        if resolution.get(state, "?") != rflags or (rflags is not None and ramount != amount):
            problems.append(f"pending transfer {tid} is {state} but resolved by {rflags}")

    money_in = int(await session.scalar(
        select(func.coalesce(func.sum(Transfer.amount), 0))
        .join(Acct, Acct.id == Transfer.debit_account_id)
        .where(Acct.kind == "gateway", posted)
    ))
    money_out = int(await session.scalar(
        select(func.coalesce(func.sum(Transfer.amount), 0))
        .join(Acct, Acct.id == Transfer.credit_account_id)
        .where(Acct.kind == "gateway", posted)
    ))
    inside = sum(v for k, v in by_kind.items() if k != "gateway")
    if inside != money_in - money_out:
        problems.append(f"money inside {inside} != in {money_in} - out {money_out}")
    transfers = int(await session.scalar(select(func.count()).select_from(Transfer)))
    return {
        "ok": not problems,
        "problems": problems[:50],
        "accounts": len(accts),
        "transfers": transfers,
        "pending_transfers": pending_count,
        **totals,
        "money_in": money_in,
        "money_out": money_out,
        "wallets": by_kind.get("wallet", 0),
        "earnings": by_kind.get("earnings", 0),
        "platform_revenue": by_kind.get("platform_revenue", 0),
        "escrow_held": sum(int(a.credits_pending) for a in accts if a.kind == "escrow"),
        "payouts_in_flight": sum(int(a.credits_pending) for a in accts if a.kind == "payouts"),
    }


# ------------------------------------------------------- platform-paid time


async def guardian_pay(
    session: AsyncSession, *, ref: str, listener_id: str, amount: int, memo: str = "", clock: Clock | None = None
) -> list[Transfer]:
    """The platform pays a listener for time spent in guardian mode beyond a
    paid period (supervision, issue 4): platform revenue → the listener's
    earnings (code ``settle``, key ``<ref>:payee``); the seeker is never
    charged.  If platform revenue cannot cover it, the shortfall is first
    paid in from outside (gateway → platform revenue, code ``adjustment``,
    key ``<ref>:fund``).  Exactly once per ``ref``: a repeat returns the
    original transfers."""
    _check_ref(ref)
    _check_amount(amount)
    payee = ("earnings", listener_id)
    now = _now(session, clock)

    async def body() -> list[Transfer]:
        ids = await _lock(session, [GATEWAY, PLATFORM, payee], now)
        existing = await _by_key(session, f"{ref}:payee")
        if existing is not None:
            if (existing.credit_account_id, existing.amount) != (ids[payee], amount):
                raise key_conflict()
            return await _by_keys(session, [f"{ref}:fund", f"{ref}:payee"])
        revenue = int(await session.scalar(
            select(Acct.credits_posted - Acct.debits_posted - Acct.debits_pending).where(Acct.id == ids[PLATFORM])
        ) or 0)
        legs = []
        if revenue < amount:
            legs.append(_Leg(f"{ref}:fund", "adjustment", ids[GATEWAY], ids[PLATFORM], amount - revenue, ref,
                             "平台守护基金补足"))
        legs.append(_Leg(f"{ref}:payee", "settle", ids[PLATFORM], ids[payee], amount, ref, memo))
        rows = await _move(session, now, legs, {i: k for (k, _), i in ids.items()})
        log.info("ledger guardian pay %s amount=%d", ref, amount)
        return rows

    return await _atomic(session, body)


# ------------------------------------------------------------ closing (注销)

async def closing_blockers(session: AsyncSession, user_id: str) -> list[str]:
    """Money the person still has here keeps the account open: nobody's
    money is written off by closing an account."""
    out = []
    w, e = await wallet(session, user_id), await earnings(session, user_id)
    if w.balance:
        out.append(f"钱包余额 {yuan(w.balance)} 还没用完或退回" + (f"（其中 {yuan(w.held)} 在托管或退款中）" if w.held else "")
                   + "：可以在钱包页申请退款，退回原支付账户")
    if e.balance:
        out.append(f"收入还有 {yuan(e.balance)} 没有提现到账" + (f"（提现中 {yuan(e.held)}）" if e.held else ""))
    return out


async def export_for(session: AsyncSession, user_id: str) -> dict:
    """Every movement of the person's wallet and earnings (all pages)."""
    out = {}
    for account in ("wallet", "earnings"):
        lines, before = [], None
        while True:
            page = await statement(session, user_id, account, limit=200, before=before)
            lines += [dataclasses.asdict(x) for x in page]
            if len(page) < 200:
                break
            before = page[-1].id
        out[account] = lines
    return out
