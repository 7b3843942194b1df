"""Demo data: enough people to try every flow on a fresh machine.

Idempotent: running it again leaves existing accounts alone.
"""

from __future__ import annotations

import random
import struct
import unicodedata
import zlib
from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

from sqlalchemy import select

from miaohui.accounts import service as accounts
from miaohui.accounts.models import User
from miaohui.clock import Clock
from miaohui.config import Settings
from miaohui.core.crypto import KeyRing
from miaohui.core.db import make_engine, make_sessionmaker, new_id
from miaohui.listeners import duty
from miaohui.listeners import service as listeners
from miaohui.orders import service as orders
from miaohui.payments import service as payments
from miaohui.verification import course, identity
from miaohui.verification import service as trust
from miaohui.verification.provider import SandboxProvider
from miaohui.verification.records import KINDS

PASSWORD = "miaohui-demo"

SEEKERS = [("xiaoyu", "小雨"), ("ahe", "阿禾")]
# Starting balances (fen), credited through a completed sandbox payment like any top-up.
DEMO_BALANCES = {"xiaoyu": 50000, "ahe": 20000}
LISTENERS = [
    (
        "linqing", "林晴", "失恋、分手后的夜晚，我陪你慢慢说",
        ["失恋", "情感", "孤独"], ["普通话"], ["国家三级心理咨询师"], 6000,
        "做了四年情感倾听，擅长陪伴分手后的失眠夜。不评判，不说教。",
    ),
    (
        "zhouyan", "周言", "职场压力、焦虑、睡不着",
        ["职场", "焦虑", "失眠"], ["普通话", "English"], ["社会工作者"], 8000,
        "前互联网产品经理，懂加班、绩效和裁员的焦虑。",
    ),
    (
        "ajin", "阿瑾", "家庭关系、亲子与原生家庭",
        ["家庭", "亲子", "原生家庭"], ["普通话", "粤语"], ["心理学本科"], 5000,
        "两个孩子的妈妈，愿意听你说家里那些说不出口的事。",
    ),
    (
        "xiaobai", "小白", "学业压力、考研、室友关系",
        ["学业", "人际", "自我成长"], ["普通话"], [], 3000,
        "刚毕业的研究生，陪你熬过考试周和迷茫期。",
    ),
]
STAFF = [("supervisor", "督导·陈老师", "supervisor"), ("admin", "管理员", "admin")]
# Each demo listener commits to a different reply window.
DEMO_WINDOWS = {"linqing": 10, "zhouyan": 30, "ajin": 60, "xiaobai": 30}
PENDING = ("newlistener", "新倾听师", "情绪陪伴", ["情绪"], 4000)
# Trust (issue 6): every listed demo listener has passed the sandbox real-name
# check (fictional people, well-formed ID numbers) and the training quiz, with
# a mix of verified qualifications; 小白 also has a proof waiting for review.
# The pending listener has done nothing yet.
LISTENER_TRUST = {
    "linqing": ("林晴", date(1992, 5, 14), [("counselor_3", "")], []),
    "zhouyan": ("周言", date(1990, 11, 2), [("social_worker", "")], []),
    "ajin": ("金瑾", date(1987, 3, 9), [("degree", "心理学本科")], []),
    "xiaobai": ("白晓", date(1999, 8, 21), [], [("other", "朋辈心理辅导员培训证书")]),
}
DEMO_GENDERS = {"linqing": "female", "zhouyan": "male", "ajin": "female"}  # 小白 chose not to show it
# Four weeks of measured on-duty time (listeners.duty), so profiles show usual
# hours: (local start hour, hours, share of days) per listener.  林晴 is the
# night owl the 2 a.m. seeker is looking for.
DEMO_DUTY = {
    "linqing": [(22, 4, 0.85), (12, 1, 0.3)],
    "zhouyan": [(19, 4, 0.7)],
    "ajin": [(9, 3, 0.6), (14, 2, 0.4)],
    "xiaobai": [(20, 5, 0.5), (1, 1, 0.3)],
}


def demo_duty(username: str, now: datetime, tz: ZoneInfo, days: int = 28) -> list[tuple[datetime, int]]:
    """``(UTC hour start, minutes mask)`` rows for :data:`DEMO_DUTY`, the same every run for a given day."""
    rng = random.Random(username)
    today = now.astimezone(tz).replace(hour=0, minute=0, second=0, microsecond=0)
    rows: dict[datetime, int] = {}
    for d in range(days, 0, -1):
        day = today - timedelta(days=d)
        for start, hours, share in DEMO_DUTY.get(username, []):
            if rng.random() >= share:
                continue
            begin = day + timedelta(hours=start, minutes=rng.randrange(0, 20))
            minutes = hours * 60 - rng.randrange(0, 30)
            for m in range(minutes):
                t = (begin + timedelta(minutes=m)).astimezone(UTC)
                hour = t.replace(minute=0, second=0, microsecond=0)
                rows[hour] = rows.get(hour, 0) | (1 << t.minute)
    return sorted(rows.items())


def demo_certificate(seed: int) -> bytes:
    """A small, viewable sample PNG for a demo proof (a framed blank "certificate"): demo data only."""
    w, h = 360, 240
    hue = (seed * 53) % 255
    rows = []
    for y in range(h):
        row = bytearray([0])
        for x in range(w):
            edge = min(x, y, w - 1 - x, h - 1 - y)
            if edge < 6:
                px = (hue, 120, 90)
            elif edge < 10 or (60 <= y <= 64 and 40 <= x <= w - 40) or (y in range(100, 200, 20) and 40 <= x <= w - 90):
                px = (200, 180, 120)
            else:
                px = (250, 246, 235)
            row += bytes(px)
        rows.append(bytes(row))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"".join(rows), 9)) + chunk(b"IEND", b"")


async def seed_trust(db, tctx, user: User, admin: User, index: int) -> None:
    legal_name, birth, verified, pending = LISTENER_TRUST[user.username]
    parsed = identity.check_id(identity.make_id("110105", birth, 101 + 2 * index))
    await trust.store_identity(db, tctx, user.id, legal_name, parsed, f"sbx_demo_{user.username}")
    trust.record_attempt(db, tctx, user.id, course.grade(course.answer_key()))
    now = tctx.clock.now()
    for n, (kind, title) in enumerate(verified + pending):
        q = await trust.add_qualification(db, tctx, user.id, kind, title or KINDS[kind].label,
                                          demo_certificate(index * 7 + n), "image/png")
        if n < len(verified):
            await trust.decide_qualification(db, tctx.keyring, admin.id, q.id, approve=True, note="演示数据",
                                             expires=now + timedelta(days=tctx.settings.qualification_valid_days),
                                             now=now)


async def seed(settings: Settings, clock: Clock | None = None) -> None:
    clock = clock or Clock()
    engine = make_engine(settings.resolved_database_url)
    sm = make_sessionmaker(engine)
    try:
        async with sm() as db:
            if await db.scalar(select(User.id).where(User.username == "admin")):
                return
            admin = None
            for username, name, role in STAFF:
                u = await accounts.create_user(
                    db, clock, username=username, password=PASSWORD, display_name=name, role=role
                )
                admin = u if role == "admin" else admin
            for username, name in SEEKERS:
                u = await accounts.signup(
                    db, clock, username=username, password=PASSWORD, display_name=name, role="seeker"
                )
                await payments.record_completed_topup(db, clock, u.id, DEMO_BALANCES[username], new_id())
            tctx = SimpleNamespace(settings=settings, clock=clock, keyring=KeyRing(settings.effective_message_keys),
                                   verifier=SandboxProvider())
            for i, (username, name, headline, topics, langs, quals, price, bio) in enumerate(LISTENERS):
                u = await accounts.signup(
                    db, clock, username=username, password=PASSWORD, display_name=name, role="listener"
                )
                await seed_trust(db, tctx, u, admin, i)  # before the profile: its wording follows the record
                await listeners.update_profile(
                    db, u, headline=headline, topics=topics, languages=langs, qualifications=quals,
                    price_per_hour_fen=price, bio=bio, gender=DEMO_GENDERS.get(username),
                )
                await listeners.approve(db, clock, admin, u.id)
                await duty.merge(db, [(u.id, h, m) for h, m in demo_duty(username, clock.now(), ZoneInfo(settings.timezone))])
                window = DEMO_WINDOWS.get(username, 30)
                ctx = SimpleNamespace(settings=settings, clock=clock)
                for kind in ("30m", "1h", "night", "day", "month"):
                    await orders.set_offering(db, ctx, u, kind=kind, response_window_s=window)
            username, name, headline, topics, price = PENDING
            u = await accounts.signup(db, clock, username=username, password=PASSWORD, display_name=name, role="listener")
            await listeners.update_profile(db, u, headline=headline, topics=topics, price_per_hour_fen=price)
            await db.commit()
    finally:
        await engine.dispose()


def _pad(text: str, width: int) -> str:
    """Pad to a terminal column: CJK characters take two columns, so ``str.ljust`` misaligns them."""
    cols = sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)
    return text + " " * max(width - cols, 1)


def print_logins(url: str) -> None:
    rows = [("倾诉者 seeker", u, n) for u, n in SEEKERS]
    rows += [("倾听师 listener", u[0], u[1]) for u in LISTENERS]
    rows += [("待审核倾听师 pending listener", PENDING[0], PENDING[1])]
    rows += [(("督导 supervisor" if r == "supervisor" else "管理员 admin"), u, n) for u, n, r in STAFF]
    print()
    print("=" * 64)
    print(f" 秒回 Miaohui demo — open {url}")
    print(f" 所有演示账号密码 / password for every demo account: {PASSWORD}")
    print("-" * 64)
    for role, username, name in rows:
        print(f" {_pad(role, 32)}{_pad(username, 15)}{name}")
    print("=" * 64)
    print()
