"""What a message's client id costs the store, by the id's shape (prints JSON).

Idempotent retries rest on a unique index led by the client id
(``uq_messages_client``).  Where a new id lands in that index decides how
many B-tree pages a batch rewrites: a random id (UUIDv4, what the web client
sent before session 17) lands on a random leaf, one more 4 KiB page in the
WAL per message; an id led by the time (UUIDv7, what it sends now) lands at
the right edge, on the page the previous message dirtied.

Method: the server's own migrations and the benchmark's seeding (1,000
conversations), the server's own ``MessageWriter`` (its one-statement batch,
fsync on every COMMIT), each conversation first given 50 messages; then
``--messages`` more from random conversations and senders, committed in
batches of ``--batches`` messages (3 is what the writer commits at 2,000
msg/s, 40 at 5,000).  Per message: process CPU, wall time, and bytes written
(``/proc/self/io`` ``wchar``: the WAL and its checkpoints).  The id shapes
alternate over ``--rounds`` in one run, so they share the machine's mood.

    .venv/bin/python bench/client_id_index.py [--rounds 2] [--batches 3 40]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from chat_latency import migrate_and_seed  # noqa: E402

from miaohui.chat.writer import MessageWriter, PendingMessage  # noqa: E402
from miaohui.clock import Clock  # noqa: E402
from miaohui.core.broker import LocalBroker  # noqa: E402
from miaohui.core.db import make_engine  # noqa: E402

SHAPES = ("uuid4", "connection", "uuid7")


def uuid7() -> str:
    """RFC 9562 version 7, as ``newClientId`` in the web client makes it."""
    b = bytearray(int(time.time() * 1000).to_bytes(6, "big") + secrets.token_bytes(10))
    b[6] = (b[6] & 0x0F) | 0x70
    b[8] = (b[8] & 0x3F) | 0x80
    return str(uuid.UUID(bytes=bytes(b)))


class Ids:
    def __init__(self, shape: str) -> None:
        self.shape, self.n = shape, 0

    def __call__(self, conn: int) -> str:
        self.n += 1
        if self.shape == "uuid4":
            return str(uuid.uuid4())
        if self.shape == "connection":  # chat_latency --client-ids connection
            return f"b{conn:04d}-{self.n:07d}-{int(time.perf_counter() * 1e6)}"
        return uuid7()


def wchar() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    return 0


async def measure(shape: str, batch: int, messages: int, warm: int, convs: list[dict], path: str) -> dict:
    rng = random.Random(7)
    ids = Ids(shape)
    writer = MessageWriter(make_engine(f"sqlite+aiosqlite:///{path}"), Clock(), LocalBroker())
    await writer.start()

    def pending() -> PendingMessage:
        c = rng.randrange(len(convs))
        side = rng.randrange(2)
        return PendingMessage(convs[c]["id"], convs[c]["users"][side], ("seeker", "listener")[side],
                              ids(2 * c + side), "k1", secrets.token_bytes(rng.randint(40, 200)), "", ())

    async def run(n: int) -> None:
        for k in range(0, n, batch):  # a batch's messages are all queued before the writer's turn
            await asyncio.gather(*[writer.submit(pending()) for _ in range(min(batch, n - k))])

    try:
        await run(warm)
        b0, cpu0, w0, t0 = writer.batches, time.process_time(), wchar(), time.perf_counter()
        await run(messages)
        wall, cpu, written = time.perf_counter() - t0, time.process_time() - cpu0, wchar() - w0
        batches = writer.batches - b0
    finally:
        await writer.stop()
        await writer.engine.dispose()
    return {"cpu_us": cpu / messages * 1e6, "wall_us": wall / messages * 1e6,
            "written_kib": written / messages / 1024, "messages_per_batch": messages / max(batches, 1)}


def seeded(count: int) -> tuple[str, list[dict]]:
    d = tempfile.mkdtemp(prefix="miaohui-cidx-")
    path = os.path.join(d, "bench.db")
    convs = migrate_and_seed(f"sqlite+aiosqlite:///{path}", count)
    import sqlite3

    db = sqlite3.connect(path)
    users = dict(db.execute("SELECT conversation_id || ':' || role, user_id FROM participants").fetchall())
    db.close()
    for c in convs:
        c["users"] = (users[c["id"] + ":seeker"], users[c["id"] + ":listener"])
    return path, convs


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--conversations", type=int, default=1000)
    p.add_argument("--batches", type=int, nargs="+", default=[3, 40])
    p.add_argument("--messages", type=int, default=12_000)
    p.add_argument("--rounds", type=int, default=2)
    a = p.parse_args()
    out: dict = {"conversations": a.conversations, "messages": a.messages, "rounds": a.rounds, "results": {}}
    raw: dict = {}
    for r in range(a.rounds):
        for batch in a.batches:
            for shape in SHAPES if r % 2 == 0 else SHAPES[::-1]:
                path, convs = seeded(a.conversations)
                res = asyncio.run(measure(shape, batch, a.messages, 50 * a.conversations, convs, path))
                raw.setdefault(f"batch {batch}", {}).setdefault(shape, []).append(res)
                print(f"round {r + 1} batch {batch} {shape}: " + json.dumps({k: round(v, 1) for k, v in res.items()}),
                      file=sys.stderr)
    for key, shapes in raw.items():
        out["results"][key] = {
            shape: {m: round(statistics.median(x[m] for x in runs), 2) for m in runs[0]} | {
                "runs": [{m: round(v, 2) for m, v in x.items()} for x in runs]}
            for shape, runs in shapes.items()}
        base = out["results"][key]["uuid4"]
        for shape in SHAPES[1:]:
            s = out["results"][key][shape]
            s["vs_uuid4"] = {m: round(s[m] / base[m], 3) for m in ("cpu_us", "wall_us", "written_kib")}
    print(json.dumps(out, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
