"""Listener profiles: declaring, approving, listing.  No HTTP here.

Only ``approved`` profiles are ever listed or reachable by seekers; a
listener edits freely while pending, and an admin approves before listing.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from miaohui.accounts.models import User
from miaohui.clock import Clock
from miaohui.core.errors import AppError
from miaohui.listeners.models import ListenerProfile
from miaohui.safety import boundaries
from miaohui.verification import records as trust

GENDERS = {"female": "女", "male": "男", "other": "其他"}


def _clean(tags: list[str], max_len: int = 20) -> list[str]:
    out: list[str] = []
    for t in tags:
        t = t.strip()[:max_len]
        if t and t not in out:
            out.append(t)
    return out


def _no_contact(texts) -> None:
    """A listing is public: no contact details or payment outside the escrow in it
    (the same tables that mask them in chat), or clients would be led off the platform."""
    for t in texts:
        if t and boundaries.OFF_PLATFORM in boundaries.scan(t).kinds:
            raise AppError(
                "listing_contact",
                "资料里不能留联系方式或站外收款信息（微信、QQ、手机号、邮箱、银行卡等）：在平台内沟通和付款，双方才有保障",
                "a listing may not carry contact details or off-platform payment details",
                400,
            )


async def create_profile(db: AsyncSession, clock: Clock, user: User, **fields) -> ListenerProfile:
    _no_contact([fields.get("headline"), fields.get("bio"), *fields.get("topics", ()), *fields.get("qualifications", ())])
    profile = ListenerProfile(user_id=user.id, status="pending", created_at=clock.now(), accepting=True)
    _apply(profile, fields)
    db.add(profile)
    await db.flush()
    return profile


def _apply(profile: ListenerProfile, fields: dict) -> None:
    for key in ("headline", "bio", "price_per_hour_fen"):
        if key in fields:
            setattr(profile, key, fields[key])
    for key in ("topics", "languages", "qualifications"):
        if key in fields:
            setattr(profile, key, _clean(fields[key], 40 if key == "qualifications" else 20))
    if "gender" in fields:
        profile.gender = fields["gender"] if fields["gender"] in GENDERS else None


async def get_profile(db: AsyncSession, user_id: str) -> ListenerProfile | None:
    return await db.get(ListenerProfile, user_id)


async def update_profile(db: AsyncSession, user: User, **fields) -> ListenerProfile:
    profile = await get_profile(db, user.id)
    if profile is None:
        raise AppError("not_a_listener", "你还不是倾听师", "not a listener", 403)
    # What a listing may claim follows from the verification record (no 心理咨询 without a verified qualification).
    clock = db.info.get("clock")
    texts = [fields.get("headline", profile.headline), fields.get("bio", profile.bio),
             *fields.get("topics", profile.topics), *fields.get("qualifications", profile.qualifications)]
    _no_contact(texts)
    await trust.check_listing(db, user.id, texts, clock.now() if clock else datetime.now(UTC))
    _apply(profile, fields)
    await db.flush()
    return profile


async def set_accepting(db: AsyncSession, user: User, accepting: bool) -> None:
    await db.execute(
        update(ListenerProfile).where(ListenerProfile.user_id == user.id).values(accepting=accepting)
    )


async def set_capacity(db: AsyncSession, user: User, capacity: int, platform_max: int) -> int:
    if not 1 <= capacity <= platform_max:
        raise AppError(
            "bad_capacity",
            f"同时服务人数需在 1 到 {platform_max} 之间",
            f"capacity must be between 1 and {platform_max}",
            400,
        )
    result = await db.execute(
        update(ListenerProfile).where(ListenerProfile.user_id == user.id).values(capacity=capacity)
    )
    if result.rowcount == 0:
        raise AppError("not_a_listener", "你还不是倾听师", "not a listener", 403)
    return capacity


async def lock_for_purchase(db: AsyncSession, listener_id: str) -> ListenerProfile | None:
    """The listed profile, row-locked on PostgreSQL so that purchases from one
    listener are counted against their capacity one at a time (SQLite: the
    caller's BEGIN IMMEDIATE already serializes writers)."""
    return await db.scalar(
        select(ListenerProfile)
        .join(User, User.id == ListenerProfile.user_id)
        .where(ListenerProfile.user_id == listener_id, ListenerProfile.status == "approved", ~User.disabled)
        .with_for_update(of=ListenerProfile)
    )


async def approve(db: AsyncSession, clock: Clock, admin: User, listener_id: str) -> ListenerProfile:
    # Conditional UPDATE: approving twice, or racing a suspension, is a no-op.
    result = await db.execute(
        update(ListenerProfile)
        .where(ListenerProfile.user_id == listener_id, ListenerProfile.status == "pending")
        .values(status="approved", approved_at=clock.now(), approved_by=admin.id)
    )
    profile = await get_profile(db, listener_id)
    if profile is None:
        raise AppError("not_found", "倾听师不存在", "listener not found", 404)
    if result.rowcount == 0 and profile.status != "approved":
        raise AppError("not_pending", "该资料不在待审核状态", "profile is not pending", 409)
    await db.refresh(profile)
    return profile


async def set_status(db: AsyncSession, listener_id: str, *, from_status: str, to_status: str) -> bool:
    """Conditional status change (suspend / reinstate): ``False`` when the
    profile was not in ``from_status`` — a double click or a race changes nothing."""
    result = await db.execute(
        update(ListenerProfile)
        .where(ListenerProfile.user_id == listener_id, ListenerProfile.status == from_status)
        .values(status=to_status)
    )
    return result.rowcount == 1


async def get_listed(db: AsyncSession, listener_id: str) -> ListenerProfile | None:
    if not listener_id or len(listener_id) > 32:
        return None
    return await db.scalar(
        select(ListenerProfile)
        .join(User, User.id == ListenerProfile.user_id)
        .where(ListenerProfile.user_id == listener_id, ListenerProfile.status == "approved", ~User.disabled)
    )


async def directory(db: AsyncSession, only: list[str] | None = None) -> list[tuple[ListenerProfile, User]]:
    """Listed listeners (approved, account open), oldest listing first; with
    ``only``, just those of them, in the order of ``only``."""
    stmt = (
        select(ListenerProfile, User)
        .join(User, User.id == ListenerProfile.user_id)
        .where(ListenerProfile.status == "approved", ~User.disabled)
        .order_by(ListenerProfile.approved_at.asc())
    )
    if only is not None:
        if not only:
            return []
        rows = {u.id: (p, u) for p, u in await db.execute(stmt.where(ListenerProfile.user_id.in_(only)))}
        return [rows[i] for i in only if i in rows]
    return [(p, u) for p, u in await db.execute(stmt)]


async def with_status(db: AsyncSession, status: str) -> list[tuple[ListenerProfile, User]]:
    rows = await db.execute(
        select(ListenerProfile, User).join(User, User.id == ListenerProfile.user_id)
        .where(ListenerProfile.status == status).order_by(ListenerProfile.created_at.asc())
    )
    return [(p, u) for p, u in rows]


async def pending(db: AsyncSession) -> list[tuple[ListenerProfile, User]]:
    rows = await db.execute(
        select(ListenerProfile, User)
        .join(User, User.id == ListenerProfile.user_id)
        .where(ListenerProfile.status == "pending")
        .order_by(ListenerProfile.created_at.asc())
    )
    return [(p, u) for p, u in rows]


def card(profile: ListenerProfile, user: User, presence: str) -> dict:
    return {
        "user_id": user.id,
        "display_name": user.display_name,
        "headline": profile.headline,
        "topics": profile.topics,
        "languages": profile.languages,
        "qualifications_declared": profile.qualifications,
        "price_per_hour_fen": profile.price_per_hour_fen,
        "accepting": profile.accepting,
        "capacity": profile.capacity,
        "gender": profile.gender,
        "presence": presence,
        "online_now": presence != "offline" and profile.accepting,
        "bio": profile.bio,
        "status": profile.status,
        "approved_at": profile.approved_at,
    }
