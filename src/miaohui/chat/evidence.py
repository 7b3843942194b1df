"""Tamper-evident message history: a per-conversation hash chain.

Each stored message carries ``chain = sha256(prev ‖ seq ‖ sender ‖ server
time ‖ sha256(body))`` where ``prev`` is the previous message's chain (32 zero
bytes for the first).  The writer computes it inside the batch transaction,
so the chain is as durable as the message.  Changing, removing or reordering
any message changes every later link; an order report publishes the head
(signed with the platform key), so a report handed to a client can later be
checked against the database (``miaohui orders verify``).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

GENESIS = bytes(32)


def canonical_time(at: datetime) -> str:
    """``%Y-%m-%dT%H:%M:%S.%fZ`` in UTC, made by ``isoformat`` (the same text
    for every year from 1000 on, tested; ``strftime`` took twice as long, and
    the writer makes one for every batch on the event loop)."""
    return at.astimezone(UTC).replace(tzinfo=None).isoformat("T", "microseconds") + "Z"


def body_digest(body: str) -> bytes:
    return hashlib.sha256(body.encode()).digest()


def link(prev: bytes, seq: int, sender_id: str, at: datetime, digest: bytes) -> bytes:
    return link_at(prev, seq, sender_id, canonical_time(at).encode(), digest)


def link_at(prev: bytes, seq: int, sender_id: str, at_text: bytes, digest: bytes) -> bytes:
    """:func:`link` with the time already in canonical form (the writer stamps a
    whole batch with one time): one hash of the joined fields, 0.8 µs instead of 3.5."""
    return hashlib.sha256(b"".join((prev, seq.to_bytes(8, "big"), sender_id.encode(), b"\x00", at_text, b"\x00",
                                    digest))).digest()


def verify(rows, start: bytes = GENESIS) -> tuple[bool, bytes, int | None]:
    """Recompute the chain over ``rows`` — ``(seq, sender_id, created_at,
    body, stored_chain)`` in seq order, starting at seq 1.  Returns ``(ok,
    head, first_bad_seq)``; a gap in sequence numbers is a removal."""
    prev = start
    expected = 1
    for seq, sender_id, at, body, stored in rows:
        if seq != expected:
            return False, prev, expected
        prev = link(prev, seq, sender_id, at, body_digest(body))
        if stored is not None and stored != prev:
            return False, prev, seq
        expected += 1
    return True, prev, None
