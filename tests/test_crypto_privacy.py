"""Message bodies, and the free text people write about each other (dispute,
block, report, suspension and withdrawal reasons, decisions' notes, an
admin's note on a qualification), are encrypted at rest (AES-GCM, key id
stored for rotation), and nothing readable leaks into the database or logs."""

from __future__ import annotations

import logging

import httpx
import pytest
from cryptography.exceptions import InvalidTag
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select, text

from miaohui.chat.models import Message
from miaohui.core.crypto import KeyRing, field_aad, generate_key_spec, message_aad
from miaohui.core.db import Base, make_engine, make_sessionmaker
from miaohui.core.sealed import Sealed
from miaohui.orders.models import Block, Dispute
from tests.conftest import Api, run_sync
from tests.test_orders import buy, fund, get_order, say
from tests.test_payments_api import give_earnings
from tests.test_trust import upload
from tests.test_web_pages import signed_in, text_of

OLD = generate_key_spec("k1")
NEW = generate_key_spec("k2")


@given(st.text(min_size=1, max_size=4000))
def test_round_trip_any_text(body):
    ring = KeyRing(OLD)
    kid, blob = ring.encrypt(body, b"c|s|id")
    assert kid == "k1"
    assert ring.decrypt(kid, blob, b"c|s|id") == body


def test_rotation_new_key_encrypts_old_still_decrypts():
    old_ring = KeyRing(OLD)
    kid, blob = old_ring.encrypt("旧消息", b"aad")
    rotated = KeyRing(f"{NEW},{OLD}")
    assert rotated.decrypt(kid, blob, b"aad") == "旧消息"
    kid2, blob2 = rotated.encrypt("新消息", b"aad")
    assert kid2 == "k2"
    with pytest.raises(KeyError):
        old_ring.decrypt(kid2, blob2, b"aad")


def test_ciphertext_is_bound_to_its_conversation():
    ring = KeyRing(OLD)
    kid, blob = ring.encrypt("只属于这个会话", message_aad("conv-a", "u1", "c1"))
    with pytest.raises(InvalidTag):
        ring.decrypt(kid, blob, message_aad("conv-b", "u1", "c1"))


def test_bad_key_specs_rejected():
    for spec in ("", "k1:short", ":" + OLD.split(":")[1]):
        with pytest.raises(ValueError):
            KeyRing(spec)


def test_bodies_encrypted_at_rest_and_not_logged(server, seeker, conversation, caplog):
    secret = "我今晚在天台上，不想让任何人知道"
    caplog.set_level(logging.DEBUG)
    r = httpx.post(
        f"{server.url}/api/conversations/{conversation}/messages",
        json={"client_id": "privacy-check-1", "body": secret},
        headers=seeker.headers,
    )
    assert r.status_code == 201
    rows = server.db(lambda db: db.execute(select(Message.key_id, Message.body_ct)))
    rows = list(rows)
    assert len(rows) == 1
    key_id, blob = rows[0]
    assert key_id == "t1"
    assert secret.encode() not in blob and "天台".encode() not in blob
    # The API still returns it to participants.
    page = httpx.get(f"{server.url}/api/conversations/{conversation}/messages", headers=seeker.headers).json()
    assert page["messages"][0]["body"] == secret
    assert "天台" not in caplog.text and seeker.token not in caplog.text


def test_sqlite_files_are_private(tmp_path):
    """The database and its WAL files are the owner's only (0600), whatever the umask."""
    import os
    import stat

    from sqlalchemy import text as sql

    from miaohui.core.db import make_sync_engine

    old = os.umask(0o022)
    try:
        (tmp_path / "var").mkdir()
        engine = make_sync_engine(f"sqlite:///{tmp_path}/var/miaohui.db")
        with engine.begin() as c:
            c.execute(sql("CREATE TABLE t (x INTEGER)"))
            c.execute(sql("INSERT INTO t VALUES (1)"))
        with engine.connect() as c:  # (a reader, while the -wal and -shm exist)
            assert c.execute(sql("SELECT x FROM t")).scalar() == 1
            files = sorted(p.name for p in (tmp_path / "var").iterdir())
            assert "miaohui.db-wal" in files, files
            for name in files:
                assert stat.S_IMODE((tmp_path / "var" / name).stat().st_mode) == 0o600, name
        engine.dispose()
    finally:
        os.umask(old)


# What people wrote, each recognisable anywhere in the database or the logs.
FREE_TEXT = {
    "dispute": "倾听师一直在敷衍我还嘲笑我的失眠",
    "dispute_note": "督导核实后退还一半费用给来访者",
    "block": "来访者反复辱骂并威胁要去公司找我",
    "report": "倾听师要求加微信私下转账给他",
    "suspension": "核实有平台外交易，先暂停展示处理",
    "reinstatement": "倾听师申诉成立，恢复上架处理完毕",
    "withdrawal": "收款账户姓名与实名认证信息不一致",
    "qualification": "证书照片模糊看不清编号请重新上传",
    "gift": "谢谢你那天凌晨一直陪我说话",
}


def db_dump(server) -> list[tuple[str, str, object]]:
    """Every value of every column of every table, raw (no ORM, no key ring)."""

    async def go():
        engine = make_engine(server.settings.resolved_database_url)
        try:
            out = []
            async with engine.connect() as conn:
                for table in Base.metadata.sorted_tables:
                    for row in (await conn.execute(text(f"SELECT * FROM {table.name}"))).mappings():
                        out += [(table.name, column, value) for column, value in row.items()]
            return out
        finally:
            await engine.dispose()

    return run_sync(go())


def keyed(server, fn):
    """``await fn(session)`` through a session that carries the server's key ring, as the app's do."""

    async def go():
        engine = make_engine(server.settings.resolved_database_url)
        try:
            async with make_sessionmaker(engine, keyring=server.ctx.keyring)() as db:
                return await fn(db)
        finally:
            await engine.dispose()

    return run_sync(go())


def test_free_text_is_encrypted_at_rest_shown_to_who_may_read_it_and_not_logged(
        server, seeker, seeker2, listener, admin, caplog):
    caplog.set_level(logging.DEBUG)
    post = lambda who, path, **kw: httpx.post(f"{server.url}{path}", headers=who.headers, timeout=10, **kw)  # noqa: E731
    get = lambda who, path: httpx.get(f"{server.url}{path}", headers=who.headers, timeout=10)  # noqa: E731
    sup = signed_in(server, "supervisor")
    fund(server, seeker, 500)

    # A dispute: the seeker's reason, the supervisor's note.
    order = buy(server, seeker, listener).json()["order"]
    say(server, listener, order["conversation_id"], "你好")
    assert post(seeker, f"/api/orders/{order['id']}/end", json={}).status_code == 200
    r = post(seeker, f"/api/orders/{order['id']}/disputes", json={"reason": FREE_TEXT["dispute"]})
    assert r.status_code == 201, r.text
    staff = Api(server, "supervisor")
    (d,) = get(staff, "/api/admin/disputes").json()
    assert d["reason"] == FREE_TEXT["dispute"]
    assert FREE_TEXT["dispute"] in text_of(sup.get("/admin/disputes").text)
    r = post(staff, f"/api/admin/disputes/{order['id']}/resolve", json={"refund_fen": 0,
                                                                          "note": FREE_TEXT["dispute_note"]})
    assert r.status_code == 200, r.text
    # A gift with a note, after the service.
    r = post(seeker, f"/api/orders/{order['id']}/gifts", json={"amount_fen": 500, "note": FREE_TEXT["gift"]})
    assert r.status_code == 201, r.text

    # A block with a reason.
    order = buy(server, seeker, listener).json()["order"]
    assert post(listener, f"/api/orders/{order['id']}/block", json={"reason": FREE_TEXT["block"]}).status_code == 200
    assert get_order(server, seeker, order["id"])["end_reason"] == "blocked"

    # A report, decided by a suspension with a reason; then a reinstatement.
    r = post(seeker2, "/api/reports", json={"target_kind": "listener", "target_id": listener.id,
                                            "reason": FREE_TEXT["report"]})
    assert r.status_code == 201, r.text
    (rep,) = [x for x in get(admin, "/api/admin/review-queue").json()["reports"] if x["target_id"] == listener.id]
    assert rep["reason"] == FREE_TEXT["report"]
    assert FREE_TEXT["report"] in text_of(signed_in(server, "admin").get("/admin/review").text)
    r = post(admin, f"/api/admin/reports/{rep['id']}/decide", json={"action": "suspend",
                                                                     "note": FREE_TEXT["suspension"]})
    assert r.status_code == 200 and r.json()["decision_note"] == FREE_TEXT["suspension"]
    assert FREE_TEXT["suspension"] in text_of(signed_in(server, "linqing").get("/verification").text)
    assert FREE_TEXT["suspension"] in text_of(signed_in(server, "admin").get("/admin/listeners").text)
    r = post(admin, f"/api/admin/listeners/{listener.id}/reinstate", json={"reason": FREE_TEXT["reinstatement"]})
    assert r.status_code == 204

    # A withdrawal refused with a reason.
    give_earnings(server, seeker, listener, "order:privacy-w", 20000)
    w = post(listener, "/api/listener/withdrawals", json={"amount_fen": 5000}).json()["id"]
    r = post(admin, f"/api/admin/withdrawals/{w}/reject", json={"reason": FREE_TEXT["withdrawal"]})
    assert r.status_code == 200 and r.json()["reason"] == FREE_TEXT["withdrawal"]
    assert FREE_TEXT["withdrawal"] in [x["reason"] for x in get(listener, "/api/listener/withdrawals").json()]
    assert FREE_TEXT["withdrawal"] in text_of(signed_in(server, "linqing").get("/console/earnings").text)

    # A qualification refused with a note (its title is public: a badge when verified).
    q = upload(server, listener, "degree", title="心理学硕士").json()
    r = post(admin, f"/api/admin/qualifications/{q['id']}/review", json={"approve": False,
                                                                           "note": FREE_TEXT["qualification"]})
    assert r.status_code == 200 and r.json()["review_note"] == FREE_TEXT["qualification"]
    mine = {x["id"]: x for x in get(listener, "/api/verification/me").json()["qualifications"]}
    assert mine[q["id"]]["review_note"] == FREE_TEXT["qualification"]
    assert FREE_TEXT["qualification"] in text_of(signed_in(server, "linqing").get("/verification").text)

    # At rest: no column of any table holds any of it; the sealed tables hold ciphertext under the key.
    dump = db_dump(server)
    for what, plain in FREE_TEXT.items():
        leaks = [(t, c) for t, c, v in dump if v is not None
                 and (plain in v if isinstance(v, str) else plain.encode() in bytes(v) if isinstance(v, bytes | memoryview)
                      else plain in str(v))]
        assert not leaks, (what, leaks)
    sealed = {t: [v for tt, c, v in dump if tt == t and c == "key_id" and v is not None]
              for t in ("disputes", "blocks", "reports", "moderation_actions", "withdrawals", "qualifications",
                        "gifts")}
    assert all(ids and set(ids) == {"t1"} for ids in sealed.values()), sealed

    # Read back through a keyed session: the same text; without the key ring, nothing readable.
    async def read(db):
        d = await db.scalar(select(Dispute))
        b = await db.scalar(select(Block))
        return d.reason, d.note, b.reason

    assert keyed(server, read) == (FREE_TEXT["dispute"], FREE_TEXT["dispute_note"], FREE_TEXT["block"])
    with pytest.raises(LookupError):
        server.db(read)
    # Each ciphertext is bound to its row and field: moved elsewhere, it does not decrypt.
    ring = server.ctx.keyring

    async def raw(db):
        return (await db.execute(text("SELECT id, key_id, reason_ct FROM disputes"))).one()

    did, kid, blob = server.db(raw)
    assert ring.decrypt(kid, bytes(blob), field_aad("disputes", did, "reason")) == FREE_TEXT["dispute"]
    with pytest.raises(InvalidTag):
        ring.decrypt(kid, bytes(blob), field_aad("disputes", did, "note"))
    with pytest.raises(InvalidTag):
        ring.decrypt(kid, bytes(blob), field_aad("disputes", "another-row", "reason"))
    for plain in FREE_TEXT.values():
        assert plain not in caplog.text


def test_sealed_fields_cannot_be_written_in_the_clear():
    with pytest.raises(AttributeError):
        Dispute(reason="明文")
    assert issubclass(Dispute, Sealed) and Dispute.SEALED == ("reason", "note") and Block.SEALED_KEY == (
        "listener_id", "seeker_id")
