"""SQLite message batches committed in a process of their own.

Why: on SQLite the database is a library inside the server, so its work —
sealing each body (AES-GCM), the evidence chain, five statements a batch and
the fsync — runs on the event loop's own thread, where every socket waits
for it.  At 5,000 msg/s that was ~45 % of the loop's time (py-spy,
docs/performance.md, session 7), and two cores could not carry the loop, the
load and the safety pipeline at once.  PostgreSQL does that work in its own
server processes anyway; this gives SQLite the same shape.  The loop now
sends one JSON line per batch and awaits one back; while the process
commits, the next batch gathers (group commit, as before), and nothing is
acknowledged or delivered before the process answered that its batch is
durable.

Protocol (:mod:`miaohui.core.lineproc`): the first line is
``{"url": sqlite url, "keys": message key ring}``; then one line per batch,
``{"id": k, "now": iso, "replay": bool, "m": [[conversation, sender, role,
client id, key id, sealed body (base64, "" = seal here), body, recipients,
origin], ...], "r": [[conversation, user, delivered, read], ...]}``, answered
by ``{"id": k, "r": {"s": [[index, seq, stored at (iso; null = now),
duplicate], ...], "g": [indexes of gone conversations], "c": [[conversation,
order, seq, sender, role], ...], "e": [[topic, frame], ...]}}`` — exactly
what :func:`miaohui.chat.writer.commit_batch` returned.  Message text travels
only over this private pipe and is never logged.

If the process dies, the writer commits the batch it held itself with
``replay`` (messages that the dead process had already committed are found
by their client ids and published then: no message lost, none stored twice)
and starts a new process for the next batch.
"""

from __future__ import annotations

import base64
import logging
import os
import sys
from datetime import datetime

import orjson

from miaohui.core.lineproc import LineProcess

log = logging.getLogger("miaohui.chat.storeproc")

GROUP_MAX = 64  # batches committed as one transaction, at most


def encode_batch(msgs, receipts, now: datetime, replay: bool) -> dict:
    return {
        "now": now.isoformat(),
        "replay": replay,
        "m": [[m.conversation_id, m.sender_id, m.sender_role, m.client_id, m.key_id,
               base64.b64encode(m.body_ct).decode() if m.body_ct else "", m.body, m.recipients, m.origin]
              for m in msgs],
        "r": [[r.conversation_id, r.user_id, r.delivered_seq, r.read_seq] for r in receipts],
    }


def decode_answer(r: dict):
    from miaohui.chat.writer import Committed, Stored, _Result

    now = datetime.fromisoformat(r["now"])  # a group of batches is stored at the time of its newest
    res = _Result()
    stored = res.stored
    for i, seq, at, dup in r["s"]:
        stored[i] = Stored(seq, now if at is None else datetime.fromisoformat(at), dup)
    res.gone = r["g"]
    res.contracted = [Committed(c, o, seq, snd, role, now) for c, o, seq, snd, role in r["c"]]
    return res, r["e"]


def _open(hello: dict):
    """``commit(jobs) -> answers``: the jobs that queued up in the pipe while
    the last group was committing, as one transaction (one fsync), answered
    one by one; if that transaction fails, each job alone, so one bad job
    never sinks the others (its answer is an error: the server commits it
    itself)."""
    from miaohui.chat.writer import PendingMessage, Receipt, commit_sqlite, open_sqlite
    from miaohui.core.crypto import KeyRing, message_aad
    from miaohui.core.db import make_sync_engine

    raw = open_sqlite(make_sync_engine(hello["url"]))
    keyring = KeyRing(hello["keys"])
    b64decode = base64.b64decode

    def unpack(job: dict):
        msgs = []
        for conv, sender, role, client_id, key_id, ct, body, recipients, origin in job["m"]:
            if ct:
                sealed = b64decode(ct)
            else:
                key_id, sealed = keyring.encrypt(body, message_aad(conv, sender, client_id))
            msgs.append(PendingMessage(conv, sender, role, client_id, key_id, sealed, body, tuple(recipients), origin))
        return msgs, [Receipt(*r) for r in job["r"]]

    def group(jobs: list[dict]) -> list[dict]:
        now = datetime.fromisoformat(jobs[-1]["now"])  # the newest: a group is stored at one time
        msgs: list = []
        receipts: list = []
        starts = []
        for job in jobs:
            m, r = unpack(job)
            starts.append(len(msgs))
            msgs += m
            receipts += r
        res, events = commit_sqlite(raw, msgs, receipts, now, True, any(j["replay"] for j in jobs))
        answers = [{"id": j["id"], "r": {"s": [], "g": [], "c": [], "e": [], "now": now.isoformat()}} for j in jobs]
        job_of = [0] * len(msgs)
        for k, start in enumerate(starts):
            end = starts[k + 1] if k + 1 < len(starts) else len(msgs)
            for i in range(start, end):
                job_of[i] = k
        for i, st in res.stored.items():
            k = job_of[i]
            answers[k]["r"]["s"].append([i - starts[k], st.seq, None if st.created_at == now else st.created_at.isoformat(),
                                         st.duplicate])
        for i in res.gone:
            k = job_of[i]
            answers[k]["r"]["g"].append(i - starts[k])
        # Everything in the group is durable now: its events and SLA records
        # go with the first answer.
        first = answers[0]["r"]
        first["c"] = [[c.conversation_id, c.order_id, c.seq, c.sender_id, c.sender_role] for c in res.contracted]
        first["e"] = events
        return answers

    def commit(jobs: list[dict]) -> list[dict]:
        try:
            return group(jobs)
        except Exception as e:
            if len(jobs) == 1:
                log.warning("a batch failed: %s", type(e).__name__)
                return [{"id": jobs[0]["id"], "error": type(e).__name__}]
        return [a for job in jobs for a in commit([job])]

    return commit


def _groups(commit, jobs: list[dict]) -> list[dict]:
    return [a for i in range(0, len(jobs), GROUP_MAX) for a in commit(jobs[i : i + GROUP_MAX])]


def main() -> None:
    """``python -m miaohui.chat.storeproc`` (started by :class:`StoreProcess`):
    read what the pipe holds, commit those jobs as one group, answer, repeat."""
    proto = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything printed by accident goes to stderr, never into the protocol
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s message store: %(message)s")
    fd = sys.stdin.fileno()
    buf = b""
    commit = None
    while True:
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            return
        buf += chunk
        *lines, buf = buf.split(b"\n")
        if not lines:
            continue
        if commit is None:
            commit = _open(orjson.loads(lines.pop(0)))
            proto.write(b'{"ready": true}\n')
            proto.flush()
        jobs: list[dict] = []
        out: list[dict] = []
        for line in lines:  # answered in the order they came
            try:
                job = orjson.loads(line)
                job["id"]  # noqa: B018 - a job without an id is malformed
            except Exception as e:
                out += _groups(commit, jobs)
                jobs = []
                out.append({"id": None, "error": type(e).__name__})
            else:
                jobs.append(job)
        out += _groups(commit, jobs)
        if out:
            proto.write(b"".join(orjson.dumps(a) + b"\n" for a in out))
            proto.flush()


class StoreProcess(LineProcess):
    name = "message store process"

    def __init__(self, url: str, keys: str, module: str = "miaohui.chat.storeproc") -> None:
        super().__init__(module, {"url": url, "keys": keys})

    async def commit(self, msgs, receipts, now: datetime):
        """Commit one batch; ``(result, events)`` once it is durable.  Raises
        :class:`~miaohui.core.lineproc.ProcessGone` if it was not answered."""
        return decode_answer(await self.call(encode_batch(msgs, receipts, now, False)))


if __name__ == "__main__":
    main()
