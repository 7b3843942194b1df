"""Orders: offerings, quotes, purchase, the live reply clock, endings,
settlement, disputes and gifts.  No HTTP here.

Every state change is a conditional UPDATE (``WHERE status = …``) or runs
under the order's row lock (``FOR UPDATE`` on PostgreSQL, ``BEGIN
IMMEDIATE`` on SQLite via :func:`begin_write`), in the same transaction as
the money it moves — so a settle racing a refund, or two scheduler ticks
racing each other, end in exactly one outcome.  Side effects that are not
money (notices in the chat, live events) happen after COMMIT and are
idempotent, so a crash between the two only delays them to the next tick.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import orjson
from sqlalchemy import Select, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from miaohui.accounts.models import User
from miaohui.chat import service as chat
from miaohui.clock import utc
from miaohui.core.db import begin_write, new_id
from miaohui.core.errors import AppError, not_found
from miaohui.ledger import service as ledger
from miaohui.listeners import service as listeners
from miaohui.orders import blocks
from miaohui.orders import contract as terms
from miaohui.orders.models import LIVE, Block, Dispute, Gift, Offering, Order, Turn
from miaohui.orders.pricing import KINDS, Tariff, quote, windows_for
from miaohui.sla import engine
from miaohui.supervision import service as supervision
from miaohui.verification import records as trust
from miaohui.wellbeing import service as wellbeing
from miaohui.wellbeing.habits import Sitting

log = logging.getLogger("miaohui.orders")


def order_not_found() -> AppError:
    return not_found("订单", "order")


# ------------------------------------------------------------------ offerings


async def offerings_for(db: AsyncSession, listener_id: str, only_active: bool = True) -> list[Offering]:
    q = select(Offering).where(Offering.listener_id == listener_id)
    if only_active:
        q = q.where(Offering.active)
    rows = list(await db.scalars(q))
    return sorted(rows, key=lambda o: KINDS.index(o.kind))


async def set_offering(db: AsyncSession, ctx, listener: User, *, kind: str, response_window_s: int, active: bool = True,
                       daily_start: str = "21:00", daily_minutes: int = 60) -> Offering:
    s = ctx.settings
    if listener.role != "listener":
        raise AppError("listeners_only", "只有倾听师可以发布服务", "only listeners publish offerings", 403)
    if kind not in KINDS:
        raise AppError("bad_kind", "不支持的服务类型", "unknown offering kind", 400)
    if response_window_s not in s.response_windows:
        raise AppError("bad_window", f"回复时限须为 {s.response_windows} 秒之一",
                       f"response window must be one of {s.response_windows} s", 400)
    now = ctx.clock.now()
    off = await db.scalar(select(Offering).where(Offering.listener_id == listener.id, Offering.kind == kind))
    if off is None:
        off = Offering(listener_id=listener.id, kind=kind, created_at=now)
        db.add(off)
    off.response_window_s = response_window_s
    off.active = active
    off.daily_start = daily_start
    off.daily_minutes = daily_minutes
    off.updated_at = now
    await db.flush()
    return off


# --------------------------------------------------------------------- quotes


def tariff(settings) -> Tariff:
    return Tariff.from_settings(settings)


async def make_quote(db: AsyncSession, ctx, listener_id: str, kind: str, start_at: datetime | None = None):
    """``(quote, offering, profile)`` for buying ``kind`` from the listener."""
    s = ctx.settings
    profile = await listeners.get_listed(db, listener_id)
    if profile is None:
        raise AppError("listener_unavailable", "该倾听师暂不可预约", "listener is not available", 404)
    if kind not in KINDS:
        raise AppError("bad_kind", "不支持的服务类型", "unknown offering kind", 400)
    offering = await db.scalar(
        select(Offering).where(Offering.listener_id == listener_id, Offering.kind == kind, Offering.active)
    )
    if offering is None:
        raise AppError("offering_unavailable", "该倾听师未提供此服务", "listener does not offer this", 404)
    now = ctx.clock.now()
    start = now if start_at is None else start_at.astimezone(UTC)
    if start < now - timedelta(minutes=1) or start > now + timedelta(days=s.schedule_ahead_days):
        raise AppError("bad_start", f"开始时间须在现在到 {s.schedule_ahead_days} 天内",
                       f"start must be between now and {s.schedule_ahead_days} days ahead", 400)
    return quote_at(s, profile.price_per_hour_fen, kind, max(start, now), offering), offering, profile


def quote_at(settings, base_fen: int, kind: str, start: datetime, offering: Offering | None = None):
    """The quote for ``kind`` at ``base_fen``/hour from ``start``, under the
    platform's tariff and package discounts: what a seeker would pay, and what
    the listener's own page shows them they are selling."""
    t = tariff(settings)
    daily = {"daily_start": offering.daily_start, "daily_minutes": offering.daily_minutes} if offering else {}
    wins = windows_for(kind, start, t, **daily)
    return quote(kind, base_fen, wins, t, settings.package_discounts.get(kind, 0))


# ------------------------------------------------------------------- purchase

# A quote for a service starting now moves with the clock (30 minutes bought
# at 22:50 hold more night every second).  When the total a seeker confirmed
# is too low, the figure offered instead is the most the package can cost if
# they confirm it within this long, so confirming it goes through; the charge
# is always the price at the moment of purchase, never more than confirmed.
PRICE_HOLD_SECONDS = 60


def extension_quote(settings, base: Order, kind: str):
    """The quote for extending ``base`` by ``kind`` (from its end), at the rate
    the seeker agreed to in ``base``'s contract — its daytime base and night
    rule — never at the listener's price of the day."""
    c = base.contract
    t = c["tariff"]
    rule = Tariff(t["timezone"], t["night_start_hour"], t["night_end_hour"], t["night_surcharge_pct"])
    wins = windows_for(kind, base.ends_at, rule)
    return quote(kind, c["price"]["base_fen_per_hour"], wins, rule, settings.package_discounts.get(kind, 0))


def _price_ceiling(settings, base_fen: int, kind: str, start_at: datetime | None, now: datetime, daily) -> int:
    """The highest total ``kind`` can have if bought within
    :data:`PRICE_HOLD_SECONDS` from ``now`` (the price is piecewise linear in
    the start time and monotone on that scale: its ends bound it)."""
    start = now if start_at is None else start_at.astimezone(UTC)
    later = now + timedelta(seconds=PRICE_HOLD_SECONDS)
    return max(quote_at(settings, base_fen, kind, max(start, t), daily).total_fen for t in (now, later))


def _price_changed(q, ceiling: int, expected: int) -> AppError:
    """409: the total the seeker confirmed is below today's price; nothing moved."""
    label = terms.KIND_LABELS[q.kind]
    now_zh = f"现在是 {ledger.yuan(q.total_fen)}"
    if ceiling > q.total_fen:
        now_zh += f"，{PRICE_HOLD_SECONDS} 秒内确认最多 {ledger.yuan(ceiling)}（按支付那一刻的价格收取）"
    err = AppError(
        "price_changed",
        f"价格有变化：{label}{now_zh}，你确认的是 {ledger.yuan(expected)}。没有扣任何费用，请确认新价格后再支付。",
        f"the price changed: {q.kind} now costs {q.total_fen} fen (at most {ceiling} fen if confirmed within "
        f"{PRICE_HOLD_SECONDS} s), you confirmed {expected} fen; nothing was charged — confirm the new price to buy",
        409,
    )
    err.extra = {"total_fen": ceiling, "expected_total_fen": expected, "quote": q.to_dict()}
    return err


def _slot(start_at: datetime | None, extends: Order | None) -> str:
    """What a confirmation binds besides listener, kind and amount: the start
    asked for (``now``, or the instant), or the order being extended."""
    if extends is not None:
        return f"after:{extends.id}"
    if start_at is None:
        return "now"
    return start_at.astimezone(UTC).replace(microsecond=0).isoformat()


def _confirm_token(secret: str, seeker_id: str, listener_id: str, kind: str, slot: str, price: int,
                   issued: int) -> str:
    msg = f"{seeker_id}:{listener_id}:{kind}:{slot}:{price}:{issued}".encode()
    return f"{issued}.{price}.{hmac.new(secret.encode(), msg, hashlib.sha256).hexdigest()[:32]}"


def _late_night(ctx, price: int) -> bool:
    s = ctx.settings
    hour = ctx.clock.now().astimezone(tariff(s).tz).hour
    a, b = s.late_night_hours
    return price > s.late_night_confirm_fen and a <= hour < b


def _confirm_required(ctx, seeker: User, listener_id: str, kind: str, slot: str, price: int, *,
                      used: bool = False) -> AppError:
    s = ctx.settings
    now = int(ctx.clock.now().timestamp())
    pause = s.late_night_pause_seconds
    if used:
        zh = f"这次确认已经用于另一笔订单。深夜大额消费（{ledger.yuan(price)}）需要重新确认：先休息一下，{pause} 秒后再确认"
        en = "that confirmation has already paid for an order; a late-night purchase needs a new one"
    else:
        zh = f"深夜大额消费（{ledger.yuan(price)}）需要二次确认：先休息一下，{pause} 秒后再确认"
        en = f"late-night purchase over ¥{s.late_night_confirm_fen // 100} needs a second confirmation"
    err = AppError("confirm_required", zh, en, 409)
    err.extra = {"confirm_token": _confirm_token(s.effective_secret_key, seeker.id, listener_id, kind, slot, price, now),
                 "wait_seconds": pause}
    return err


def _check_confirmation(ctx, seeker: User, listener_id: str, kind: str, slot: str, price: int,
                        token: str | None) -> str:
    """Over ¥200 between 00:00 and 06:00: a second, deliberate confirmation
    after a short pause — a speed bump for 3 a.m. impulse purchases.  The
    token binds seeker, listener, package, start (or the order extended) and
    the amount shown; it is good for ten minutes and for one order (the
    caller spends it).  Returns the accepted token's SHA-256."""
    s = ctx.settings
    now = int(ctx.clock.now().timestamp())
    if token:
        try:
            issued_s, price_s, _ = token.split(".", 2)
            issued, confirmed_price = int(issued_s), int(price_s)
        except ValueError:
            issued, confirmed_price = -1, -1
        expected = _confirm_token(s.effective_secret_key, seeker.id, listener_id, kind, slot, confirmed_price, issued)
        # The confirmation covers the amount shown; a package priced by the
        # second (包夜 bought at night) may only have become cheaper since.
        good = hmac.compare_digest(token, expected) and price <= confirmed_price
        if good and issued + s.late_night_pause_seconds <= now <= issued + 600:
            return hashlib.sha256(token.encode()).hexdigest()
        if good and now < issued + s.late_night_pause_seconds:
            wait = issued + s.late_night_pause_seconds - now
            raise AppError("confirm_too_soon", f"请再想想，{wait} 秒后可以确认", f"please wait {wait} s before confirming",
                           409)
    raise _confirm_required(ctx, seeker, listener_id, kind, slot, price)


async def _check_figure(db: AsyncSession, ctx, seeker: User, listener_id: str, kind: str, slot: str, q,
                        expected_total_fen: int | None, confirm_token: str | None, ceiling) -> str | None:
    """The checks on the figure itself, made on the first look and again under
    the purchase's locks: priced at all, not above what the seeker confirmed
    (409 ``price_changed`` offering ``ceiling()``), and, late at night, a
    confirmation that is valid and not yet spent.  Returns that
    confirmation's hash (for the caller to spend), or None."""
    if q.total_fen <= 0:
        raise AppError("unpriced", "该倾听师尚未定价", "listener has no price", 409)
    if expected_total_fen is not None and q.total_fen > expected_total_fen:
        raise _price_changed(q, ceiling(), expected_total_fen)
    if not _late_night(ctx, q.total_fen):
        return None
    used = _check_confirmation(ctx, seeker, listener_id, kind, slot, q.total_fen, confirm_token)
    if await wellbeing.confirmation_used(db, used):
        raise _confirm_required(ctx, seeker, listener_id, kind, slot, q.total_fen, used=True)
    return used


def _overlaps(order: Order, start: datetime, end: datetime) -> bool:
    return order.starts_at < end and start < order.ends_at


def _cannot_extend() -> AppError:
    return AppError("cannot_extend", "只能为进行中的订单续费 30 分钟或 1 小时", "only a running order can be extended", 409)


async def purchase(
    ctx, seeker: User, listener_id: str, kind: str, *, start_at: datetime | None = None,
    confirm_token: str | None = None, extends: Order | None = None, expected_total_fen: int | None = None,
) -> tuple[Order, dict]:
    """Buy a package: contract, capacity check, escrow hold — one transaction.
    Returns ``(order, notes)`` (notes: budget warning).

    ``expected_total_fen`` is the total the seeker was shown (the API requires
    it): if the price is now higher, 409 ``price_changed`` with the new quote,
    and nothing moves; a lower price is charged as it is.  ``extends``: an
    extension of that running order, starting at its end and priced at its
    contract's rate (:func:`extension_quote`).

    Checks that only read run first (and fail fast); the write transaction
    then locks the listener's profile (and the order extended), and repeats
    every check whose answer another transaction could change: the price,
    the base order still running, the confirmation not yet spent, the
    budget (its row locked: one purchase per seeker at a time)."""
    s = ctx.settings
    if seeker.role != "seeker":
        raise AppError("seekers_only", "只有倾诉者可以购买服务", "only seekers can buy", 403)
    slot = _slot(start_at, extends)
    async with ctx.sessionmaker() as db:
        q, offering, profile = await make_quote(db, ctx, listener_id, kind, start_at)
        if extends is not None:
            q = extension_quote(s, extends, kind)
        # Trust gates: a verified ID showing under 18 cannot buy; a listener serves
        # only after real-name verification and the training quiz.
        await trust.require_adult_buyer(db, seeker.id, ctx.clock.now())
        await trust.require_can_serve(db, listener_id, ctx.clock.now())
        if await blocks.is_blocked(db, listener_id, seeker.id):
            raise AppError("blocked", "该倾听师暂时无法为你服务", "this listener cannot serve you", 403)
        if not profile.accepting and extends is None:
            raise AppError("not_accepting", "该倾听师暂停接单", "listener is not taking orders", 409)
        daily = SimpleNamespace(daily_start=offering.daily_start, daily_minutes=offering.daily_minutes)
        await _check_figure(db, ctx, seeker, listener_id, kind, slot, q, expected_total_fen, confirm_token,
                            lambda: q.total_fen if extends is not None else _price_ceiling(
                                s, profile.price_per_hour_fen, kind, start_at, ctx.clock.now(), daily))
        await wellbeing.check_purchase(db, ctx, seeker.id, q.total_fen)
        # An extension keeps the reply window of the order it extends (the promise agreed to).
        window_s = extends.response_window_s if extends is not None else offering.response_window_s
        offering_id = offering.id
        await db.rollback()  # the checks read; now write under the lock

        await begin_write(db)
        profile = await listeners.lock_for_purchase(db, listener_id)
        if profile is None:
            raise AppError("listener_unavailable", "该倾听师暂不可预约", "listener is not available", 404)
        now = ctx.clock.now()
        base = None
        if extends is not None:
            # The order extended, locked (after the profile, as the suspension
            # does): it must still be running — a no-show, a block or an early
            # end since the first check leaves nothing to extend.
            base = await db.scalar(select(Order).where(Order.id == extends.id).with_for_update()
                                   .execution_options(populate_existing=True))
            if base is None or base.seeker_id != seeker.id or base.status != "active":
                raise _cannot_extend()
            q = extension_quote(s, base, kind)
        else:
            # Priced again from the locked profile: a price change that
            # committed since the first look is seen here.
            start = now if start_at is None else start_at.astimezone(UTC)
            q = quote_at(s, profile.price_per_hour_fen, kind, max(start, now), daily)
        used = await _check_figure(db, ctx, seeker, listener_id, kind, slot, q, expected_total_fen, confirm_token,
                                   lambda: q.total_fen if base is not None else _price_ceiling(
                                       s, profile.price_per_hour_fen, kind, start_at, now, daily))
        order_id = new_id()
        if used is not None:
            # Spent now, first of all the writes: a concurrent purchase with the
            # same token waits here for this transaction, then fails on the key.
            try:
                await wellbeing.use_confirmation(db, used, seeker.id, order_id, now)
            except IntegrityError:
                raise _confirm_required(ctx, seeker, listener_id, kind, slot, q.total_fen, used=True) from None
        # The budget, under its row lock: concurrent purchases by this seeker
        # are counted one at a time, each seeing the holds committed before it.
        notes = await wellbeing.check_purchase(db, ctx, seeker.id, q.total_fen, lock=True)
        live = list(await db.scalars(select(Order).where(Order.listener_id == listener_id, Order.status.in_(LIVE))))
        overlapping = [o for o in live if _overlaps(o, q.starts_at, q.ends_at)]
        if any(o.seeker_id == seeker.id and o.id != (base.id if base else None) for o in overlapping):
            raise AppError("order_overlap", "你在这段时间已有该倾听师的订单", "you already have an order in this time", 409)
        others = [o for o in overlapping if not (base is not None and o.id == base.id)]
        if len(others) >= min(profile.capacity, s.max_concurrent_orders):
            raise AppError("listener_full", "该倾听师这段时间已满员，换个时间或换位倾听师吧",
                           "listener is at capacity for this time", 409)
        conv, _ = await chat.start_with_listener(db, ctx.clock, seeker, listener_id)
        card = listeners.card(profile, await db.get(User, listener_id), "offline")
        contract = terms.build(s, q, window_s=window_s, listener=card, seeker_id=seeker.id)
        if base is not None:
            # Priced under the base order's night rule: the contract says so.
            contract["tariff"] = dict(base.contract["tariff"])
            contract["extends_order_id"] = base.id
            contract["text"] = terms.text(contract)
        order = Order(
            id=order_id, seeker_id=seeker.id, listener_id=listener_id, conversation_id=conv.id,
            offering_id=offering_id, kind=kind, status="scheduled", price_fen=q.total_fen, response_window_s=window_s,
            windows=[[a.isoformat(), b.isoformat()] for a, b in q.windows], starts_at=q.starts_at, ends_at=q.ends_at,
            contract=contract, contract_hash=terms.digest(contract), extends_order_id=base.id if base else None,
            created_at=now, sla_seq=0, turns=0, breaches=0, notice_sent=False, compensation_fen=0, unserved_fen=0,
            refund_fen=0, commission_fen=0, listener_net_fen=0,
            # An extension continues a service the listener is already in —
            # if they are: one bought before they arrived has its own no-show
            # clock (and is refunded with the base order if that is a no-show).
            listener_arrived_at=base.listener_arrived_at if base is not None else None,
        )
        db.add(order)
        await db.flush()
        await ledger.hold(db, ref=f"order:{order.id}", payer_id=seeker.id, amount=q.total_fen,
                          memo=f"{terms.KIND_LABELS[kind]} · {card['display_name']}")
        started = False
        if order.starts_at <= now and base is None:
            started = await _activate(db, order, now)
        order.next_due_at = next_due(order, s)
        await db.commit()
    await _after_change(ctx, order, started=started)
    return order, notes


async def _activate(db: AsyncSession, order: Order, now: datetime) -> bool:
    """Start the service: attach to the conversation; messages before now
    do not count."""
    last = (await chat.last_seqs(db, [order.conversation_id])).get(order.conversation_id, 0)
    result = await db.execute(
        update(Order).where(Order.id == order.id, Order.status == "scheduled")
        .values(status="active", activated_at=now, sla_seq=last)
    )
    if result.rowcount != 1:
        return False
    await db.refresh(order)
    await chat.attach_order(db, order.conversation_id, order.id)
    return True


# ----------------------------------------------------------- the reply clock


def _windows(order: Order) -> list[tuple[datetime, datetime]]:
    return [(datetime.fromisoformat(a), datetime.fromisoformat(b)) for a, b in order.windows]


def reply_deadline(order: Order) -> datetime | None:
    """When the waiting turn breaches (``None``: no turn waits)."""
    if order.pending_since is None:
        return None
    return order.pending_since + timedelta(seconds=order.response_window_s)


# The reply clock's amber point, as the listener's pages draw it (orderbar.js,
# console_orders.js): past it the listener is warned while there is still time.
CLOCK_WARNING_SHARE = 0.7


def clock_warning_at(order: Order) -> datetime | None:
    """When the listener is to be warned that the running reply clock nears
    the window — ``None`` when no turn waits, this turn was warned already,
    or the service window closes (ending the turn) before that moment.

    The open page warns from its own timer; this is for a listener with no
    page in front of them (the push relay turns the event into a notice), so
    a phone in a pocket hears it too, once per turn, however many processes
    run schedulers (the turn is marked under the order's row lock)."""
    if order.pending_since is None or order.clock_warned_seq == order.pending_seq:
        return None
    at = order.pending_since + timedelta(seconds=order.response_window_s * CLOCK_WARNING_SHARE)
    w = engine.in_windows(order.pending_since, _windows(order))
    return at if w is not None and at < w[1] else None


def next_due(order: Order, s) -> datetime | None:
    """The earliest moment the scheduler must look at this order."""
    c = order.contract
    if order.status == "scheduled":
        return order.starts_at
    if order.status == "active":
        cands = [order.ends_at]
        if not order.notice_sent:
            notice = order.ends_at - timedelta(minutes=c["end_notice_minutes"])
            if notice > order.starts_at:
                cands.append(notice)
        if order.listener_arrived_at is None:
            cands.append(order.starts_at + timedelta(minutes=c["no_show_minutes"]))
        if order.pending_since is not None:
            cands.append(order.pending_since + timedelta(minutes=c["disappear_minutes"]))
            w = engine.in_windows(order.pending_since, _windows(order))
            if w is not None:
                cands.append(w[1])
            warn = clock_warning_at(order)
            if warn is not None:
                cands.append(warn)
        return min(cands)
    if order.status == "ended":
        return order.settle_at
    return None


def _state(order: Order) -> engine.ReplyState:
    return engine.ReplyState(order.sla_seq, order.pending_since, order.pending_seq, order.listener_arrived_at)


def _store_state(db: AsyncSession, order: Order, st: engine.ReplyState) -> None:
    order.sla_seq = st.sla_seq
    order.pending_since = st.pending_since
    order.pending_seq = st.pending_seq
    order.listener_arrived_at = st.listener_arrived_at
    for t in st.new_turns:
        db.add(Turn(order_id=order.id, first_seq=t.first_seq, reply_seq=t.reply_seq, asked_at=t.asked_at,
                    replied_at=t.replied_at, latency_ms=t.latency_ms, breached=t.breached,
                    listener_id=order.listener_id))
        order.turns += 1
        order.breaches += int(t.breached)
    st.new_turns = []


async def _lock(db: AsyncSession, order_id: str) -> Order | None:
    await begin_write(db)
    return await db.scalar(select(Order).where(Order.id == order_id).with_for_update())


async def _catch_up(db: AsyncSession, order: Order) -> None:
    """Apply messages the order has not seen yet (idempotent by ``sla_seq``)."""
    if order.status != "active":
        return
    rows = await chat.message_meta(db, order.conversation_id, order.sla_seq)
    if not rows:
        return
    st = engine.apply_messages(
        _state(order), rows, windows=_windows(order), window_s=order.response_window_s,
        seeker_id=order.seeker_id, listener_id=order.listener_id, starts_at=order.starts_at,
    )
    _store_state(db, order, st)


async def on_messages(ctx, order_id: str) -> None:
    """A message under this order was committed: advance its reply clock."""
    async with ctx.sessionmaker() as db:
        order = await _lock(db, order_id)
        if order is None or order.status != "active":
            return
        before = (order.pending_since, order.turns, order.listener_arrived_at)
        await _catch_up(db, order)
        changed = before != (order.pending_since, order.turns, order.listener_arrived_at)
        order.next_due_at = next_due(order, ctx.settings)
        await db.commit()
    if changed:
        await _after_change(ctx, order)


async def tick(ctx, order_id: str) -> None:
    """Everything time can do to an order: start, notices, no-show,
    disappearance, scheduled end, settlement."""
    s = ctx.settings
    now = ctx.clock.now()
    posts: list[tuple[str, str]] = []
    voided: list[Order] = []
    started = warn = False
    async with ctx.sessionmaker() as db:
        order = await _lock(db, order_id)
        if order is None or order.next_due_at is None or order.next_due_at > now:
            return
        c = order.contract
        if order.status == "scheduled" and order.starts_at <= now:
            # Only a listener who may still serve starts a service (one suspended
            # since the purchase may not): otherwise the seeker gets it all back.
            # A plain read, no lock: a suspension locks the profile and then the
            # orders, so waiting here for the profile could deadlock; if one
            # commits after this read, it finds the order active and ends it.
            if await listeners.get_listed(db, order.listener_id) is None:
                (_, notice), *rest = await _close_unservable(db, ctx, order, now)
                posts.append((f"order:{order.id}:end", notice))
                voided = [ext for ext, _ in rest]
            else:
                started = await _activate(db, order, now)
                if started:
                    await _inherit_arrival(db, order)
        holding = False
        if order.status == "active":
            await _catch_up(db, order)
            st = _state(order)
            engine.expire(st, now, _windows(order), order.response_window_s)
            _store_state(db, order, st)
            warn_at = clock_warning_at(order)
            if warn_at is not None and now >= warn_at:
                # Marked even when it is too late to say (a scheduler that was down): said at most once.
                order.clock_warned_seq = order.pending_seq
                warn = now < reply_deadline(order)
            guard = None
            if _time_would_interrupt(order, now):
                guard = await supervision.guardian_for_order(db, order.conversation_id, order.id, now, order.sla_seq)
                holding = guard is not None and guard.holding
            if holding:
                pass  # guardian mode: no end, no "time's up", no notice while the risk case is open
            elif order.listener_arrived_at is None and now >= order.starts_at + timedelta(minutes=c["no_show_minutes"]):
                voided = await _end(db, ctx, order, "no_show", now)
            elif order.pending_since is not None and now >= order.pending_since + timedelta(
                minutes=c["disappear_minutes"]
            ):
                voided = await _end(db, ctx, order, "disappeared", order.pending_since + timedelta(
                    minutes=c["disappear_minutes"]))
                posts.append((f"order:{order.id}:end", "倾听师超过10分钟未回复，本次服务已提前结束；"
                              "未服务时长与超时赔付将自动退还给你。"))
            elif now >= order.ends_at:
                voided = await _end(db, ctx, order, "completed", order.ends_at)
                # Released from guardian mode: the platform pays the time beyond the paid end.
                if guard is not None and await _pay_guardian_time(db, ctx, order, guard, now):
                    posts.append((f"order:{order.id}:end", GUARDIAN_END_NOTICE))
                else:
                    posts.append((f"order:{order.id}:end", "时间到了哦，这次的倾诉就先到这里。谢谢你愿意说出来，"
                                  "照顾好自己；想继续的话可以一键续费。"))
            elif not order.notice_sent and now >= order.ends_at - timedelta(minutes=c["end_notice_minutes"]):
                order.notice_sent = True
                posts.append((f"order:{order.id}:notice", f"温馨提示：本次服务还剩 {c['end_notice_minutes']} 分钟。"))
        if order.status == "ended" and order.settle_at is not None and now >= order.settle_at:
            await _settle(db, order, None, now)
        order.next_due_at = next_due(order, s)
        if holding and order.next_due_at is not None and order.next_due_at <= now:
            # Look again later (resolving the case asks for a look at once).
            order.next_due_at = now + timedelta(seconds=s.guardian_recheck_seconds)
        await db.commit()
    for client_id, body in posts:
        try:
            await chat.post_system(ctx, order.conversation_id, client_id, body)
        except Exception:  # the notice is retried by nothing; the order state is what matters
            log.warning("system notice failed for an order")
    await _after_change(ctx, order, started=started, clock_warning=warn and order.status == "active")
    await _after_voiding(ctx, voided)


async def _inherit_arrival(db: AsyncSession, order: Order) -> None:
    """An extension starting: if the listener has arrived in the order it
    extends (by now ended or ending), they are already here — no no-show
    clock.  A plain read of that order (it only ever goes from no arrival to
    one)."""
    if order.extends_order_id is None or order.listener_arrived_at is not None:
        return
    arrived = await db.scalar(select(Order.listener_arrived_at).where(Order.id == order.extends_order_id))
    if arrived is not None:
        order.listener_arrived_at = arrived


SUSPENDED_REFUND_NOTICE = ("平台已暂停该倾听师的服务，这笔订单已取消，费用已全额退回你的钱包。"
                           "你可以选择其他倾听师，或随时使用 AI 陪伴。")
SUSPENDED_END_NOTICE = ("平台已暂停该倾听师的服务，本次服务已提前结束。未服务的时长和超时赔付将全额退还给你；"
                        "对已服务的部分有异议，可以在结束后 {hours} 小时内申诉。")


async def close_for_suspension(db: AsyncSession, ctx, listener_id: str, now: datetime) -> list[tuple[Order, str]]:
    """The listener has just been suspended, in the caller's transaction (the
    conditional status change already made, so it happens once): every order
    of theirs that has not finished is closed now, in that same transaction,
    by :func:`_close_unservable`.  Returns ``(order, notice)`` pairs for
    :func:`after_suspension`, once committed.

    Locks, in this order: the profile row (the caller's UPDATE; a purchase
    locks it first too), these orders by start (an order before the
    extensions that follow it, the order in which endings lock a chain),
    then the ledger's accounts.  Ticks and endings lock an order (and its
    extensions) and then accounts, and never wait for the profile (the tick
    reads it unlocked), so nothing waits in a cycle."""
    await begin_write(db)
    rows = list(await db.scalars(
        select(Order).where(Order.listener_id == listener_id, Order.status.in_(LIVE))
        .order_by(Order.starts_at, Order.id).with_for_update()
    ))
    closed: list[tuple[Order, str]] = []
    for order in rows:
        if order.status in LIVE:  # else voided above, with the order it extended
            closed += await _close_unservable(db, ctx, order, now)
    return closed


async def after_suspension(ctx, closed: list[tuple[Order, str]]) -> None:
    """After COMMIT: the notice in each conversation and the live order events."""
    for order, notice in closed:
        try:
            await chat.post_system(ctx, order.conversation_id, f"order:{order.id}:end", notice)
        except Exception:  # the order's state is what matters; the notice is only a courtesy
            log.warning("system notice failed for an order")
        await _after_change(ctx, order)


async def _close_unservable(db: AsyncSession, ctx, order: Order, now: datetime) -> list[tuple[Order, str]]:
    """Close an order whose listener may no longer serve (suspended), row
    locked, and return ``(order, notice for the seeker)`` for it and for each
    extension of it voided with it.  Not started, or started but the
    listener never arrived: the hold is voided, everything back at once.
    Running and served: it ends now like a listener's early end (``_end``,
    reason ``suspended``): unserved time and breach compensation refunded,
    the served part paid after the dispute window, within which the seeker
    may dispute it (a supervisor can refund the rest).  Either way the
    extensions that were to follow it are refunded whole."""
    await _catch_up(db, order)  # messages up to now: did the listener arrive?
    if order.status == "active" and order.listener_arrived_at is not None:
        voided = await _end(db, ctx, order, "suspended", now)
        notice = SUSPENDED_END_NOTICE.format(hours=order.contract["dispute_window_hours"])
    else:
        voided = await _void_extensions(db, order, "suspended", now)
        if order.status == "active":
            await chat.attach_order(db, order.conversation_id, None, only_if=order.id)
        await ledger.void(db, ref=f"order:{order.id}", memo="倾听师被平台暂停，全额退款")
        order.status, order.end_reason, order.ended_at, order.closed_at = "refunded", "suspended", now, now
        order.refund_fen = order.unserved_fen = order.price_fen
        notice = SUSPENDED_REFUND_NOTICE
    order.next_due_at = next_due(order, ctx.settings)
    return [(order, notice)] + [(ext, SUSPENDED_REFUND_NOTICE) for ext in voided]


GUARDIAN_END_NOTICE = ("本次服务的付费时长已经结束。超出的陪伴时间由平台承担，不向你收费。"
                       "谢谢你愿意说出来，照顾好自己；任何时候想说话，都可以再来。")


def _time_would_interrupt(order: Order, now: datetime) -> bool:
    """Would time alone end this active order, or post its end notice, now?"""
    c = order.contract
    return (
        now >= order.ends_at
        or (order.listener_arrived_at is None and now >= order.starts_at + timedelta(minutes=c["no_show_minutes"]))
        or (order.pending_since is not None and now >= order.pending_since + timedelta(minutes=c["disappear_minutes"]))
        or (not order.notice_sent and now >= order.ends_at - timedelta(minutes=c["end_notice_minutes"]))
    )


async def _pay_guardian_time(db: AsyncSession, ctx, order: Order, guard, now: datetime) -> int:
    """Guardian mode kept the order open past its paid end: the platform pays
    the listener, at the agreed rate, for the time from the paid end to their
    last message before the case was resolved (capped); the seeker pays
    nothing more.  Recorded on the case in this same transaction.  Returns the
    seconds paid for."""
    until = min(guard.resolved_at or now, order.ends_at + timedelta(minutes=ctx.settings.guardian_pay_cap_minutes))
    rows = await chat.message_meta(db, order.conversation_id, guard.held_seq or 0)
    stayed = max((at for _, sender, at in rows if sender == order.listener_id and order.ends_at < at <= until),
                 default=None)
    seconds = fen = 0
    if stayed is not None:
        seconds = int((stayed - order.ends_at).total_seconds())
        fen = terms.value_at_agreed_rate(order, [(order.ends_at, stayed)])
    if fen > 0:
        await ledger.guardian_pay(db, ref=f"guardian:{order.id}", listener_id=order.listener_id, amount=fen,
                                  memo=f"守护模式超时陪伴 {seconds // 60} 分钟（平台承担）")
    await supervision.guardian_paid(db, guard.case_id, order_id=order.id, seconds=seconds, fen=fen, now=now)
    return seconds


async def due_now(ctx, conversation_id: str) -> int:
    """Make the conversation's running orders due at once (a risk case was
    resolved: guardian mode no longer holds them)."""
    async with ctx.sessionmaker() as db:
        result = await db.execute(
            update(Order).where(Order.conversation_id == conversation_id, Order.status == "active")
            .values(next_due_at=ctx.clock.now())
        )
        await db.commit()
    return result.rowcount


EXTENSION_VOID_NOTICE = "本次服务提前结束，你续费的时段随之取消，费用已全额退回你的钱包。"


async def _void_extensions(db: AsyncSession, base: Order, reason: str, at: datetime) -> list[Order]:
    """``base`` ends otherwise than by completing its time (row locked, before
    any of its money moves): every extension bought to follow it that has
    not started is voided — the whole amount back, nothing to the listener —
    and so on down the chain.  Returns the orders voided.

    Locks those rows after ``base``'s: every path that locks two orders of a
    chain (endings, ticks, a suspension by ``starts_at``) goes from the
    earlier to the later one, and only then to the ledger's accounts."""
    rows = list(await db.scalars(
        select(Order).where(Order.extends_order_id == base.id, Order.status == "scheduled")
        .order_by(Order.starts_at, Order.id).with_for_update().execution_options(populate_existing=True)
    ))
    out: list[Order] = []
    for ext in rows:
        out += await _void_extensions(db, ext, reason, at)
        await ledger.void(db, ref=f"order:{ext.id}", memo="原订单提前结束，续费全额退款")
        ext.status, ext.end_reason, ext.ended_at, ext.closed_at = "refunded", reason, at, at
        ext.refund_fen = ext.unserved_fen = ext.price_fen
        ext.listener_arrived_at = None  # never served (nothing to review, no served time)
        ext.next_due_at = None
        out.append(ext)
    return out


async def _end(db: AsyncSession, ctx, order: Order, reason: str, at: datetime) -> list[Order]:
    """End the service (row already locked, messages caught up).  If the
    listener never arrived — a no-show, or an ending by anyone before their
    first message — nothing was served: the hold is voided at once, the whole
    amount back.  Anything else waits out the dispute window before settling.
    Any ending but the service's own completion also voids the extensions
    bought to follow it (:func:`_void_extensions`).  Returns those."""
    st = _state(order)
    engine.close_turn(st, at, order.response_window_s, None) if st.pending_since is not None else None
    _store_state(db, order, st)
    unserved = order.listener_arrived_at is None
    if unserved and reason == "completed":
        reason = "no_show"
    voided = await _void_extensions(db, order, reason, at) if reason != "completed" else []
    order.status = "ended"
    order.end_reason = reason
    order.ended_at = at
    order.settle_at = at + timedelta(hours=order.contract["dispute_window_hours"])
    await chat.attach_order(db, order.conversation_id, None, only_if=order.id)
    if unserved:
        memo = "倾听师未到场，全额退款" if reason == "no_show" else "倾听师到场前结束，全额退款"
        await ledger.void(db, ref=f"order:{order.id}", memo=memo)
        o = terms.outcome(order)
        order.status = "refunded"
        order.refund_fen = o["refund"]
        order.unserved_fen = o["unserved"]
        order.closed_at = at
    else:
        o = terms.outcome(order)
        order.compensation_fen = o["compensation"]
        order.unserved_fen = o["unserved"]
    return voided


async def _settle(db: AsyncSession, order: Order, refund_override: int | None, now: datetime) -> None:
    o = terms.outcome(order, refund_override=refund_override)
    if o["refund"] >= order.price_fen:
        await ledger.void(db, ref=f"order:{order.id}", memo="全额退款")
        order.status = "refunded"
    else:
        await ledger.settle(db, ref=f"order:{order.id}", payee_id=order.listener_id, payee_net=o["listener_net"],
                            commission=o["commission"], refund=o["refund"], memo="订单结算")
        order.status = "settled"
    order.refund_fen = o["refund"]
    order.compensation_fen = o["compensation"]
    order.unserved_fen = o["unserved"]
    order.commission_fen = o["commission"]
    order.listener_net_fen = o["listener_net"]
    order.closed_at = now


# -------------------------------------------------------- endings by people


async def end_by(ctx, user: User, order_id: str, *, block: bool = False, reason_text: str = "") -> Order:
    now = ctx.clock.now()
    async with ctx.sessionmaker() as db:
        order = await _lock(db, order_id)
        if order is None or user.id not in (order.seeker_id, order.listener_id):
            raise order_not_found()
        if block and user.id != order.listener_id:
            raise AppError("listeners_only", "只有倾听师可以拉黑", "only the listener can block", 403)
        if order.status not in LIVE:
            raise AppError("order_closed", "订单已结束", "order is no longer running", 409)
        await _catch_up(db, order)
        if user.id == order.listener_id and order.status == "active":
            case_id = await supervision.guardian_case(db, order.conversation_id)
            if case_id is not None:  # guardian mode: the listener cannot end or block now
                await supervision.refused_end(db, case_id, user.id, order.id, now)
                await db.commit()
                raise AppError("guardian_mode", "对方可能正处在危险中，守护模式下不能结束或拉黑。请留在对话里，督导会来协助。",
                               "guardian mode: this conversation cannot be ended now", 409)
        if user.id == order.seeker_id:
            reason = "seeker_ended"
        else:
            reason = "blocked" if block else "listener_ended"
        if order.status == "scheduled":
            # Not started: cancelling is a full refund whoever cancels.
            voided = await _void_extensions(db, order, reason, now)
            await ledger.void(db, ref=f"order:{order.id}", memo="订单开始前取消")
            order.status, order.end_reason, order.ended_at, order.closed_at = "refunded", reason, now, now
            order.refund_fen = order.price_fen
        else:
            # Before the listener's first message, whoever ends it: a full refund (``_end``).
            voided = await _end(db, ctx, order, reason, now)
        if block:
            if await db.get(Block, (order.listener_id, order.seeker_id)) is None:
                b = Block(listener_id=order.listener_id, seeker_id=order.seeker_id, created_at=now)
                b.seal(ctx.keyring, reason=reason_text[:500])
                db.add(b)
        order.next_due_at = next_due(order, ctx.settings)
        await db.commit()
    if block:  # a socket the seeker already holds stops sending too (unless a guardian case keeps it open)
        await chat.refresh_send_refusal(ctx, order.conversation_id, order.seeker_id)
    await _after_change(ctx, order)
    await _after_voiding(ctx, voided)
    return order


async def _after_voiding(ctx, voided: list[Order]) -> None:
    """After COMMIT: tell the seeker their extension was refunded, and the clients."""
    for ext in voided:
        try:
            await chat.post_system(ctx, ext.conversation_id, f"order:{ext.id}:end", EXTENSION_VOID_NOTICE)
        except Exception:  # the order's state is what matters; the notice is only a courtesy
            log.warning("system notice failed for an order")
        await _after_change(ctx, ext)


async def _extensible(ctx, seeker: User, order_id: str, kind: str) -> Order:
    async with ctx.sessionmaker() as db:
        order = await db.scalar(readable_orders(seeker).where(Order.id == order_id))
        if order is None or order.seeker_id != seeker.id:
            raise order_not_found()
    if order.status != "active" or kind not in ("30m", "1h"):
        raise _cannot_extend()
    return order


async def extension_offer(ctx, seeker: User, order_id: str, kind: str = "30m") -> dict:
    """What extending this running order by ``kind`` costs (the base order's
    rate), for the client to show and send back as ``expected_total_fen``;
    ``late_night_confirm``: a second confirmation will be asked for."""
    order = await _extensible(ctx, seeker, order_id, kind)
    q = extension_quote(ctx.settings, order, kind)
    return {"order_id": order.id, "kind": kind, "kind_label": terms.KIND_LABELS[kind], "total_fen": q.total_fen,
            "quote": q.to_dict(), "late_night_confirm": _late_night(ctx, q.total_fen)}


async def extend(ctx, seeker: User, order_id: str, kind: str = "30m", *, expected_total_fen: int | None = None,
                 confirm_token: str | None = None) -> tuple[Order, dict]:
    """Extend a running order, starting when it ends, at the rate agreed in
    its contract (not the listener's price of the day), for no more than the
    ``expected_total_fen`` the seeker was shown; late at night the same
    second confirmation as any purchase.  The base order is checked again
    under its row lock (:func:`purchase`)."""
    order = await _extensible(ctx, seeker, order_id, kind)
    return await purchase(ctx, seeker, order.listener_id, kind, start_at=order.ends_at, extends=order,
                          expected_total_fen=expected_total_fen, confirm_token=confirm_token)


# ---------------------------------------------------------------- disputes


async def open_dispute(ctx, seeker: User, order_id: str, reason: str) -> Dispute:
    now = ctx.clock.now()
    async with ctx.sessionmaker() as db:
        await begin_write(db)
        result = await db.execute(
            update(Order).where(
                Order.id == order_id, Order.seeker_id == seeker.id, Order.status == "ended", Order.settle_at > now
            ).values(status="disputed", next_due_at=None)
        )
        if result.rowcount != 1:
            order = await db.scalar(readable_orders(seeker).where(Order.id == order_id))
            if order is None:
                raise order_not_found()
            raise AppError("cannot_dispute", "该订单不在可申诉期内", "this order cannot be disputed now", 409)
        d = Dispute(id=new_id(), order_id=order_id, seeker_id=seeker.id, status="open", created_at=now)
        d.seal(ctx.keyring, reason=reason, note="")
        db.add(d)
        await db.commit()
    return d


async def resolve_dispute(ctx, staff: User, order_id: str, refund_fen: int, note: str) -> Order:
    now = ctx.clock.now()
    async with ctx.sessionmaker() as db:
        order = await _lock(db, order_id)
        if order is None:
            raise order_not_found()
        if not 0 <= refund_fen <= order.price_fen:
            raise AppError("bad_refund", "退款金额须在 0 到订单金额之间", "refund must be between 0 and the price", 400)
        dispute = await db.scalar(select(Dispute).where(Dispute.order_id == order_id, Dispute.status == "open"))
        if order.status != "disputed" or dispute is None:
            raise AppError("no_open_dispute", "该订单没有待处理的申诉", "no open dispute on this order", 409)
        # A full refund undoes the service: an extension that has not started yet goes with it.
        voided = await _void_extensions(db, order, order.end_reason or "completed", now) \
            if refund_fen >= order.price_fen else []
        await _settle(db, order, refund_fen, now)
        dispute.status, dispute.refund_fen = "resolved", refund_fen
        dispute.seal(ctx.keyring, note=note)
        dispute.decided_by, dispute.resolved_at = staff.id, now
        order.next_due_at = None
        await db.commit()
    await _after_change(ctx, order)
    await _after_voiding(ctx, voided)
    return order


async def open_disputes(db: AsyncSession) -> list[tuple[Dispute, Order]]:
    rows = await db.execute(
        select(Dispute, Order).join(Order, Order.id == Dispute.order_id)
        .where(Dispute.status == "open").order_by(Dispute.created_at)
    )
    return [(d, o) for d, o in rows]


# ------------------------------------------------------------------- gifts


async def give_gift(ctx, seeker: User, order_id: str, amount_fen: int, note: str = "") -> tuple[Gift, dict]:
    """A tip after a completed service, held like an order.  Spending like any
    purchase: checked against the seeker's budget (hard cap) under the budget
    row's lock, in this transaction.  Returns ``(gift, notes)``."""
    s = ctx.settings
    now = ctx.clock.now()
    async with ctx.sessionmaker() as db:
        await begin_write(db)
        order = await db.scalar(select(Order).where(Order.id == order_id, Order.seeker_id == seeker.id)
                                .with_for_update())
        if order is None:
            raise order_not_found()
        if order.status not in ("ended", "settled") or order.end_reason in ("no_show",):
            raise AppError("gift_after_service", "礼物只能在服务完成后赠送，不能代替服务费用",
                           "gifts are only possible after a completed service, never instead of payment", 409)
        given = await db.scalar(
            select(func.coalesce(func.sum(Gift.amount_fen), 0)).where(Gift.order_id == order_id, Gift.status != "refunded")
        )
        cap = min(s.gift_max_fen, order.price_fen * s.gift_max_pct_of_order // 100)
        if amount_fen <= 0 or given + amount_fen > cap:
            raise AppError("gift_cap", f"这笔订单的礼物总额最多 ¥{cap / 100:.2f}", f"gifts for this order are capped at {cap} fen",
                           400)
        notes = await wellbeing.check_purchase(db, ctx, seeker.id, amount_fen, lock=True)
        gift = Gift(id=new_id(), order_id=order_id, seeker_id=seeker.id, listener_id=order.listener_id,
                    amount_fen=amount_fen, status="held", created_at=now,
                    settle_at=now + timedelta(hours=order.contract["dispute_window_hours"]))
        gift.seal(ctx.keyring, note=note[:100])
        db.add(gift)
        await db.flush()
        await ledger.hold(db, ref=f"gift:{gift.id}", payer_id=seeker.id, amount=amount_fen, memo="礼物")
        await db.commit()
    return gift, notes


async def refund_gift(ctx, seeker: User, gift_id: str) -> Gift:
    now = ctx.clock.now()
    async with ctx.sessionmaker() as db:
        await begin_write(db)
        result = await db.execute(
            update(Gift).where(Gift.id == gift_id, Gift.seeker_id == seeker.id, Gift.status == "held",
                               Gift.settle_at > now).values(status="refunded")
        )
        if result.rowcount != 1:
            raise AppError("gift_not_refundable", "该礼物已结算或不存在", "gift cannot be refunded", 409)
        await ledger.void(db, ref=f"gift:{gift_id}", memo="礼物退回")
        await db.commit()
        return await db.get(Gift, gift_id)


async def settle_gifts(ctx, now: datetime) -> int:
    n = 0
    async with ctx.sessionmaker() as db:
        due = list(await db.scalars(select(Gift.id).where(Gift.status == "held", Gift.settle_at <= now).limit(100)))
    for gid in due:
        async with ctx.sessionmaker() as db:
            await begin_write(db)
            gift = await db.scalar(select(Gift).where(Gift.id == gid, Gift.status == "held").with_for_update())
            if gift is None:
                continue
            commission = (gift.amount_fen * ctx.settings.commission_pct + 50) // 100
            await ledger.settle(db, ref=f"gift:{gid}", payee_id=gift.listener_id,
                                payee_net=gift.amount_fen - commission, commission=commission, refund=0, memo="礼物结算")
            gift.status = "settled"
            await db.commit()
            n += 1
    return n


# ------------------------------------------------------------------- reads


def readable_orders(user: User) -> Select:
    """Orders ``user`` may see: their own as seeker or listener; staff see all."""
    q = select(Order)
    if user.role in ("supervisor", "admin"):
        return q
    return q.where(or_(Order.seeker_id == user.id, Order.listener_id == user.id))


async def get_for(db: AsyncSession, user: User, order_id: str) -> Order:
    if not order_id or len(order_id) > 32:
        raise order_not_found()
    order = await db.scalar(readable_orders(user).where(Order.id == order_id))
    if order is None:
        raise order_not_found()
    return order


async def list_for(db: AsyncSession, user: User, limit: int = 50) -> list[Order]:
    q = readable_orders(user)
    if user.role in ("supervisor", "admin"):
        q = q.where(or_(Order.seeker_id == user.id, Order.listener_id == user.id))
    return list(await db.scalars(q.order_by(Order.created_at.desc()).limit(limit)))


async def active_in_conversation(db: AsyncSession, user: User, conversation_id: str) -> list[Order]:
    return list(await db.scalars(
        readable_orders(user).where(Order.conversation_id == conversation_id, Order.status.in_(LIVE))
        .order_by(Order.starts_at)
    ))


async def live_for_listener(db: AsyncSession, listener: User) -> list[Order]:
    """The listener's running orders, most urgent first: an unanswered
    message closest to breach, then the rest by end time."""
    rows = list(await db.scalars(
        select(Order).where(Order.listener_id == listener.id, Order.status == "active")
    ))

    def urgency(o: Order):
        deadline = reply_deadline(o)
        return (1, o.ends_at) if deadline is None else (0, deadline)

    return sorted(rows, key=urgency)


async def current_load(db: AsyncSession, listener_ids: list[str], now: datetime) -> dict[str, int]:
    """Orders each listener is serving right now (for matching: free capacity)."""
    out = dict.fromkeys(listener_ids, 0)
    if listener_ids:
        for lid, n in await db.execute(
            select(Order.listener_id, func.count()).where(
                Order.listener_id.in_(listener_ids), Order.status.in_(LIVE), Order.starts_at <= now,
                Order.ends_at > now).group_by(Order.listener_id)
        ):
            out[lid] = n
    return out


async def finished_served(db: AsyncSession, *, since: datetime, exclude: Select | None = None,
                          limit: int = 50) -> list[Order]:
    """Orders whose service took place and ended after ``since`` (the listener
    arrived), oldest first; ``exclude`` is a select of order ids to skip."""
    q = select(Order).where(Order.ended_at >= since, Order.listener_arrived_at.is_not(None))
    if exclude is not None:
        q = q.where(Order.id.not_in(exclude))
    return list(await db.scalars(q.order_by(Order.ended_at, Order.id).limit(limit)))


async def best_windows(db: AsyncSession, listener_ids: list[str]) -> dict[str, int | None]:
    """The shortest response window each listener commits to in an active offering."""
    out: dict[str, int | None] = dict.fromkeys(listener_ids)
    if listener_ids:
        for lid, w in await db.execute(
            select(Offering.listener_id, func.min(Offering.response_window_s))
            .where(Offering.listener_id.in_(listener_ids), Offering.active).group_by(Offering.listener_id)
        ):
            out[lid] = w
    return out


async def sittings_of(db: AsyncSession, seeker_id: str, *, since: datetime, now: datetime) -> list[Sitting]:
    """A seeker's paid sittings that began since ``since`` (wellbeing's
    我的倾诉习惯): each order that started and that the listener came to (a
    no-show is refunded and was no sitting), with the extensions that
    continued it counted in its minutes, not as sittings of their own.
    Minutes run to the end (guardian time included), or to now while it lasts."""
    rows = (await db.execute(
        select(Order.id, Order.listener_id, Order.extends_order_id, Order.activated_at, Order.ended_at, Order.ends_at)
        .where(Order.seeker_id == seeker_id, Order.activated_at.is_not(None), Order.activated_at >= since,
               Order.listener_arrived_at.is_not(None))
        .order_by(Order.activated_at)
    )).all()
    root: dict[str, str] = {}
    found: dict[str, list] = {}  # root order id -> [listener, start, seconds]
    for r in rows:
        start = utc(r.activated_at)
        end = utc(r.ended_at) or min(now, utc(r.ends_at))
        seconds = max(0.0, (end - start).total_seconds())
        root[r.id] = root.get(r.extends_order_id or "", r.id)
        if root[r.id] in found:
            found[root[r.id]][2] += seconds
        else:
            found[r.id] = [r.listener_id, start, seconds]
    return [Sitting(listener_id=lid, started_at=start, minutes=int(sec // 60)) for lid, start, sec in found.values()]


async def turns_of(db: AsyncSession, order_id: str) -> list[Turn]:
    return list(await db.scalars(select(Turn).where(Turn.order_id == order_id).order_by(Turn.first_seq)))


async def due_ids(db: AsyncSession, now: datetime, limit: int = 200) -> list[str]:
    return list(await db.scalars(
        select(Order.id).where(Order.next_due_at <= now, Order.status.in_(("scheduled", "active", "ended")))
        .order_by(Order.next_due_at).limit(limit)
    ))


async def unapplied_ids(db: AsyncSession) -> list[str]:
    """Active orders whose conversation has messages the reply clock has not
    seen (after a crash between a message's commit and its hook)."""
    rows = list(await db.execute(select(Order.id, Order.conversation_id, Order.sla_seq).where(Order.status == "active")))
    last = await chat.last_seqs(db, {r[1] for r in rows})
    return [oid for oid, cid, seq in rows if last.get(cid, 0) > seq]


def summary(order: Order, now: datetime | None = None) -> dict:
    o = terms.outcome(order, at=now)
    return {
        "id": order.id,
        "kind": order.kind,
        "kind_label": terms.KIND_LABELS[order.kind],
        "status": order.status,
        "end_reason": order.end_reason,
        "end_reason_label": terms.END_REASON_LABELS.get(order.end_reason or "", ""),
        "seeker_id": order.seeker_id,
        "listener_id": order.listener_id,
        "listener_name": order.contract["parties"]["listener_name"],
        "conversation_id": order.conversation_id,
        "price_fen": order.price_fen,
        "response_window_s": order.response_window_s,
        "starts_at": order.starts_at.isoformat(),
        "ends_at": order.ends_at.isoformat(),
        "ended_at": order.ended_at.isoformat() if order.ended_at else None,
        "settle_at": order.settle_at.isoformat() if order.settle_at else None,
        "pending_since": order.pending_since.isoformat() if order.pending_since else None,
        "pending_seq": order.pending_seq,
        "listener_arrived": order.listener_arrived_at is not None,
        "turns": order.turns,
        "breaches": order.breaches,
        "estimate": o,
        "contract_hash": order.contract_hash,
        # Countdowns run on the client; this lets it correct for its own clock.
        "server_now": now.isoformat() if now else None,
    }


async def _after_change(ctx, order: Order, started: bool = False, clock_warning: bool = False) -> None:
    """The order as it now is, to its conversation and both parties' pages.
    ``started``: it began just now; ``clock_warning``: the listener's reply
    clock just passed :data:`CLOCK_WARNING_SHARE` of the window."""
    event = {"type": "order", "order": summary(order, ctx.clock.now()), "started": started}
    if clock_warning:
        event["clock_warning"] = True
    data = orjson.dumps(event).decode()
    ctx.broker.publish_nowait(f"conv:{order.conversation_id}", data)
    ctx.broker.publish_nowait(f"user:{order.listener_id}", data)
    ctx.broker.publish_nowait(f"user:{order.seeker_id}", data)


def encrypted_stores() -> list:
    """Dispute, gift and block texts, for key rotation."""
    from miaohui.core.sealed import sealed_columns

    return [sealed_columns(m) for m in (Dispute, Gift, Block)]


# ------------------------------------------------------------ closing (注销)

UNSETTLED = (*LIVE, "ended", "disputed")  # money still held for it


async def closing_blockers(db: AsyncSession, user_id: str, dispute_window_hours: int) -> list[str]:
    """What keeps an account from closing on the orders side: an order not
    yet settled (running, booked, or within its dispute window) or a gift
    still held, as seeker or as listener."""
    mine = or_(Order.seeker_id == user_id, Order.listener_id == user_id)
    n = await db.scalar(select(func.count()).select_from(Order).where(mine, Order.status.in_(UNSETTLED)))
    gifts = await db.scalar(select(func.count()).select_from(Gift).where(
        or_(Gift.seeker_id == user_id, Gift.listener_id == user_id), Gift.status == "held"))
    out = []
    if n:
        out.append(f"还有 {n} 个订单没有结算完（进行中、已预约，或在结束后 {dispute_window_hours} 小时的申诉期内）")
    if gifts:
        out.append(f"还有 {gifts} 份礼物在申诉期内托管")
    return out


async def export_for(db: AsyncSession, user_id: str, now: datetime) -> list[dict]:
    rows = await db.scalars(select(Order).where(or_(Order.seeker_id == user_id, Order.listener_id == user_id))
                            .order_by(Order.created_at))
    return [summary(o, now) | {"as": "seeker" if o.seeker_id == user_id else "listener"} for o in rows]
