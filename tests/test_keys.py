"""Key rotation: ``miaohui keys new | status | rotate`` (``keys``, ``core.rekey``).

Everything the platform encrypts is written through the API under key t1;
the ring becomes t2,t1; ``keys rotate`` (the real command, in a subprocess,
while messages keep arriving) moves every store to t2; with t1 removed from
the ring every text still reads back, through the pages' APIs and through
each store.  A row rewritten while a batch is in flight is left alone."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys
import threading
from datetime import UTC, datetime

import httpx
import pytest
from cryptography.exceptions import InvalidTag
from sqlalchemy import select

from miaohui.core.crypto import KeyRing, generate_key_spec
from miaohui.core.db import make_engine, make_sessionmaker
from miaohui.core.rekey import Progress
from miaohui.core.sealed import sealed_columns
from miaohui.keys import service as keys
from miaohui.orders.models import Block
from miaohui.verification import proofs
from miaohui.verification.models import Qualification
from tests.conftest import KEYS, SECRET, Api, LiveServer, _clone_pg, make_settings, run_sync
from tests.fake_push_service import Device, FakePushService
from tests.test_companion_ws import tell_companion
from tests.test_orders import buy, fund, say
from tests.test_payments_api import give_earnings
from tests.test_supervision import PLAN, wait_queue
from tests.test_trust import upload

T2 = generate_key_spec("t2")


def cli(server: LiveServer, ring: str, *args: str) -> tuple[int, dict | None, str]:
    env = {**os.environ, "MIAOHUI_DATABASE_URL": server.settings.resolved_database_url, "MIAOHUI_SECRET_KEY": SECRET,
           "MIAOHUI_MESSAGE_KEYS": ring, "MIAOHUI_DATA_DIR": str(server.settings.data_dir)}
    p = subprocess.run([sys.executable, "-m", "miaohui", "keys", *args], env=env, capture_output=True, text=True,
                       timeout=120)
    return p.returncode, json.loads(p.stdout) if p.stdout.strip().startswith("{") else None, p.stdout + p.stderr


def plaintexts(server: LiveServer, ring: KeyRing) -> dict:
    """Every stored text, decrypted store by store: {(store, row, column): text}."""

    async def go():
        engine = make_engine(server.settings.resolved_database_url)
        out = {}
        try:
            async with make_sessionmaker(engine)() as db:
                for store in keys.stores(server.settings.data_dir):
                    if store.name == "qualification_proofs":
                        for qid, kid in (await db.execute(select(Qualification.id, Qualification.proof_key_id))).all():
                            out[(store.name, qid, "file")] = proofs.load(ring, server.settings.data_dir, qid, kid)
                        continue
                    for row in (await db.execute(select(store.table))).mappings():
                        for f in store.fields:
                            if row[f] is not None:
                                name = "|".join(str(row[c.name]) for c in store.table.primary_key.columns)
                                out[(store.name, name, f)] = ring.decrypt_bytes(row[store.key], row[f],
                                                                                store.aad(row, f))
            return out
        finally:
            await engine.dispose()

    return run_sync(go())


def write_everything(server: LiveServer, clock, seeker: Api, seeker2: Api, listener: Api, admin: Api) -> dict:
    """One of each kind of encrypted text, through the API; returns ids to read them back by."""
    post = lambda who, path, **kw: httpx.post(f"{server.url}{path}", headers=who.headers, timeout=10, **kw)  # noqa: E731
    sup = Api(server, "supervisor")
    fund(server, seeker, 500)
    order = buy(server, seeker, listener).json()["order"]
    conv = order["conversation_id"]
    say(server, seeker, conv, "最近总是睡不着")
    say(server, listener, conv, "我在，慢慢说")
    say(server, seeker, conv, PLAN)  # a crisis: a case a supervisor resolves with a note
    (case,) = wait_queue(server, sup, lambda q: len(q) == 1)
    assert post(sup, f"/api/supervision/cases/{case['id']}/resolve", json={"note": "已联系家人陪同"}).status_code == 200
    assert post(seeker, f"/api/orders/{order['id']}/end", json={}).status_code == 200
    assert post(seeker, f"/api/orders/{order['id']}/disputes", json={"reason": "回复很敷衍"}).status_code == 201
    r = post(sup, f"/api/admin/disputes/{order['id']}/resolve", json={"refund_fen": 0, "note": "核实后不退款"})
    assert r.status_code == 200, r.text
    assert post(seeker, f"/api/orders/{order['id']}/gifts", json={"amount_fen": 500, "note": "谢谢你"}).status_code == 201
    fund(server, seeker2, 500)
    blocked = buy(server, seeker2, listener).json()["order"]
    assert post(listener, f"/api/orders/{blocked['id']}/block", json={"reason": "辱骂"}).status_code == 200
    r = post(seeker2, "/api/reports", json={"target_kind": "listener", "target_id": listener.id, "reason": "要求私下转账"})
    assert r.status_code == 201, r.text
    assert post(admin, f"/api/admin/listeners/{listener.id}/suspend", json={"reason": "核实中"}).status_code == 204
    assert post(admin, f"/api/admin/listeners/{listener.id}/reinstate", json={"reason": "已核实"}).status_code == 204
    give_earnings(server, seeker, listener, "order:keys-w", 20000)
    w = post(listener, "/api/listener/withdrawals", json={"amount_fen": 5000}).json()["id"]
    assert post(admin, f"/api/admin/withdrawals/{w}/reject", json={"reason": "户名不一致"}).status_code == 200
    q = upload(server, listener, "degree", title="心理学硕士").json()
    r = post(admin, f"/api/admin/qualifications/{q['id']}/review", json={"approve": False, "note": "照片模糊"})
    assert r.status_code == 200, r.text

    ai = asyncio.run(tell_companion(seeker2, "叫我小雨就好，我是大三学生"))
    # A push subscription (an admin's: nothing is ever sent to it here).
    device = {**Device(FakePushService(0)).subscription(), "endpoint": "https://fcm.googleapis.com/fcm/send/keys"}
    assert httpx.put(f"{server.url}/api/push/subscription", json=device, headers=admin.headers).status_code == 200
    return {"conv": conv, "ai": ai, "qual": q["id"], "case": case["id"]}


def read_back(server: LiveServer, ids: dict, seeker: Api, seeker2: Api, listener: Api, admin: Api) -> dict:
    """What people see of those texts, through the API."""
    get = lambda who, path: httpx.get(f"{server.url}{path}", headers=who.headers, timeout=10)  # noqa: E731
    sup = Api(server, "supervisor")
    quals = get(listener, "/api/verification/me").json()["qualifications"]
    return {
        "chat": [m["body"] for m in get(listener, f"/api/conversations/{ids['conv']}/messages").json()["messages"]],
        "ai": [m["body"] for m in get(seeker2, f"/api/conversations/{ids['ai']}/messages").json()["messages"]],
        "memory": sorted(m["text"] for m in get(seeker2, "/api/companion/memory").json()),
        "case": [e.get("note") for e in get(sup, f"/api/supervision/cases/{ids['case']}").json()["events"]],
        "withdrawals": [x["reason"] for x in get(listener, "/api/listener/withdrawals").json()],
        "qualification": [x["review_note"] for x in quals if x["id"] == ids["qual"]],
        "proof": get(admin, f"/api/admin/qualifications/{ids['qual']}/proof").content,
        "identity": get(listener, "/api/verification/me").json()["identity"],
        "push": [d["service"] for d in get(admin, "/api/push/devices").json()],
    }


def test_rotation_moves_every_store_to_the_new_key_and_the_old_key_can_go(
        database_url, tmp_path, clock, seeker, seeker2, listener, admin, server):
    ids = write_everything(server, clock, seeker, seeker2, listener, admin)
    seen = read_back(server, ids, seeker, seeker2, listener, admin)
    assert "最近总是睡不着" in seen["chat"] and "小雨" in seen["memory"] and "已联系家人陪同" in seen["case"]
    assert seen["proof"].startswith(b"\x89PNG") and seen["qualification"] == ["照片模糊"]
    before = plaintexts(server, KeyRing(KEYS))
    code, status, _ = cli(server, KEYS, "status")
    assert code == 0 and status["active"] == "t1" and status["not_active"] == 0
    empty = [name for name, counts in status["stores"].items() if not counts.get("t1")]
    assert not empty, f"the test wrote nothing to {empty}"

    # A new key first in the ring; the old one still decrypts.
    server.stop()
    ring2 = f"{T2},{KEYS}"
    server.settings = make_settings(database_url, tmp_path, message_keys=ring2)
    server.start()
    say(server, seeker, ids["conv"], "换了新密钥之后的一句")  # written under t2 already
    code, status, _ = cli(server, ring2, "status")
    assert status["active"] == "t2" and status["not_active"] == sum(status["rows_by_key"].values()) - 1

    # Rotate in small batches while the conversation goes on.
    stop, sent = threading.Event(), []

    def keep_talking():
        while not stop.is_set() and len(sent) < 40:
            text = f"轮换时的第{len(sent)}句"
            say(server, listener, ids["conv"], text)
            sent.append(text)

    talker = threading.Thread(target=keep_talking)
    talker.start()
    try:
        code, out, log = cli(server, ring2, "rotate", "--batch", "2")
    finally:
        stop.set()
        talker.join(30)
    assert code == 0, log
    rotated = out["rotated"]
    under_t1 = sum(counts.get("t1", 0) for counts in status["stores"].values())
    assert under_t1 > 0 and sum(r["rekeyed"] for r in rotated.values()) == under_t1
    assert all(not r["missing_key"] and not r["undecryptable"] and not r["missing_files"] for r in rotated.values())
    assert set(out["status"]["rows_by_key"]) == {"t2"} and out["status"]["unused_keys"] == ["t1"]
    for text in (*seen["chat"], *seen["memory"], "已联系家人陪同", "户名不一致"):
        assert text not in log  # counts and ids only
    code, again, _ = cli(server, ring2, "rotate")  # nothing left to do
    assert code == 0 and sum(r["rekeyed"] for r in again["rotated"].values()) == 0

    # The old key is gone from the ring: everything reads as before.
    server.stop()
    server.settings = make_settings(database_url, tmp_path, message_keys=T2)
    server.start()
    after = plaintexts(server, KeyRing(T2))
    assert {k: v for k, v in after.items() if k in before} == before
    now = read_back(server, ids, seeker, seeker2, listener, admin)
    assert now["chat"] == [*seen["chat"], "换了新密钥之后的一句", *sent]
    assert {k: v for k, v in now.items() if k != "chat"} == {k: v for k, v in seen.items() if k != "chat"}

    # A ring that lacks a key rows still use: status says which, exit 1, nothing changes.
    t3 = generate_key_spec("t3")
    code, status, log = cli(server, t3, "status")
    assert code == 1 and status["missing_keys"] == ["t2"] and "t2" in log
    code, out, _ = cli(server, t3, "rotate")
    assert code == 1
    assert sum(r["missing_key"].get("t2", 0) for r in out["rotated"].values()) == status["rows_by_key"]["t2"]
    assert plaintexts(server, KeyRing(T2)) == after


def test_a_row_rewritten_while_its_batch_is_in_flight_is_left_alone(pg_server, pg_template, tmp_path):
    """PostgreSQL: the batch reads without locking; a writer (say, a process
    still on the old ring) rewrites the row before the batch writes it.  The
    conditional UPDATE sees a different ciphertext and leaves the newer text.
    (On SQLite the batch holds the write lock from its first read.)"""
    url = _clone_pg(pg_server, pg_template)
    old, ring = KeyRing(KEYS), KeyRing(f"{T2},{KEYS}")
    store = sealed_columns(Block)

    async def go():
        engine = make_engine(url)
        writer = make_engine(url)
        sm = make_sessionmaker(engine, keyring=ring)
        try:
            async with sm() as db:
                b = Block(listener_id="l1", seeker_id="s1", created_at=datetime.now(UTC))
                b.seal(old, reason="原来的理由")
                db.add(b)
                await db.commit()

            async def rewrite():
                async with make_sessionmaker(writer, keyring=old)() as w:
                    row = await w.get(Block, ("l1", "s1"))
                    row.seal(old, reason="改过的理由")
                    await w.commit()

            calls = []

            def aad(row, column):
                if not calls:
                    run_sync(rewrite())  # between the batch's read and its write
                calls.append(column)
                return sealed_columns(Block).aad(row, column)

            racing = type(store)(store.name, store.table, store.fields, aad)
            progress = Progress()
            async with sm() as db:
                assert await racing.rekey(db, ring, None, 10, progress) is None
            async with sm() as db:
                row = await db.get(Block, ("l1", "s1"))
                return progress, row.key_id, row.reason
        finally:
            await engine.dispose()
            await writer.dispose()

    progress, key_id, reason = run_sync(go())
    assert (progress.rekeyed, progress.changed) == (0, 1)
    assert (key_id, reason) == ("t1", "改过的理由")


def test_keys_new_adds_a_first_key_to_the_local_ring_or_prints_one(tmp_path):
    base = {k: v for k, v in os.environ.items() if not k.startswith("MIAOHUI_")}
    env = {**base, "MIAOHUI_DATA_DIR": str(tmp_path), "MIAOHUI_SECRET_KEY": SECRET}
    run = lambda e: subprocess.run([sys.executable, "-m", "miaohui", "keys", "new"], env=e,  # noqa: E731
                                   capture_output=True, text=True, timeout=60)
    first = run(env)  # no secrets file yet: made with k1, then k2 put first
    assert first.returncode == 0, first.stderr
    ring = KeyRing(json.loads((tmp_path / "secrets.json").read_text())["message_keys"])
    assert ring.ids == ("k2", "k1") and "k2" in first.stdout
    assert stat.S_IMODE((tmp_path / "secrets.json").stat().st_mode) == 0o600
    assert run(env).returncode == 0
    assert KeyRing(json.loads((tmp_path / "secrets.json").read_text())["message_keys"]).ids == ("k3", "k2", "k1")
    # With the ring in the environment: printed, to put first there; no file touched.
    printed = run({**env, "MIAOHUI_MESSAGE_KEYS": KEYS, "MIAOHUI_DATA_DIR": str(tmp_path / "prod")})
    assert printed.returncode == 0 and "MIAOHUI_MESSAGE_KEYS" in printed.stderr
    new = KeyRing(printed.stdout.strip())
    assert new.ids == ("k1",) and not (tmp_path / "prod" / "secrets.json").exists()
    # A production server's first key: printed too (there is no local file in production).
    first_prod = run({**env, "MIAOHUI_ENV": "production", "MIAOHUI_DATA_DIR": str(tmp_path / "prod")})
    assert first_prod.returncode == 0, first_prod.stderr
    assert KeyRing(first_prod.stdout.strip()).ids == ("k1",) and not (tmp_path / "prod").exists()


def test_a_proof_file_replaced_before_its_record_was_updated_still_loads(tmp_path):
    """``keys rotate`` replaces a proof file, then updates the record; stopped
    in between, the record names the old key while the file is under the new one."""
    old, ring = KeyRing(KEYS), KeyRing(f"{T2},{KEYS}")
    assert proofs.store(old, tmp_path, "q1", b"%PDF-1.4 proof")[0] == "t1"
    assert proofs.rekey(ring, tmp_path, "q1", "t1") == "t2"  # the file moved; the record still says t1
    assert proofs.load(ring, tmp_path, "q1", "t1") == b"%PDF-1.4 proof"
    assert proofs.load(KeyRing(T2), tmp_path, "q1", "t1") == b"%PDF-1.4 proof"  # even with t1 gone
    with pytest.raises(InvalidTag):
        proofs.load(old, tmp_path, "q1", "t1")  # a ring without t2 cannot read it


def test_batches_walk_a_two_column_key_in_order(database_url):
    """Blocks are keyed by (listener, seeker): the cursor is a row value."""
    old, ring = KeyRing(KEYS), KeyRing(f"{T2},{KEYS}")
    store = sealed_columns(Block)

    async def go():
        engine = make_engine(database_url)
        sm = make_sessionmaker(engine, keyring=ring)
        try:
            async with sm() as db:
                for listener_id, seeker_id in (("a", "2"), ("a", "1"), ("b", "1"), ("a", "3")):
                    b = Block(listener_id=listener_id, seeker_id=seeker_id, created_at=datetime.now(UTC))
                    b.seal(old, reason=f"理由{listener_id}{seeker_id}")
                    db.add(b)
                await db.commit()
            progress, cursor, cursors = Progress(), None, []
            while True:
                async with sm() as db:
                    cursor = await store.rekey(db, ring, cursor, 1, progress)
                if cursor is None:
                    break
                cursors.append(cursor)
            async with sm() as db:
                rows = (await db.scalars(select(Block))).all()
                return progress.rekeyed, cursors, {(r.listener_id, r.seeker_id): (r.key_id, r.reason) for r in rows}
        finally:
            await engine.dispose()

    rekeyed, cursors, rows = run_sync(go())
    assert rekeyed == 4 and cursors == [("a", "1"), ("a", "2"), ("a", "3"), ("b", "1")]
    assert rows == {(a, b): ("t2", f"理由{a}{b}") for a, b in rows} and len(rows) == 4
