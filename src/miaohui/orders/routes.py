"""Orders API: thin — every rule lives in orders.service."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse

from miaohui.accounts.deps import DB, Ctx, CurrentUser, ListenerUser, SeekerUser, require_role
from miaohui.core.errors import AppError
from miaohui.listeners import service as listeners
from miaohui.orders import contract as terms
from miaohui.orders import report, service
from miaohui.orders.schemas import (
    BudgetIn,
    CapacityIn,
    DisputeIn,
    EndIn,
    ExtendIn,
    GiftIn,
    MoodIn,
    OfferingIn,
    PurchaseIn,
    ResolveIn,
)
from miaohui.sla import stats
from miaohui.wellbeing import habits, mood
from miaohui.wellbeing import service as wellbeing

router = APIRouter(prefix="/api", tags=["orders"])
StaffUser = require_role("supervisor", "admin")


def _offering(o) -> dict:
    return {"id": o.id, "kind": o.kind, "kind_label": terms.KIND_LABELS[o.kind],
            "response_window_s": o.response_window_s, "active": o.active, "daily_start": o.daily_start,
            "daily_minutes": o.daily_minutes}


@router.get("/listeners/{listener_id}/offerings")
async def offerings(listener_id: str, ctx: Ctx, db: DB) -> dict:
    """Packages with their committed response windows, and the hourly day
    and night prices."""
    profile = await listeners.get_listed(db, listener_id)
    if profile is None:
        raise AppError("not_found", "倾听师不存在", "listener not found", 404)
    s = ctx.settings
    return {
        "listener_id": listener_id,
        "price_per_hour_fen": profile.price_per_hour_fen,
        "night_price_per_hour_fen": service.tariff(s).night_hourly(profile.price_per_hour_fen),
        "night_hours": [s.night_start_hour, s.night_end_hour],
        "capacity": profile.capacity,
        "offerings": [_offering(o) for o in await service.offerings_for(db, listener_id)],
    }


@router.get("/listeners/{listener_id}/stats")
async def listener_stats(listener_id: str, ctx: Ctx, db: DB) -> dict:
    if await listeners.get_listed(db, listener_id) is None:
        raise AppError("not_found", "倾听师不存在", "listener not found", 404)
    return await stats.listener_stats(db, listener_id, ctx.clock.now())


@router.get("/listeners/{listener_id}/quote")
async def get_quote(
    listener_id: str, ctx: Ctx, db: DB, user: CurrentUser,
    kind: str = Query(pattern=r"^(30m|1h|night|day|month)$"), start_at: datetime | None = None,
) -> dict:
    """The full price breakdown and the contract that would be signed."""
    q, offering, profile = await service.make_quote(db, ctx, listener_id, kind, start_at)
    listener_user = await db.get(type(user), listener_id)
    contract = terms.build(ctx.settings, q, window_s=offering.response_window_s,
                           listener=listeners.card(profile, listener_user, "offline"), seeker_id=user.id)
    return {"quote": q.to_dict(), "response_window_s": offering.response_window_s, "contract": contract,
            "budget": await wellbeing.status(db, ctx, user.id)}


@router.put("/listener/offerings/{kind}")
async def put_offering(kind: str, body: OfferingIn, ctx: Ctx, db: DB, user: ListenerUser) -> dict:
    o = await service.set_offering(db, ctx, user, kind=kind, **body.model_dump())
    await db.commit()
    return _offering(o)


@router.get("/listener/offerings")
async def my_offerings(db: DB, user: ListenerUser) -> list[dict]:
    return [_offering(o) for o in await service.offerings_for(db, user.id, only_active=False)]


@router.put("/listener/capacity")
async def put_capacity(body: CapacityIn, ctx: Ctx, db: DB, user: ListenerUser) -> dict:
    n = await listeners.set_capacity(db, user, body.capacity, ctx.settings.max_concurrent_orders)
    await db.commit()
    return {"capacity": n}


@router.get("/listener/orders/live")
async def live_orders(ctx: Ctx, db: DB, user: ListenerUser) -> list[dict]:
    """Running orders, most urgent first (the console's countdowns)."""
    now = ctx.clock.now()
    return [service.summary(o, now) for o in await service.live_for_listener(db, user)]


@router.post("/orders", status_code=201)
async def buy(body: PurchaseIn, ctx: Ctx, user: CurrentUser) -> dict:
    """Buy a package for no more than ``expected_total_fen`` (the total shown
    from the quote): a higher price is 409 ``price_changed`` with the new
    quote (``total_fen``: what to confirm), and nothing is charged."""
    order, notes = await service.purchase(ctx, user, body.listener_id, body.kind, start_at=body.start_at,
                                          confirm_token=body.confirm_token, expected_total_fen=body.expected_total_fen)
    return {"order": service.summary(order, ctx.clock.now()), **notes}


@router.get("/orders")
async def my_orders(ctx: Ctx, db: DB, user: CurrentUser) -> list[dict]:
    now = ctx.clock.now()
    return [service.summary(o, now) for o in await service.list_for(db, user)]


@router.get("/orders/{order_id}")
async def one(order_id: str, ctx: Ctx, db: DB, user: CurrentUser) -> dict:
    order = await service.get_for(db, user, order_id)
    return {**service.summary(order, ctx.clock.now()), "contract": order.contract,
            "replies": [{"first_seq": t.first_seq, "reply_seq": t.reply_seq, "latency_ms": t.latency_ms,
                       "breached": t.breached} for t in await service.turns_of(db, order.id)]}


@router.get("/orders/{order_id}/report")
async def order_report(order_id: str, ctx: Ctx, db: DB, user: CurrentUser, download: bool = False) -> Response:
    """Evidence: every reply latency, breaches, deductions, chain head; signed."""
    order = await service.get_for(db, user, order_id)
    data = await report.build(db, ctx, order)
    headers = {"content-disposition": f'attachment; filename="miaohui-order-{order.id}.json"'} if download else {}
    return JSONResponse(data, headers=headers)


@router.get("/conversations/{conversation_id}/orders")
async def conversation_orders(conversation_id: str, ctx: Ctx, db: DB, user: CurrentUser) -> list[dict]:
    now = ctx.clock.now()
    return [service.summary(o, now) for o in await service.active_in_conversation(db, user, conversation_id)]


@router.post("/orders/{order_id}/end")
async def end(order_id: str, body: EndIn, ctx: Ctx, user: CurrentUser) -> dict:
    order = await service.end_by(ctx, user, order_id, reason_text=body.reason)
    return service.summary(order, ctx.clock.now())


@router.post("/orders/{order_id}/block")
async def block(order_id: str, body: EndIn, ctx: Ctx, user: ListenerUser) -> dict:
    order = await service.end_by(ctx, user, order_id, block=True, reason_text=body.reason)
    return service.summary(order, ctx.clock.now())


@router.get("/orders/{order_id}/extend/quote")
async def extension_quote(order_id: str, ctx: Ctx, user: CurrentUser,
                          kind: str = Query(default="30m", pattern=r"^(30m|1h)$")) -> dict:
    """What extending the running order costs, at the rate agreed in it."""
    return await service.extension_offer(ctx, user, order_id, kind)


@router.post("/orders/{order_id}/extend", status_code=201)
async def extend(order_id: str, body: ExtendIn, ctx: Ctx, user: CurrentUser) -> dict:
    """Extend the running order at its agreed rate, for no more than
    ``expected_total_fen`` (from ``…/extend/quote``); late at night the same
    second confirmation as a purchase (``confirm_token``)."""
    order, notes = await service.extend(ctx, user, order_id, body.kind, expected_total_fen=body.expected_total_fen,
                                        confirm_token=body.confirm_token)
    return {**service.summary(order, ctx.clock.now()), **notes}


@router.post("/orders/{order_id}/disputes", status_code=201)
async def dispute(order_id: str, body: DisputeIn, ctx: Ctx, user: CurrentUser) -> dict:
    d = await service.open_dispute(ctx, user, order_id, body.reason)
    return {"id": d.id, "order_id": d.order_id, "status": d.status}


@router.post("/orders/{order_id}/gifts", status_code=201)
async def gift(order_id: str, body: GiftIn, ctx: Ctx, user: CurrentUser) -> dict:
    g, notes = await service.give_gift(ctx, user, order_id, body.amount_fen, body.note)
    return {"id": g.id, "amount_fen": g.amount_fen, "status": g.status, "refundable_until": g.settle_at.isoformat(),
            **notes}


@router.post("/gifts/{gift_id}/refund")
async def refund_gift(gift_id: str, ctx: Ctx, user: CurrentUser) -> dict:
    g = await service.refund_gift(ctx, user, gift_id)
    return {"id": g.id, "status": g.status}


@router.get("/admin/disputes")
async def disputes(ctx: Ctx, db: DB, user: StaffUser) -> list[dict]:
    now = ctx.clock.now()
    return [{"dispute_id": d.id, "reason": d.reason, "created_at": d.created_at.isoformat(),
             "order": service.summary(o, now)} for d, o in await service.open_disputes(db)]


@router.post("/admin/disputes/{order_id}/resolve")
async def resolve(order_id: str, body: ResolveIn, ctx: Ctx, user: StaffUser) -> dict:
    order = await service.resolve_dispute(ctx, user, order_id, body.refund_fen, body.note)
    return service.summary(order, ctx.clock.now())


@router.get("/me/budget")
async def get_budget(ctx: Ctx, db: DB, user: CurrentUser) -> dict:
    return await wellbeing.status(db, ctx, user.id)


@router.get("/orders/{order_id}/mood")
async def get_mood(order_id: str, db: DB, user: SeekerUser) -> dict:
    """The seeker's own before / after answers for one of their orders."""
    order = await service.get_for(db, user, order_id)
    return await mood.for_order(db, user.id, order.id)


@router.put("/orders/{order_id}/mood")
async def put_mood(order_id: str, body: MoodIn, ctx: Ctx, db: DB, user: SeekerUser) -> dict:
    """心情 before (while the order runs) or after (once it is over); answering again changes it."""
    out = await mood.record(db, user, order_id, body.phase, body.score, ctx.clock.now())
    await db.commit()
    return out


@router.get("/me/habits")
async def get_habits(ctx: Ctx, db: DB, user: SeekerUser) -> dict:
    """我的倾诉习惯: this month's paid sittings against last month's, and at
    most two gentle nudges (late nights, one listener, rising spend, many
    sittings).  The seeker's own; never shown to anyone else."""
    return await habits.for_seeker(db, ctx, user.id)


@router.put("/me/budget")
async def put_budget(body: BudgetIn, ctx: Ctx, db: DB, user: CurrentUser) -> dict:
    await wellbeing.set_budget(db, ctx, user.id, body.monthly_limit_fen, body.hard_cap)
    await db.commit()
    return await wellbeing.status(db, ctx, user.id)
