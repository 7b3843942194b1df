"""我的倾诉习惯 (wellbeing.habits): the month's arithmetic and its nudges as
pure functions, then the real thing — paid orders bought on the platform's
clock, read back through ``GET /api/me/habits`` and the orders page by the
seeker alone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from miaohui.wellbeing import habits
from miaohui.wellbeing.habits import Month, Sitting, month_of, nudges
from tests.conftest import Api
from tests.test_orders import buy, fund, say, wait_for

pytestmark = pytest.mark.server_settings(sla_tick_seconds=0.05)

TZ = "Asia/Shanghai"


def at(local: str) -> datetime:
    """A Shanghai wall-clock time as UTC."""
    return datetime.fromisoformat(local).replace(tzinfo=UTC) - timedelta(hours=8)


def month(**kw) -> Month:
    base = dict(sittings=0, minutes=0, late_nights=0, listeners=0, top_share=0.0, spent_fen=0)
    return Month(**{**base, **kw})


def test_a_late_night_is_the_night_it_fell_in_counted_once():
    sittings = [
        Sitting("a", at("2026-03-04T23:30"), 30),
        Sitting("a", at("2026-03-05T01:10"), 60),  # the same night as 23:30 on the 4th
        Sitting("b", at("2026-03-05T23:00"), 30),
        Sitting("a", at("2026-03-06T05:00"), 30),  # 05:00 is morning
        Sitting("a", at("2026-03-06T14:00"), 30),
    ]
    m = month_of(sittings, 12_000, TZ)
    assert m == Month(sittings=5, minutes=180, late_nights=2, listeners=2, top_share=0.8, spent_fen=12_000)
    assert month_of([], 0, TZ) == month()


def test_nudges_name_the_pattern_and_stop_at_two():
    assert nudges(month(sittings=8, late_nights=3, listeners=4, top_share=0.4, spent_fen=30_000),
                  month(spent_fen=25_000), has_budget=False) == []
    heavy = month(sittings=24, late_nights=9, listeners=1, top_share=1.0, spent_fen=500_000)
    found = nudges(heavy, month(spent_fen=100_000), has_budget=False)
    assert [n.key for n in found] == ["late_nights", "one_listener"]  # rising and many wait for next time
    assert "9 个深夜" in found[0].text and "身边的朋友或家人" in found[1].text


def test_rising_spend_points_to_a_budget_only_when_there_is_none():
    this = month(sittings=3, listeners=3, top_share=0.34, spent_fen=60_000)
    rising = nudges(this, month(spent_fen=20_000), has_budget=False)
    assert [n.key for n in rising] == ["rising"]
    assert rising[0].text == "本月的倾诉花费是上个月的 3.0 倍。" and rising[0].link[1] == "#budget"
    assert nudges(this, month(spent_fen=20_000), has_budget=True) == []
    assert nudges(this, month(spent_fen=40_000), has_budget=False) == []  # 1.5×: not doubled
    assert nudges(month(spent_fen=40_000), month(), has_budget=False) == []  # under ¥500: not worth a word
    assert nudges(this, month(), has_budget=False)[0].text == "本月的倾诉花费明显多于上个月。"
    many = nudges(month(sittings=20, listeners=5, top_share=0.3), month(), has_budget=True)
    assert [n.key for n in many] == ["many"] and "心理科" in many[0].text


def test_six_late_nights_with_one_listener_shows_the_seeker_alone(server, seeker, listener, clock):
    fund(server, seeker, 2000)
    # Six nights in January, 23:10 in Shanghai; each a 30-minute order with linqing.
    for day in range(10, 16):
        clock.set(at(f"2026-01-{day:02d}T23:10"))
        r = buy(server, seeker, listener, "30m")
        assert r.status_code == 201, r.text
        o = r.json()["order"]
        say(server, listener, o["conversation_id"], "我在，慢慢说")
        clock.set(at(f"2026-01-{day:02d}T23:45"))
        wait_for(server, seeker, o["id"], lambda o: o["status"] == "ended")
    # One more in the afternoon, continued by an extension: one sitting of an hour.
    clock.set(at("2026-01-16T15:00"))
    base = buy(server, seeker, listener, "30m").json()["order"]
    say(server, listener, base["conversation_id"], "下午好")
    r = httpx.post(f"{server.url}/api/orders/{base['id']}/extend",
                   json={"kind": "30m", "expected_total_fen": 3000}, headers=seeker.headers)
    assert r.status_code in (200, 201), r.text
    clock.set(at("2026-01-16T15:30"))
    wait_for(server, seeker, r.json()["id"], lambda o: o["status"] == "active")
    clock.set(at("2026-01-16T16:05"))
    wait_for(server, seeker, r.json()["id"], lambda o: o["status"] == "ended")
    # And a no-show: refunded in full, and no sitting.
    clock.set(at("2026-01-17T15:00"))
    gone = buy(server, seeker, listener, "30m").json()["order"]
    clock.set(at("2026-01-17T15:06"))
    wait_for(server, seeker, gone["id"], lambda o: o["end_reason"] == "no_show")

    clock.set(at("2026-01-20T12:00"))
    r = httpx.get(f"{server.url}/api/me/habits", headers=seeker.headers)
    assert r.status_code == 200, r.text
    h = r.json()
    this = h["this_month"]
    assert (this["sittings"], this["minutes"], this["late_nights"], this["listeners"], this["top_share"]) == (
        7, 240, 6, 1, 1.0)
    assert this["spent_fen"] == 6 * 9000 + 2 * 3000  # night ¥90 a half hour; the afternoon's ¥30 twice
    assert h["last_month"]["sittings"] == 0
    assert [n["key"] for n in h["nudges"]] == ["late_nights", "one_listener"]

    page = httpx.get(f"{server.url}/orders", headers=seeker.headers)
    assert page.status_code == 200
    assert "我的倾诉习惯" in page.text and "6 个深夜" in page.text and "7 次 · 4 小时" in page.text

    # February: January is last month now; nothing new this month, so no nudge.
    clock.set(at("2026-02-03T12:00"))
    seeker = Api(server, "xiaoyu")  # a new sign-in: the January one has expired
    h = httpx.get(f"{server.url}/api/me/habits", headers=seeker.headers).json()
    assert h["this_month"]["sittings"] == 0 and h["last_month"]["sittings"] == 7 and h["nudges"] == []
    assert h["last_month"]["spent_fen"] == 60_000

    # The listener sees none of it, through the API or on her orders page.
    listener = Api(server, "linqing")
    assert httpx.get(f"{server.url}/api/me/habits", headers=listener.headers).status_code == 403
    theirs = httpx.get(f"{server.url}/orders", headers=listener.headers)
    assert theirs.status_code == 200 and "我的倾诉习惯" not in theirs.text


def test_unit_constants_hold_together():
    assert habits.MAX_NUDGES == 2 and habits.LATE_NIGHT_HOURS == {23, 0, 1, 2, 3, 4}


def test_minutes_read_as_hours_and_minutes():
    from miaohui.orders.pages import minutes_label

    assert [minutes_label(m) for m in (0, 5, 60, 90, 240)] == ["0 分", "5 分", "1 小时", "1 小时 30 分", "4 小时"]
