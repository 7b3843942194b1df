"""The review form for a served order.  Rendering only; reviews.service decides."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from miaohui.accounts import service as accounts
from miaohui.accounts.deps import DB, Ctx
from miaohui.core.errors import AppError
from miaohui.orders import service as orders
from miaohui.reviews import service
from miaohui.web.routes import MaybeUser, error_page, gate, render

router = APIRouter(include_in_schema=False)


@router.get("/orders/{order_id}/review")
async def review_page(request: Request, order_id: str, ctx: Ctx, db: DB, user: MaybeUser) -> Response:
    if (page := gate(request, ctx, user, "seeker", "只有倾诉者可以评价。")) is not None:
        return page
    try:
        order = await orders.get_for(db, user, order_id)
    except AppError as e:
        return error_page(request, ctx, user, e.status_code, "找不到订单", e.message)
    listener = await accounts.get_user(db, order.listener_id)
    existing = await service.for_order(db, order.id)
    return render(request, ctx, "review_new.html", user, private=True, order=order, listener=listener,
                  existing=existing, can_review=service.reviewable(order, user),
                  positive=service.POSITIVE_TAGS, negative=service.NEGATIVE_TAGS,
                  max_chars=ctx.settings.review_max_chars)
