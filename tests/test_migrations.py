"""Migration 0007 (each side's last sent sequence number on the conversation
row) up and down on SQLite and PostgreSQL: going down folds those counters
back into the participant rows, so no read or delivery state is lost."""

from __future__ import annotations

from datetime import UTC, datetime

from alembic import command
from sqlalchemy import text

from miaohui.core.db import make_engine
from miaohui.migrate import alembic_config, upgrade
from tests.conftest import run_sync


def sql(url: str, statements: list[tuple[str, dict]]) -> list[list[tuple]]:
    async def go():
        engine = make_engine(url)
        try:
            out = []
            async with engine.begin() as conn:
                for s, p in statements:
                    result = await conn.execute(text(s), p)
                    out.append(result.fetchall() if result.returns_rows else [])
            return out
        finally:
            await engine.dispose()

    return run_sync(go())


def test_0007_down_folds_sent_counters_into_participants_and_up_again(database_url):
    (users,) = sql(database_url, [("SELECT id, role FROM users WHERE role IN ('seeker', 'listener') ORDER BY role", {})])
    listener = next(u for u, r in users if r == "listener")
    seeker = next(u for u, r in users if r == "seeker")
    now = datetime(2026, 11, 23, 1, tzinfo=UTC)
    sql(database_url, [
        ("INSERT INTO conversations (id, kind, pair_key, last_seq, created_at, last_activity_at, seeker_sent_seq,"
         " listener_sent_seq) VALUES ('mig7', 'listener', 'mig7', 7, :now, :now, 5, 7)", {"now": now}),
        ("INSERT INTO participants (conversation_id, user_id, role, last_delivered_seq, last_read_seq, joined_at)"
         " VALUES ('mig7', :s, 'seeker', 6, 3, :now), ('mig7', :l, 'listener', 2, 2, :now)",
         {"s": seeker, "l": listener, "now": now}),
    ])
    command.downgrade(alembic_config(database_url), "0006")
    (rows,) = sql(database_url, [("SELECT user_id, last_delivered_seq, last_read_seq FROM participants"
                                  " WHERE conversation_id = 'mig7'", {})])
    assert dict((u, (d, r)) for u, d, r in rows) == {seeker: (6, 5), listener: (7, 7)}
    upgrade(database_url)
    (conv,) = sql(database_url, [("SELECT last_seq, seeker_sent_seq, listener_sent_seq FROM conversations"
                                  " WHERE id = 'mig7'", {})])
    assert conv == [(7, 0, 0)]


def test_0008_takes_supervisors_out_of_conversations_without_an_open_case(database_url):
    (users,) = sql(database_url, [("SELECT id, role FROM users WHERE role IN ('seeker', 'listener', 'supervisor')"
                                   " ORDER BY role", {})])
    by_role = {r: u for u, r in users}
    seeker, listener, sup = by_role["seeker"], by_role["listener"], by_role["supervisor"]
    now = datetime(2026, 11, 24, 1, tzinfo=UTC)
    command.downgrade(alembic_config(database_url), "0007")
    statements = []
    for conv, open_key in (("mig8open", "mig8open"), ("mig8done", None)):
        p = {"c": conv, "k": open_key, "s": seeker, "l": listener, "sup": sup, "now": now}
        statements += [
            ("INSERT INTO conversations (id, kind, pair_key, last_seq, created_at, last_activity_at, seeker_sent_seq,"
             " listener_sent_seq) VALUES (:c, 'listener', :c, 0, :now, :now, 0, 0)", p),
            ("INSERT INTO participants (conversation_id, user_id, role, last_delivered_seq, last_read_seq, joined_at)"
             " VALUES (:c, :s, 'seeker', 0, 0, :now), (:c, :l, 'listener', 0, 0, :now),"
             " (:c, :sup, 'supervisor', 0, 0, :now)", p),
            ("INSERT INTO risk_cases (id, conversation_id, open_key, seeker_id, listener_id, status, source, tier,"
             " level, score, rank, signals, flags, worried, last_seq, opened_at, last_seen_at, overtime_seconds,"
             " overtime_fen) VALUES (:c, :c, :k, :s, :l, 'open', 'worry', 'ideation', 2, 0.5, 2, '[]', '{}', false,"
             " 0, :now, :now, 0, 0)", p),
        ]
    sql(database_url, statements)
    upgrade(database_url)
    (rows,) = sql(database_url, [("SELECT conversation_id, role FROM participants WHERE conversation_id LIKE 'mig8%'"
                                  " ORDER BY conversation_id, role", {})])
    assert rows == [("mig8done", "listener"), ("mig8done", "seeker"),
                    ("mig8open", "listener"), ("mig8open", "seeker"), ("mig8open", "supervisor")]
