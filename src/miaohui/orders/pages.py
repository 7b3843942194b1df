"""HTML pages for orders: purchase (quote + contract), my orders with the
budget, the receipt, the evidence report, the listener's offerings, the
supervisors' dispute queue.  Rendering only; rules live in orders.service."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from jinja2 import pass_context

from miaohui.accounts import service as accounts
from miaohui.accounts.deps import DB, Ctx
from miaohui.accounts.models import User
from miaohui.core.errors import AppError
from miaohui.ledger import service as ledger
from miaohui.listeners import service as listeners
from miaohui.orders import contract as terms
from miaohui.orders import report, service
from miaohui.orders.pricing import KIND_LABELS, KINDS
from miaohui.web.routes import MaybeUser, error_page, forbidden_page, gate, render, templates
from miaohui.wellbeing import habits, mood
from miaohui.wellbeing import service as wellbeing

router = APIRouter(include_in_schema=False)
DEFAULT_TZ = "Asia/Shanghai"  # only for a template rendered without render()'s context


@pass_context
def local_time(context, iso_or_dt, fmt: str = "%m-%d %H:%M") -> str:
    """A time as the platform's clock reads it (``settings.timezone``, which
    ``render`` puts in every page's context as ``tz``)."""
    if not iso_or_dt:
        return "—"
    dt = datetime.fromisoformat(iso_or_dt) if isinstance(iso_or_dt, str) else iso_or_dt
    return dt.astimezone(ZoneInfo(context.get("tz") or DEFAULT_TZ)).strftime(fmt)


def seconds_label(ms: int | None) -> str:
    if ms is None:
        return "未回复"
    s = ms / 1000
    return f"{s:.1f} 秒" if s < 60 else f"{int(s // 60)} 分 {int(s % 60)} 秒"


def minutes_label(minutes: int) -> str:
    h, m = divmod(minutes, 60)
    return " ".join(filter(None, (f"{h} 小时" if h else "", f"{m} 分" if m or not h else "")))


STATUS_LABELS = {"scheduled": "待开始", "active": "服务中", "ended": "已结束 · 申诉期", "disputed": "申诉处理中",
                 "settled": "已结算", "refunded": "已退款"}
templates.env.filters["local_time"] = local_time
templates.env.filters["seconds_label"] = seconds_label
templates.env.filters["minutes_label"] = minutes_label
templates.env.globals["ORDER_STATUS"] = STATUS_LABELS
templates.env.globals["KIND_LABELS"] = KIND_LABELS


@router.get("/orders/new")
async def new_order(
    request: Request, ctx: Ctx, db: DB, user: MaybeUser,
    listener: str = Query(max_length=32), kind: str = Query(default="1h", max_length=8),
) -> Response:
    if (page := gate(request, ctx, user, "seeker", "只有倾诉者可以购买服务。")) is not None:
        return page
    try:
        q, offering, profile = await service.make_quote(db, ctx, listener, kind)
    except AppError as e:
        return error_page(request, ctx, user, e.status_code, "暂时无法购买", e.message)
    listener_user = await db.get(User, listener)
    card = listeners.card(profile, listener_user, await ctx.presence.status(listener))
    contract = terms.build(ctx.settings, q, window_s=offering.response_window_s, listener=card, seeker_id=user.id)
    wallet = await ledger.wallet(db, user.id)
    budget = await wellbeing.status(db, ctx, user.id)
    offers = await service.offerings_for(db, listener)
    return render(request, ctx, "order_new.html", user, card=card, quote=q, contract=contract, wallet=wallet,
                  budget=budget, offerings=offers, kind=kind)


@router.get("/orders")
async def my_orders(request: Request, ctx: Ctx, db: DB, user: MaybeUser) -> Response:
    if (page := gate(request, ctx, user)) is not None:
        return page
    now = ctx.clock.now()
    orders = [service.summary(o, now) for o in await service.list_for(db, user)]
    budget = await wellbeing.status(db, ctx, user.id) if user.role == "seeker" else None
    month = await habits.for_seeker(db, ctx, user.id) if user.role == "seeker" else None
    return render(request, ctx, "orders.html", user, orders=orders, budget=budget, habits=month,
                  seeker_names=await _seeker_names(db, user, orders))


async def _seeker_names(db, user: User, orders: list[dict]) -> dict[str, str]:
    """Seekers' display names (pseudonyms, as in chat) for a listener's or
    staff's view of orders; a seeker's own list names the listener only."""
    if user.role == "seeker":
        return {}
    users = await accounts.users_by_ids(db, sorted({o["seeker_id"] for o in orders}))
    return {uid: u.display_name for uid, u in users.items()}


@router.get("/orders/{order_id}")
async def order_page(order_id: str, request: Request, ctx: Ctx, db: DB, user: MaybeUser) -> Response:
    if (page := gate(request, ctx, user)) is not None:
        return page
    try:
        order = await service.get_for(db, user, order_id)
    except AppError:
        return forbidden_page(request, ctx, user, "这笔订单不存在，或你无权查看。")
    data = await report.build(db, ctx, order)
    names = await _seeker_names(db, user, [data["order"]])
    moods = await mood.for_order(db, user.id, order.id) if user.id == order.seeker_id else None
    return render(request, ctx, "order.html", user, order=data["order"], report=data, contract=order.contract,
                  now=ctx.clock.now(), seeker_name=names.get(order.seeker_id, ""), moods=moods)


@router.get("/orders/{order_id}/report")
async def report_page(order_id: str, request: Request, ctx: Ctx, db: DB, user: MaybeUser) -> Response:
    if (page := gate(request, ctx, user)) is not None:
        return page
    try:
        order = await service.get_for(db, user, order_id)
    except AppError:
        return forbidden_page(request, ctx, user, "这笔订单不存在，或你无权查看。")
    data = await report.build(db, ctx, order)
    return render(request, ctx, "order_report.html", user, report=data, order=data["order"])


@router.get("/console/offerings")
async def console_offerings(request: Request, ctx: Ctx, db: DB, user: MaybeUser) -> Response:
    if (page := gate(request, ctx, user, "listener", "这是倾听师的页面。")) is not None:
        return page
    mine = {o.kind: o for o in await service.offerings_for(db, user.id, only_active=False)}
    profile = await listeners.get_profile(db, user.id)
    day = profile.price_per_hour_fen if profile else 0
    now = ctx.clock.now()
    quotes = {k: service.quote_at(ctx.settings, day, k, now, mine.get(k)) for k in KINDS}
    return render(request, ctx, "console_offerings.html", user, offerings=mine, kinds=KINDS, profile=profile,
                  day_price=day, tariff=service.tariff(ctx.settings), quotes=quotes,
                  windows=ctx.settings.response_windows, max_capacity=ctx.settings.max_concurrent_orders)


@router.get("/admin/disputes")
async def admin_disputes(request: Request, ctx: Ctx, db: DB, user: MaybeUser) -> Response:
    if (page := gate(request, ctx, user)) is not None:
        return page
    if user.role not in ("supervisor", "admin"):
        return forbidden_page(request, ctx, user, "只有督导和管理员可以处理申诉。")
    now = ctx.clock.now()
    items = [{"dispute": d, "order": service.summary(o, now)} for d, o in await service.open_disputes(db)]
    return render(request, ctx, "admin_disputes.html", user, items=items)
