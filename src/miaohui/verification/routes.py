"""Trust API: thin — the rules live in verification.service and .records."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.datastructures import UploadFile

from miaohui.accounts.deps import DB, AdminUser, Ctx, CurrentUser, ListenerUser
from miaohui.accounts.models import User
from miaohui.core.errors import AppError, not_found
from miaohui.listeners import service as listeners
from miaohui.verification import course, records, service
from miaohui.verification.records import KINDS, MISSING_LABELS
from miaohui.verification.schemas import (
    DecideIn,
    IdentityIn,
    QuizIn,
    ReasonIn,
    ReportIn,
    ReviewQualificationIn,
)

router = APIRouter(prefix="/api", tags=["trust"])


def qualification_out(q) -> dict:
    return {"id": q.id, "kind": q.kind, "kind_label": KINDS.get(q.kind, KINDS["other"]).label, "title": q.title,
            "status": q.status, "proof_type": q.proof_type, "proof_bytes": q.proof_bytes, "created_at": q.created_at,
            "reviewed_at": q.reviewed_at, "review_note": q.review_note, "expires_at": q.expires_at}


async def status_of(ctx, db, user: User) -> dict:
    """The signed-in person's own verification state (masked identity)."""
    now = ctx.clock.now()
    r = await records.readiness(db, user.id, now)
    training = await records.passed_training(db, user.id)
    return {
        "identity": service.owner_view(ctx, await records.identity_of(db, user.id), now),
        "training": None if training is None else {
            "passed_at": training.created_at, "expires_at": training.expires_at, "live": r.training,
            "score": f"{training.correct}/{training.total}"},
        "qualifications": [qualification_out(q) for q in await service.qualifications_of(db, user.id)]
        if user.role == "listener" else [],
        "ready": r.ready if user.role == "listener" else None,
        "missing": [{"key": m, "label": MISSING_LABELS[m]} for m in r.missing] if user.role == "listener" else [],
    }


@router.get("/verification/me")
async def me(ctx: Ctx, db: DB, user: CurrentUser) -> dict:
    return await status_of(ctx, db, user)


@router.post("/verification/identity", status_code=201)
async def verify_identity(body: IdentityIn, ctx: Ctx, db: DB, user: CurrentUser) -> dict:
    await service.verify_identity(ctx, user, body.legal_name, body.id_number)
    await db.commit()  # end the sign-in read snapshot, then read what the service wrote
    return await status_of(ctx, db, user)


@router.post("/verification/qualifications", status_code=201)
async def declare_qualification(request: Request, ctx: Ctx, user: ListenerUser) -> dict:
    """multipart/form-data: ``kind``, ``title`` (for 学历/其他), ``file`` (JPG/PNG/WebP/PDF).
    The size is checked from Content-Length before anything is parsed or spooled."""
    length = request.headers.get("content-length", "")
    if not length.isdigit():
        raise AppError("length_required", "上传需要文件大小信息", "Content-Length required", 411)
    if int(length) > ctx.settings.proof_max_bytes + 64 * 1024:
        raise AppError("proof_too_large", f"文件不能超过 {ctx.settings.proof_max_bytes // (1024 * 1024)} MB",
                       "upload too large", 413)
    form = await request.form(max_files=1, max_fields=4)
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise AppError("proof_empty", "请上传资质证明文件", "a proof file is required", 400)
    data = await upload.read(ctx.settings.proof_max_bytes + 1)
    kind, title = form.get("kind"), form.get("title")
    q = await service.declare_qualification(ctx, user, kind if isinstance(kind, str) else "",
                                            title if isinstance(title, str) else "", data)
    return qualification_out(q)


@router.get("/verification/course")
async def get_course() -> dict:
    return course.public_course()


@router.post("/verification/training")
async def submit_training(body: QuizIn, ctx: Ctx, user: ListenerUser) -> dict:
    attempt, grade = await service.submit_quiz(ctx, user, body.answers)
    return {**grade.to_dict(), "expires_at": attempt.expires_at}


@router.get("/listeners/{listener_id}/verification")
async def public_record(listener_id: str, ctx: Ctx, db: DB) -> dict:
    if await listeners.get_listed(db, listener_id) is None:
        raise not_found("倾听师", "listener")
    return await records.public_record(db, listener_id, ctx.clock.now())


@router.post("/reports", status_code=201)
async def report(body: ReportIn, ctx: Ctx, user: CurrentUser) -> dict:
    r = await service.report(ctx, user, body.target_kind, body.target_id, body.reason)
    return {"id": r.id, "status": r.status}


# -------------------------------------------------------------------- admin


@router.get("/admin/review-queue")
async def review_queue(ctx: Ctx, db: DB, user: AdminUser) -> dict:
    q = await service.queue(ctx, db)
    return {
        "listeners": [{"user_id": u.id, "display_name": u.display_name, "username": u.username, "ready": r.ready,
                       "missing": r.missing} for _, u, r in q["listeners"]],
        "qualifications": [{**qualification_out(x), "user_id": x.user_id} for x in q["qualifications"]],
        "reports": [{"id": r.id, "target_kind": r.target_kind, "target_id": r.target_id, "reason": r.reason,
                     "created_at": r.created_at} for r in q["reports"]],
    }


@router.post("/admin/qualifications/{qual_id}/review")
async def review_qualification(qual_id: str, body: ReviewQualificationIn, ctx: Ctx, user: AdminUser) -> dict:
    q = await service.review_qualification(ctx, user, qual_id, approve=body.approve, note=body.note,
                                           valid_until=body.valid_until)
    return qualification_out(q)


@router.post("/admin/qualifications/{qual_id}/revoke")
async def revoke_qualification(qual_id: str, body: ReasonIn, ctx: Ctx, user: AdminUser) -> dict:
    return qualification_out(await service.revoke_qualification(ctx, user, qual_id, body.reason))


@router.get("/admin/qualifications/{qual_id}/proof")
async def proof(qual_id: str, ctx: Ctx, user: AdminUser) -> Response:
    """The uploaded proof, for the reviewing admin only; never cached, never
    rendered with the site's privileges (sandboxed)."""
    data, mime = await service.proof_for_admin(ctx, user, qual_id)
    return Response(data, media_type=mime, headers={
        "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", "Content-Disposition": "inline",
        "Content-Security-Policy": "sandbox; default-src 'none'; img-src 'self'; style-src 'unsafe-inline'",
    })


@router.post("/admin/reports/{report_id}/decide")
async def decide_report(report_id: str, body: DecideIn, ctx: Ctx, user: AdminUser) -> dict:
    r = await service.decide_report(ctx, user, report_id, body.action, body.note)
    return {"id": r.id, "status": r.status, "decision_note": r.decision_note}


@router.post("/admin/listeners/{listener_id}/suspend", status_code=204)
async def suspend(listener_id: str, body: ReasonIn, ctx: Ctx, user: AdminUser) -> None:
    await service.suspend(ctx, user, listener_id, body.reason)


@router.post("/admin/listeners/{listener_id}/reinstate", status_code=204)
async def reinstate(listener_id: str, body: ReasonIn, ctx: Ctx, user: AdminUser) -> None:
    await service.reinstate(ctx, user, listener_id, body.reason)

