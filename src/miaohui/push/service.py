"""关闭页面后也提醒: the devices a person asked to be told on while no page is open.

A page that is open already tells its person (``web/static/js/notify.js``);
a 秒回 listener whose phone browser closed the tab learns of a new client
only if something reaches the phone itself.  That is Web Push: the browser
subscribes at its vendor's push service and hands the platform an endpoint
and two keys; the platform POSTs encrypted notices there (:mod:`.relay`).

Rules kept here:

* **Only known push services.**  The server POSTs to the endpoint a browser
  gave, so an endpoint elsewhere would let anyone aim the server at an
  internal address: only the vendors' hosts (``push_services``) and
  configured origins are accepted.
* **One sign-in, one subscription.**  The row hangs off the session that made
  it (ON DELETE CASCADE), so signing out stops the notices on that device.
  A device subscribed again under another account moves to that account.
* **Every query names its person**: one cannot list, change or remove
  another's device.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from urllib.parse import urlsplit

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from miaohui.accounts import service as accounts
from miaohui.config import Settings
from miaohui.core.crypto import KeyRing
from miaohui.core.db import begin_write, new_id
from miaohui.core.errors import AppError
from miaohui.push import webpush
from miaohui.push.models import PushSubscription

# What a person recognises their device by: the push service says which browser it is.
SERVICE_LABELS = {"fcm.googleapis.com": "Chrome / 安卓浏览器", "updates.push.services.mozilla.com": "Firefox",
                  "web.push.apple.com": "Safari（iPhone、Mac）"}


def service_label(host: str) -> str:
    if host.endswith(".notify.windows.com"):
        return "Edge（Windows）"
    return SERVICE_LABELS.get(host, host)


def _bad(code: str, zh: str, en: str) -> AppError:
    return AppError(code, zh, en, 400)


def service_of(endpoint: str, settings: Settings) -> str:
    """The push service's host, if ``endpoint`` may be written to; else a 400."""
    parts = urlsplit(endpoint)
    origin = f"{parts.scheme}://{parts.netloc}"
    host = (parts.hostname or "").lower()
    if origin in settings.push_extra_origins and parts.username is None:
        return host
    known = any(host == s or (s.startswith(".") and host.endswith(s)) for s in settings.push_services)
    if parts.scheme != "https" or not known or parts.username is not None or parts.port not in (None, 443):
        raise _bad("push_service_unknown", "这个浏览器的推送服务不在支持范围内", "push service not supported")
    return host


def check_keys(p256dh: str, auth: str) -> None:
    try:
        webpush.load_public(webpush.unb64u(p256dh))
        ok = len(webpush.unb64u(auth)) == 16
    except ValueError:
        ok = False
    if not ok:
        raise _bad("push_keys_invalid", "推送订阅的密钥无效", "invalid subscription keys")


def endpoint_hash(endpoint: str) -> str:
    return hashlib.sha256(endpoint.encode()).hexdigest()


async def subscribe(db: AsyncSession, settings: Settings, keyring: KeyRing, now: datetime, *, user_id: str,
                    role: str, session_hash: str, endpoint: str, p256dh: str, auth: str) -> PushSubscription:
    """Keep this device's subscription for this sign-in (a new one, or the
    same endpoint again: its keys and owner refreshed)."""
    if not settings.push_enabled:
        raise AppError("push_disabled", "本站没有开启推送提醒", "push notifications are turned off here", 404)
    service = service_of(endpoint, settings)
    check_keys(p256dh, auth)
    h = endpoint_hash(endpoint)
    await begin_write(db)
    sub = await db.scalar(select(PushSubscription).where(PushSubscription.endpoint_hash == h))
    if sub is None:
        sub = PushSubscription(id=new_id(), endpoint_hash=h, created_at=now)  # the id names the sealed row
        db.add(sub)
    sub.user_id, sub.role, sub.session_hash, sub.service = user_id, role, session_hash, service
    sub.seal(keyring, endpoint=endpoint, keys=f"{p256dh}.{auth}")
    await db.flush()
    extra = list(await db.scalars(
        select(PushSubscription.id).where(PushSubscription.user_id == user_id)
        .order_by(PushSubscription.created_at.desc(), PushSubscription.id.desc()).offset(settings.push_max_devices)
    ))
    if extra:
        await db.execute(delete(PushSubscription).where(PushSubscription.id.in_(extra)))
    return sub


async def unsubscribe(db: AsyncSession, user_id: str, endpoint: str) -> bool:
    """This device stops (the page's 关闭, or the browser dropped it)."""
    await begin_write(db)
    res = await db.execute(delete(PushSubscription).where(
        PushSubscription.user_id == user_id, PushSubscription.endpoint_hash == endpoint_hash(endpoint)))
    return res.rowcount > 0


async def remove(db: AsyncSession, user_id: str, subscription_id: str) -> bool:
    """A device removed from 账户与隐私 (a lost phone)."""
    await begin_write(db)
    res = await db.execute(delete(PushSubscription).where(
        PushSubscription.user_id == user_id, PushSubscription.id == subscription_id))
    return res.rowcount > 0


def device(s: PushSubscription, session_hash: str | None) -> dict:
    """A device as its person sees it (never its endpoint or keys)."""
    return {"id": s.id, "service": s.service, "label": service_label(s.service), "created_at": s.created_at,
            "last_sent_at": s.last_sent_at, "this_sign_in": s.session_hash == session_hash}


async def devices(db: AsyncSession, user_id: str, session_hash: str | None = None) -> list[dict]:
    rows = await db.scalars(
        select(PushSubscription).where(PushSubscription.user_id == user_id).order_by(PushSubscription.created_at))
    return [device(s, session_hash) for s in rows]


async def export_for(db: AsyncSession, user_id: str) -> list[dict]:
    """For the data download: which devices, through which service, since when (not the keys)."""
    return [{k: v for k, v in d.items() if k != "this_sign_in"} for d in await devices(db, user_id)]


async def subscribed(db: AsyncSession) -> tuple[set[str], bool]:
    """Who has any device (the relay's filter), and whether any supervisor has."""
    rows = (await db.execute(select(PushSubscription.user_id, PushSubscription.role).distinct())).all()
    return {u for u, _ in rows}, any(r == "supervisor" for _, r in rows)


async def targets(db: AsyncSession, now: datetime, *, user_ids: set[str] | None = None,
                  role: str | None = None) -> list[PushSubscription]:
    """The devices to write to, of these people or of this role, whose
    sign-in is still live (an expired session's device is told nothing,
    even before the expired row is cleaned away)."""
    q = select(PushSubscription)
    if user_ids is not None:
        q = q.where(PushSubscription.user_id.in_(user_ids))
    if role is not None:
        q = q.where(PushSubscription.role == role)
    subs = list(await db.scalars(q))
    live = await accounts.live_sessions(db, {s.session_hash for s in subs}, now)
    return [s for s in subs if s.session_hash in live]


async def sent(db: AsyncSession, ok_ids: list[str], gone_ids: list[str], now: datetime) -> None:
    """After a round of sending: when each device was last reached; the ones
    their push service says are gone (404 / 410) deleted."""
    if gone_ids:
        await db.execute(delete(PushSubscription).where(PushSubscription.id.in_(gone_ids)))
    if ok_ids:
        await db.execute(update(PushSubscription).where(PushSubscription.id.in_(ok_ids)).values(last_sent_at=now))


def encrypted_stores() -> list:
    """Subscriptions' endpoints and keys, for key rotation."""
    from miaohui.core.sealed import sealed_columns

    return [sealed_columns(PushSubscription)]
