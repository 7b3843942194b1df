"""What one message-writer batch costs, by batch size, against the disk's own
floor measured in the same run.

Run from the repository root::

    .venv/bin/python bench/writer_batch_cost.py                 # batches of 1, 2, 4, 8, 16, 32, 64
    .venv/bin/python bench/writer_batch_cost.py --sizes 1 32    # some sizes only

Prints ONE JSON object.  Not a test.  A SQLite database in a temporary
directory on the same file system as ``--dir`` gets the server's schema (its
migrations) and ``--conversations`` conversations, seeded as
``chat_latency.py`` seeds them.  Then, on the event loop as the server runs
it, ``MessageWriter._process`` takes batches of messages to random
conversations, one message per conversation, each message from one of its
two sides: the one-statement batch, its COMMIT and fsync, the sequence
numbers, the evidence chain, the events published (to no subscriber) and the
futures resolved.  Each size runs ``--rounds`` times, the sizes in turn, and
reports the median round:

* ``cpu_us_batch`` / ``cpu_us_msg``: the loop thread's CPU (user and kernel),
  per batch and per message;
* ``wall_us_batch``, ``blocked_us_batch``: the wall time per batch, and the
  part of it the thread was off CPU (waiting for the disk's flush);
* ``fixed_us`` and ``per_msg_us``: a straight line through the sizes' CPU
  per batch (least squares): what a batch costs whatever its size, and what
  each message adds.

The baseline, ``disk_floor``, is the same file system's own cost of a
commit, in the same run: ``pwrite`` of five 4 KiB pages and ``fdatasync``,
CPU and wall per call (and ``pwrite`` alone).  On a virtual machine the
flush is a trip to the hypervisor, and its kernel CPU is a large share of a
small batch's (docs/performance.md, session 23).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "src"))


def disk_floor(directory: str, calls: int) -> dict:
    """CPU and wall time of ``pwrite`` (20 KiB) with and without ``fdatasync``."""
    fd, path = tempfile.mkstemp(dir=directory)
    try:
        buf = os.urandom(5 * 4096)
        out = {}
        for label, sync in (("pwrite", False), ("pwrite_fdatasync", True)):
            c0, t0 = time.thread_time(), time.perf_counter()
            for i in range(calls):
                os.pwrite(fd, buf, (i % 64) * len(buf))
                if sync:
                    os.fdatasync(fd)
            out[label] = {"cpu_us": round((time.thread_time() - c0) / calls * 1e6, 1),
                          "wall_us": round((time.perf_counter() - t0) / calls * 1e6, 1)}
        return out
    finally:
        os.close(fd)
        os.unlink(path)


def fit(points: list[tuple[int, float]]) -> tuple[float, float]:
    """Least-squares ``y = a + b x``: ``(a, b)``."""
    xs = [x for x, _ in points]
    ys = [y for _, y in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else 0.0
    return my - b * mx, b


async def measure(url: str, sizes: list[int], rounds: int, messages: int) -> dict:
    from sqlalchemy import create_engine, text

    from miaohui.chat.writer import MessageWriter, PendingMessage
    from miaohui.clock import Clock
    from miaohui.core.broker import LocalBroker
    from miaohui.core.db import make_engine

    sync = create_engine(url.replace("sqlite+aiosqlite", "sqlite"))
    with sync.connect() as c:
        rows = c.execute(text("SELECT conversation_id, user_id, role FROM participants")).all()
    sync.dispose()
    sides: dict[str, dict[str, str]] = {}
    for cid, uid, role in rows:
        sides.setdefault(cid, {})[role] = uid
    ids = list(sides)
    engine = make_engine(url)
    writer = MessageWriter(engine, Clock(), LocalBroker())
    await writer.start()
    loop = asyncio.get_running_loop()
    body = "今天真的好累，想找人说说话。最近总是睡不着。"
    ct = os.urandom(len(body.encode()) + 16)  # what the body's ciphertext weighs

    def batch(size: int) -> list[PendingMessage]:
        out = []
        for cid in random.sample(ids, size):
            role = random.choice(("seeker", "listener"))
            peer = "listener" if role == "seeker" else "seeker"
            m = PendingMessage(cid, sides[cid][role], role, uuid.uuid4().hex, "bench", ct, body,
                               (sides[cid][peer],), "bench")
            m.future = loop.create_future()
            out.append(m)
        return out

    try:
        for size in sizes:  # warm: every conversation's counters read once, statements prepared
            for _ in range(max(1, len(ids) // size)):
                await writer._process(batch(size))
        per_size: dict[int, list[dict]] = {s: [] for s in sizes}
        for _ in range(rounds):
            for size in sizes:
                n = max(20, messages // size)
                cpu = wall = 0.0
                for _ in range(n):
                    b = batch(size)
                    t0, c0 = time.perf_counter(), time.thread_time()
                    await writer._process(b)
                    c1, t1 = time.thread_time(), time.perf_counter()
                    cpu += c1 - c0
                    wall += t1 - t0
                per_size[size].append({"cpu": cpu / n, "wall": wall / n})
    finally:
        await writer.stop()
        await engine.dispose()
    result = {}
    for size, runs in per_size.items():
        cpu = statistics.median(r["cpu"] for r in runs)
        wall = statistics.median(r["wall"] for r in runs)
        result[str(size)] = {"cpu_us_batch": round(cpu * 1e6), "cpu_us_msg": round(cpu / size * 1e6, 1),
                             "wall_us_batch": round(wall * 1e6), "blocked_us_batch": round((wall - cpu) * 1e6)}
    return result


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32, 64])
    p.add_argument("--conversations", type=int, default=1000)
    p.add_argument("--messages", type=int, default=2000, help="messages per size per round (default 2000)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--dir", default=tempfile.gettempdir(), help="where the database goes (its file system)")
    a = p.parse_args(argv)
    if any(s < 1 or s > a.conversations for s in a.sizes):
        p.error("sizes must be between 1 and --conversations")
    os.environ.setdefault("MIAOHUI_LOG_LEVEL", "WARNING")
    from chat_latency import cpu_probe, migrate_and_seed

    with tempfile.TemporaryDirectory(dir=a.dir) as d:
        url = f"sqlite+aiosqlite:///{d}/writer-batch.db"
        migrate_and_seed(url, a.conversations)
        floor_before = disk_floor(d, 300)
        sizes = asyncio.run(measure(url, a.sizes, a.rounds, a.messages))
        floor_after = disk_floor(d, 300)
    fixed, per_msg = fit([(int(s), v["cpu_us_batch"]) for s, v in sizes.items()]) if len(sizes) > 1 else (None, None)
    print(json.dumps({
        "conversations": a.conversations, "rounds": a.rounds, "messages_per_size_round": a.messages,
        "cpu_probe_s": cpu_probe(),
        "sizes": sizes,
        "fixed_us": None if fixed is None else round(fixed), "per_msg_us": None if per_msg is None else round(per_msg, 1),
        "disk_floor": {"before": floor_before, "after": floor_after},
    }, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
