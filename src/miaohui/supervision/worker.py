"""The risk model in a process of its own (``safety_workers`` > 0).

The server sends batches of seeker messages, each with its history signals,
and gets back what :func:`miaohui.supervision.monitor.assess_batch` made of
them.  A subprocess speaking JSON lines over its stdin/stdout, read and
written by the server's event loop, rather than a ``ProcessPoolExecutor``:
the pool moves work through two extra threads of the server (a queue feeder
and a result manager, which pickle and unpickle while holding the GIL the
event loop needs) and, once its process dies, stays broken — every later
batch would fail.  Here a dead worker is restarted, and the batch it held is
assessed on the loop instead, so no message goes unassessed.

Protocol: first line ``{"nice": n}``; then one line per batch,
``{"id": k, "items": [[text, history signals], ...]}``, answered in order
by ``{"id": k, "r": [[tier, level, score, signals, rules, emotions, topics,
rank alone, joking alone], ...]}`` (or ``{"id": k, "error": "..."}``).
Message text travels only over this private pipe and is never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time
from collections import deque

import orjson

log = logging.getLogger("miaohui.supervision")

LINE_LIMIT = 1 << 26  # a batch of long messages (32 × 4,000 characters) and its answer fit easily
RESTART_AFTER_S = 1.0  # a worker that died is started again at most this often …
RESTART_MAX_S = 60.0  # … doubling while new ones keep dying before their first answer, up to this


def encode_results(out) -> list:
    return [[a.tier, a.level, a.score, a.signals, a.rules, a.emotions, a.topics, rank, joke]
            for a, (rank, joke) in out]


def decode_results(rows: list) -> list:
    from miaohui.safety.assess import Assessment

    return [(Assessment(t, lv, sc, tuple(sg), tuple(ru), tuple(tuple(e) for e in em), tuple(tp)), (rank, joke))
            for t, lv, sc, sg, ru, em, tp, rank, joke in rows]


def main() -> None:
    """``python -m miaohui.supervision.worker`` (started by :class:`RiskWorker`)."""
    proto = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything printed by accident goes to stderr, never into the protocol
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s risk worker: %(message)s")
    from miaohui.supervision.monitor import _warm, assess_batch

    stdin = sys.stdin.buffer
    first = stdin.readline()
    if not first:
        return
    _warm(int(orjson.loads(first).get("nice", 0)))
    proto.write(b'{"ready": true}\n')
    proto.flush()
    for line in stdin:
        job_id = None
        try:
            job = orjson.loads(line)
            job_id = job["id"]
            res = assess_batch([(t, h or None) for t, h in job["items"]])
            answer = {"id": job_id, "r": encode_results(res)}
        except Exception as e:
            log.exception("assessing a batch failed")
            answer = {"id": job_id, "error": type(e).__name__}
        proto.write(orjson.dumps(answer) + b"\n")
        proto.flush()


class WorkerGone(RuntimeError):
    pass


class RiskWorker:
    """The server's end.  :meth:`assess` sends a batch and awaits its answer;
    it raises :class:`WorkerGone` when the process died (the caller assesses
    that batch itself), and the next call starts a new process."""

    def __init__(self, nice: int = 0, module: str = "miaohui.supervision.worker") -> None:
        self.nice = nice
        self.module = module
        self.failures = 0  # workers in a row that ended before they were ready
        self._answered = False
        self.proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task | None = None
        self._waiting: deque[tuple[int, asyncio.Future]] = deque()
        self._ready: asyncio.Future | None = None
        self._next_id = 0
        self._last_start = 0.0
        self.starts = 0
        self.batches = 0

    @property
    def alive(self) -> bool:
        return (self.proc is not None and self.proc.returncode is None and not self.proc.stdin.is_closing()
                and self._reader is not None and not self._reader.done())

    async def start(self) -> None:
        """Start the process and wait until its models are loaded."""
        if not self.alive:
            await self._spawn()
        if self._ready is not None:
            await asyncio.shield(self._ready)

    async def _spawn(self) -> None:
        self._last_start = time.monotonic()
        self.starts += 1
        self._answered = False
        loop = asyncio.get_running_loop()
        self._ready = loop.create_future()
        # Each process has its own queue of batches awaiting answers: a dead
        # one's reader fails only what it was sent, never its successor's.
        self._waiting = deque()
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", self.module,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=LINE_LIMIT)
        self.proc.stdin.write(orjson.dumps({"nice": self.nice}) + b"\n")
        self._reader = loop.create_task(self._read(self.proc, self._ready, self._waiting), name="risk-worker-reader")

    async def assess(self, items: list[tuple[str, dict]]) -> list:
        if not self.alive:
            if time.monotonic() - self._last_start < self.restart_after:
                raise WorkerGone("the risk worker is restarting")
            log.warning("starting the risk worker%s", " again" if self.starts else "")
            await self._spawn()
        assert self.proc is not None
        self._next_id += 1
        fut = asyncio.get_running_loop().create_future()
        self._waiting.append((self._next_id, fut))
        self.proc.stdin.write(orjson.dumps({"id": self._next_id, "items": items}) + b"\n")
        rows = await fut
        self.batches += 1
        return decode_results(rows)

    @property
    def restart_after(self) -> float:
        """A worker that keeps dying (a missing model, no memory) is not
        restarted in a tight loop; meanwhile the server assesses itself."""
        return min(RESTART_MAX_S, RESTART_AFTER_S * 2 ** self.failures)

    async def _read(self, proc, ready: asyncio.Future, waiting: deque) -> None:
        try:
            async for line in proc.stdout:
                answer = orjson.loads(line)
                if answer.get("ready"):  # models loaded: a healthy start
                    self._answered = True
                    self.failures = 0
                    if not ready.done():
                        ready.set_result(None)
                    continue
                job_id, fut = waiting.popleft()
                self._answered = True
                self.failures = 0
                if fut.done():
                    continue
                if answer.get("id") != job_id or "error" in answer:
                    fut.set_exception(WorkerGone(f"batch {job_id} failed in the worker"))
                else:
                    fut.set_result(answer["r"])
        except Exception:
            log.exception("reading the risk worker failed")
        finally:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            if not self._answered and proc is self.proc:
                self.failures += 1
            if not ready.done():
                ready.set_result(None)
            while waiting:
                _, fut = waiting.popleft()
                if not fut.done():
                    fut.set_exception(WorkerGone("the risk worker ended"))

    async def close(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        with contextlib.suppress(Exception):
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 5)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await self._reader


if __name__ == "__main__":
    main()
