"""Chat delivery latency and throughput: 秒回 vs. a raw WebSocket relay.

Run from the repository root::

    .venv/bin/python bench/chat_latency.py            # full run (~8-10 min)
    .venv/bin/python bench/chat_latency.py --quick    # smoke check (< 1 min)

Prints ONE JSON object on stdout; progress goes to stderr.  Not a test.

What it does (see docs/performance.md for the method and the figures):

1. a fresh temporary data dir + SQLite database, migrated, then seeded directly
   through SQLAlchemy (users sharing one precomputed argon2 hash, bearer
   sessions whose ``token_hash`` is sha256(token), approved listener profiles,
   conversations with two participants) -- seconds instead of minutes;
2. the real server as a subprocess (``miaohui serve --no-migrate``) and, as a
   baseline, a minimal relay (plain ``websockets`` asyncio server, no auth, no
   persistence, no compression -- like 秒回, it declines permessage-deflate:
   pairs the two sockets of a conversation, forwards each ``send`` to the peer
   and acks the sender);
3. one load-generator process (the machine has 2 cores: one for the server,
   one for the generator) that opens both sides of N conversations, waits for
   ``synced`` everywhere, then sends open-loop at a fixed aggregate rate from
   both sides alternately.  The scheduled send time is embedded in the
   ``client_id`` (``<t_us>-b<conn>-<n>``: time first, as the web client's
   UUIDv7 ids are, see docs/protocol.md; ``--client-ids connection`` puts
   the connection first); delivery latency is the peer's
   receive time minus that scheduled time (so a generator that falls behind
   shows up as latency, never hides it -- no coordinated omission);
4. fixed-rate runs at N = 100 and N = 1000 conversations and a step-up search
   for the highest rate with p99 < 50 ms and nothing lost, for both targets.
   At the largest N the fixed rates run in rounds (``--rounds``, default 3),
   the two targets connected at once and taking turns within each rate, and
   the ratio is the median over rounds of the ratio within each round (a
   shared host's speed drifts over minutes; see ``Bench.sessions_at``);
5. with ``--compare-src DIR`` or ``--compare-variant V``, a second 秒回
   server (``miaohui_b``: another tree, or patches from
   ``bench/server_variants.py``), with its own database, takes its turn in
   the same rounds, and ``compare`` in the report gives its p99 over the
   first's, round by round: an A/B that both sides measure on the same host.

The generator speaks WebSocket through the ``websockets`` sans-I/O protocol
on a bare asyncio/uvloop transport: sending never awaits, so one slow socket
cannot stall the schedule, and one core drives more traffic than the
``websockets`` asyncio client could.  It collects garbage only between
phases: a full collection of its sockets and records stopped it for 25-75 ms
mid-phase (docs/performance.md, session 18).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import dataclasses
import gc
import json
import os
import platform
import resource
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import orjson
from websockets.client import ClientProtocol
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory, PerMessageDeflate
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri

from miaohui.chat.wsdirect import apply_mask, between_frames, frame_head  # RFC 6455, shared with the server

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DIALOGUES = REPO.parent / "shared" / "data" / "smilechat" / "dialogues.jsonl"
HOST = "127.0.0.1"

P99_LIMIT_MS = 50.0
RATIO_LIMIT = 3.0
SUSTAINED_TARGET = 5000
# Issue 2's relay: "10,000 messages/s at about half a core", i.e. 50 µs of its
# loop's CPU a message; the targets are stated for a machine where that holds.
RELAY_REFERENCE_US = 50.0
# A rate is abandoned once a message is this late (seconds): the target is
# overloaded and the figures are already decided; going on only builds a
# backlog that the next rate would have to wait out.
OVERLOAD_AGE_SEARCH_S = 2.0
OVERLOAD_AGE_FIXED_S = 5.0

FALLBACK_LINES = [
    "最近压力好大，晚上总是睡不着。",
    "我能理解，这种感觉一定很难受。愿意多说一点吗？",
    "工作上被领导批评了，感觉自己什么都做不好。",
    "先深呼吸一下，你已经很努力了。",
    "和男朋友分手三个月了，还是会忍不住想他。",
    "想念一个人是很正常的，给自己一点时间。",
    "考研二战，家里人都不太支持我。",
    "你觉得他们不支持的原因是什么呢？",
    "谢谢你愿意听我说这些，感觉好多了。",
    "不客气，我一直都在，随时可以来找我聊。",
    "室友总是很晚回来，吵得我没法休息。",
    "有没有试过和她直接沟通一下作息的问题？",
]


def send_time_us(client_id: str) -> int:
    """The scheduled send time (µs after the generator's epoch) a bench client
    id carries: first in ``<t_us>-b<conn>-<n>``, last in ``--client-ids
    connection``'s ``b<conn>-<n>-<t_us>``."""
    first, _, rest = client_id.partition("-")
    return int(first) if first.isdigit() else int(rest.rsplit("-", 1)[1])


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < want:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    i = min(len(sorted_values) - 1, max(0, int(round(q / 100 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[i]


def r2(x: float | None) -> float | None:
    return None if x is None else round(x, 2)


def load_bodies() -> tuple[list[str], str]:
    """Realistic Chinese chat lines (SmileChat counselling dialogues if present)."""
    lines: list[str] = []
    if DIALOGUES.exists():
        with DIALOGUES.open(encoding="utf-8") as f:
            for raw in f:
                with contextlib.suppress(ValueError, TypeError, KeyError):
                    for turn in json.loads(raw)["turns"]:
                        text = str(turn.get("content", "")).strip()
                        if 2 <= len(text) <= 500:
                            lines.append(text)
                if len(lines) >= 20000:
                    break
    if len(lines) >= 100:
        return lines, f"smilechat ({len(lines)} lines)"
    return FALLBACK_LINES, "built-in list"


def proc_children(pid: int) -> list[int]:
    """Every descendant of ``pid`` (e.g. the server's safety worker processes), from /proc."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            tids = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{p}/task/{tid}/children") as f:
                    kids = [int(x) for x in f.read().split()]
            except (OSError, ValueError):
                continue
            out.extend(kids)
            todo.extend(kids)
    return out


def tree_ticks(pid: int) -> int:
    """CPU ticks (user + system) used so far by ``pid`` and its live descendants."""
    total = 0
    for p in (pid, *proc_children(pid)):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, ValueError, IndexError):
            continue
    return total


def quiesce(pid: int, below_pct: float = 15.0, window: float = 0.5, limit: float = 30.0) -> float:
    """Wait until the server (with its worker processes) uses less than
    ``below_pct`` % of a core over ``window`` s — e.g. after an overload its
    safety worker may still be assessing the backlog — so each rate is
    measured from a settled server.  Returns the seconds waited."""
    hz = os.sysconf("SC_CLK_TCK")
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        a = tree_ticks(pid)
        time.sleep(window)
        if 100.0 * (tree_ticks(pid) - a) / hz / window < below_pct:
            break
    return round(time.monotonic() - t0 - window, 1)


def proc_threads_cpu(pid: int) -> dict[int, int]:
    """CPU ticks (user + system) per thread of ``pid`` and of its child processes (the
    server's safety workers are part of the server: their CPU is not "other processes")."""
    out: dict[int, int] = {}
    for p in (pid, *proc_children(pid)):
        out.update(_threads_cpu(p))
    return out


def _threads_cpu(pid: int) -> dict[int, int]:
    out: dict[int, int] = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[int(tid)] = int(fields[11]) + int(fields[12])
    return out


def system_ticks() -> tuple[int, int]:
    """``(busy, steal)`` CPU ticks of the whole machine (all cores), from
    /proc/stat.  Busy is everything but idle and iowait (guest time is
    inside user), steal included: time the hypervisor gave our virtual CPUs
    to someone else, the direct measure of a shared host's noise."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return 0, 0
    return sum(v[:8]) - v[3] - v[4], v[7] if len(v) > 7 else 0


def cpu_split(pid: int, before: dict[int, int], after: dict[int, int], seconds: float) -> dict:
    """Process CPU % over an interval, split into the main (event loop) thread and the rest."""
    tick = os.sysconf("SC_CLK_TCK")
    main = after.get(pid, 0) - before.get(pid, 0)
    total = sum(v - before.get(t, 0) for t, v in after.items())
    k = 100.0 / tick / max(seconds, 1e-9)
    return {"cpu_pct": round(total * k, 1), "loop_thread_pct": round(main * k, 1),
            "other_threads_pct": round((total - main) * k, 1)}


def pdeathsig() -> None:
    """Child processes die with the orchestrator, even if it is SIGKILLed (Linux)."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def run_loop(coro) -> object:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


# ====================================================================== relay

def relay_main(port: int) -> None:
    """The baseline: the least a chat relay can do over the same protocol shape."""
    raise_nofile()
    from websockets.asyncio.server import serve

    from miaohui.core.gcpolicy import gc_maintenance, tune_gc

    rooms: dict[str, list] = {}
    seqs: dict[str, int] = {}

    async def handler(ws) -> None:
        conv = ws.request.path.split("?", 1)[0].rsplit("/", 1)[-1]
        room = rooms.setdefault(conv, [])
        room.append(ws)
        try:
            await ws.send('{"type":"synced","last_seq":0}')
            async for raw in ws:
                frame = orjson.loads(raw)
                if frame.get("type") != "send":
                    continue
                seq = seqs[conv] = seqs.get(conv, 0) + 1
                cid = frame["client_id"]
                out = orjson.dumps({"type": "message", "conversation_id": conv, "seq": seq,
                                    "client_id": cid, "body": frame["body"]}).decode()
                for peer in room:
                    if peer is not ws:
                        await peer.send(out)
                await ws.send(orjson.dumps({"type": "ack", "client_id": cid, "seq": seq}).decode())
        finally:
            room.remove(ws)
            if not room:
                del rooms[conv]

    async def main() -> None:
        # compression=None: the generator offers permessage-deflate (as browsers
        # do) and 秒回 declines it, so the relay declines it too.  Until
        # session 12 it accepted it, and compressing every frame cost it ~40 %
        # of a core at 5,000 msg/s (docs/performance.md): a handicap, not a
        # baseline.
        #
        # For the same reason the relay runs under 秒回's own garbage-collection
        # policy (miaohui.core.gcpolicy: young collections every 10,000
        # allocations, what lives long frozen every 30 s).  With CPython's
        # defaults it stopped for collections of its 2,000 sockets: 10-23 ms
        # young and middle ones in the load phases, up to 86 ms full ones
        # after connecting (docs/performance.md, session 18).
        # ``MIAOHUI_BENCH_RELAY_GC=default`` keeps the defaults, for comparison.
        if os.environ.get("MIAOHUI_BENCH_RELAY_GC") != "default":
            tune_gc()
            maintenance = asyncio.create_task(gc_maintenance(full_every=86_400.0))  # noqa: F841 - a reference for the process's life
        async with serve(handler, HOST, port, max_size=256 * 1024, compression=None) as server:
            print(f"relay listening on {port}", file=sys.stderr, flush=True)
            await server.serve_forever()

    run_loop(main())


# ================================================================== generator

class Rec:
    """One sent message."""

    __slots__ = ("t", "conv", "side", "measured", "lag", "acks", "t_ack", "deliv", "lat")

    def __init__(self, t: float, conv: int, side: int, measured: bool) -> None:
        self.t = t
        self.conv = conv
        self.side = side
        self.measured = measured
        self.lag = 0.0
        self.acks = 0
        self.t_ack = 0.0
        self.deliv = 0
        self.lat = 0.0


# The generator's frame codec once a socket is open: "lean" (default) reads and
# writes frames itself; "websockets" keeps the library's sans-I/O protocol for
# the socket's whole life (what every run before session 12 used).
GEN_CODEC = os.environ.get("MIAOHUI_BENCH_GEN_CODEC", "lean")
_DEFLATE_TAIL = b"\x00\x00\xff\xff"


class Client(asyncio.Protocol):
    """One WebSocket on a bare transport, so ``send`` is synchronous (never
    awaits on one slow socket).

    websockets' sans-I/O protocol does the opening handshake (and any
    extension negotiation).  Once the socket is open and the library's reader
    stands at a frame boundary, the socket goes *lean*: frames are read and
    written here, a few lines of RFC 6455 -- a masked text frame out, unmasked
    frames in, permessage-deflate inflated with the library's own negotiated
    decoder, pings answered, a close echoed.  The generator shares two cores
    with the server it measures; the library's general-purpose frame machinery
    cost it ~70 µs of CPU a message, which was taken from the server under
    test (docs/performance.md, session 12).  Same code for both targets.
    """

    def __init__(self, gen: Generator, idx: int, conv: int, side: int, path: str, token: str,
                 compression: bool) -> None:
        self.gen = gen
        self.idx = idx
        self.conv = conv
        self.side = side
        self.token = token
        ext = [ClientPerMessageDeflateFactory(compress_settings={"memLevel": 5})] if compression else None
        self.proto = ClientProtocol(parse_uri(f"ws://{HOST}:{gen.port}{path}"), extensions=ext,
                                    max_size=2**22)
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future = loop.create_future()
        self.synced: asyncio.Future = loop.create_future()
        self.transport: asyncio.Transport | None = None
        self.open = False
        self.max_seq = 0
        self.lean = False
        self.rbuf = b""
        self.deflate: PerMessageDeflate | None = None
        self.frag: list[bytes] | None = None  # a fragmented message being reassembled (lean)
        self.frag_rsv1 = False
        self.frag_op = 0

    def connection_made(self, transport) -> None:
        self.transport = transport
        req = self.proto.connect()
        req.headers["Authorization"] = f"Bearer {self.token}"
        self.proto.send_request(req)
        self._flush()

    def _flush(self) -> None:
        for chunk in self.proto.data_to_send():
            if chunk:
                self.transport.write(chunk)
            elif self.transport.can_write_eof():
                self.transport.write_eof()

    def data_received(self, data: bytes) -> None:
        if self.lean:
            return self._lean_received(data)
        self.proto.receive_data(data)
        for ev in self.proto.events_received():
            if isinstance(ev, Frame):
                if ev.opcode is Opcode.TEXT:
                    self.gen.on_frame(self, ev.data)
            elif isinstance(ev, Response) and not self.opened.done():
                if ev.status_code == 101 and self.proto.handshake_exc is None:
                    self.open = True
                    self.opened.set_result(True)
                else:
                    self.opened.set_exception(RuntimeError(f"handshake refused: HTTP {ev.status_code}"))
        self._flush()
        if self.proto.close_expected():
            self.open = False
        elif self.open and GEN_CODEC == "lean" and between_frames(self.proto):
            self._go_lean()

    def _go_lean(self) -> None:
        """From the next byte on, frames are handled here.  Called only with
        the library's parser between frames (``wsdirect.between_frames``)."""
        for ext in self.proto.extensions:
            if not isinstance(ext, PerMessageDeflate):
                return  # an extension this codec does not speak: stay with the library
            self.deflate = ext
        self.lean = True

    def _inflate(self, payload: bytes) -> bytes:
        ext = self.deflate
        if ext is None:
            raise ValueError("RSV1 set without permessage-deflate")
        if ext.remote_no_context_takeover:
            dec = zlib.decompressobj(wbits=-ext.remote_max_window_bits)
        else:
            dec = ext.decoder  # the library's, so its context carries on
        return dec.decompress(payload + _DEFLATE_TAIL)

    def _lean_received(self, data: bytes) -> None:
        if self.rbuf:
            data = self.rbuf + data
        n = len(data)
        pos = 0
        while True:
            hl, ln = frame_head(data, pos)
            if not hl:
                break
            b0 = data[pos]
            if data[pos + 1] & 0x80:
                return self._protocol_error("masked frame from the server")
            end = pos + hl + ln
            if end > n:
                break
            payload = data[pos + hl:end]
            pos = end
            op = b0 & 0x0F
            if op == 1 and b0 & 0x80 and self.frag is None:  # the common case: one whole text frame
                self.gen.on_frame(self, self._inflate(payload) if b0 & 0x40 else payload)
            elif op in (0, 1, 2):
                if op and self.frag is not None or not op and self.frag is None:
                    return self._protocol_error("bad fragmentation")
                if op:
                    self.frag, self.frag_rsv1, self.frag_op = [], bool(b0 & 0x40), op
                self.frag.append(payload)
                if b0 & 0x80:
                    msg = b"".join(self.frag)
                    self.frag = None
                    if self.frag_rsv1:
                        msg = self._inflate(msg)
                    if self.frag_op == 1:
                        self.gen.on_frame(self, msg)
            elif op == 9:  # ping
                self._write_frame(0x8A, payload)
            elif op == 8:  # close: echo it, the server closes the TCP connection
                if self.open:
                    self._write_frame(0x88, payload[:2])
                self.open = False
                self.rbuf = b""
                return
            # 10 (pong) and reserved opcodes: nothing to do
        self.rbuf = data[pos:] if pos < n else b""

    def _protocol_error(self, why: str) -> None:
        self.gen.errors += 1
        if len(self.gen.error_samples) < 5:
            self.gen.error_samples.append(f"generator: {why}")
        self.open = False
        self.transport.close()

    def _write_frame(self, b0: int, payload: bytes) -> None:
        """One client frame: FIN + opcode ``b0``, masked with a fresh key (RFC 6455 5.3)."""
        ln = len(payload)
        if ln < 126:
            hdr = bytes((b0, 0x80 | ln))
        elif ln < 65536:
            hdr = bytes((b0, 0xFE)) + ln.to_bytes(2, "big")
        else:
            hdr = bytes((b0, 0xFF)) + ln.to_bytes(8, "big")
        mask = os.urandom(4)
        self.transport.write(hdr + mask + apply_mask(payload, mask))

    def connection_lost(self, exc) -> None:
        if self.open:
            self.gen.dropped += 1
        self.open = False
        for fut in (self.opened, self.synced):
            if not fut.done():
                fut.set_exception(ConnectionError("connection lost"))

    def send(self, text: str) -> None:
        if self.lean:
            return self._write_frame(0x81, text.encode())
        self.proto.send_text(text.encode())
        self._flush()

    def close(self) -> None:
        if self.transport is None:
            return
        with contextlib.suppress(Exception):
            if self.open and self.lean:
                self._write_frame(0x88, (1000).to_bytes(2, "big"))
            elif self.open:
                self.proto.send_close(1000)
                self._flush()
        self.open = False
        self.transport.close()


class Generator:
    def __init__(self) -> None:
        self.port = 0
        self.compression = True
        self.convs: list[dict] = []
        self.clients: list[Client] = []
        self.records: dict[str, Rec] = {}
        self.inflight: collections.deque[Rec] = collections.deque()
        self.bodies: list[str] = []
        self.epoch = time.perf_counter()
        self.counter = 0
        # Time-ordered client ids, as the web client sends (UUIDv7); or led by
        # the connection, as before (each message then lands on a random page
        # of the server's client-id index).
        self.ids_by_connection = os.environ.get("MIAOHUI_BENCH_CLIENT_IDS") == "connection"
        self.dropped = 0
        self.stray = 0
        self.misrouted = 0
        self.errors = 0
        self.error_samples: list[str] = []
        self.win = (0.0, 0.0)
        self.win_deliv = 0
        # How long the generator's own garbage collections stopped it (s).
        self.gc_paused = 0.0
        self._gc_t0 = 0.0
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, _info: dict) -> None:
        if phase == "start":
            self._gc_t0 = time.perf_counter()
        else:
            self.gc_paused += time.perf_counter() - self._gc_t0

    # ------------------------------------------------------------- receiving
    def on_frame(self, c: Client, data: bytes) -> None:
        now = time.perf_counter()
        d = orjson.loads(data)
        typ = d.get("type")
        if typ == "message":
            cid = d.get("client_id", "")
            c.max_seq = max(c.max_seq, d.get("seq", 0))
            rec = self.records.get(cid)
            if rec is None:
                self.stray += 1
                return
            if rec.conv != c.conv or rec.side == c.side:
                self.misrouted += 1
                return
            rec.deliv += 1
            if rec.deliv == 1:
                # The scheduled send time travels in the client id itself.
                t_sched = self.epoch + send_time_us(cid) / 1e6
                rec.lat = now - t_sched
                if self.win[0] <= now <= self.win[1]:
                    self.win_deliv += 1
        elif typ == "ack":
            c.max_seq = max(c.max_seq, d.get("seq", 0))
            rec = self.records.get(d.get("client_id", ""))
            if rec is not None:
                rec.acks += 1
                if rec.acks == 1:
                    rec.t_ack = now
        elif typ == "synced":
            if not c.synced.done():
                c.synced.set_result(True)
        elif typ == "error":
            self.errors += 1
            if len(self.error_samples) < 5:
                self.error_samples.append(data.decode(errors="replace")[:200])

    # ------------------------------------------------------------ connecting
    async def _open(self, idx: int, after_seq: int) -> Client:
        conv = self.convs[idx // 2]
        side = idx % 2
        c = Client(self, idx, idx // 2, side, f"/ws/chat/{conv['id']}?after_seq={after_seq}",
                   conv["tokens"][side], self.compression)
        loop = asyncio.get_running_loop()
        await loop.create_connection(lambda: c, HOST, self.port)
        await asyncio.wait_for(c.opened, 60)
        await asyncio.wait_for(c.synced, 120)
        return c

    async def connect(self, cmd: dict) -> dict:
        self.port = cmd["port"]
        self.compression = cmd["compression"]
        self.convs = cmd["convs"]
        self.bodies = cmd["bodies"]
        sem = asyncio.Semaphore(cmd.get("concurrency", 50))

        async def one(i: int) -> Client:
            async with sem:
                return await self._open(i, 0)

        t0 = time.perf_counter()
        results = await asyncio.gather(*(one(i) for i in range(2 * len(self.convs))), return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        self.clients = [r for r in results if isinstance(r, Client)]
        if failed:
            raise RuntimeError(f"{len(failed)} connections failed, first: {failed[0]!r}")
        return {"sockets": len(self.clients), "connect_s": round(time.perf_counter() - t0, 2)}

    async def reconnect_dropped(self) -> int:
        n = 0
        for i, c in enumerate(self.clients):
            if not c.open:
                c.close()
                self.clients[i] = await self._open(i, c.max_seq)
                n += 1
        return n

    async def close(self) -> dict:
        for c in self.clients:
            c.close()
        await asyncio.sleep(0.5)
        return {"closed": len(self.clients)}

    # ----------------------------------------------------------------- phase
    def _outstanding(self) -> Rec | None:
        """Oldest message still waiting for its ack or delivery (drops finished ones)."""
        q = self.inflight
        while q and q[0].acks and q[0].deliv:
            q.popleft()
        return q[0] if q else None

    async def _settle(self, seconds: float) -> bool:
        """Wait until nothing is outstanding, at most ``seconds``; True if all settled."""
        deadline = time.perf_counter() + seconds
        for _ in range(int(seconds / 0.02) + 1):
            if self._outstanding() is None or time.perf_counter() >= deadline:
                break
            await asyncio.sleep(0.02)
        return self._outstanding() is None

    async def phase(self, cmd: dict) -> dict:
        reconnected = await self.reconnect_dropped()
        self.records.clear()
        self.inflight.clear()
        # The generator must not stop while it measures.  Its 2,000 sockets
        # and a phase's records are hundreds of thousands of objects, and
        # CPython's full collections walked them for 25-75 ms several times
        # a phase (sessions 1-17): no frame went out meanwhile, and the
        # deliveries that arrived were stamped late.  That inflated both
        # targets' tails (the relay's p99 at 5,000 msg/s read 10.9 ms in such
        # a run), and 秒回's more, since a burst of late frames makes big
        # batches.  So collect and freeze now, and collect nothing until
        # the phase is over: nothing here makes cyclic garbage worth a pause.
        # (``MIAOHUI_BENCH_GEN_GC=on``: collect as before, for comparison.)
        quiet = os.environ.get("MIAOHUI_BENCH_GEN_GC") != "on"
        if quiet:
            gc.collect()
            gc.freeze()
            gc.disable()
        paused0 = self.gc_paused
        try:
            out = await self._phase(cmd, reconnected)
        finally:
            gc.enable()
        out["gen_gc_paused_ms"] = round((self.gc_paused - paused0) * 1000, 1)
        return out

    async def _phase(self, cmd: dict, reconnected: int) -> dict:
        rate = float(cmd["rate"])
        warmup, duration = cmd["warmup"], cmd["duration"]
        grace, drain = cmd["grace"], cmd["drain"]
        abort_after = cmd.get("abort_after")
        watch_pids: dict[str, int] = cmd.get("pids", {})
        self.dropped = self.stray = self.misrouted = self.errors = 0
        self.error_samples = []
        n_conv = len(self.convs)
        clients = self.clients
        bodies = self.bodies
        nbodies = len(bodies)
        total = int(rate * (warmup + duration))
        start = time.perf_counter() + 0.05
        t_meas, t_end = start + warmup, start + warmup + duration
        self.win, self.win_deliv = (t_meas, t_end), 0
        measured: list[Rec] = []
        cpu: dict = {}

        stop = asyncio.Event()

        async def sample_cpu() -> None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, t_meas - time.perf_counter()))
            if stop.is_set():
                return
            before = {k: proc_threads_cpu(p) for k, p in watch_pids.items()}
            g0, w0, (s0, st0) = time.process_time(), time.perf_counter(), system_ticks()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, t_end - time.perf_counter()))
            after = {k: proc_threads_cpu(p) for k, p in watch_pids.items()}
            span = time.perf_counter() - w0
            for k, p in watch_pids.items():
                cpu[k] = cpu_split(p, before[k], after[k], span)
            cpu["generator"] = {"cpu_pct": round((time.process_time() - g0) * 100 / span, 1)}
            s1, st1 = system_ticks()
            machine = (s1 - s0) * 100 / os.sysconf("SC_CLK_TCK") / span
            ours = sum(v["cpu_pct"] for v in cpu.values())
            # CPU used by anything else on the machine (other people's tests...): noise.
            cpu["machine_busy_pct"] = round(machine, 1)
            cpu["others_pct"] = round(max(0.0, machine - ours), 1)
            cpu["steal_pct"] = round((st1 - st0) * 100 / os.sysconf("SC_CLK_TCK") / span, 1)

        cpu_task = asyncio.create_task(sample_cpu())
        k = 0
        skipped = 0
        aborted = False
        next_check = start + 0.25
        while k < total:
            now = time.perf_counter()
            due = min(total, int((now - start) * rate) + 1) if now >= start else 0
            while k < due:
                ts = start + k / rate
                conv = k % n_conv
                side = (k // n_conv) % 2
                c = clients[2 * conv + side]
                k += 1
                if not c.open:
                    skipped += 1
                    continue
                n = self.counter
                self.counter += 1
                t_us = int((ts - self.epoch) * 1e6)
                cid = f"b{c.idx:04d}-{n:07d}-{t_us}" if self.ids_by_connection else f"{t_us:012d}-b{c.idx:04d}-{n:07d}"
                rec = Rec(ts, conv, side, ts >= t_meas)
                self.records[cid] = rec
                self.inflight.append(rec)
                c.send(orjson.dumps({"type": "send", "client_id": cid, "body": bodies[n % nbodies]}).decode())
                rec.lag = time.perf_counter() - ts
                if rec.measured:
                    measured.append(rec)
            if now >= next_check:
                next_check = now + 0.25
                oldest = self._outstanding()
                if abort_after and oldest is not None and now - oldest.t > abort_after:
                    aborted = True
                    break
            # Event-loop timers have 1 ms resolution: sleeping less would spin
            # (and steal the server's CPU); sends due meanwhile go out together.
            await asyncio.sleep(max(0.001, start + k / rate - time.perf_counter()))
        t_stop = time.perf_counter()
        stop.set()
        # Grace: wait for every ack and delivery (or give up after ``grace`` s).
        await self._settle(grace)
        snap = [(r.acks > 0, r.deliv > 0) for r in measured]
        drained = await self._settle(drain)
        await cpu_task

        sent = len(measured)
        acked = sum(1 for a, _ in snap if a)
        delivered = sum(1 for _, d in snap if d)
        lost = sum(1 for a, d in snap if a and not d)
        never = sum(1 for r in measured if r.deliv == 0)
        never_acked = sum(1 for r in measured if r.acks == 0)
        lats = sorted(r.lat * 1000 for r, (_, d) in zip(measured, snap, strict=True) if d)
        acks = sorted((r.t_ack - r.t) * 1000 for r, (a, _) in zip(measured, snap, strict=True) if a)
        lags = sorted(r.lag * 1000 for r in measured)
        span = max(0.0, t_stop - t_meas) if aborted else duration
        return {
            "rate": rate,
            "duration_s": round(span, 2),
            "sent": sent,
            "acked": acked,
            "delivered": delivered,
            "lost": lost,
            "unacked": sent - acked,
            "late": sum(1 for r, (_, d) in zip(measured, snap, strict=True) if r.deliv and not d),
            "never_delivered": never,
            "never_acked": never_acked,
            "duplicates": sum(max(0, r.deliv - 1) for r in measured),
            "duplicate_acks": sum(max(0, r.acks - 1) for r in measured),
            "misrouted": self.misrouted,
            "p50_ms": r2(percentile(lats, 50)),
            "p95_ms": r2(percentile(lats, 95)),
            "p99_ms": r2(percentile(lats, 99)),
            "max_ms": r2(lats[-1] if lats else None),
            "ack_p50_ms": r2(percentile(acks, 50)),
            "ack_p99_ms": r2(percentile(acks, 99)),
            "throughput": round(self.win_deliv / span, 1) if span > 0 else 0.0,
            "gen_lag_p99_ms": r2(percentile(lags, 99)),
            "gen_lag_max_ms": r2(lags[-1] if lags else None),
            "cpu": cpu,
            "skipped_closed": skipped,
            "sockets_dropped": self.dropped,
            "reconnected_before": reconnected,
            "errors": self.errors,
            "error_samples": self.error_samples,
            "aborted_overload": aborted,
            "drained": drained,
        }


def generator_main() -> None:
    """Reads one JSON command per stdin line, answers one JSON line on stdout."""
    raise_nofile()

    async def main() -> None:
        gen = Generator()
        loop = asyncio.get_running_loop()
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                break
            cmd = json.loads(line)
            try:
                if cmd["cmd"] == "connect":
                    out = await gen.connect(cmd)
                elif cmd["cmd"] == "phase":
                    out = await gen.phase(cmd)
                else:
                    out = await gen.close()
            except Exception as e:  # reported to the orchestrator, which decides
                out = {"error": f"{type(e).__name__}: {e}"}
            sys.stdout.write(json.dumps(out) + "\n")
            sys.stdout.flush()
            if cmd["cmd"] == "close":
                break

    run_loop(main())


# =============================================================== orchestrator

# Experiment: the load generator's nice value (e.g. -10, as root); the servers keep the bench's.
_gen_nice = os.environ.get("MIAOHUI_BENCH_GEN_NICE")
GEN_NICE = int(_gen_nice) if _gen_nice else None


class Procs:
    """Every child process, terminated on the way out whatever happens."""

    def __init__(self) -> None:
        self.items: list[subprocess.Popen] = []

    def start(self, args: list[str], cpu: int | None = None, nice: int | None = None, **kw) -> subprocess.Popen:
        def pre() -> None:
            pdeathsig()
            if nice is not None:  # else the child keeps this process's priority
                with contextlib.suppress(OSError):
                    os.setpriority(os.PRIO_PROCESS, 0, nice)
            if cpu is not None:
                with contextlib.suppress(OSError):
                    os.sched_setaffinity(0, {cpu})

        p = subprocess.Popen(args, preexec_fn=pre, **kw)
        self.items.append(p)
        return p

    @staticmethod
    def stop(p: subprocess.Popen) -> None:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)

    def stop_all(self) -> None:
        for p in reversed(self.items):
            with contextlib.suppress(Exception):
                self.stop(p)
        self.items.clear()


def wait_http(url: str, proc: subprocess.Popen, timeout: float, log_path: Path | None = None) -> None:
    import httpx

    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            tail = log_path.read_text()[-2000:] if log_path and log_path.exists() else ""
            raise RuntimeError(f"server exited with {proc.returncode}:\n{tail}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{url} not healthy after {timeout}s")


def wait_port(port: int, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"relay exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=1):
            return
        time.sleep(0.1)
    raise RuntimeError(f"port {port} not open after {timeout}s")


def server_env(server_src: str | None) -> dict[str, str]:
    """Environment for processes that run the server's code (another source tree if asked)."""
    env = dict(os.environ)
    if server_src:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(server_src) / "src"), env.get("PYTHONPATH")]))
    return env


def migrate_and_seed(url: str, count: int, server_src: str | None = None) -> list[dict]:
    """Schema via the server's own migrations (in a subprocess, so ``--server-src``
    gets its own schema); rows inserted directly (no API, no per-user hashing)."""
    from datetime import UTC, datetime, timedelta

    from argon2 import PasswordHasher
    from sqlalchemy import Column, MetaData, Table, create_engine, inspect

    from miaohui.accounts.models import AuthSession, User
    from miaohui.accounts.service import token_hash
    from miaohui.chat.models import Conversation, Participant
    from miaohui.core.db import new_id
    from miaohui.listeners.models import ListenerProfile

    page = os.environ.get("MIAOHUI_BENCH_PAGE_SIZE")  # experiment: SQLite's page size, set before the schema
    if page and url.startswith("sqlite"):
        import sqlite3

        with contextlib.closing(sqlite3.connect(url.split(":///", 1)[1])) as db:
            db.execute(f"PRAGMA page_size={int(page)}")
            db.execute("VACUUM")
    subprocess.run([sys.executable, "-c", "import sys; from miaohui.migrate import upgrade; upgrade(sys.argv[1])", url],
                   env=server_env(server_src), stdout=sys.stderr, check=True)
    now = datetime.now(UTC)
    expires = now + timedelta(days=30)
    pw_hash = PasswordHasher().hash("bench-password")
    users, sessions, profiles, convs, parts, out = [], [], [], [], [], []
    for i in range(count):
        seeker, listener, conv = new_id(), new_id(), new_id()
        tokens = [secrets.token_urlsafe(32), secrets.token_urlsafe(32)]
        for uid, role, name, tok in ((seeker, "seeker", f"倾诉者{i}", tokens[0]),
                                     (listener, "listener", f"倾听师{i}", tokens[1])):
            users.append({"id": uid, "username": f"{role}{i:05d}", "password_hash": pw_hash,
                          "display_name": name, "role": role, "disabled": False, "created_at": now})
            sessions.append({"token_hash": token_hash(tok), "user_id": uid, "created_at": now,
                             "expires_at": expires})
            parts.append({"conversation_id": conv, "user_id": uid, "role": role, "last_delivered_seq": 0,
                          "last_read_seq": 0, "joined_at": now})
        profiles.append({"user_id": listener, "headline": "陪你聊聊", "bio": "", "topics": ["情感"],
                         "languages": ["普通话"], "qualifications": [], "price_per_hour_fen": 5000,
                         "status": "approved", "accepting": True, "created_at": now, "approved_at": now,
                         "approved_by": None})
        convs.append({"id": conv, "kind": "listener", "pair_key": f"{seeker}:{listener}", "last_seq": 0,
                      "created_at": now, "last_activity_at": now})
        out.append({"id": conv, "tokens": tokens})
    engine = create_engine(url.replace("sqlite+aiosqlite", "sqlite"))
    try:
        with engine.begin() as conn:
            # Each table as the server's migrations made it (``--server-src``
            # may be an older tree): this tree's models supply the column
            # types, and columns the database lacks are left out.
            for model, rows in ((User, users), (AuthSession, sessions), (ListenerProfile, profiles),
                                (Conversation, convs), (Participant, parts)):
                table = model.__table__
                have = {c["name"] for c in inspect(conn).get_columns(table.name)}
                cols = [Column(c, table.c[c].type) for c in rows[0] if c in have]
                conn.execute(Table(table.name, MetaData(), *cols).insert(), rows)
    finally:
        engine.dispose()
    return out


class GenProc:
    """The load generator subprocess, driven one JSON line at a time."""

    def __init__(self, procs: Procs, cpu: int | None) -> None:
        self.p = procs.start([sys.executable, str(Path(__file__).resolve()), "--worker", "gen"], cpu=cpu, nice=GEN_NICE,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def call(self, cmd: dict) -> dict:
        self.p.stdin.write(json.dumps(cmd, ensure_ascii=False) + "\n")
        self.p.stdin.flush()
        line = self.p.stdout.readline()
        if not line:
            raise RuntimeError(f"generator died (rc={self.p.poll()})")
        out = json.loads(line)
        if "error" in out:
            raise RuntimeError(f"generator: {out['error']}")
        return out

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.call({"cmd": "close"})
        Procs.stop(self.p)


def passes(run: dict) -> bool:
    return (
        not run["aborted_overload"]
        and run["lost"] == 0 and run["unacked"] == 0 and run["duplicates"] == 0 and run["misrouted"] == 0
        and run["sent"] > 0 and run["p99_ms"] is not None and run["p99_ms"] < P99_LIMIT_MS
    )


def median_run(runs: list[dict]) -> dict:
    """Of one rate's rounds, the run with the median p99 (the higher middle
    one of an even count; a run without a p99 counts as the worst)."""
    ranked = sorted(runs, key=lambda r: float("inf") if r["p99_ms"] is None else r["p99_ms"])
    return ranked[len(ranked) // 2]


def count_messages(db_path: Path) -> int | None:
    """Rows in ``messages`` (read-only; WAL lets this run beside the server)."""
    import sqlite3

    try:
        with contextlib.closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)) as db:
            return db.execute("SELECT count(*) FROM messages").fetchone()[0]
    except sqlite3.Error:
        return None


def noise(run: dict) -> float:
    """CPU % (of one core) used by processes other than the target and the generator."""
    return run["cpu"].get("others_pct", 0.0)


def summarize_writer(before: dict, after: dict) -> dict:
    """Group-commit batches during one phase (counters from bench/server_variants.py ``stats``)."""
    lags = after.get("loop_lags", [])[len(before.get("loop_lags", [])):]
    slow = after.get("slow_commits", [])[len(before.get("slow_commits", [])):]
    i = before.get("batches", 0)
    sizes, commit, hops = (after.get(k, [])[i:] for k in ("sizes", "commit_s", "hops"))
    if not sizes:
        return {}
    commit_ms = sorted(c * 1000 for c in commit)
    return {
        "batches": len(sizes),
        "batch_size_mean": round(sum(sizes) / len(sizes), 1),
        "batch_size_max": max(sizes),
        "commit_ms_p50": r2(percentile(commit_ms, 50)),
        "commit_ms_p99": r2(percentile(commit_ms, 99)),
        "commit_ms_max": r2(commit_ms[-1]),
        "thread_hops_per_batch": round(sum(hops) / len(hops), 1),
        "gc_pauses": {
            gen: {"count": len(v), "total_ms": round(1000 * sum(v), 1), "max_ms": round(1000 * max(v), 1)}
            for gen in ("0", "1", "2")
            if (v := after.get("gc", {}).get(gen, [])[len(before.get("gc", {}).get(gen, [])):])
        },
        "commit_s_total": round(sum(commit), 2),
        "loop_stalls_over_20ms": len(lags),
        "loop_stall_max_ms": round(1000 * max((x[1] for x in lags), default=0.0), 1),
        "commits_over_50ms": len(slow),
        "gc_objects": after.get("gc_objects"),
        "gc_frozen": after.get("gc_frozen"),
    }


def generator_bound(run: dict) -> bool:
    """The generator, not the target, was the limit (its core saturated or it fell behind)."""
    gen_cpu = run["cpu"].get("generator", {}).get("cpu_pct", 0)
    return gen_cpu >= 95 or (run["gen_lag_p99_ms"] or 0) > 10


def summarize_profile(raw_path: Path, top: int = 30) -> dict:
    """Self and inclusive sample shares per function from py-spy's collapsed stacks."""
    self_c: collections.Counter = collections.Counter()
    incl: collections.Counter = collections.Counter()
    threads: collections.Counter = collections.Counter()
    total = 0
    for line in raw_path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        threads[frames[0]] += n
        names = [f.split(" (", 1)[0] + " (" + f.rsplit("/", 1)[-1] if " (" in f else f for f in frames[1:]]
        if names:
            self_c[names[-1]] += n
        for name in set(names):
            incl[name] += n

    def share(c: collections.Counter) -> list:
        return [[name, round(100 * v / total, 1)] for name, v in c.most_common(top)]

    return {"samples": total, "threads": share(threads), "self_pct": share(self_c), "inclusive_pct": share(incl)}


@dataclasses.dataclass
class Served:
    """One 秒回 server of the run: the tree it runs from, its variant, and
    what the harness learns of it once started."""

    src: str | None
    variant: str
    db_path: Path | None = None
    pid: int | None = None
    health_url: str = ""
    stats_path: Path | None = None


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.procs = Procs()
        self.runs: list[dict] = []
        self.sessions: list[dict] = []
        self.pin_server = 0 if args.pin else None
        self.pin_gen = 1 if args.pin else None
        self.profile: dict | None = None
        self.git: dict = {}
        # Each 秒回 server: "miaohui", and with --compare-src/--compare-variant
        # "miaohui_b", the same server from another tree or with patches.
        self.miaohui: dict[str, Served] = {"miaohui": Served(args.server_src, args.server_variant)}
        if args.compare_src or args.compare_variant:
            self.miaohui["miaohui_b"] = Served(args.compare_src or args.server_src,
                                               args.compare_variant or args.server_variant)
        self.server_pids: list[int] = []

    def writer_stats(self, target: str) -> dict:
        """The instrumented writer's counters (``--server-variant stats``), or {}."""
        srv = self.miaohui[target]
        if srv.stats_path is None or srv.pid is None:
            return {}
        with contextlib.suppress(OSError, ValueError):
            before = srv.stats_path.stat().st_mtime_ns if srv.stats_path.exists() else 0
            os.kill(srv.pid, signal.SIGUSR1)  # asks the server to write them
            for _ in range(50):
                time.sleep(0.05)
                if srv.stats_path.exists() and srv.stats_path.stat().st_mtime_ns != before:
                    return json.loads(srv.stats_path.read_text())
        return {}

    # ---------------------------------------------------------------- targets
    def start_miaohui(self, tmp: Path, target: str, total: int, source: str) -> tuple[int, int, list[dict]]:
        """``target``'s own database (its tree's migrations, ``total``
        conversations) and server: ``(port, pid, conversations)``."""
        from miaohui.core.crypto import generate_key_spec

        srv = self.miaohui[target]
        home = tmp / target
        home.mkdir()
        srv.db_path = home / "miaohui.db"
        url = f"sqlite+aiosqlite:///{srv.db_path}"
        t0 = time.perf_counter()
        convs = migrate_and_seed(url, total, srv.src)
        log(f"{target}: migrated and seeded {total} conversations ({2 * total} users) in "
            f"{time.perf_counter() - t0:.1f}s; bodies: {source}")
        port = free_port()
        env = dict(server_env(srv.src), MIAOHUI_DATABASE_URL=url, MIAOHUI_DATA_DIR=str(home / "data"),
                   MIAOHUI_SECRET_KEY=secrets.token_urlsafe(32), MIAOHUI_MESSAGE_KEYS=generate_key_spec("b1"),
                   MIAOHUI_HOST=HOST, MIAOHUI_REDIS_URL="",
                   # The generator is a load, not people: at N = 100 and 5,000 msg/s each
                   # side sends 25 a second, past the per-person limit (3 a second). The
                   # limiter still runs for every message, with room for all of them.
                   MIAOHUI_CHAT_SEND_RATE_PER_S="1000000", MIAOHUI_CHAT_SEND_BURST="1000000")
        log_path = home / "server.log"
        serve = ["serve", "--no-migrate", "--host", HOST, "--port", str(port)]
        cmd = [str(BIN / "miaohui"), *serve]
        if srv.variant != "baseline":
            # Same server with experimental patches applied in-process (bench/server_variants.py).
            cmd = [sys.executable, str(Path(__file__).with_name("server_variants.py")), srv.variant, "--", *serve]
            srv.stats_path = home / "writer-stats.json" if "stats" in srv.variant else None
            env["MIAOHUI_BENCH_STATS"] = str(srv.stats_path)
        logf = log_path.open("w")
        p = self.procs.start(cmd, cpu=self.pin_server, env=env, stdout=logf, stderr=subprocess.STDOUT)
        logf.close()
        wait_http(f"http://{HOST}:{port}/healthz", p, 60, log_path)
        srv.pid = p.pid
        srv.health_url = f"http://{HOST}:{port}/healthz"
        return port, p.pid, convs

    def start_relay(self) -> tuple[int, subprocess.Popen]:
        port = free_port()
        p = self.procs.start([sys.executable, str(Path(__file__).resolve()), "--worker", "relay", "--port", str(port)],
                             cpu=self.pin_server, stdout=sys.stderr)
        wait_port(port, p, 30)
        return port, p

    # ----------------------------------------------------------------- phases
    def phase(self, gen: GenProc, target: str, pid: int, n: int, rate: float, *, search: bool = False,
              profile_dir: Path | None = None, round_: int | None = None) -> dict:
        a = self.args
        cmd = {"cmd": "phase", "rate": rate, "warmup": a.warmup, "duration": a.duration, "grace": a.grace,
               "drain": a.drain, "pids": {"server": pid},
               "abort_after": OVERLOAD_AGE_SEARCH_S if search else OVERLOAD_AGE_FIXED_S}
        # Every server settles, not only this one: 秒回's risk worker, still
        # assessing an overload's backlog, would otherwise run in the relay's phase.
        waited = sum(quiesce(p) for p in dict.fromkeys([pid, *self.server_pids]))
        if waited >= 1.0:
            log(f"  {target}: waited {waited:.0f}s for the servers to settle (work left from the last rate)")
        spy = None
        if profile_dir is not None:
            spy = self.start_profiler(pid, profile_dir)
        try:
            run = self.measure(gen, cmd, target)
            # The machine is shared: if something else ate CPU meanwhile, measure again.
            for attempt in range(2, a.retries + 2):
                if spy is not None or noise(run) <= a.noise_limit:
                    break
                log(f"  {target} N={n} rate={rate:.0f}: {noise(run)}% CPU used by other processes; "
                    f"measuring again (attempt {attempt})")
                time.sleep(3)
                again = self.measure(gen, cmd, target)
                again["attempts"] = attempt
                run = min(run, again, key=noise)
        finally:
            if spy is not None:
                self.finish_profiler(spy, profile_dir)
        run = {"target": target, "conversations": n, **run, "search": search, "profiled": spy is not None,
               "round": round_ or 0, "settle_wait_s": waited}
        if target in self.miaohui and self.miaohui[target].db_path is not None:
            run["db_messages"] = count_messages(self.miaohui[target].db_path)
        run["noisy"] = noise(run) > a.noise_limit
        run["passed"] = passes(run)
        run["generator_bound"] = generator_bound(run)
        cpu = run["cpu"]
        tag = "  " if round_ is None else f"r{round_ + 1}"
        log(f"  {target:9s} N={n:<5d} {tag} rate={rate:>7.0f}  sent={run['sent']:<6d} deliv={run['delivered']:<6d} "
            f"lost={run['lost']} unacked={run['unacked']} dup={run['duplicates']}  "
            f"p50={run['p50_ms']} p99={run['p99_ms']} max={run['max_ms']} ms  thr={run['throughput']}/s  "
            f"cpu srv={cpu.get('server', {}).get('cpu_pct')}% (loop {cpu.get('server', {}).get('loop_thread_pct')}%) "
            f"gen={cpu.get('generator', {}).get('cpu_pct')}% others={cpu.get('others_pct')}% "
            f"(steal {cpu.get('steal_pct')}%)  "
            f"{'PASS' if run['passed'] else 'FAIL'}"
            f"{' [aborted: overload]' if run['aborted_overload'] else ''}"
            f"{' db=' + str(run['db_messages']) if run.get('db_messages') is not None else ''}"
            + (" risk: assessed={assessed} queued={queued_after} lag={lag_ms_after}ms".format(**run["safety"])
               if run.get("safety") else ""))
        if run["error_samples"]:
            log(f"  errors: {run['error_samples'][:2]}")
        if not run["drained"]:
            log("  warning: backlog not drained before the next phase")
        self.runs.append(run)
        return run

    def health(self, target: str) -> dict:
        """The server's ``/healthz``: its writer counters (batches, messages,
        one-statement batches, fallbacks) and, from a server that has them,
        the safety monitor's (risk-model backlog and lag); {} when it fails."""
        import httpx

        with contextlib.suppress(httpx.HTTPError, ValueError, AttributeError):
            return httpx.get(self.miaohui[target].health_url, timeout=5).json() or {}
        return {}

    def measure(self, gen: GenProc, cmd: dict, target: str) -> dict:
        ours = target in self.miaohui
        w0 = self.writer_stats(target) if ours else {}
        h0 = self.health(target) if ours else {}
        run = gen.call(cmd)
        if w0:
            run["writer"] = summarize_writer(w0, self.writer_stats(target))
        if h0:
            h1 = self.health(target)
            c0, c1 = h0.get("writer") or {}, h1.get("writer") or {}
            run["writer_counters"] = {k: c1[k] - c0[k] for k in c0 if isinstance(c1.get(k), int)}
            s0, s1 = h0.get("safety") or {}, h1.get("safety") or {}
            if s1:
                # Whether the risk model kept up: seeker messages assessed in
                # the phase, still waiting at its end, and how long the last
                # batch's oldest waited (lag_ms_max: since the server started).
                run["safety"] = {"assessed": s1["assessed"] - s0.get("assessed", 0), "queued_after": s1["queued"],
                                 "lag_ms_after": s1["lag_ms"], "lag_ms_max_since_start": s1["lag_ms_max"]}
        return run

    def start_profiler(self, pid: int, out: Path) -> subprocess.Popen | None:
        spy = BIN / "py-spy"
        if not spy.exists():
            log("  py-spy not installed (.venv/bin/pip install py-spy); not profiling")
            return None
        out.mkdir(parents=True, exist_ok=True)
        secs = int(self.args.warmup + self.args.duration)
        log(f"  profiling server pid {pid} for {secs}s -> {out}")
        extra = self.args.profile_args.split()
        rate = [] if {"-r", "--rate"} & set(extra) else ["--rate", "100"]
        return self.procs.start([str(spy), "record", "--pid", str(pid), "--duration", str(secs), *rate,
                                 "--threads", "--format", "raw", *extra,
                                 "-o", str(out / "miaohui-profile.txt")],
                                stdout=sys.stderr, stderr=sys.stderr)

    def finish_profiler(self, spy: subprocess.Popen, out: Path) -> None:
        try:
            spy.wait(60)
        except subprocess.TimeoutExpired:
            Procs.stop(spy)
        raw = out / "miaohui-profile.txt"
        if raw.exists():
            self.profile = {"rate": None, "file": str(raw), **summarize_profile(raw)}

    def search(self, gen: GenProc, target: str, pid: int, n: int, known: dict[float, dict]) -> tuple[float, dict]:
        """Step up until a rate fails, then bisect between the last pass and the first fail."""
        best = 0.0
        fail = None
        for rate in self.args.search_steps:
            run = known.get(rate) or self.phase(gen, target, pid, n, rate, search=True)
            if run["passed"]:
                best = rate
            else:
                fail = rate
                break
        lo, hi = best, fail
        for _ in range(self.args.bisect if fail else 0):
            mid = round((lo + hi) / 2 / 250) * 250
            if mid <= lo or mid >= hi:
                break
            run = self.phase(gen, target, pid, n, mid, search=True)
            if run["passed"]:
                lo = best = mid
            else:
                hi = mid
        return best, {"lowest_failing_rate": hi}

    def connect(self, target: str, port: int, convs: list[dict], bodies: list[str]) -> tuple[GenProc, dict]:
        """A generator process with both sides of ``convs`` connected to ``target`` and synced."""
        n = len(convs)
        log(f"{target}: opening {2 * n} sockets ({n} conversations)")
        gen = GenProc(self.procs, self.pin_gen)
        try:
            info = gen.call({"cmd": "connect", "port": port, "convs": convs, "bodies": bodies,
                             "compression": not self.args.no_compression, "concurrency": 50})
        except BaseException:
            gen.close()
            raise
        log(f"  {info['sockets']} sockets synced in {info['connect_s']} s")
        return gen, {"target": target, "conversations": n, "connect_s": info["connect_s"]}

    def sessions_at(self, n: int, convs: dict[str, list[dict]], bodies: list[str],
                    servers: dict[str, tuple[int, int]], do_search: bool) -> None:
        """Every target's fixed rates at ``n`` conversations, then its search.

        With ``rounds`` > 1 (the largest N, by default) all targets stay
        connected at once, each with its own generator, and the fixed rates
        are measured round after round, the targets taking turns within each
        rate and the first of them alternating: 秒回, relay at 2,000 msg/s,
        relay, 秒回 at 5,000, relay, 秒回 at 2,000 again …  A shared host's
        speed drifts over minutes (steal of 2–45 % a phase, docs/performance.md,
        session 22); measured minutes apart, as one block each, a ratio
        compared two different machines.  Paired within a round, both sides
        of each ratio meet the same host, and the median over rounds is what
        the report calls the ratio."""
        rounds = self.args.rounds if n == max(self.args.ns) else 1
        open_: dict[str, tuple[GenProc, dict]] = {}
        known: dict[str, dict[float, list[dict]]] = {t: {} for t in servers}
        try:
            if rounds == 1:  # one target at a time, each as a block
                for target, (port, pid) in servers.items():
                    open_[target] = self.connect(target, port, convs[target], bodies)
                    self._fixed(open_, servers, n, {target: known[target]}, None)
                    self._finish(open_.pop(target), pid, n, known[target], do_search)
                return
            for target, (port, _pid) in servers.items():
                open_[target] = self.connect(target, port, convs[target], bodies)
            for r in range(rounds):
                self._fixed(open_, servers, n, known, r)
            for target in list(open_):
                self._finish(open_.pop(target), servers[target][1], n, known[target], do_search)
        finally:
            for gen, _out in open_.values():
                gen.close()

    def _fixed(self, open_: dict, servers: dict, n: int, known: dict[str, dict[float, list[dict]]],
               r: int | None) -> None:
        """Round ``r`` (``None``: no rounds) of the fixed rates for the
        targets in ``known``; in each rate they take turns, the first
        alternating by rate and round."""
        for i, rate in enumerate(self.args.rates):
            order = list(known) if ((r or 0) + i) % 2 == 0 else list(reversed(known))
            for target in order:
                gen = open_[target][0]
                run = self.phase(gen, target, servers[target][1], n, rate, round_=r)
                known[target].setdefault(rate, []).append(run)

    def _finish(self, opened: tuple[GenProc, dict], pid: int, n: int, known: dict[float, list[dict]],
                do_search: bool) -> None:
        """A target's search and profile at ``n``, then its generator closes."""
        gen, out = opened
        target = out["target"]
        try:
            if do_search:
                # A fixed rate counts as passed in the search if its median round did.
                best, detail = self.search(gen, target, pid, n, {rate: median_run(runs) for rate, runs in known.items()})
                out["max_sustained_rate"] = best
                tried = [r for r in self.runs if r["target"] == target and r["conversations"] == n]
                at_best = [r for r in tried if r["rate"] == best]
                detail["bound_by_generator"] = bool(at_best and at_best[0]["generator_bound"])
                out["search"] = detail
                log(f"  {target}: max sustained rate at N={n}: {best:.0f} msgs/s")
            if self.args.profile and target == "miaohui" and n == max(self.args.ns):
                rate = self.args.profile_rate
                run = self.phase(gen, target, pid, n, rate, profile_dir=Path(self.args.profile))
                if self.profile is not None:
                    self.profile["rate"] = rate
                    self.profile["run"] = {k: run[k] for k in ("p50_ms", "p99_ms", "throughput", "cpu")}
        finally:
            gen.close()
        self.sessions.append(out)

    def host_speed(self, n: int) -> dict:
        """How fast this host is, by the baseline itself: the relay's event loop
        CPU per message at each fixed rate at ``n`` (median over rounds), against
        the relay issue 2 states its targets for ("a raw Python websocket relay
        delivers 10,000 messages/s at about half a core": 50 µs a message).
        Session 18's host measured 52-55 µs at 5,000 msg/s; the hosts of
        sessions 19-23, where 5,000 msg/s overloaded 秒回, 148-158."""
        cost: dict[float, list[float]] = {}
        for r in self.runs:
            loop_pct = r["cpu"]["server"].get("loop_thread_pct")
            if r["target"] == "raw_relay" and r["conversations"] == n and not r.get("search") and loop_pct:
                cost.setdefault(r["rate"], []).append(loop_pct / 100 / r["rate"] * 1e6)
        per_rate = {str(int(rate)): round(statistics.median(v), 1) for rate, v in sorted(cost.items())}
        top = max(cost) if cost else None
        return {
            "relay_loop_us_per_msg": per_rate,
            "issue_reference_us_per_msg": RELAY_REFERENCE_US,
            "relay_over_reference": round(statistics.median(cost[top]) / RELAY_REFERENCE_US, 2) if top else None,
        }

    # -------------------------------------------------------------------- run
    def run(self) -> dict:
        a = self.args
        t_start = time.time()
        self.git = git_info(Path(a.server_src) if a.server_src else REPO)
        self.probe = {"start": cpu_probe()}
        log(f"cpu probe (sum(range(3e7)), best of 3): {self.probe['start']} s")
        nofile = raise_nofile()
        bodies, source = load_bodies()
        tmp = Path(tempfile.mkdtemp(prefix="miaohui-bench-"))
        try:
            total = sum(a.ns)
            servers: dict[str, tuple[int, int]] = {}
            convs: dict[str, list[dict]] = {}
            for target in self.miaohui:
                port, pid, convs[target] = self.start_miaohui(tmp, target, total, source)
                servers[target] = (port, pid)
            r_port, r_proc = self.start_relay()
            servers["raw_relay"] = (r_port, r_proc.pid)
            convs["raw_relay"] = convs["miaohui"]  # it only pairs sockets by path
            log("; ".join(f"{t} on :{port} (pid {pid})" for t, (port, pid) in servers.items()))
            servers = {t: v for t, v in servers.items() if t in a.targets}
            self.server_pids = [pid for _port, pid in servers.values()]
            offset = 0
            for n in a.ns:
                chunk = {t: c[offset:offset + n] for t, c in convs.items()}
                offset += n
                self.sessions_at(n, chunk, bodies, servers, n == max(a.ns) and not a.no_search)
        finally:
            self.procs.stop_all()
            if a.keep:
                log(f"kept {tmp}")
            else:
                shutil.rmtree(tmp, ignore_errors=True)
        self.probe["end"] = cpu_probe()
        return self.report(nofile, source, bodies, time.time() - t_start)

    def server_info(self) -> dict:
        info = {"source": self.args.server_src or str(REPO), "git_at_start": self.git,
                "variant": self.args.server_variant}
        b = self.miaohui.get("miaohui_b")
        if b is not None:
            info["compare"] = {"source": b.src or str(REPO), "git_at_start": git_info(Path(b.src) if b.src else REPO),
                               "variant": b.variant}
        return info

    def report(self, nofile: int, source: str, bodies: list[str], elapsed: float) -> dict:
        a = self.args
        fixed = [r for r in self.runs if not r["search"] and not r["profiled"]]
        by: dict[tuple, dict[int, dict]] = collections.defaultdict(dict)  # (target, n, rate) -> round -> run
        for r in fixed:
            by[(r["target"], r["conversations"], r["rate"])][r["round"]] = r

        def paired(x_target: str, y_target: str) -> tuple[dict, dict]:
            """p99 of ``x_target`` over ``y_target``'s at each (N, rate): the
            median over rounds of the ratio within each round (see
            Bench.sessions_at), and every round's, with both p99s and steals."""
            medians: dict[str, dict[str, float | None]] = {}
            rounds: dict[str, dict[str, dict]] = {}
            for n in a.ns:
                for rate in a.rates:
                    x, y = by.get((x_target, n, rate), {}), by.get((y_target, n, rate), {})
                    each = [round(x[k]["p99_ms"] / y[k]["p99_ms"], 2) for k in sorted(x)
                            if k in y and x[k]["p99_ms"] is not None and y[k]["p99_ms"]]
                    if each:
                        medians.setdefault(str(n), {})[str(int(rate))] = r2(statistics.median(each))
                    if len(x) > 1 or len(y) > 1:
                        rounds.setdefault(str(n), {})[str(int(rate))] = {
                            "ratios": each,
                            f"{x_target}_p99_ms": [x[k]["p99_ms"] for k in sorted(x)],
                            f"{y_target}_p99_ms": [y[k]["p99_ms"] for k in sorted(y)],
                            "steal_pct": [[run[k]["cpu"].get("steal_pct") for k in sorted(run)] for run in (x, y)],
                        }
            return medians, rounds

        ratios, rounds_out = paired("miaohui", "raw_relay")
        compare = None
        if "miaohui_b" in self.miaohui:
            b_ratios, b_rounds = paired("miaohui_b", "miaohui")
            compare = {"p99_b_over_a": b_ratios, "p99_b_over_a_rounds": b_rounds,
                       "b_over_relay": paired("miaohui_b", "raw_relay")[0]}
        top_n = max(a.ns)
        at_top = [v for v in ratios.get(str(top_n), {}).values() if v is not None]
        ratio_top = max(at_top) if at_top else None
        sustained = {s["target"]: s.get("max_sustained_rate") for s in self.sessions if "max_sustained_rate" in s}
        search_detail = {s["target"]: s["search"] for s in self.sessions if "search" in s}
        m_runs = [r for r in self.runs if r["target"] in self.miaohui]
        lost = sum(r["lost"] for r in m_runs)
        gone = sum(r["never_delivered"] + r["never_acked"] + r["duplicates"] + r["misrouted"] for r in m_runs)
        late = sum(r["unacked"] for r in m_runs)
        targets = {
            "zero_lost": {
                "pass": bool(m_runs) and lost == 0 and gone == 0,
                "detail": f"{len(m_runs)} 秒回 runs: {lost} acked but not delivered within {a.grace:g} s, "
                          f"{gone} never delivered/acked (after draining) or duplicated; "
                          f"{late} not yet acked within the grace period (overload, not loss)",
            },
            f"p99_within_3x_relay_at_{top_n}": {
                "pass": ratio_top is not None and ratio_top <= RATIO_LIMIT,
                "detail": f"worst ratio {ratio_top} over rates {[int(r) for r in a.rates]} (limit {RATIO_LIMIT}); "
                          f"each the median over {a.rounds} paired round(s)",
            },
            f"sustained_ge_{SUSTAINED_TARGET}": {
                "pass": (sustained.get("miaohui") or 0) >= SUSTAINED_TARGET,
                "detail": f"max rate with p99 < {P99_LIMIT_MS:.0f} ms and nothing lost: {sustained.get('miaohui')}",
            },
        }
        host = self.host_speed(top_n)
        if host["relay_over_reference"] is not None:
            spent = ", ".join(f"{us:g} µs at {rate} msg/s" for rate, us in host["relay_loop_us_per_msg"].items())
            log(f"host: the relay's loop spent {spent} a message; issue 2's reference relay spends "
                f"{RELAY_REFERENCE_US:g} µs: this host is {host['relay_over_reference']}× as slow")
        lengths = [len(b) for b in bodies]
        return {
            "machine": {**machine_info(nofile), "cpu_probe_s": self.probe, "host_speed": host},
            "server": self.server_info(),
            "config": {
                "quick": a.quick, "conversations": a.ns, "rates": a.rates, "warmup_s": a.warmup,
                "duration_s": a.duration, "grace_s": a.grace, "search_steps": a.search_steps,
                "rounds_at_largest_n": a.rounds,
                "generator_processes": "one per target, one sending at a time", "client_offers_permessage_deflate": not a.no_compression,
                "per_person_send_limit": "1,000,000 a second (the limiter runs, refusing nothing)", "pinned": a.pin,
                "bodies": source, "body_chars_mean": round(sum(lengths) / len(lengths), 1),
                "database": "sqlite (WAL, synchronous=FULL)", "p99_limit_ms": P99_LIMIT_MS,
                "client_ids": a.client_ids,
                "generator_gc": "on" if os.environ.get("MIAOHUI_BENCH_GEN_GC") == "on" else "between phases only",
                "relay_gc": os.environ.get("MIAOHUI_BENCH_RELAY_GC") or "miaohui.core.gcpolicy",
            },
            "sessions": self.sessions,
            "runs": self.runs,
            "ratios_p99": ratios,
            "ratios_p99_rounds": rounds_out,
            "compare": compare,
            f"ratio_p99_at_{top_n}": ratio_top,
            "max_sustained_rate": sustained,
            "search": search_detail,
            "targets": targets,
            "profile": self.profile,
            "elapsed_s": round(elapsed, 1),
        }


def git_info(tree: Path) -> dict:
    """Which server code was measured (other people edit src/ while benchmarks run)."""
    git: dict = {}
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        run = {"cwd": tree, "capture_output": True, "text": True, "timeout": 10}
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], **run)
        if head.returncode == 0:
            git["commit"] = head.stdout.strip()
            dirty = subprocess.run(["git", "status", "--porcelain", "--", "src"], **run).stdout.splitlines()
            git["src_uncommitted_files"] = len([x for x in dirty if x.strip()])
        elif (tree / "COMMIT").exists():
            git["commit"] = (tree / "COMMIT").read_text().strip()
    return git


# The host's speed, for reading figures taken on different days of a shared
# machine: seconds for ``sum(range(3 * 10**7))``, the best of three, before
# and after the run.  On days it took 0.5–1.2 s, 2,000 sockets took 25–30 s
# to connect (10 s on session 18's host, which was not probed), the relay
# itself sustained only 5,500–6,000 msg/s, and no ratio at 5,000 msg/s meant
# much (docs/performance.md, sessions 19–21).
def cpu_probe() -> float:
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        sum(range(3 * 10**7))
        best = min(best, time.perf_counter() - t)
    return round(best, 3)


def machine_info(nofile: int) -> dict:
    import uvicorn
    import websockets

    model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    try:
        import uvloop

        loop = f"uvloop {uvloop.__version__}"
    except ImportError:
        loop = "asyncio"
    return {
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadavg_at_end": [round(x, 2) for x in os.getloadavg()],
        "nofile": nofile,
        "event_loop": loop,
        "websockets": websockets.__version__,
        "uvicorn": uvicorn.__version__,
    }


def markdown_table(result: dict) -> str:
    """The runs of a saved result as a Markdown table (for docs/performance.md)."""
    head = ("| target | N | rate/s | sent | delivered | lost | dup | p50 ms | p95 ms | p99 ms | max ms "
            "| delivered/s | server CPU % (loop) | gen CPU % | |")
    lines = [head, "|" + "---|" * 15]
    for r in result["runs"]:
        srv = r["cpu"].get("server", {})
        note = "search" if r["search"] else ("profiled" if r["profiled"] else f"fixed, round {r.get('round', 0) + 1}")
        if r["aborted_overload"]:
            note += ", overloaded: stopped early"
        lines.append(
            f"| {r['target']} | {r['conversations']} | {r['rate']:.0f} | {r['sent']} | {r['delivered']} "
            f"| {r['lost']} | {r['duplicates']} | {r['p50_ms']} | {r['p95_ms']} | {r['p99_ms']} | {r['max_ms']} "
            f"| {r['throughput']:.0f} | {srv.get('cpu_pct')} ({srv.get('loop_thread_pct')}) "
            f"| {r['cpu'].get('generator', {}).get('cpu_pct')} | {'PASS' if r['passed'] else 'FAIL'} ({note}) |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smoke check: N=50, 3 s per rate, short search")
    p.add_argument("--conversations", type=int, nargs="+", dest="ns", help="default: 100 1000")
    p.add_argument("--rates", type=float, nargs="+", help="fixed aggregate rates, msgs/s (default: 2000 5000)")
    p.add_argument("--duration", type=float, help="measured seconds per rate (default 10)")
    p.add_argument("--warmup", type=float, help="unmeasured seconds before each rate (default 2)")
    p.add_argument("--grace", type=float, default=5.0, help="seconds to wait for late acks/deliveries")
    p.add_argument("--drain", type=float, default=60.0, help="max seconds to let a backlog clear between rates")
    p.add_argument("--search-steps", type=float, nargs="+",
                   help="step-up rates for the max-sustained search at the largest N")
    p.add_argument("--bisect", type=int, default=2, help="bisection steps after the first failing rate")
    p.add_argument("--rounds", type=int,
                   help="rounds of the fixed rates at the largest N, targets taking turns within each; the "
                        "ratio is the median over rounds (default 3; --quick: 1)")
    p.add_argument("--no-search", action="store_true")
    p.add_argument("--no-compression", action="store_true",
                   help="do not offer permessage-deflate (browsers do offer it)")
    p.add_argument("--client-ids", choices=["time", "connection"], default="time",
                   help="client ids led by the send time, as the web client's UUIDv7 (default), or by the connection")
    p.add_argument("--pin", action="store_true", help="pin the server to CPU 0 and the generator to CPU 1")
    p.add_argument("--profile", metavar="DIR", help="py-spy the 秒回 server during an extra run at the largest N")
    p.add_argument("--profile-rate", type=float, default=4000)
    p.add_argument("--profile-args", default="", help="extra py-spy record flags, e.g. '--native --idle' or '--rate 500' (default 100)")
    p.add_argument("--noise-limit", type=float, default=20.0,
                   help="re-measure a rate when other processes used more than this CPU %% meanwhile")
    p.add_argument("--retries", type=int, default=1, help="re-measurements of a noisy rate")
    p.add_argument("--targets", nargs="+", choices=["miaohui", "raw_relay"], default=["miaohui", "raw_relay"])
    p.add_argument("--server-variant", default="baseline", metavar="V[,V...]",
                   help="run 秒回 with experimental patches: stats, switch, onehop, nodeflate "
                        "(see bench/server_variants.py)")
    p.add_argument("--server-src", metavar="DIR",
                   help="run the 秒回 server (and its migrations) from another checkout, e.g. an older commit "
                        "exported with `git archive`, to compare before/after")
    p.add_argument("--compare-src", metavar="DIR",
                   help="A/B: a second 秒回 server, miaohui_b, from this tree (its own database), in the same "
                        "rounds as the first; the report's 'compare' gives its p99 over the first's")
    p.add_argument("--compare-variant", metavar="V[,V...]",
                   help="A/B: a second 秒回 server, miaohui_b, with these variants (see --compare-src)")
    p.add_argument("--keep", action="store_true", help="keep the temporary data dir (server log, DB)")
    p.add_argument("--table", metavar="RESULT.json", help="print a saved result's runs as a Markdown table")
    p.add_argument("--worker", choices=["gen", "relay"], help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    quick = a.quick
    a.ns = a.ns or ([50] if quick else [100, 1000])
    a.rates = a.rates or ([1000.0] if quick else [2000.0, 5000.0])
    a.duration = a.duration or (3.0 if quick else 10.0)
    a.rounds = max(1, a.rounds or (1 if quick else 3))
    if (a.compare_src or a.compare_variant) and "miaohui" not in a.targets:
        p.error("--compare-src/--compare-variant compare against the miaohui target; keep it in --targets")
    if a.compare_src or a.compare_variant:
        a.targets.insert(a.targets.index("miaohui") + 1, "miaohui_b")
    a.warmup = a.warmup if a.warmup is not None else (1.0 if quick else 2.0)
    a.search_steps = a.search_steps or (
        [1000.0, 2000.0] if quick else [1000.0, 2000.0, 3000.0, 5000.0, 7000.0, 10000.0, 14000.0, 20000.0])
    if quick:
        a.bisect = 0
        a.grace = min(a.grace, 3.0)
        a.drain = min(a.drain, 10.0)
    return a


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.table:
        print(markdown_table(json.loads(Path(args.table).read_text())))
        return None
    if args.worker == "gen":
        return generator_main()
    if args.worker == "relay":
        return relay_main(args.port)

    def on_signal(signum, _frame) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    os.environ["MIAOHUI_BENCH_CLIENT_IDS"] = args.client_ids  # read by the generator process
    result = Bench(args).run()
    print(json.dumps(result, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
