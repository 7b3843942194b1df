"""Risk cases are planned before SQLite's write lock is taken (the lock is the
message writer's too), then the open cases are read again under the lock:
a case that changed in between (here, a supervisor resolves it) makes the
batch plan again, so a new message opens a new case instead of updating a
resolved one."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from miaohui.supervision import service
from miaohui.supervision.monitor import Verdict


@pytest.fixture
def database_url(sqlite_url) -> str:  # the plan-then-lock path is SQLite's
    return sqlite_url


def verdict(conversation: str, seeker: str, listener: str, tier: str, level: int) -> Verdict:
    return Verdict(conversation, seeker, "seeker", listener, "", None, tier=tier, level=level, score=0.9,
                   signals=("ideation",))


def on_server(server, coro):
    return asyncio.run_coroutine_threadsafe(coro, server.ctx.writer._task.get_loop()).result(30)


def open_cases(path, conversation) -> set[tuple[str, str, str]]:
    db = sqlite3.connect(path)
    try:
        return set(db.execute("SELECT id, status, tier FROM risk_cases WHERE conversation_id = ?", (conversation,)))
    finally:
        db.close()


def test_a_case_resolved_while_the_batch_was_planned_is_not_reopened(server, seeker, listener, conversation,
                                                                     monkeypatch):
    path = server.settings.resolved_database_url.split(":///", 1)[1]
    (first,) = on_server(server, service.observe_many(
        server.ctx, [(verdict(conversation, seeker.id, listener.id, "ideation", 2), 1)]))
    assert open_cases(path, conversation) == {(first.id, "open", "ideation")}

    real = service._plan
    planned = []

    def plan_then_resolve(*args):
        # After the plan, before the lock: a supervisor resolves the case.
        out = real(*args)
        if not planned:
            planned.append(True)
            other = sqlite3.connect(path, timeout=5)
            other.execute("UPDATE risk_cases SET status = 'resolved', open_key = NULL WHERE id = ?", (first.id,))
            other.commit()
            other.close()
        return out

    monkeypatch.setattr(service, "_plan", plan_then_resolve)
    (second,) = on_server(server, service.observe_many(
        server.ctx, [(verdict(conversation, seeker.id, listener.id, "plan", 3), 2)]))
    assert planned
    assert second.id != first.id
    assert open_cases(path, conversation) == {(first.id, "resolved", "ideation"), (second.id, "open", "plan")}


def test_cases_written_through_the_driver_read_back_typed(server, seeker, listener, conversation):
    """The SQLite path renders its writes for the driver itself (JSON, UTC
    datetimes, booleans): what the ORM reads back is what was planned, and a
    second batch updates the same case through the same path."""
    from datetime import UTC

    from sqlalchemy import select

    from miaohui.safety.boundaries import Scan
    from miaohui.supervision.models import CaseEvent, RiskCase

    flagged = Verdict(conversation, seeker.id, "seeker", listener.id, "", Scan("", ("photo",), ("wechat",), ()),
                      tier="ideation", level=2, score=0.8, signals=("ideation",))
    (case,) = on_server(server, service.observe_many(server.ctx, [(flagged, 3)]))
    (again,) = on_server(server, service.observe_many(
        server.ctx, [(verdict(conversation, seeker.id, listener.id, "plan", 3), 4)]))
    assert again.id == case.id

    async def read():
        async with server.ctx.sessionmaker() as db:
            row = (await db.scalars(select(RiskCase).where(RiskCase.id == case.id))).one()
            events = list(await db.scalars(select(CaseEvent).where(CaseEvent.case_id == case.id)
                                           .order_by(CaseEvent.id)))
            return row, events

    row, events = on_server(server, read())
    assert (row.status, row.open_key, row.tier, row.level, row.last_seq) == ("open", conversation, "plan", 3, 4)
    assert row.signals == ["ideation"] and row.worried is False
    assert row.flags["attachment"]["signals"] == ["photo"] and row.flags["off_platform"]["count"] == 1
    assert row.opened_at.tzinfo is UTC and row.last_seen_at >= row.opened_at
    assert [e.kind for e in events] == ["guardian_started", "opened", "flag", "flag", "escalated"]
    assert events[1].data["seq"] == 3 and events[1].at.tzinfo is UTC
    assert events[2].data["signals"] == ["photo"] and events[3].data["signals"] == ["wechat"]
