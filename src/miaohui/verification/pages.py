"""HTML pages of the trust domain: a person's own verification (real name;
for listeners also qualifications and training), the course and quiz, and
the admins' review queue and listener management.  Rendering only."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from miaohui.accounts.deps import DB, Ctx
from miaohui.listeners import service as listeners
from miaohui.verification import course, records, service
from miaohui.verification.records import KINDS, MISSING_LABELS
from miaohui.verification.routes import qualification_out, status_of
from miaohui.web.routes import MaybeUser, forbidden_page, gate, render, templates

router = APIRouter(include_in_schema=False)
templates.env.filters["missing_labels"] = lambda missing: "、".join(MISSING_LABELS[m] for m in missing)

QUAL_STATUS = {"pending": "审核中", "verified": "已核验", "rejected": "未通过", "revoked": "已撤销"}


@router.get("/verification")
async def my_verification(request: Request, ctx: Ctx, db: DB, user: MaybeUser) -> Response:
    if (page := gate(request, ctx, user)) is not None:
        return page
    if user.role not in ("listener", "seeker"):
        return forbidden_page(request, ctx, user, "这个页面供倾听师和倾诉者使用。")
    status = await status_of(ctx, db, user)
    profile = await listeners.get_profile(db, user.id) if user.role == "listener" else None
    return render(request, ctx, "verification.html", user, private=True, status=status, kinds=KINDS,
                  qual_status=QUAL_STATUS, profile=profile, max_mb=ctx.settings.proof_max_bytes // (1024 * 1024),
                  suspension=await service.last_action(db, user.id) if user.role == "listener" else None)


@router.get("/verification/training")
async def training(request: Request, ctx: Ctx, db: DB, user: MaybeUser) -> Response:
    if (page := gate(request, ctx, user, "listener", "上岗培训面向倾听师。")) is not None:
        return page
    passed = await records.passed_training(db, user.id)
    return render(request, ctx, "training.html", user, private=True, course=course.public_course(), passed=passed,
                  hotlines=ctx.settings.hotlines)


@router.get("/admin/review")
async def admin_review(request: Request, ctx: Ctx, db: DB, user: MaybeUser) -> Response:
    if (page := gate(request, ctx, user, "admin", "审核队列仅对管理员开放。")) is not None:
        return page
    q = await service.queue(ctx, db)
    quals = [{**qualification_out(x), "owner": q["names"].get(x.user_id)} for x in q["qualifications"]]
    return render(request, ctx, "admin_review.html", user, private=True, quals=quals, reports=q["reports"],
                  names=q["names"], reviews=q["reviews"], admin_tab="review")


@router.get("/admin/listeners")
async def admin_listeners(request: Request, ctx: Ctx, db: DB, user: MaybeUser) -> Response:
    if (page := gate(request, ctx, user, "admin", "倾听师管理仅对管理员开放。")) is not None:
        return page
    listed = await listeners.directory(db)
    ready = await records.readiness_many(db, [u.id for _, u in listed], ctx.clock.now())
    badges = await records.badges_many(db, [u.id for _, u in listed], ctx.clock.now())
    rows = [{"user": u, "profile": p, "ready": ready[u.id], "badges": badges[u.id]} for p, u in listed]
    return render(request, ctx, "admin_listeners.html", user, private=True, listed=rows,
                  suspended=await service.suspended(db), admin_tab="listeners")
