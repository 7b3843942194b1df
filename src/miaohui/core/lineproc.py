"""A helper process that answers JSON lines, driven by the event loop.

Used where work that costs the event loop CPU (or the GIL) can run beside
it: the risk model (:mod:`miaohui.supervision.worker`) and the SQLite message
store (:mod:`miaohui.chat.storeproc`).  A subprocess speaking JSON lines
over its stdin/stdout, read and written by the server's event loop, rather
than a ``ProcessPoolExecutor``: the pool moves work through two extra
threads of the server (a queue feeder and a result manager, which pickle and
unpickle while holding the GIL the event loop needs) and, once its process
dies, stays broken — every later call would fail.  Here a dead helper is
restarted, and the caller handles the call it held itself (:class:`ProcessGone`).

Protocol: a first line (the helper's settings), answered by
``{"ready": true}`` once the helper is set up; then one line per call,
``{"id": k, ...}``, answered in order by ``{"id": k, "r": ...}`` (or
``{"id": k, "error": "ExceptionName"}``).  Lines travel only over the
private pipe and are never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time
from collections import deque
from collections.abc import Callable

import orjson

log = logging.getLogger("miaohui.core.lineproc")

LINE_LIMIT = 1 << 26  # one call or answer (a batch of long messages) fits easily
RESTART_AFTER_S = 1.0  # a helper that died is started again at most this often …
RESTART_MAX_S = 60.0  # … doubling while new ones keep dying before their first answer, up to this


class ProcessGone(RuntimeError):
    """The call was not answered: the helper died, is restarting, or failed
    this call.  The caller does the work itself."""


def serve_lines(setup: Callable[[dict], Callable[[dict], object]], name: str) -> None:
    """The helper's main loop: ``setup(first line)`` returns the handler of
    every later line; its return value is the answer's ``"r"``."""
    proto = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything printed by accident goes to stderr, never into the protocol
    logging.basicConfig(level=logging.WARNING, format=f"%(asctime)s %(levelname)s %(name)s {name}: %(message)s")
    stdin = sys.stdin.buffer
    first = stdin.readline()
    if not first:
        return
    handle = setup(orjson.loads(first))
    proto.write(b'{"ready": true}\n')
    proto.flush()
    for line in stdin:
        job_id = None
        try:
            job = orjson.loads(line)
            job_id = job["id"]
            answer = {"id": job_id, "r": handle(job)}
        except Exception as e:
            log.exception("a call failed")
            answer = {"id": job_id, "error": type(e).__name__}
        proto.write(orjson.dumps(answer) + b"\n")
        proto.flush()


class LineProcess:
    """The server's end.  :meth:`call` sends a line and awaits its answer; it
    raises :class:`ProcessGone` when the process died or failed the call (the
    caller does that work itself), and the next call starts a new process."""

    name = "helper process"

    def __init__(self, module: str, hello: dict) -> None:
        self.module = module
        self.hello = hello
        self.failures = 0  # processes in a row that ended before they were ready
        self._answered = False
        self.proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task | None = None
        self._waiting: deque[tuple[int, asyncio.Future]] = deque()
        self._ready: asyncio.Future | None = None
        self._next_id = 0
        self._last_start = 0.0
        self.starts = 0
        self.calls = 0

    @property
    def alive(self) -> bool:
        return (self.proc is not None and self.proc.returncode is None and not self.proc.stdin.is_closing()
                and self._reader is not None and not self._reader.done())

    async def start(self) -> None:
        """Start the process and wait until it is set up."""
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
        # Each process has its own queue of calls awaiting answers: a dead
        # one's reader fails only what it was sent, never its successor's.
        self._waiting = deque()
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", self.module,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=LINE_LIMIT)
        self.proc.stdin.write(orjson.dumps(self.hello) + b"\n")
        self._reader = loop.create_task(self._read(self.proc, self._ready, self._waiting), name=self.name)

    async def call(self, job: dict):
        if not self.alive:
            if time.monotonic() - self._last_start < self.restart_after:
                raise ProcessGone(f"the {self.name} is restarting")
            log.warning("starting the %s%s", self.name, " again" if self.starts else "")
            await self._spawn()
        assert self.proc is not None
        self._next_id += 1
        fut = asyncio.get_running_loop().create_future()
        self._waiting.append((self._next_id, fut))
        job["id"] = self._next_id
        self.proc.stdin.write(orjson.dumps(job) + b"\n")
        out = await fut
        self.calls += 1
        return out

    @property
    def restart_after(self) -> float:
        """A helper that keeps dying (a missing model, no memory) is not
        restarted in a tight loop; meanwhile the server does its work."""
        return min(RESTART_MAX_S, RESTART_AFTER_S * 2 ** self.failures)

    async def _read(self, proc, ready: asyncio.Future, waiting: deque) -> None:
        try:
            async for line in proc.stdout:
                answer = orjson.loads(line)
                if answer.get("ready"):  # set up: a healthy start
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
                    fut.set_exception(ProcessGone(f"call {job_id} failed in the {self.name}"))
                else:
                    fut.set_result(answer["r"])
        except Exception:
            log.exception("reading the %s failed", self.name)
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
                    fut.set_exception(ProcessGone(f"the {self.name} ended"))

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
