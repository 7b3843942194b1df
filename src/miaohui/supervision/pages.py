"""Supervisor console pages: the live queue and a case (rendering only; the
transcript shown on a case page is read through ``service.transcript``, so
every page view is an audited access)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from miaohui.accounts import service as accounts
from miaohui.accounts.deps import DB, Ctx
from miaohui.core.errors import AppError
from miaohui.safety.boundaries import LABELS as BOUNDARY_LABELS
from miaohui.supervision import guidance as g
from miaohui.supervision import service
from miaohui.web.routes import ROLE_LABELS, MaybeUser, error_page, forbidden_page, gate, render

router = APIRouter(include_in_schema=False)


def _staff_gate(request: Request, ctx, user) -> Response | None:
    if (page := gate(request, ctx, user)) is not None:
        return page
    if user.role not in service.STAFF:
        return forbidden_page(request, ctx, user, "督导台仅对督导和管理员开放。")
    return None


@router.get("/supervision")
async def console(request: Request, ctx: Ctx, db: DB, user: MaybeUser) -> Response:
    if (page := _staff_gate(request, ctx, user)) is not None:
        return page
    now = ctx.clock.now()
    boot = {
        "me": {"user_id": user.id, "role": user.role},
        "queue": await service.summaries(db, await service.queue(db), now),
        "recent": await service.summaries(db, (await service.cases_for(db, user))[:20], now),
    }
    return render(request, ctx, "supervision.html", user, private=True, boot=boot)


@router.get("/supervision/cases/{case_id}")
async def case_page(case_id: str, request: Request, ctx: Ctx, db: DB, user: MaybeUser) -> Response:
    if (page := _staff_gate(request, ctx, user)) is not None:
        return page
    try:
        case = await service.get_case_view(ctx, db, user, case_id)
    except AppError:
        return error_page(request, ctx, user, 404, "找不到这个个案", "这个个案不存在。")
    await db.close()
    tr = await service.transcript(ctx, user, case_id, via="page")  # audited before it is shown
    rows = await service.accesses(db, case["conversation_id"])
    names = await accounts.users_by_ids(db, list({a.reader_id for a in rows}))
    access = [
        {"at": a.at.isoformat(), "via": a.via, "role": ROLE_LABELS.get(a.reader_role, ""),
         "reader": names[a.reader_id].display_name if a.reader_id in names else a.reader_id}
        for a in rows
    ]
    msgs = [{**m, "created_at": m["created_at"].isoformat()} for m in tr["messages"]]
    boot = {"case": case, "messages": msgs, "access": access, "me": {"user_id": user.id, "role": user.role},
            "tier_labels": g.TIER_LABELS, "signal_labels": {**g.SIGNAL_LABELS, **BOUNDARY_LABELS}}
    return render(request, ctx, "supervision_case.html", user, private=True, case=case, boot=boot)
