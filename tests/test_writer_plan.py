"""The writer's hot statements must be index lookups, never table scans: a
scan of ``messages`` per batch grows with history and eventually stalls chat."""

from __future__ import annotations

import shutil

from sqlalchemy import create_engine, select

from miaohui.chat.models import Message


def test_idempotency_lookup_uses_the_unique_index(sqlite_template, tmp_path):
    path = tmp_path / "plan.db"
    shutil.copy(sqlite_template, path)
    engine = create_engine(f"sqlite:///{path}")
    stmt = select(Message.conversation_id, Message.sender_id, Message.client_id, Message.seq).where(
        Message.client_id.in_(["a" * 12, "b" * 12, "c" * 12])
    )
    sql = str(stmt.compile(engine, compile_kwargs={"literal_binds": True}))
    with engine.connect() as conn:
        plan = " ".join(str(row[-1]) for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql))
    engine.dispose()
    assert "SCAN messages" not in plan and "(client_id=?)" in plan, plan


def test_writer_waits_for_the_write_lock_in_short_polls(tmp_path, monkeypatch):
    """Another connection holding SQLite's write lock (a risk-case record) delays
    the writer's BEGIN IMMEDIATE only until it is released, not by SQLite's
    1-2-5-10-… ms busy back-off; past LOCK_WAIT_S it gives up loudly."""
    import sqlite3
    import threading
    import time

    import pytest

    from miaohui.chat import writer as w

    path = tmp_path / "lock.db"
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("PRAGMA journal_mode=WAL")
    holder.execute("CREATE TABLE t (x)")
    me = sqlite3.connect(path, isolation_level=None, timeout=0)
    holder.execute("BEGIN IMMEDIATE")
    threading.Timer(0.05, lambda: holder.execute("COMMIT")).start()
    t0 = time.monotonic()
    w._begin_immediate(me.cursor())
    waited = time.monotonic() - t0
    assert 0.04 <= waited < 0.5
    me.execute("COMMIT")
    holder.execute("BEGIN IMMEDIATE")
    monkeypatch.setattr(w, "LOCK_WAIT_S", 0.05)
    with pytest.raises(sqlite3.OperationalError):
        w._begin_immediate(me.cursor())
    holder.execute("COMMIT")
