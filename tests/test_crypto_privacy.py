"""Message bodies are encrypted at rest (AES-GCM, key id stored for rotation),
and nothing readable leaks into the database or logs."""

from __future__ import annotations

import logging

import httpx
import pytest
from cryptography.exceptions import InvalidTag
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from miaohui.chat.models import Message
from miaohui.core.crypto import KeyRing, generate_key_spec, message_aad

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
