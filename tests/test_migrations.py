"""Migrations up and down on SQLite and PostgreSQL: 0007 (each side's last
sent sequence number on the conversation row; going down folds those
counters back into the participant rows, so no read or delivery state is
lost), 0008 (supervisors leave resolved cases), 0010 and 0011 (free text
encrypted: plaintext rows before them become ciphertext and read back the same), and
the later ones each up, down and up again."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from alembic import command
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from miaohui.core.crypto import KeyRing
from miaohui.core.db import make_engine, make_sessionmaker
from miaohui.migrate import alembic_config, upgrade
from miaohui.orders.models import Block, Dispute, Gift
from miaohui.payments.models import Withdrawal
from miaohui.verification.models import ModerationAction, Qualification, Report
from tests.conftest import KEYS, run_sync


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


def one_of_each(url: str, *roles: str) -> list[str]:
    """A user id of each of these roles (the seed has several seekers and listeners: any one)."""
    (users,) = sql(url, [("SELECT id, role FROM users ORDER BY role", {})])
    by_role = {r: u for u, r in users}
    return [by_role[r] for r in roles]


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
    command.downgrade(alembic_config(database_url, KEYS), "0006")
    (rows,) = sql(database_url, [("SELECT user_id, last_delivered_seq, last_read_seq FROM participants"
                                  " WHERE conversation_id = 'mig7'", {})])
    assert dict((u, (d, r)) for u, d, r in rows) == {seeker: (6, 5), listener: (7, 7)}
    upgrade(database_url, keys=KEYS)
    (conv,) = sql(database_url, [("SELECT last_seq, seeker_sent_seq, listener_sent_seq FROM conversations"
                                  " WHERE id = 'mig7'", {})])
    assert conv == [(7, 0, 0)]


def test_0008_takes_supervisors_out_of_conversations_without_an_open_case(database_url):
    seeker, listener, sup = one_of_each(database_url, "seeker", "listener", "supervisor")
    now = datetime(2026, 11, 24, 1, tzinfo=UTC)
    command.downgrade(alembic_config(database_url, KEYS), "0007")
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
    upgrade(database_url, keys=KEYS)
    (rows,) = sql(database_url, [("SELECT conversation_id, role FROM participants WHERE conversation_id LIKE 'mig8%'"
                                  " ORDER BY conversation_id, role", {})])
    assert rows == [("mig8done", "listener"), ("mig8done", "seeker"),
                    ("mig8open", "listener"), ("mig8open", "seeker"), ("mig8open", "supervisor")]


# Text written before 0010, one per sealed column (and a decision with no note).
PLAIN = {
    "dispute": "倾听师一直在敷衍我", "dispute_note": "督导决定退一半", "block": "来访者反复辱骂",
    "report": "要求加微信私下转账", "suspension": "核实有平台外交易", "withdrawal": "收款账户信息不完整",
}


def revision(url: str) -> str:
    (rows,) = sql(url, [("SELECT version_num FROM alembic_version", {})])
    return rows[0][0]


def test_0010_encrypts_the_free_text_written_before_it(database_url):
    seeker, listener, admin = one_of_each(database_url, "seeker", "listener", "admin")
    now = datetime(2026, 11, 25, 1, tzinfo=UTC)
    # Down to 0009 decrypts what the seed wrote (admins' notes on the demo qualifications).
    command.downgrade(alembic_config(database_url, KEYS), "0009")
    (notes,) = sql(database_url, [("SELECT DISTINCT review_note FROM qualifications WHERE status = 'verified'", {})])
    assert notes == [("演示数据",)]
    p = {"s": seeker, "l": listener, "a": admin, "now": now, **PLAIN}
    sql(database_url, [
        ("INSERT INTO conversations (id, kind, pair_key, last_seq, created_at, last_activity_at, seeker_sent_seq,"
         " listener_sent_seq) VALUES ('mig10', 'listener', 'mig10', 0, :now, :now, 0, 0)", p),
        ("INSERT INTO orders (id, seeker_id, listener_id, conversation_id, kind, status, price_fen, response_window_s,"
         " windows, starts_at, ends_at, contract, contract_hash, created_at, sla_seq, turns, breaches, notice_sent,"
         " compensation_fen, unserved_fen, refund_fen, commission_fen, listener_net_fen) VALUES ('mig10', :s, :l,"
         " 'mig10', '30m', 'settled', 3000, 30, '[]', :now, :now, '{}', '', :now, 0, 0, 0, false, 0, 0, 0, 0, 0)", p),
        ("INSERT INTO disputes (id, order_id, seeker_id, reason, status, refund_fen, note, decided_by, created_at,"
         " resolved_at) VALUES ('mig10', 'mig10', :s, :dispute, 'resolved', 1500, :dispute_note, :a, :now, :now)", p),
        ("INSERT INTO blocks (listener_id, seeker_id, created_at, reason) VALUES (:l, :s, :now, :block)", p),
        ("INSERT INTO reports (id, target_kind, target_id, reporter_id, reason, status, created_at, decided_at,"
         " decided_by, decision_note) VALUES ('mig10', 'listener', :l, :s, :report, 'upheld', :now, :now, :a, '')", p),
        ("INSERT INTO moderation_actions (id, listener_id, action, reason, actor_id, report_id, created_at)"
         " VALUES ('mig10', :l, 'suspend', :suspension, :a, 'mig10', :now)", p),
        ("INSERT INTO withdrawals (id, user_id, amount_fen, status, reason, payout_ref, created_at, decided_at,"
         " decided_by) VALUES ('mig10', :l, 5000, 'rejected', :withdrawal, '', :now, :now, :a)", p),
    ])
    # Without the key ring the revision refuses, and changes nothing.
    with pytest.raises(RuntimeError, match="0010"):
        upgrade(database_url, "0010")
    assert revision(database_url) == "0009"
    upgrade(database_url, "0010", keys=KEYS)
    assert revision(database_url) == "0010"

    # No plaintext left anywhere in those tables; every row with text has its ciphertext and key id.
    tables = ("disputes", "blocks", "reports", "moderation_actions", "withdrawals", "qualifications")
    dumps = sql(database_url, [(f"SELECT * FROM {t}", {}) for t in tables])
    for rows in dumps:
        for row in rows:
            for value in row:
                raw = bytes(value) if isinstance(value, bytes | memoryview) else str(value).encode()
                for plain in [*PLAIN.values(), "演示数据"]:
                    assert plain.encode() not in raw
    (kids,) = sql(database_url, [("SELECT key_id, reason_ct IS NULL, note_ct IS NULL FROM disputes"
                                  " WHERE id = 'mig10'", {})])
    assert kids == [("t1", False, False)]

    # Read back through the app's models (they describe the newest schema): the same text.
    upgrade(database_url, keys=KEYS)
    async def read(db):
        d, b = await db.get(Dispute, "mig10"), await db.get(Block, (listener, seeker))
        r, m, w = await db.get(Report, "mig10"), await db.get(ModerationAction, "mig10"), await db.get(Withdrawal,
                                                                                                      "mig10")
        qs = list(await db.scalars(select(Qualification).where(Qualification.status == "verified")))
        return {"dispute": d.reason, "dispute_note": d.note, "block": b.reason, "report": r.reason,
                "decision": r.decision_note, "suspension": m.reason, "withdrawal": w.reason,
                "review_notes": {q.review_note for q in qs}}

    async def go():
        engine = make_engine(database_url)
        try:
            async with make_sessionmaker(engine, keyring=KeyRing(KEYS))() as db:
                return await read(db)
        finally:
            await engine.dispose()

    assert run_sync(go()) == {**PLAIN, "decision": "", "review_notes": {"演示数据"}}


def test_0011_encrypts_the_notes_sent_with_gifts(database_url):
    seeker, listener = one_of_each(database_url, "seeker", "listener")
    now = datetime(2026, 11, 25, 2, tzinfo=UTC)
    command.downgrade(alembic_config(database_url, KEYS), "0010")
    p = {"s": seeker, "l": listener, "now": now, "note": "谢谢你那晚一直陪着我"}
    sql(database_url, [
        ("INSERT INTO conversations (id, kind, pair_key, last_seq, created_at, last_activity_at, seeker_sent_seq,"
         " listener_sent_seq) VALUES ('mig11', 'listener', 'mig11', 0, :now, :now, 0, 0)", p),
        ("INSERT INTO orders (id, seeker_id, listener_id, conversation_id, kind, status, price_fen, response_window_s,"
         " windows, starts_at, ends_at, contract, contract_hash, created_at, sla_seq, turns, breaches, notice_sent,"
         " compensation_fen, unserved_fen, refund_fen, commission_fen, listener_net_fen) VALUES ('mig11', :s, :l,"
         " 'mig11', '30m', 'settled', 3000, 30, '[]', :now, :now, '{}', '', :now, 0, 0, 0, false, 0, 0, 0, 0, 0)", p),
        ("INSERT INTO gifts (id, order_id, seeker_id, listener_id, amount_fen, note, status, created_at, settle_at)"
         " VALUES ('mig11', 'mig11', :s, :l, 500, :note, 'settled', :now, :now),"
         " ('mig11b', 'mig11', :s, :l, 300, '', 'settled', :now, :now)", p),
    ])
    with pytest.raises(RuntimeError, match="0011"):
        upgrade(database_url)
    assert revision(database_url) == "0010"
    upgrade(database_url, "0011", keys=KEYS)
    assert revision(database_url) == "0011"
    (rows,) = sql(database_url, [("SELECT * FROM gifts WHERE order_id = 'mig11'", {})])
    for row in rows:
        for value in row:
            raw = bytes(value) if isinstance(value, bytes | memoryview) else str(value).encode()
            assert p["note"].encode() not in raw

    async def go():
        engine = make_engine(database_url)
        try:
            async with make_sessionmaker(engine, keyring=KeyRing(KEYS))() as db:
                return (await db.get(Gift, "mig11")).note, (await db.get(Gift, "mig11b")).note
        finally:
            await engine.dispose()

    assert run_sync(go()) == (p["note"], "")
    # And back down: the note is plaintext again at 0010.
    command.downgrade(alembic_config(database_url, KEYS), "0010")
    (notes,) = sql(database_url, [("SELECT note FROM gifts WHERE id = 'mig11'", {})])
    assert notes == [(p["note"],)]


def test_0012_withdrawals_say_whose_money_and_earlier_ones_were_payouts(database_url):
    _, listener = one_of_each(database_url, "seeker", "listener")
    now = datetime(2026, 11, 25, 2, tzinfo=UTC)
    command.downgrade(alembic_config(database_url, KEYS), "0011")
    sql(database_url, [("INSERT INTO withdrawals (id, user_id, amount_fen, status, payout_ref, created_at)"
                        " VALUES ('mig12', :l, 5000, 'paid', 'sbpo_x', :now)", {"l": listener, "now": now})])
    upgrade(database_url, "0012", keys=KEYS)
    assert revision(database_url) == "0012"
    (rows,) = sql(database_url, [("SELECT account FROM withdrawals WHERE id = 'mig12'", {})])
    assert rows == [("earnings",)]
    command.downgrade(alembic_config(database_url, KEYS), "0011")
    (rows,) = sql(database_url, [("SELECT id, amount_fen FROM withdrawals WHERE id = 'mig12'", {})])
    assert rows == [("mig12", 5000)]
    upgrade(database_url, keys=KEYS)



def test_0013_adds_duty_hours_and_favourites_and_takes_them_away_again(database_url):
    seeker, listener = one_of_each(database_url, "seeker", "listener")
    hour = datetime(2026, 11, 25, 14, tzinfo=UTC)
    sql(database_url, [
        ("INSERT INTO listener_duty (listener_id, hour_start, minutes) VALUES (:l, :h, :m)",
         {"l": listener, "h": hour, "m": (1 << 59) | 1}),
        ("INSERT INTO favorites (seeker_id, listener_id, created_at) VALUES (:s, :l, :h)",
         {"s": seeker, "l": listener, "h": hour}),
    ])
    (rows,) = sql(database_url, [("SELECT minutes FROM listener_duty WHERE listener_id = :l AND hour_start = :h",
                                  {"l": listener, "h": hour})])
    assert rows == [((1 << 59) | 1,)]  # all sixty minute bits fit the column
    command.downgrade(alembic_config(database_url, KEYS), "0012")
    (tables,) = sql(database_url, [(
        "SELECT name FROM sqlite_master WHERE type = 'table'" if database_url.startswith("sqlite")
        else "SELECT tablename FROM pg_tables WHERE schemaname = 'public'", {})])
    assert not {"listener_duty", "favorites"} & {t for (t,) in tables}
    upgrade(database_url, "0013", keys=KEYS)
    assert revision(database_url) == "0013"
    upgrade(database_url, keys=KEYS)


def test_0014_adds_mood_checks_that_hold_one_score_per_order_and_phase(database_url):
    seeker, listener = one_of_each(database_url, "seeker", "listener")
    now = datetime(2026, 11, 25, 14, tzinfo=UTC)
    order = "mig14"
    sql(database_url, [
        ("INSERT INTO conversations (id, kind, last_seq, created_at, last_activity_at)"
         " VALUES ('mig14c', 'direct', 0, :now, :now)", {"now": now}),
        ("INSERT INTO orders (id, seeker_id, listener_id, conversation_id, kind, status, price_fen, response_window_s,"
         " windows, starts_at, ends_at, contract, contract_hash, created_at, sla_seq, turns, breaches, notice_sent,"
         " compensation_fen, unserved_fen, refund_fen, commission_fen, listener_net_fen)"
         " VALUES ('mig14', :s, :l, 'mig14c', '30m', 'ended', 3000, 60, '[]', :now, :now, '{}', '', :now, 0, 0, 0,"
         " false, 0, 0, 0, 0, 0)", {"s": seeker, "l": listener, "now": now}),
    ])
    insert = ("INSERT INTO mood_checks (order_id, phase, seeker_id, listener_id, score, answered_at)"
              " VALUES (:o, :p, :s, :l, :score, :now)")
    sql(database_url, [(insert, {"o": order, "p": "before", "s": seeker, "l": listener, "score": 2, "now": now})])
    for bad in ({"p": "during", "score": 3}, {"p": "after", "score": 6}, {"p": "before", "score": 4}):
        with pytest.raises(IntegrityError):  # an unknown phase, a score out of range, a second 'before'
            sql(database_url, [(insert, {"o": order, "s": seeker, "l": listener, "now": now, **bad})])
    command.downgrade(alembic_config(database_url, KEYS), "0013")
    (tables,) = sql(database_url, [(
        "SELECT name FROM sqlite_master WHERE type = 'table'" if database_url.startswith("sqlite")
        else "SELECT tablename FROM pg_tables WHERE schemaname = 'public'", {})])
    assert "mood_checks" not in {t for (t,) in tables}
    upgrade(database_url, "0014", keys=KEYS)
    assert revision(database_url) == "0014"
    upgrade(database_url, keys=KEYS)


def test_0015_adds_push_subscriptions_that_go_with_their_sign_in(database_url):
    (user,) = one_of_each(database_url, "listener")
    now = datetime(2026, 11, 25, 14, tzinfo=UTC)
    sql(database_url, [
        ("INSERT INTO auth_sessions (token_hash, user_id, created_at, expires_at) VALUES ('h15', :u, :now, :now)",
         {"u": user, "now": now}),
        ("INSERT INTO push_subscriptions (id, user_id, role, session_hash, endpoint_hash, service, created_at)"
         " VALUES ('p15', :u, 'listener', 'h15', 'e15', 'fcm.googleapis.com', :now)", {"u": user, "now": now}),
    ])
    with pytest.raises(IntegrityError):  # one row per endpoint
        sql(database_url, [(
            "INSERT INTO push_subscriptions (id, user_id, role, session_hash, endpoint_hash, service, created_at)"
            " VALUES ('p15b', :u, 'listener', 'h15', 'e15', 'fcm.googleapis.com', :now)", {"u": user, "now": now})])
    sql(database_url, [("DELETE FROM auth_sessions WHERE token_hash = 'h15'", {})])
    (rows,) = sql(database_url, [("SELECT count(*) FROM push_subscriptions", {})])
    assert rows == [(0,)]  # signing out took the device with it
    command.downgrade(alembic_config(database_url, KEYS), "0014")
    (tables,) = sql(database_url, [(
        "SELECT name FROM sqlite_master WHERE type = 'table'" if database_url.startswith("sqlite")
        else "SELECT tablename FROM pg_tables WHERE schemaname = 'public'", {})])
    assert "push_subscriptions" not in {t for (t,) in tables}
    upgrade(database_url, "0015", keys=KEYS)
    assert revision(database_url) == "0015"
    upgrade(database_url, keys=KEYS)


def test_0016_lets_the_duty_prune_find_old_hours_by_index(database_url):
    """The hourly prune deletes by age across every listener: with the index
    it reads the old hours, not the whole table (SQLite's plan says so; on
    PostgreSQL the index is there to be chosen)."""
    def indexes() -> set[str]:
        (rows,) = sql(database_url, [(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'listener_duty'"
            if database_url.startswith("sqlite")
            else "SELECT indexname FROM pg_indexes WHERE tablename = 'listener_duty'", {})])
        return {n for (n,) in rows}

    assert "ix_listener_duty_hour_start" in indexes()
    if database_url.startswith("sqlite"):
        (plan,) = sql(database_url, [(
            "EXPLAIN QUERY PLAN DELETE FROM listener_duty WHERE hour_start < '2026-01-01 00:00:00'", {})])
        assert any("ix_listener_duty_hour_start" in str(row) for row in plan), plan
    command.downgrade(alembic_config(database_url, KEYS), "0015")
    assert "ix_listener_duty_hour_start" not in indexes()
    upgrade(database_url, "0016", keys=KEYS)
    assert revision(database_url) == "0016" and "ix_listener_duty_hour_start" in indexes()
    upgrade(database_url, keys=KEYS)


def test_0017_remembers_which_turn_the_listener_was_warned_about(database_url):
    """``orders.clock_warned_seq`` (NULL: no turn warned) comes and goes with
    the revision; the orders around it are untouched."""
    def columns() -> set[str]:
        (rows,) = sql(database_url, [(
            "SELECT name FROM pragma_table_info('orders')" if database_url.startswith("sqlite")
            else "SELECT column_name FROM information_schema.columns WHERE table_name = 'orders'", {})])
        return {c for (c,) in rows}

    seeker, listener = one_of_each(database_url, "seeker", "listener")
    p = {"s": seeker, "l": listener, "now": datetime(2026, 11, 25, 15, tzinfo=UTC)}
    sql(database_url, [
        ("INSERT INTO conversations (id, kind, pair_key, last_seq, created_at, last_activity_at, seeker_sent_seq,"
         " listener_sent_seq) VALUES ('mig17', 'listener', 'mig17', 4, :now, :now, 4, 0)", p),
        ("INSERT INTO orders (id, seeker_id, listener_id, conversation_id, kind, status, price_fen, response_window_s,"
         " windows, starts_at, ends_at, contract, contract_hash, created_at, sla_seq, pending_since, pending_seq,"
         " turns, breaches, notice_sent, compensation_fen, unserved_fen, refund_fen, commission_fen, listener_net_fen,"
         " clock_warned_seq) VALUES ('mig17', :s, :l, 'mig17', '30m', 'active', 3000, 10, '[]', :now, :now, '{}', '',"
         " :now, 4, :now, 4, 0, 0, false, 0, 0, 0, 0, 0, 4)", p),
    ])
    command.downgrade(alembic_config(database_url, KEYS), "0016")
    assert "clock_warned_seq" not in columns()
    assert sql(database_url, [("SELECT pending_seq, sla_seq FROM orders WHERE id = 'mig17'", {})]) == [[(4, 4)]]
    upgrade(database_url, "0017", keys=KEYS)
    assert revision(database_url) == "0017"
    # Back up, the turn reads as not warned: at worst one more warning, never a lost order.
    assert sql(database_url, [("SELECT clock_warned_seq, pending_seq FROM orders WHERE id = 'mig17'", {})]) == \
        [[(None, 4)]]
    upgrade(database_url, keys=KEYS)


def test_the_migrated_schema_is_the_models_schema(database_url):
    """Alembic's autogenerate finds nothing to add or drop between head and the models."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    import miaohui.models  # noqa: F401  (every table)
    from miaohui.core.db import Base

    async def diff():
        engine = make_engine(database_url)
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(
                    lambda c: compare_metadata(MigrationContext.configure(c), Base.metadata))
        finally:
            await engine.dispose()

    assert run_sync(diff()) == []
