"""Night pricing, packages and the settlement arithmetic — pure, clock-free."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from miaohui.orders import contract as terms
from miaohui.orders.pricing import Tariff, quote, split_day_night, value_of, windows_for

SH = ZoneInfo("Asia/Shanghai")
T = Tariff()


def at(h: int, m: int = 0, day: int = 10) -> datetime:
    return datetime(2026, 3, day, h, m, tzinfo=SH).astimezone(UTC)


def test_day_hour_costs_base():
    q = quote("1h", 6000, windows_for("1h", at(14), T), T, 0)
    assert (q.day_seconds, q.night_seconds, q.total_fen) == (3600, 0, 6000)


def test_night_hour_costs_three_times_base():
    q = quote("1h", 6000, windows_for("1h", at(2), T), T, 0)
    assert (q.day_seconds, q.night_seconds, q.total_fen) == (0, 3600, 18000)
    assert q.night_multiplier_pct == 300


@given(base=st.integers(0, 10_000_000), pct=st.integers(0, 1000))
def test_the_night_price_shown_is_what_a_night_hour_costs(base, pct):
    t = Tariff(night_surcharge_pct=pct)
    q = quote("1h", base, windows_for("1h", at(2), t), t, 0)
    assert q.night_seconds == 3600 and t.night_hourly(base) == q.total_fen


def test_straddling_23_is_pro_rated():
    # 22:30–23:30: half an hour of day, half an hour of night.
    q = quote("1h", 6000, windows_for("1h", at(22, 30), T), T, 0)
    assert (q.day_seconds, q.night_seconds) == (1800, 1800)
    assert q.day_fen == 3000 and q.night_fen == 9000 and q.total_fen == 12000


def test_straddling_7_in_the_morning():
    q = quote("30m", 6000, windows_for("30m", at(6, 45), T), T, 0)
    assert (q.day_seconds, q.night_seconds) == (900, 900)
    assert q.total_fen == 1500 + 4500


def test_across_midnight_stays_night():
    q = quote("1h", 6000, windows_for("1h", at(23, 30), T), T, 0)
    assert q.night_seconds == 3600 and q.total_fen == 18000


def test_baoye_is_tonight_23_to_7_with_discount():
    wins = windows_for("night", at(20), T)
    assert wins == [(at(23), at(7, day=11))]
    q = quote("night", 6000, wins, T, 10)
    assert q.night_seconds == 8 * 3600
    assert q.subtotal_fen == 8 * 18000 and q.discount_fen == 14400 and q.total_fen == 129600


def test_baoye_bought_at_2am_runs_to_7():
    wins = windows_for("night", at(2), T)
    assert wins == [(at(2), at(7))]


def test_baotian_has_8_night_hours_and_16_day_hours():
    q = quote("day", 6000, windows_for("day", at(12), T), T, 0)
    assert (q.day_seconds, q.night_seconds) == (16 * 3600, 8 * 3600)
    assert q.total_fen == 16 * 6000 + 8 * 18000


def test_baoyue_is_30_daily_windows():
    wins = windows_for("month", at(10), T, daily_start="21:00", daily_minutes=60)
    assert len(wins) == 30
    assert wins[0] == (at(21), at(22))
    assert wins[-1][0] - wins[0][0] == timedelta(days=29)
    late = windows_for("month", at(22, 30), T, daily_start="21:00", daily_minutes=60)
    assert late[0] == (at(21, day=11), at(22, day=11))  # today's hour is over: starts tomorrow


def test_settings_change_the_rule():
    cheap_nights = Tariff(night_surcharge_pct=50, night_start_hour=0, night_end_hour=6)
    q = quote("1h", 6000, windows_for("1h", at(23), cheap_nights), cheap_nights, 0)
    assert q.night_seconds == 0 and q.total_fen == 6000
    q = quote("1h", 6000, windows_for("1h", at(1), cheap_nights), cheap_nights, 0)
    assert q.total_fen == 9000


@given(
    start=st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 1, 1), timezones=st.just(UTC)),
    minutes=st.integers(1, 48 * 60),
    base=st.integers(0, 100_000),
)
def test_split_covers_every_second_and_value_is_monotone(start, minutes, base):
    start = start.replace(microsecond=0)
    end = start + timedelta(minutes=minutes)
    d, n = split_day_night(start, end, T)
    assert d + n == minutes * 60
    full = value_of([(start, end)], base, T)
    half = value_of([(start, start + (end - start) / 2)], base, T)
    assert 0 <= half <= full
    assert base * minutes // 60 <= full + 1 <= base * 3 * minutes // 60 + 2


def _order(price=10000, breaches=0, reason="completed", ended=None):
    wins = windows_for("1h", at(14), T)
    q = quote("1h", price, wins, T, 0)
    settings = SimpleNamespace(
        timezone="Asia/Shanghai", night_start_hour=23, night_end_hour=7, night_surcharge_pct=200,
        breach_deduction_pct=5, breach_cap_pct=50, disappear_minutes=10, no_show_minutes=5, end_notice_minutes=5,
        dispute_window_hours=24, commission_pct=30,
    )
    c = terms.build(settings, q, window_s=30, listener={"user_id": "l", "display_name": "林"}, seeker_id="s")
    return SimpleNamespace(contract=c, price_fen=q.total_fen, breaches=breaches, end_reason=reason, status="ended",
                           ended_at=ended or wins[0][1], windows=[[a.isoformat(), b.isoformat()] for a, b in wins])


def test_outcome_completed_no_breach():
    o = terms.outcome(_order())
    assert o == {"price": 10000, "unserved": 0, "compensation": 0, "refund": 0, "commission": 3000,
                 "listener_net": 7000, "breaches": 0}


def test_outcome_breaches_are_capped_at_half():
    assert terms.outcome(_order(breaches=3))["compensation"] == 1500
    o = terms.outcome(_order(breaches=40))
    assert o["compensation"] == 5000 and o["refund"] == 5000
    assert o["commission"] + o["listener_net"] + o["refund"] == 10000


def test_outcome_disappeared_refunds_unserved_time_on_top():
    o = terms.outcome(_order(breaches=1, reason="disappeared", ended=at(14, 15)))
    assert o["unserved"] == 7500  # 45 of 60 minutes
    assert o["compensation"] == 500
    assert o["refund"] == 8000 and o["commission"] + o["listener_net"] == 2000


def test_contract_text_says_it_is_a_service_not_a_gift():
    c = _order().contract
    assert "不是赠与" in c["text"][0]
    assert "30 秒内" in c["text"][2]
    assert terms.digest(c) == terms.digest(dict(c))
