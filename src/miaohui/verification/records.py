"""Reading the trust records: readiness to serve, badges, the public
verification record, the listing-wording rule and the age rule.

A leaf module (it imports only this domain's tables and plain helpers), so
the orders and listeners domains can ask it questions without import cycles:
``orders.service.purchase`` calls :func:`require_can_serve` and
:func:`require_adult_buyer`; ``listeners.service.update_profile`` calls
:func:`check_listing`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from miaohui.accounts.models import User
from miaohui.core.errors import AppError
from miaohui.verification import course
from miaohui.verification.models import IdentityCheck, Qualification, TrainingAttempt


@dataclass(frozen=True)
class Kind:
    label: str
    counseling: bool  # lets a listing use 心理咨询 wording
    professional: bool  # counts for crisis matching (a trained helping profession)
    needs_title: bool = False


KINDS: dict[str, Kind] = {
    "counselor_2": Kind("国家二级心理咨询师", counseling=True, professional=True),
    "counselor_3": Kind("国家三级心理咨询师", counseling=True, professional=True),
    "cps_registered": Kind("中国心理学会注册心理师", counseling=True, professional=True),
    "social_worker": Kind("社会工作者", counseling=False, professional=True),
    "degree": Kind("医学/心理学学历", counseling=False, professional=False, needs_title=True),
    "other": Kind("其他", counseling=False, professional=False, needs_title=True),
}

# Wording that claims counseling: only with a verified counseling qualification.
COUNSELING_CLAIM = re.compile(r"心理咨询|咨询师")
SH = ZoneInfo("Asia/Shanghai")


def local_day(now: datetime) -> date:
    """Ages turn over at midnight in China, not in UTC."""
    return now.astimezone(SH).date()


def _live(expires_at: datetime | None, now: datetime) -> bool:
    return expires_at is None or expires_at > now


@dataclass
class Readiness:
    identity: bool = False
    adult: bool = False
    training: bool = False
    identity_expires_at: datetime | None = None
    training_expires_at: datetime | None = None
    missing: list[str] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        return not self.missing


MISSING_LABELS = {"identity": "实名认证", "adult": "年满 18 周岁", "training": "上岗培训与测验"}


async def identity_of(db: AsyncSession, user_id: str) -> IdentityCheck | None:
    return await db.get(IdentityCheck, user_id)


async def passed_training(db: AsyncSession, user_id: str) -> TrainingAttempt | None:
    """The latest passed quiz of the current course version."""
    return await db.scalar(
        select(TrainingAttempt)
        .where(TrainingAttempt.user_id == user_id, TrainingAttempt.passed,
               TrainingAttempt.course_version == course.VERSION)
        .order_by(TrainingAttempt.created_at.desc()).limit(1)
    )


async def readiness_many(db: AsyncSession, user_ids: list[str], now: datetime) -> dict[str, Readiness]:
    """Two queries for a whole directory page."""
    out = {uid: Readiness() for uid in user_ids}
    if not user_ids:
        return out
    today = local_day(now)
    for chk in await db.scalars(select(IdentityCheck).where(IdentityCheck.user_id.in_(user_ids))):
        r = out[chk.user_id]
        r.identity = chk.expires_at > now
        r.adult = chk.adult_on <= today
        r.identity_expires_at = chk.expires_at
    rows = await db.scalars(
        select(TrainingAttempt).where(TrainingAttempt.user_id.in_(user_ids), TrainingAttempt.passed,
                                      TrainingAttempt.course_version == course.VERSION)
    )
    for t in rows:
        r = out[t.user_id]
        if _live(t.expires_at, now) and (r.training_expires_at is None or (t.expires_at or now) > r.training_expires_at):
            r.training = True
            r.training_expires_at = t.expires_at
    for r in out.values():
        r.missing = [k for k, ok in (("identity", r.identity), ("adult", r.adult or not r.identity),
                                     ("training", r.training)) if not ok]
    return out


async def readiness(db: AsyncSession, user_id: str, now: datetime) -> Readiness:
    return (await readiness_many(db, [user_id], now))[user_id]


async def require_can_serve(db: AsyncSession, listener_id: str, now: datetime) -> None:
    """Orders gate: a listener takes orders only with a live real-name check
    (adult) and a passed, unexpired course."""
    r = await readiness(db, listener_id, now)
    if not r.ready:
        need = "、".join(MISSING_LABELS[m] for m in r.missing)
        err = AppError("listener_not_ready", f"该倾听师尚未完成{need}，暂不能接单",
                       f"listener has not completed: {', '.join(r.missing)}", 409)
        err.extra = {"missing": r.missing}
        raise err


async def is_minor(db: AsyncSession, user_id: str, now: datetime) -> bool:
    """True only when a verified ID shows the person is under 18 today."""
    chk = await identity_of(db, user_id)
    return chk is not None and chk.adult_on > local_day(now)


async def require_adult_buyer(db: AsyncSession, seeker_id: str, now: datetime) -> None:
    if await is_minor(db, seeker_id, now):
        raise AppError("under_18", "未满 18 周岁不能购买付费服务。如果你需要倾诉，可以先拨打 12356 心理援助热线",
                       "people under 18 cannot buy paid services", 403)


# ------------------------------------------------------------ qualifications


async def verified_qualifications(db: AsyncSession, user_ids: list[str], now: datetime) -> dict[str, list[Qualification]]:
    out: dict[str, list[Qualification]] = {uid: [] for uid in user_ids}
    if not user_ids:
        return out
    rows = await db.scalars(
        select(Qualification).where(Qualification.user_id.in_(user_ids), Qualification.status == "verified")
        .order_by(Qualification.reviewed_at.asc())
    )
    for q in rows:
        if _live(q.expires_at, now):
            out[q.user_id].append(q)
    return out


def badge(q: Qualification) -> dict:
    k = KINDS.get(q.kind, KINDS["other"])
    return {"kind": q.kind, "title": q.title, "counseling": k.counseling, "professional": k.professional,
            "verified_at": q.reviewed_at, "expires_at": q.expires_at}


async def badges_many(db: AsyncSession, user_ids: list[str], now: datetime) -> dict[str, list[dict]]:
    return {uid: [badge(q) for q in qs] for uid, qs in (await verified_qualifications(db, user_ids, now)).items()}


async def check_listing(db: AsyncSession, user_id: str, texts: list[str], now: datetime) -> None:
    """No 心理咨询 wording in a listing without a verified counseling qualification."""
    if not any(COUNSELING_CLAIM.search(t or "") for t in texts):
        return
    quals = (await verified_qualifications(db, [user_id], now))[user_id]
    if not any(KINDS.get(q.kind, KINDS["other"]).counseling for q in quals):
        raise AppError(
            "counseling_claim",
            "只有通过核验的心理咨询类资质（国家二级/三级心理咨询师、中国心理学会注册心理师）才能在资料中使用「心理咨询」「咨询师」等字样",
            "counseling wording needs a verified counseling qualification", 400,
        )


def allowed_claims(items: list[str], badges: list[dict]) -> list[str]:
    """Declared items a listing may still show: counseling wording disappears
    when its qualification expires or is revoked."""
    if any(b["counseling"] for b in badges):
        return list(items)
    return [t for t in items if not COUNSELING_CLAIM.search(t)]


_SENTENCE = re.compile(r"[^。！？!?；;\n]*[。！？!?；;\n]?")


def scrub_claims(text: str, badges: list[dict]) -> str:
    """Listing text without the sentences that claim counseling, unless a
    verified counseling qualification backs them."""
    if any(b["counseling"] for b in badges) or not COUNSELING_CLAIM.search(text or ""):
        return text
    return "".join(s for s in _SENTENCE.findall(text) if not COUNSELING_CLAIM.search(s)).strip()


# ----------------------------------------------------------- public record


PROVIDER_LABELS = {"sandbox": "沙箱核验（演示环境）"}


async def public_record(db: AsyncSession, user_id: str, now: datetime) -> dict:
    """What was checked, when, by whom, and when each check expires — for
    clients.  Never the name or the number."""
    chk = await identity_of(db, user_id)
    training = await passed_training(db, user_id)
    quals = (await verified_qualifications(db, [user_id], now))[user_id]
    reviewers = {q.reviewed_by for q in quals if q.reviewed_by}
    approver_names = dict((await db.execute(select(User.id, User.display_name).where(User.id.in_(reviewers)))).all()
                          ) if reviewers else {}
    return {
        "identity": None if chk is None else {
            "checked_at": chk.checked_at, "expires_at": chk.expires_at, "live": chk.expires_at > now,
            "adult": chk.adult_on <= local_day(now), "provider": PROVIDER_LABELS.get(chk.provider, chk.provider),
        },
        "training": None if training is None else {
            "passed_at": training.created_at, "expires_at": training.expires_at,
            "live": _live(training.expires_at, now), "course_version": training.course_version,
            "score": f"{training.correct}/{training.total}",
        },
        "qualifications": [
            {**badge(q), "label": KINDS.get(q.kind, KINDS["other"]).label,
             "approved_by": approver_names.get(q.reviewed_by or "", "平台审核员")}
            for q in quals
        ],
    }
