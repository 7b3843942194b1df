"""Measured on-duty hours (listeners.duty).

The figures (pure): hours of the day in platform time, runs round midnight,
a zone with a half-hour offset, a new listener's shorter window, the seven-day
total.  Over the live server on SQLite and PostgreSQL: each process's sampler
marks a minute only for listeners online *and* 接单中, marking it twice counts
once, old rows are pruned, and the profile, the API, the console and the
seeker's 收藏 all show the same measured hours."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import select

from miaohui.listeners import duty
from miaohui.listeners.models import DutyHour
from tests.conftest import Api
from tests.test_web_pages import signed_in, text_of

SH = ZoneInfo("Asia/Shanghai")
FULL = (1 << 60) - 1


def local(y, mo, d, h, mi=0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=SH).astimezone(UTC)


def nights_and_noons(first: int = 1, last: int = 28) -> list[tuple[datetime, int]]:
    """22:00–24:00 (Shanghai) every night of January ``first``..``last``, and
    12:00–13:00 on the even days."""
    rows = []
    for d in range(first, last + 1):
        rows += [(local(2026, 1, d, 22), FULL), (local(2026, 1, d, 23), FULL)]
        if d % 2 == 0:
            rows.append((local(2026, 1, d, 12), FULL))
    return rows


# ---------------------------------------------------------------- the figures


def test_usual_hours_are_runs_of_busy_hours_in_platform_time():
    now = local(2026, 1, 29, 12)
    s = duty.summarize(nights_and_noons(), now, SH)
    assert s["days"] == 28 and s["enough"]
    assert s["by_hour"][22] == s["by_hour"][23] == 1.0 and s["by_hour"][12] == 0.5
    assert sum(s["by_hour"]) == 2.5
    assert s["usual"] == ["22:00–24:00", "12:00–13:00"]  # longest first; a run ending at midnight reads 24:00
    # Last seven days (from Jan 22 13:00): nights of the 22nd..28th, noons of the 24th, 26th, 28th.
    assert s["hours_7d"] == 17.0


def test_runs_go_round_midnight_and_a_partial_hour_counts_its_minutes():
    now = local(2026, 1, 29, 12)
    rows = []
    for d in range(1, 29):
        rows += [(local(2026, 1, d, 23), FULL), (local(2026, 1, d + 1, 0), FULL),
                 (local(2026, 1, d + 1, 1), (1 << 15) - 1)]  # 01:00–01:15 only: a quarter of the hour
    rows = [(h, m) for h, m in rows if h <= now]
    s = duty.summarize(rows, now, SH)
    assert s["usual"] == ["23:00–02:00"]
    assert s["by_hour"][1] == 0.25 and s["by_hour"][2] == 0.0
    everywhere = [(local(2026, 1, 29, 12) - timedelta(hours=h), FULL) for h in range(1, 24 * 28)]
    assert duty.summarize(everywhere, now, SH)["usual"] == ["全天"]
    assert duty.summarize([], now, SH) == {"days": 28, "by_hour": [0.0] * 24, "usual": [], "enough": False,
                                          "hours_7d": 0.0}


def test_a_zone_half_an_hour_off_splits_each_utc_hour():
    kolkata = ZoneInfo("Asia/Kolkata")  # UTC+5:30
    hour = datetime(2026, 1, 10, 16, tzinfo=UTC)  # 21:30–22:30 in Kolkata
    first_20_minutes = (1 << 20) - 1  # 21:30–21:50
    last_10 = ((1 << 10) - 1) << 50  # 22:20–22:30
    assert duty._local_minutes([(hour, first_20_minutes | last_10)], kolkata)[21:23] == [20, 10]


def test_a_new_listener_is_measured_from_their_first_hour_and_is_not_yet_a_habit():
    now = local(2026, 1, 29, 12)
    two_nights = nights_and_noons(27, 28)
    s = duty.summarize(two_nights, now, SH)
    assert s["days"] == 2  # Jan 27 22:00 .. Jan 29 12:59, not 28 days: two nights out of two
    assert s["by_hour"][22] == 1.0 and s["by_hour"][12] == 0.5
    assert not s["enough"] and s["usual"] == []  # under three days: no claim of a habit yet
    assert duty.summarize(nights_and_noons(26, 28), local(2026, 1, 29, 23), SH)["usual"][0] == "22:00–24:00"
    # Rows after "now" (a clock moved back) and before the window are not counted.
    s = duty.summarize(nights_and_noons() + [(local(2026, 2, 5, 22), FULL)], now, SH)
    assert s["by_hour"][22] == 1.0


# ---------------------------------------------------- a tick with many on duty


def test_a_tick_writes_every_listener_on_duty_in_one_statement_of_one_text(database_url):
    """With a thousand listeners on duty the tick was one multi-row VALUES
    upsert, compiled afresh on the event loop for every row count (100–170
    ms with no chat message read).  Now the ids go as one JSON array: the
    statement's text is the same for 3 listeners or 250, and one execution
    marks them all, in a transaction of its own."""
    from sqlalchemy import event, text

    from miaohui.chat.presence import LocalPresence
    from miaohui.clock import FakeClock
    from miaohui.core.db import make_engine, make_sessionmaker, new_id
    from tests.conftest import run_sync

    n = 250
    when = datetime(2026, 3, 1, 18, 42, 30, tzinfo=UTC)

    class Ctx:
        clock = FakeClock(when)
        presence = LocalPresence()

    async def go():
        engine = make_engine(database_url)
        ctx = Ctx()
        ctx.sessionmaker = make_sessionmaker(engine, ctx.clock)
        ids = [new_id() for _ in range(n)]
        async with ctx.sessionmaker() as db:
            for i, uid in enumerate(ids):
                await db.execute(text(
                    "INSERT INTO users (id, username, password_hash, display_name, role, disabled, created_at)"
                    " VALUES (:id, :u, '-', :d, 'listener', false, :now)"), {"id": uid, "u": f"duty{i:04d}",
                                                                           "d": f"值班{i}", "now": when})
                await db.execute(text(
                    "INSERT INTO listener_profiles (user_id, headline, bio, topics, languages, qualifications,"
                    " price_per_hour_fen, status, accepting, capacity, created_at)"
                    " VALUES (:id, '', '', '[]', '[]', '[]', 5000, 'approved', true, 2, :now)"),
                    {"id": uid, "now": when})
            await db.commit()
        for uid in ids[:3]:
            await ctx.presence.set(uid, "c1", "online")

        writes, commits = [], []

        def on_execute(conn, cursor, statement, parameters, context, executemany):
            if "listener_duty" in statement:
                writes.append((statement, executemany))

        event.listen(engine.sync_engine, "before_cursor_execute", on_execute)
        event.listen(engine.sync_engine, "commit", lambda conn: commits.append(len(writes)))
        try:
            few = await duty.sample(ctx)  # three on duty
            for uid in ids[3:]:
                await ctx.presence.set(uid, "c1", "away")  # a hidden page is still on duty
            ctx.clock.advance(minutes=1)
            many = await duty.sample(ctx)
        finally:
            event.remove(engine.sync_engine, "before_cursor_execute", on_execute)
        async with ctx.sessionmaker() as db:
            marked = dict((await db.execute(select(DutyHour.listener_id, DutyHour.minutes).where(
                DutyHour.hour_start == duty.hour_of(when)))).all())
        await engine.dispose()
        return ids, few, many, writes, commits, marked

    ids, few, many, writes, commits, marked = run_sync(go())
    assert (few, many) == (3, n)  # (the demo's own listeners have no socket open)
    assert marked == {i: (1 << 42 | 1 << 43) if k < 3 else 1 << 43 for k, i in enumerate(ids)}
    assert len(writes) == 2 and not any(w[1] for w in writes)  # one execution a tick
    assert writes[0][0] == writes[1][0]  # the same text for 3 and for 250: compiled once
    assert sorted(set(commits) - {0}) == [1, 2]  # each tick's write committed before the next tick


# ---------------------------------------------------------- over the server


def bits(server, listener_id: str, hour: datetime) -> int:
    async def q(db):
        return await db.scalar(select(DutyHour.minutes).where(
            DutyHour.listener_id == listener_id, DutyHour.hour_start == hour)) or 0

    return server.db(q)


def wait_for(fn, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while not (value := fn()):
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.02)
    return value


def set_accepting(who: Api, on: bool) -> None:
    r = httpx.put(f"{who.server.url}/api/listener/availability", json={"accepting": on}, headers=who.headers)
    assert r.status_code == 204, r.text


def presence_of(server, listener_id: str) -> str:
    return httpx.get(f"{server.url}/api/listeners/{listener_id}").json()["presence"]


@pytest.mark.server_settings(duty_sample_seconds=0.05)
def test_the_sampler_marks_minutes_online_and_accepting_and_prunes_old_hours(server, clock):
    lin, zhou = Api(server, "linqing"), Api(server, "zhouyan")
    hour = datetime(2026, 1, 1, 12, tzinfo=UTC)  # the fake clock's start: 20:00 in Shanghai

    async def go():
        async with zhou.ws("/ws/inbox") as z:
            await z.recv()  # hello
            async with lin.ws("/ws/inbox") as a:
                await a.recv()
                wait_for(lambda: bits(server, lin.id, hour) & 1)  # 12:00 on duty
                set_accepting(lin, False)  # connected but 休息中: not on duty
                clock.advance(minutes=1)
                wait_for(lambda: bits(server, zhou.id, hour) & 0b10)  # a tick saw 12:01 ...
                assert not bits(server, lin.id, hour) & 0b10  # ... and left 林晴 out
                clock.advance(minutes=1)  # (first: at 12:01 she stays off)
                set_accepting(lin, True)
                wait_for(lambda: bits(server, lin.id, hour) & 0b100)
            wait_for(lambda: presence_of(server, lin.id) == "offline")  # her only socket closed
            clock.advance(minutes=1)
            wait_for(lambda: bits(server, zhou.id, hour) & 0b1000)
            assert bits(server, lin.id, hour) == 0b101
            # Listeners never connected were never on duty.
            assert bits(server, Api(server, "ajin").id, hour) == 0

            # A minute marked again (a second process, a second tick) counts once.
            async def mark_again(db):
                await duty.record(db, [lin.id], hour)
                await db.commit()

            server.db(mark_again)
            assert bits(server, lin.id, hour) == 0b101
            profile = httpx.get(f"{server.url}/api/listeners/{lin.id}").json()
            assert profile["duty"]["days"] == 1 and profile["duty"]["hours_7d"] == round(2 / 60, 1)

            # A month on, the hour is older than the window: pruned (zhou's new hours are kept).
            clock.advance(days=30)
            wait_for(lambda: not bits(server, zhou.id, hour))
            assert bits(server, lin.id, hour) == 0
            wait_for(lambda: bits(server, zhou.id, duty.hour_of(clock.now())))

    asyncio.run(go())


def test_profile_api_console_and_favourites_show_the_measured_hours(server, clock):
    lin = Api(server, "linqing")
    clock.set(local(2026, 1, 29, 12))

    async def history(db):
        await duty.merge(db, [(lin.id, h, m) for h, m in nights_and_noons()])
        await db.commit()

    server.db(history)
    card = httpx.get(f"{server.url}/api/listeners/{lin.id}").json()
    assert card["duty"] == {"days": 28, "by_hour": [0.0] * 12 + [0.5] + [0.0] * 9 + [1.0, 1.0], "enough": True,
                            "usual": ["22:00–24:00", "12:00–13:00"], "hours_7d": 17.0}

    page = httpx.get(f"{server.url}/listeners/{lin.id}")
    text = text_of(page.text)
    assert "TA通常在线：22:00–24:00、12:00–13:00" in text.replace(" ", "")
    assert "近 28 天平台实测（在线并且接单中），近 7 天共在线 17.0 小时" in text
    assert "TA 现在不在线，通常 22:00–24:00、12:00–13:00 在线" in text
    bars = page.text.split('class="duty-bars"')[1].split("</ol>")[0]
    assert bars.count("<li") == 24
    assert 'class="lv4 night" data-hour="23"' in bars and 'class="lv3" data-hour="12"' in bars
    assert 'class="lv0" data-hour="9"' in bars

    console = text_of(signed_in(server, "linqing").get("/console").text)
    assert "我的在线时间" in console and "你通常在线：22:00–24:00、12:00–13:00" in console.replace("： ", "：")

    # A seeker who keeps her sees the same hours on the home page.
    seeker = Api(server, "xiaoyu")
    assert httpx.put(f"{server.url}/api/favorites/{lin.id}", headers=seeker.headers).status_code == 200
    kept = httpx.get(f"{server.url}/api/favorites", headers=seeker.headers).json()
    assert [c["display_name"] for c in kept] == ["林晴"] and kept[0]["duty"]["usual"][0] == "22:00–24:00"
    home = text_of(signed_in(server, "xiaoyu").get("/").text)
    assert "我收藏的倾听师" in home and "通常 22:00–24:00、12:00–13:00 在线" in home


def test_usually_here_at_this_hour_reaches_cards_the_empty_directory_and_matching(server, clock):
    lin, zhou = Api(server, "linqing"), Api(server, "zhouyan")

    async def history(db):
        await duty.merge(db, [(lin.id, h, m) for h, m in nights_and_noons()])
        # 周言: 21:30–22:30 India time, every day: in Kolkata's 22:00 hour half the minutes are his.
        await duty.merge(db, [(zhou.id, datetime(2026, 1, d, 16, tzinfo=UTC), FULL & ~((1 << 30) - 1))
                              for d in range(1, 29)] +
                         [(zhou.id, datetime(2026, 1, d, 17, tzinfo=UTC), (1 << 30) - 1) for d in range(1, 29)])
        await db.commit()

    server.db(history)

    def usual(at: datetime, tz: str = "Asia/Shanghai") -> dict[str, bool]:
        async def q(db):
            return await duty.usual_now_many(db, [lin.id, zhou.id], at, tz)

        return server.db(q)

    assert usual(local(2026, 1, 29, 22, 30)) == {lin.id: True, zhou.id: False}
    assert usual(local(2026, 1, 29, 12, 5)) == {lin.id: True, zhou.id: False}  # noons on half the days
    assert usual(local(2026, 1, 29, 15, 0)) == {lin.id: False, zhou.id: False}
    kolkata = datetime(2026, 1, 29, 22, 10, tzinfo=ZoneInfo("Asia/Kolkata")).astimezone(UTC)
    assert usual(kolkata, "Asia/Kolkata")[zhou.id] is True  # 22:00–22:30 of every evening: half the hour
    assert usual(local(2026, 1, 3, 22, 30)) == {lin.id: False, zhou.id: False}  # two days on record: not yet

    clock.set(local(2026, 1, 29, 22, 30))
    cards = {c["display_name"]: c for c in httpx.get(f"{server.url}/api/listeners").json()}
    assert cards["林晴"]["usual_now"] is True and cards["林晴"]["online_now"] is False
    assert not any(c["usual_now"] for name, c in cards.items() if name != "林晴")
    page = httpx.get(f"{server.url}/listeners").text
    assert page.count('data-testid="usual-now"') == 1
    empty = text_of(httpx.get(f"{server.url}/listeners?online=1").text)
    assert "现在没有在线的倾听师" in empty and "通常这个时段在线的有：林晴，可以先给 TA 留言" in empty
    r = httpx.post(f"{server.url}/api/match", json={"text": "失恋了，晚上睡不着"}).json()
    top = r["results"][0]
    assert top["card"]["display_name"] == "林晴"
    assert "现在不在线，通常这个时段在线，可先留言" in top["explanation"] and top["parts"]["available"] == 0.2
    # She comes online: the ordinary 在线 wins, the tag goes.
    async def online():
        async with lin.ws("/ws/inbox") as ws:
            await ws.recv()
            return httpx.get(f"{server.url}/listeners").text

    assert 'data-testid="usual-now"' not in asyncio.run(online())
