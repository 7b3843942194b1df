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
