"""Trust: real-name checks, qualification proofs and their review, the
training quiz, reports and suspensions.  No HTTP here.

Reads that other domains need (readiness, badges, the public record, the
wording and age rules) are in :mod:`miaohui.verification.records`.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from datetime import date, datetime, time, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from miaohui.accounts.models import User
from miaohui.chat import service as chat
from miaohui.core.crypto import KeyRing
from miaohui.core.db import begin_write, new_id
from miaohui.core.errors import AppError, not_found
from miaohui.listeners import service as listeners
from miaohui.orders import service as orders
from miaohui.reviews import service as reviews
from miaohui.verification import course, identity, proofs
from miaohui.verification.models import (
    IdentityAttempt,
    IdentityCheck,
    ModerationAction,
    Qualification,
    Report,
    TrainingAttempt,
)
from miaohui.verification.provider import ProviderUnavailable
from miaohui.verification.records import KINDS, SH, local_day, readiness_many

log = logging.getLogger("miaohui.verification")


def _aad(user_id: str, field: str) -> bytes:
    return f"identity|{user_id}|{field}".encode()


def id_hash(secret: str, number: str) -> str:
    """Keyed, so the 10⁹-odd possible numbers cannot be tried against the table without the key."""
    return hmac.new(secret.encode(), f"resident-id:{number}".encode(), hashlib.sha256).hexdigest()


# ----------------------------------------------------------------- identity


async def _fail(ctx, user: User, code: str, zh: str, en: str, status: int = 400) -> AppError:
    """Count a failed attempt (committed on its own) and return the error to raise."""
    async with ctx.sessionmaker() as db:
        await begin_write(db)
        db.add(IdentityAttempt(user_id=user.id, code=code, created_at=ctx.clock.now()))
        await db.execute(delete(IdentityAttempt).where(
            IdentityAttempt.user_id == user.id, IdentityAttempt.created_at < ctx.clock.now() - timedelta(days=2)))
        await db.commit()
    log.info("identity check failed user=%s code=%s", user.id, code)
    return AppError(code, zh, en, status)


async def verify_identity(ctx, user: User, legal_name: str, id_number: str) -> IdentityCheck:
    """Validate locally, ask the provider, store encrypted.  Listeners must
    be adults; seekers may verify at any age (a minor then cannot buy)."""
    s, now = ctx.settings, ctx.clock.now()
    if user.role not in ("listener", "seeker"):
        raise AppError("forbidden_role", "当前身份无需实名认证", "this role does not verify", 403)
    async with ctx.sessionmaker() as db:
        failures = await db.scalar(select(func.count()).select_from(IdentityAttempt).where(
            IdentityAttempt.user_id == user.id, IdentityAttempt.created_at >= now - timedelta(days=1)))
    if failures >= s.identity_max_failures:
        raise AppError("too_many_attempts", "今天尝试次数过多，请明天再试", "too many attempts today", 429)
    try:
        name = identity.check_name(legal_name)
        parsed = identity.check_id(id_number, today=local_day(now))
    except identity.IdError as e:
        raise await _fail(ctx, user, e.code, e.zh, e.en) from None
    if user.role == "listener" and identity.age_on(parsed.birth, local_day(now)) < identity.ADULT_AGE:
        raise await _fail(ctx, user, "under_18", "倾听师须年满 18 周岁", "listeners must be 18 or older")
    digest = id_hash(s.effective_secret_key, parsed.number)
    if user.role == "listener":
        async with ctx.sessionmaker() as db:
            taken = await db.scalar(
                select(IdentityCheck.user_id).join(User, User.id == IdentityCheck.user_id)
                .where(IdentityCheck.id_hash == digest, IdentityCheck.user_id != user.id, User.role == "listener")
            )
        if taken:
            raise await _fail(ctx, user, "id_in_use", "这个身份证号已用于另一个倾听师账号",
                              "this ID already verified another listener account", 409)
    try:
        result = await ctx.verifier.check_identity(name, parsed.number)
    except ProviderUnavailable:
        raise AppError("provider_unavailable", "实名核验服务暂时不可用，请稍后再试",
                       "verification provider unavailable", 503) from None
    if not result.matched:
        raise await _fail(ctx, user, "identity_mismatch", "姓名与身份证号不一致，请核对后重试",
                          "name and ID number do not match")
    async with ctx.sessionmaker() as db:
        await begin_write(db)
        row = await store_identity(db, ctx, user.id, name, parsed, result.reference)
        await db.commit()
    log.info("identity verified user=%s provider=%s", user.id, ctx.verifier.name)
    return row


async def store_identity(db: AsyncSession, ctx, user_id: str, name: str, parsed: identity.ParsedId,
                         reference: str) -> IdentityCheck:
    """Write (or renew) the check in the caller's transaction: name and number encrypted."""
    now = ctx.clock.now()
    key_id, name_ct = ctx.keyring.encrypt(name, _aad(user_id, "name"))
    _, number_ct = ctx.keyring.encrypt(parsed.number, _aad(user_id, "number"))  # same active key
    row = await db.get(IdentityCheck, user_id)
    if row is None:
        row = IdentityCheck(user_id=user_id)
        db.add(row)
    row.key_id, row.name_ct, row.number_ct = key_id, name_ct, number_ct
    row.id_hash = id_hash(ctx.settings.effective_secret_key, parsed.number)
    row.adult_on = identity.adult_on(parsed.birth)
    row.provider, row.provider_ref = ctx.verifier.name, reference
    row.checked_at, row.expires_at = now, now + timedelta(days=ctx.settings.identity_valid_days)
    await db.flush()
    return row


def owner_view(ctx, chk: IdentityCheck | None, now: datetime) -> dict | None:
    """What the person themselves sees: masked name and number, dates."""
    if chk is None:
        return None
    name = ctx.keyring.decrypt(chk.key_id, chk.name_ct, _aad(chk.user_id, "name"))
    number = ctx.keyring.decrypt(chk.key_id, chk.number_ct, _aad(chk.user_id, "number"))
    return {"name": identity.mask_name(name), "number": identity.mask_id(number), "checked_at": chk.checked_at,
            "expires_at": chk.expires_at, "live": chk.expires_at > now, "adult": chk.adult_on <= local_day(now)}


# ----------------------------------------------------------- qualifications


async def declare_qualification(ctx, user: User, kind: str, title: str, data: bytes) -> Qualification:
    s = ctx.settings
    if user.role != "listener":
        raise AppError("listeners_only", "只有倾听师可以提交资质", "only listeners declare qualifications", 403)
    k = KINDS.get(kind)
    if k is None:
        raise AppError("bad_kind", "请选择资质类型", "unknown qualification kind", 400)
    title = " ".join((title or "").split())[:60]
    if k.needs_title and not title:
        raise AppError("title_required", "请填写资质名称（例如：心理学本科）", "a title is required for this kind", 400)
    title = title if k.needs_title else k.label
    mime = proofs.check(data, s.proof_max_bytes)
    async with ctx.sessionmaker() as db:
        await begin_write(db)
        held = await db.scalar(select(func.count()).select_from(Qualification).where(
            Qualification.user_id == user.id, Qualification.status.in_(("pending", "verified"))))
        if held >= s.proof_max_per_listener:
            raise AppError("too_many_qualifications", f"最多提交 {s.proof_max_per_listener} 项资质",
                           "too many qualifications", 409)
        q = await add_qualification(db, ctx, user.id, kind, title, data, mime)
        try:
            await db.commit()
        except Exception:
            proofs.remove(s.data_dir, q.id)
            raise
    log.info("qualification declared user=%s id=%s kind=%s bytes=%d", user.id, q.id, kind, len(data))
    return q


async def add_qualification(db: AsyncSession, ctx, user_id: str, kind: str, title: str, data: bytes,
                            mime: str) -> Qualification:
    """The row and its encrypted proof file, in the caller's transaction
    (the caller removes the file if the transaction fails)."""
    q = Qualification(user_id=user_id, kind=kind, title=title, status="pending", proof_type=mime,
                      proof_bytes=len(data), proof_sha256="", proof_key_id="", created_at=ctx.clock.now())
    db.add(q)
    await db.flush()
    q.proof_key_id, q.proof_sha256 = proofs.store(ctx.keyring, ctx.settings.data_dir, q.id, data)
    return q


async def qualifications_of(db: AsyncSession, user_id: str) -> list[Qualification]:
    return list(await db.scalars(
        select(Qualification).where(Qualification.user_id == user_id).order_by(Qualification.created_at.desc())))


async def review_qualification(ctx, admin: User, qual_id: str, *, approve: bool, note: str = "",
                               valid_until: date | None = None) -> Qualification:
    """One proof, one decision: ``pending → verified | rejected`` by a
    conditional UPDATE, so two admins cannot both decide."""
    now = ctx.clock.now()
    if approve:
        default_end = now + timedelta(days=ctx.settings.qualification_valid_days)
        expires = (datetime.combine(valid_until, time(23, 59, 59), SH) if valid_until else default_end)
        if expires <= now:
            raise AppError("bad_expiry", "有效期必须晚于今天", "expiry must be in the future", 400)
    async with ctx.sessionmaker() as db:
        await begin_write(db)
        q = await decide_qualification(db, ctx.keyring, admin.id, qual_id, approve=approve, note=note,
                                       expires=expires if approve else None, now=now)
        await db.commit()
        await db.refresh(q)
    log.info("qualification %s id=%s by=%s", q.status, q.id, admin.id)
    return q


async def decide_qualification(db: AsyncSession, keyring: KeyRing, admin_id: str, qual_id: str, *, approve: bool,
                               note: str, expires: datetime | None, now: datetime) -> Qualification:
    result = await db.execute(
        update(Qualification).where(Qualification.id == qual_id, Qualification.status == "pending").values(
            status="verified" if approve else "rejected", reviewed_at=now, reviewed_by=admin_id, expires_at=expires,
            **_review_note(keyring, qual_id, note))
    )
    q = await db.get(Qualification, qual_id)
    if q is None:
        raise not_found("资质", "qualification")
    if result.rowcount == 0:
        raise AppError("already_reviewed", "这项资质已经审核过了", "qualification already reviewed", 409)
    return q


def _review_note(keyring: KeyRing, qual_id: str, note: str | None) -> dict:
    """The admin's note as the columns that hold it (encrypted, ``core.sealed``)."""
    return Qualification.sealed_values(keyring, qual_id, review_note=(note or "").strip()[:200])


async def revoke_qualification(ctx, admin: User, qual_id: str, note: str) -> Qualification:
    async with ctx.sessionmaker() as db:
        await begin_write(db)
        result = await db.execute(update(Qualification).where(
            Qualification.id == qual_id, Qualification.status == "verified").values(
            status="revoked", reviewed_by=admin.id, reviewed_at=ctx.clock.now(),
            **_review_note(ctx.keyring, qual_id, note)))
        q = await db.get(Qualification, qual_id)
        if q is None:
            raise not_found("资质", "qualification")
        if result.rowcount == 0:
            raise AppError("not_verified", "只能撤销已通过的资质", "only verified qualifications can be revoked", 409)
        await db.commit()
        await db.refresh(q)
    return q


async def proof_for_admin(ctx, admin: User, qual_id: str) -> tuple[bytes, str]:
    if admin.role != "admin":
        raise AppError("forbidden_role", "只有管理员可以查看证明文件", "admins only", 403)
    async with ctx.sessionmaker() as db:
        q = await db.get(Qualification, qual_id)
    if q is None:
        raise not_found("资质", "qualification")
    data = proofs.load(ctx.keyring, ctx.settings.data_dir, q.id, q.proof_key_id)
    log.info("proof viewed id=%s by=%s", q.id, admin.id)
    return data, q.proof_type


# ----------------------------------------------------------------- training


async def submit_quiz(ctx, user: User, answers: dict[str, int]) -> tuple[TrainingAttempt, course.Grade]:
    if user.role != "listener":
        raise AppError("listeners_only", "只有倾听师需要参加培训测验", "only listeners take the quiz", 403)
    g = course.grade(answers)
    async with ctx.sessionmaker() as db:
        await begin_write(db)
        attempt = record_attempt(db, ctx, user.id, g)
        await db.commit()
    return attempt, g


def record_attempt(db: AsyncSession, ctx, user_id: str, g: course.Grade) -> TrainingAttempt:
    now = ctx.clock.now()
    attempt = TrainingAttempt(
        user_id=user_id, course_version=course.VERSION, correct=g.correct, total=g.total, passed=g.passed,
        created_at=now, expires_at=now + timedelta(days=ctx.settings.training_valid_days) if g.passed else None)
    db.add(attempt)
    return attempt


# ------------------------------------------------------ reports, suspension


async def report(ctx, user: User, target_kind: str, target_id: str, reason: str) -> Report:
    """Report an abusive review or a listener to the admins (once each)."""
    reason = (reason or "").strip()[:500]
    if not reason:
        raise AppError("reason_required", "请写一下举报理由", "a reason is required", 400)
    async with ctx.sessionmaker() as db:
        await begin_write(db)
        if target_kind == "review":
            rv = await reviews.get(db, target_id)
            if rv is None or rv.hidden:
                raise not_found("评价", "review")
            if rv.seeker_id == user.id:
                raise AppError("own_review", "不能举报自己的评价", "you cannot report your own review", 400)
        elif target_kind == "listener":
            if await listeners.get_listed(db, target_id) is None or target_id == user.id:
                raise not_found("倾听师", "listener")
        else:
            raise AppError("bad_target", "无法举报该内容", "unknown report target", 400)
        r = Report(id=new_id(), target_kind=target_kind, target_id=target_id, reporter_id=user.id, status="open",
                   created_at=ctx.clock.now())
        r.seal(ctx.keyring, reason=reason, decision_note="")
        db.add(r)
        try:
            await db.commit()
        except IntegrityError:
            raise AppError("already_reported", "你已经举报过了，管理员会尽快处理", "already reported", 409) from None
    return r


async def open_reports(db: AsyncSession) -> list[Report]:
    return list(await db.scalars(select(Report).where(Report.status == "open").order_by(Report.created_at.asc())))


async def decide_report(ctx, admin: User, report_id: str, action: str, note: str = "") -> Report:
    """``hide`` (a review), ``suspend`` (a listener; ``note`` is the reason)
    or ``dismiss``.  The report closes with a conditional UPDATE first, so a
    second decision is refused and changes nothing."""
    note = (note or "").strip()[:200]
    now = ctx.clock.now()
    closed: list = []
    async with ctx.sessionmaker() as db:
        await begin_write(db)
        r = await db.get(Report, report_id)
        if r is None:
            raise not_found("举报", "report")
        valid = {"review": ("hide", "dismiss"), "listener": ("suspend", "dismiss")}[r.target_kind]
        if action not in valid:
            raise AppError("bad_action", "不支持的处理方式", "action does not fit this report", 400)
        if action == "suspend" and not note:
            raise AppError("reason_required", "暂停倾听师需要写明原因", "a suspension needs a reason", 400)
        if not await _close_report(ctx.keyring, db, r, "dismissed" if action == "dismiss" else "upheld", admin,
                                   note, now):
            raise AppError("report_closed", "这条举报已经处理过了", "report already decided", 409)
        if action == "hide":
            await reviews.hide(db, r.target_id)
            # Other open reports of the same review are settled by this decision.
            for other in list(await db.scalars(select(Report).where(
                    Report.target_kind == "review", Report.target_id == r.target_id, Report.status == "open"))):
                await _close_report(ctx.keyring, db, other, "upheld", admin, note, now)
        elif action == "suspend":
            closed = await _suspend(ctx, db, admin, r.target_id, note, now, report_id=r.id)
        await db.commit()
        await db.refresh(r)
    await orders.after_suspension(ctx, closed)
    if action == "suspend":
        await chat.announce_muted_everywhere(ctx, r.target_id, "listener_suspended")
    return r


async def _close_report(keyring: KeyRing, db: AsyncSession, r: Report, status: str, admin: User, note: str,
                        now: datetime) -> bool:
    """Decide one open report (a conditional UPDATE: False if it was no longer open)."""
    result = await db.execute(update(Report).where(Report.id == r.id, Report.status == "open").values(
        status=status, decided_at=now, decided_by=admin.id,
        **Report.sealed_values(keyring, r.id, reason=r.reason, decision_note=note)))
    return result.rowcount == 1


async def _suspend(ctx, db: AsyncSession, admin: User, listener_id: str, reason: str, now: datetime,
                   report_id: str | None = None) -> list:
    """Suspend, in the caller's transaction: the conditional status change
    (a second suspension, or one racing it, is refused here and changes
    nothing), the moderation record, and every order of theirs not yet
    finished closed with its money (``orders.close_for_suspension``).
    Returns what ``orders.after_suspension`` announces after COMMIT."""
    if not await listeners.set_status(db, listener_id, from_status="approved", to_status="suspended"):
        raise AppError("not_listed", "只能暂停已上架的倾听师", "only listed listeners can be suspended", 409)
    _moderation(ctx, db, listener_id, "suspend", reason, admin, now, report_id)
    return await orders.close_for_suspension(db, ctx, listener_id, now)


async def suspend(ctx, admin: User, listener_id: str, reason: str) -> None:
    reason = (reason or "").strip()[:500]
    if not reason:
        raise AppError("reason_required", "暂停倾听师需要写明原因", "a suspension needs a reason", 400)
    async with ctx.sessionmaker() as db:
        await begin_write(db)
        closed = await _suspend(ctx, db, admin, listener_id, reason, ctx.clock.now())
        await db.commit()
    log.info("listener suspended id=%s by=%s orders_closed=%d", listener_id, admin.id, len(closed))
    await orders.after_suspension(ctx, closed)
    await chat.announce_muted_everywhere(ctx, listener_id, "listener_suspended")  # open sockets: no more sends


async def reinstate(ctx, admin: User, listener_id: str, reason: str) -> None:
    reason = (reason or "").strip()[:500] or "恢复上架"
    async with ctx.sessionmaker() as db:
        await begin_write(db)
        if not await listeners.set_status(db, listener_id, from_status="suspended", to_status="approved"):
            raise AppError("not_suspended", "该倾听师没有被暂停", "listener is not suspended", 409)
        _moderation(ctx, db, listener_id, "reinstate", reason, admin, ctx.clock.now())
        await db.commit()
    await chat.announce_muted_everywhere(ctx, listener_id, "")  # open sockets may send again


def _moderation(ctx, db: AsyncSession, listener_id: str, action: str, reason: str, admin: User, now: datetime,
                report_id: str | None = None) -> None:
    act = ModerationAction(id=new_id(), listener_id=listener_id, action=action, actor_id=admin.id,
                           report_id=report_id, created_at=now)
    act.seal(ctx.keyring, reason=reason)
    db.add(act)


async def last_action(db: AsyncSession, listener_id: str) -> ModerationAction | None:
    return await db.scalar(select(ModerationAction).where(ModerationAction.listener_id == listener_id)
                           .order_by(ModerationAction.created_at.desc()).limit(1))


# ---------------------------------------------------------------- admin queue


async def queue(ctx, db: AsyncSession) -> dict:
    """Everything waiting for an admin: new listeners (with what they have
    completed), qualification proofs, reports."""
    now = ctx.clock.now()
    pending = await listeners.pending(db)
    ready = await readiness_many(db, [p.user_id for p, _ in pending], now)
    quals = list(await db.scalars(select(Qualification).where(Qualification.status == "pending")
                                  .order_by(Qualification.created_at.asc())))
    reps = await open_reports(db)
    names = {u.id: u for u in await db.scalars(select(User).where(User.id.in_(
        {q.user_id for q in quals} | {r.reporter_id for r in reps}
        | {r.target_id for r in reps if r.target_kind == "listener"})))}
    review_rows = await reviews.get_many(db, [r.target_id for r in reps if r.target_kind == "review"])
    return {"listeners": [(p, u, ready[p.user_id]) for p, u in pending], "qualifications": quals,
            "reports": reps, "names": names, "reviews": review_rows}


async def suspended(db: AsyncSession) -> list[tuple]:
    rows = await listeners.with_status(db, "suspended")
    return [(p, u, await last_action(db, p.user_id)) for p, u in rows]


class ProofFiles:
    """Uploaded proofs (files named by qualification, key id on the record),
    for key rotation: the file is replaced atomically first, then the record
    is updated if it still names the old key.  ``proofs.load`` tries every
    key, so a rotation stopped in between loses nothing."""

    name = "qualification_proofs"

    def __init__(self, data_dir) -> None:
        self.data_dir = data_dir

    async def count(self, db: AsyncSession) -> dict[str, int]:
        from miaohui.core.rekey import count_by_key

        return await count_by_key(db, Qualification.proof_key_id)

    async def rekey(self, db: AsyncSession, keyring: KeyRing, cursor, limit: int, progress):
        from cryptography.exceptions import InvalidTag

        from miaohui.core.rekey import next_cursor, rows_to_move

        t = Qualification.__table__
        rows = await rows_to_move(db, keyring, t, t.c.proof_key_id, cursor, limit)
        for row in rows:
            old = row["proof_key_id"]
            try:
                new = proofs.rekey(keyring, self.data_dir, row["id"], old)
            except AppError:  # proof_missing: nothing on disk to move
                progress.missing_files.append(row["id"])
                continue
            except InvalidTag:
                if old not in keyring.ids:
                    progress.missing_key[old] = progress.missing_key.get(old, 0) + 1
                else:
                    progress.undecryptable.append(row["id"])
                continue
            done = (await db.execute(update(Qualification).where(
                Qualification.id == row["id"], Qualification.proof_key_id == old).values(proof_key_id=new))).rowcount
            if done:
                progress.rekeyed += 1
            else:
                progress.changed += 1
        await db.commit()
        return next_cursor(t, rows, limit)


def encrypted_stores(data_dir) -> list:
    """Real-name checks, admins' notes, reports, moderation reasons and the
    uploaded proof files, for key rotation."""
    from miaohui.core.rekey import EncryptedColumns
    from miaohui.core.sealed import sealed_columns

    return [EncryptedColumns("identity_checks", IdentityCheck.__table__, ("name_ct", "number_ct"),
                             lambda r, c: _aad(r["user_id"], c.removesuffix("_ct"))),
            *(sealed_columns(m) for m in (Qualification, Report, ModerationAction)),
            ProofFiles(data_dir)]


# ------------------------------------------------------------ closing (注销)

async def export_for(db: AsyncSession, ctx, user_id: str) -> dict:
    chk = await db.get(IdentityCheck, user_id)
    return {"identity": owner_view(ctx, chk, ctx.clock.now()),
            "qualifications": [{"kind": q.kind, "title": q.title, "status": q.status, "created_at": q.created_at,
                                "expires_at": q.expires_at} for q in await qualifications_of(db, user_id)]}


async def forget(db: AsyncSession, user_id: str) -> list[str]:
    """Closing an account: the real-name check and its attempts, training
    attempts, qualifications.  Returns the qualification ids whose proof
    files the caller removes once the transaction has committed."""
    quals = list(await db.scalars(select(Qualification.id).where(Qualification.user_id == user_id)))
    for model in (IdentityCheck, IdentityAttempt, TrainingAttempt, Qualification):
        await db.execute(delete(model).where(model.user_id == user_id))
    return quals


def remove_proofs(data_dir, qual_ids: list[str]) -> None:
    for q in qual_ids:
        proofs.remove(data_dir, q)
