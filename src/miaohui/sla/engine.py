"""The reply clock: pure functions from the message log to SLA facts.

Definitions (the contract's wording, applied here and nowhere else):

- A seeker message sent inside a service window starts the reply clock if it
  is not already running; later seeker messages join the same *turn*.
- The listener's next message stops it: that turn's reply latency is the
  time from the turn's first message to the reply, on the server clock.
  Every seeker message of the turn is answered by that reply (the report
  lists each message's own latency); the *turn* is what can breach, once —
  so splitting one thought into ten short messages cannot multiply
  deductions, and the listener cannot dodge one by answering the last.
- Latency > W is a breach.  A turn still unanswered when its window closes
  (or the order ends) is closed there: breached if it had waited > W.
- The listener is *present* from their first message after the start.
- A supervisor's message (joined or took over) answers like the listener's.

Times are the stored server timestamps; within one server process they are
monotonic-anchored (see :class:`miaohui.clock.Clock`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta


@dataclass
class TurnFact:
    first_seq: int
    asked_at: datetime
    reply_seq: int | None
    replied_at: datetime | None
    latency_ms: int
    breached: bool


@dataclass
class ReplyState:
    sla_seq: int
    pending_since: datetime | None
    pending_seq: int | None
    listener_arrived_at: datetime | None
    new_turns: list[TurnFact] = field(default_factory=list)


SYSTEM = "system"


def is_reply(sender: str, seeker_id: str) -> bool:
    """The listener's messages answer the seeker — and so do a supervisor's
    who joined or took over (in a crisis the platform, not the listener, may
    be the one replying).  Platform notices never do."""
    return sender not in (seeker_id, SYSTEM)


def in_windows(at: datetime, windows: list[tuple[datetime, datetime]]) -> tuple[datetime, datetime] | None:
    for a, b in windows:
        if a <= at < b:
            return a, b
    return None


def _ms(delta: timedelta) -> int:
    return int(delta.total_seconds() * 1000)


def close_turn(st: ReplyState, at: datetime, window_s: int, reply_seq: int | None) -> TurnFact | None:
    if st.pending_since is None:
        return None
    latency = _ms(at - st.pending_since)
    turn = TurnFact(st.pending_seq, st.pending_since, reply_seq, at if reply_seq else None, max(0, latency),
                    latency > window_s * 1000)
    st.new_turns.append(turn)
    st.pending_since = None
    st.pending_seq = None
    return turn


def apply_messages(
    st: ReplyState,
    rows,
    *,
    windows: list[tuple[datetime, datetime]],
    window_s: int,
    seeker_id: str,
    listener_id: str,
    starts_at: datetime,
) -> ReplyState:
    """Advance the state over ``rows`` = ``(seq, sender_id, created_at)``
    with seq > ``st.sla_seq``, in order."""
    for seq, sender, at in rows:
        if seq <= st.sla_seq:
            continue
        st.sla_seq = seq
        # A turn whose window closed before this message is closed at the window's end.
        expire(st, at, windows, window_s)
        if is_reply(sender, seeker_id):
            if sender == listener_id and st.listener_arrived_at is None and at >= starts_at:
                st.listener_arrived_at = at
            if st.pending_since is not None:
                close_turn(st, at, window_s, seq)
        elif sender == seeker_id:
            if st.pending_since is None and in_windows(at, windows):
                st.pending_since, st.pending_seq = at, seq
    return st


def expire(st: ReplyState, now: datetime, windows, window_s: int) -> None:
    """Close a pending turn whose service window has ended by ``now``."""
    if st.pending_since is None:
        return
    w = in_windows(st.pending_since, windows)
    if w is None:
        close_turn(st, st.pending_since, window_s, None)
    elif w[1] <= now:
        close_turn(st, w[1], window_s, None)


def message_latencies(rows, *, windows, seeker_id: str, listener_id: str) -> list[dict]:
    """Every seeker message in a window with the listener's next message and
    its latency (for the report); ``None`` latency if never answered."""
    out: list[dict] = []
    waiting: list[dict] = []
    for seq, sender, at in rows:
        if is_reply(sender, seeker_id):
            for w in waiting:
                w["reply_seq"] = seq
                w["latency_ms"] = _ms(at - w["_at"])
            waiting = []
        elif sender == seeker_id and in_windows(at, windows):
            item = {"seq": seq, "sent_at": at.isoformat(), "_at": at, "reply_seq": None, "latency_ms": None}
            out.append(item)
            waiting.append(item)
    for item in out:
        item.pop("_at")
    return out
