"""The reply clock, on hand-made message logs (pure: no server)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from miaohui.sla import engine

T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
WIN = [(T0, T0 + timedelta(hours=1))]


def t(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def run(rows, windows=WIN, window_s=30, st=None):
    st = st or engine.ReplyState(0, None, None, None)
    return engine.apply_messages(st, rows, windows=windows, window_s=window_s, seeker_id="S", listener_id="L",
                                 starts_at=windows[0][0])


def test_one_turn_within_window():
    st = run([(1, "S", t(1)), (2, "L", t(12))])
    [turn] = st.new_turns
    assert (turn.first_seq, turn.reply_seq, turn.latency_ms, turn.breached) == (1, 2, 11000, False)
    assert st.pending_since is None and st.listener_arrived_at == t(12)


def test_late_reply_is_one_breach_per_turn_not_per_message():
    rows = [(1, "S", t(0)), (2, "S", t(5)), (3, "S", t(20)), (4, "L", t(45))]
    st = run(rows)
    assert [(x.first_seq, x.latency_ms, x.breached) for x in st.new_turns] == [(1, 45000, True)]
    lat = engine.message_latencies(rows, windows=WIN, seeker_id="S", listener_id="L")
    assert [m["latency_ms"] for m in lat] == [45000, 40000, 25000]


def test_exactly_the_window_is_not_a_breach():
    st = run([(1, "S", t(0)), (2, "L", t(30))])
    assert st.new_turns[0].breached is False
    st = run([(1, "S", t(0)), (2, "L", t(30.001))])
    assert st.new_turns[0].breached is True


def test_messages_outside_the_service_do_not_start_the_clock():
    st = run([(1, "S", t(-60)), (2, "S", t(3600)), (3, "L", t(3700))])
    assert st.new_turns == [] and st.pending_since is None


def test_idempotent_by_sequence_number():
    rows = [(1, "S", t(0)), (2, "L", t(40))]
    st = run(rows)
    st.new_turns = []
    st = run(rows, st=st)
    assert st.new_turns == [] and st.sla_seq == 2


def test_system_messages_are_ignored():
    st = run([(1, "S", t(0)), (2, "system", t(5)), (3, "L", t(10))])
    assert st.new_turns[0].reply_seq == 3


def test_unanswered_turn_closes_at_window_end():
    wins = [(t(0), t(600)), (t(86400), t(87000))]
    st = run([(1, "S", t(590))], windows=wins)
    engine.expire(st, t(700), wins, 30)
    [turn] = st.new_turns
    assert turn.reply_seq is None and turn.latency_ms == 10000 and not turn.breached
    st = run([(1, "S", t(500))], windows=wins)
    engine.expire(st, t(700), wins, 30)
    assert st.new_turns[0].breached  # waited 100 s > 30 s before the window closed


def test_a_supervisors_reply_stops_the_clock_but_is_not_the_listener_arriving():
    st = run([(1, "S", t(0)), (2, "SUP", t(8))])
    assert st.new_turns[0].reply_seq == 2 and not st.new_turns[0].breached
    assert st.listener_arrived_at is None
