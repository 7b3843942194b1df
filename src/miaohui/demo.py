"""Demo data: enough people to try every flow on a fresh machine.

Idempotent: running it again leaves existing accounts alone.
"""

from __future__ import annotations

from types import SimpleNamespace

from sqlalchemy import select

from miaohui.accounts import service as accounts
from miaohui.accounts.models import User
from miaohui.clock import Clock
from miaohui.config import Settings
from miaohui.core.db import make_engine, make_sessionmaker, new_id
from miaohui.listeners import service as listeners
from miaohui.orders import service as orders
from miaohui.payments import service as payments

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
            for username, name, headline, topics, langs, quals, price, bio in LISTENERS:
                u = await accounts.signup(
                    db, clock, username=username, password=PASSWORD, display_name=name, role="listener"
                )
                await listeners.update_profile(
                    db, u, headline=headline, topics=topics, languages=langs, qualifications=quals,
                    price_per_hour_fen=price, bio=bio,
                )
                await listeners.approve(db, clock, admin, u.id)
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
        print(f" {role:<32} {username:<14} {name}")
    print("=" * 64)
    print()
