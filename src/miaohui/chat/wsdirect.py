"""uvicorn's sans-I/O WebSocket protocol with a direct lane for chat sockets.

Through ASGI, every frame travels ``data_received`` → an ``asyncio.Queue`` →
the app's ``await receive()``, and every outbound frame is an ``await send()``
in a task of its own.  Each hop is a task wake-up on the next loop turn, and
each suspended ``receive()`` leaves a chain of coroutines and a future that
the garbage collector must walk: with 2,000 sockets, a young collection met
~15,000 such objects and stopped the loop for up to ~30 ms, which set the p99
of every message that arrived meanwhile (docs/performance.md).  uvicorn also
pauses and resumes reading around every received message (two ``epoll``
changes a frame), because its queue is only drained by ``receive()``.

A chat socket opts into the direct lane once it is authorized and synced
(:func:`miaohui.chat.gateway._run_frames`): :meth:`DirectProtocol.go_direct`
installs a plain callback that gets each complete text frame *inside*
``data_received``, and :meth:`DirectProtocol.write_text` writes a frame at
once when the transport is writable.  The handshake, close, ping/pong and
disconnect paths are uvicorn's, unchanged: disconnects still arrive through
``receive()``, which the gateway awaits once, for the socket's whole life.
Any other ASGI server (or the test client) keeps the ordinary lane; the
gateway handles both with the same frame handler.

On the direct lane the common frame — one whole, masked, uncompressed text
frame, which is what a chat client sends — is also *read* here: a few lines
of RFC 6455 (header, length, unmask with websockets' C ``apply_mask``)
instead of websockets' general parser, whose generator-based reader cost
~10 µs a frame and left a parser generator, a ``Frame`` and a list per socket
for every young garbage collection to walk (12,000 objects at 2,000 sockets;
docs/performance.md, session 12).  Every other frame — ping, pong, close,
fragments, binary, anything malformed or over the size limit — is handed,
whole, to websockets and uvicorn, so their handling (pong replies, keepalive,
close codes 1002/1009) is theirs, unchanged; since they only ever get whole
frames, their parser always stands at a frame boundary when the next frame
comes here.  Server frames are written the same way: a header and the
payload, unmasked (RFC 6455 5.1).
"""

from __future__ import annotations

from collections.abc import Callable

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.exceptions import InvalidState
from websockets.protocol import State

try:
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - websockets without its C extension
    from websockets.utils import apply_mask


def between_frames(conn) -> bool:
    """Whether websockets' parser (of either side) waits for the first byte of
    a new frame, not inside a fragmented message: only then may frames be
    parsed elsewhere.  Its ``parse`` coroutine (under the handshake's) sits in
    ``reader.at_eof()`` exactly between frames; an empty buffer alone is not
    enough, since the parser consumes a frame's header before its payload
    arrives."""
    gen = getattr(conn, "parser", None)
    for _ in range(4):
        sub = getattr(gen, "gi_yieldfrom", None)
        if sub is None:
            break
        gen = sub
    return (
        getattr(gen, "__name__", None) == "at_eof"
        and not conn.reader.buffer
        and not conn.expect_continuation_frame
        and conn.parser_exc is None
    )


def _at_frame_boundary(conn) -> bool:
    """:func:`between_frames`, with no extension negotiated (this lane reads
    only uncompressed frames)."""
    return not conn.extensions and between_frames(conn)


def frame_head(data: bytes, pos: int) -> tuple[int, int]:
    """The frame starting at ``data[pos]``: ``(header length without the
    mask key, payload length)``, or ``(0, 0)`` while its header is incomplete
    (RFC 6455 5.2: 7-bit length, or 126 + 16 bits, or 127 + 64 bits)."""
    left = len(data) - pos
    if left < 2:
        return 0, 0
    ln = data[pos + 1] & 0x7F
    if ln < 126:
        return 2, ln
    if ln == 126:
        return (4, int.from_bytes(data[pos + 2 : pos + 4], "big")) if left >= 4 else (0, 0)
    return (10, int.from_bytes(data[pos + 2 : pos + 10], "big")) if left >= 10 else (0, 0)


class DirectProtocol(WebSocketsSansIOProtocol):
    on_text: Callable[[str | bytes], None] | None = None
    lean = False  # frames are read here (see the module's docstring)
    _rest = b""  # the start of a frame not yet complete (lean)

    def queued_frames(self) -> list[str | bytes]:
        """Frames that arrived before :meth:`go_direct` (during the backlog
        sync), taken off the ASGI queue in order; a disconnect stays queued
        for ``receive()``.  The caller handles them first."""
        early: list[str | bytes] = []
        q = self.queue
        while not q.empty() and q._queue[0].get("type") == "websocket.receive":  # type: ignore[attr-defined]
            ev = q.get_nowait()
            early.append(ev["text"] if ev.get("text") is not None else ev.get("bytes", b""))
        return early

    def go_direct(self, on_text: Callable[[str | bytes], None]) -> None:
        """Hand every complete frame to ``on_text`` from now on (call
        :meth:`queued_frames` first, in the same loop turn)."""
        self.on_text = on_text
        self.lean = _at_frame_boundary(self.conn)
        if self.read_paused and not self.close_sent:
            self.read_paused = False
            self.transport.resume_reading()

    def leave_direct(self) -> None:
        self.on_text = None
        self._leave_lean()

    def _leave_lean(self) -> None:
        """Back to websockets, with any partial frame read so far (for good
        once the socket leaves the direct lane or is closing)."""
        self.lean = False
        rest, self._rest = self._rest, b""
        if rest and not self.close_sent:
            super().data_received(rest)

    def data_received(self, data: bytes) -> None:
        if not self.lean:
            super().data_received(data)
            if self.on_text is not None and not self.close_sent and _at_frame_boundary(self.conn):
                self.lean = True  # e.g. the socket went direct in the middle of a frame
            return
        if self._rest:
            data = self._rest + data
            self._rest = b""
        n = len(data)
        pos = 0
        limit = self.conn.max_message_size
        while True:
            hl, ln = frame_head(data, pos)
            if not hl:
                break
            b0 = data[pos]
            if not data[pos + 1] & 0x80 or (limit is not None and ln > limit):
                # Unmasked (1002) or too big (1009): websockets says so and closes.
                self._rest = data[pos:]
                return self._leave_lean()
            end = pos + hl + 4 + ln
            if end > n:
                break
            if b0 != 0x81 or self.conn.expect_continuation_frame:  # websockets and uvicorn handle it
                super().data_received(data[pos:end])
            else:
                self._text(apply_mask(data[pos + hl + 4 : end], data[pos + hl : pos + hl + 4]))
            pos = end
            if self.on_text is None or self.close_sent or not self.lean:
                self._rest = data[pos:]
                return self._leave_lean()
        if pos < n:
            self._rest = data[pos:]

    def _text(self, payload: bytes) -> None:
        try:
            text = payload.decode()
        except UnicodeDecodeError:
            self.logger.warning("invalid UTF-8 in a text frame; closing (1007)")
            self.conn.send_close(1007)
            self.handle_parser_exception()
            return
        self.on_text(text)

    def send_receive_event_to_app(self) -> None:
        handler = self.on_text
        if handler is None or self.close_sent:
            return super().send_receive_event_to_app()
        frames = self.frames
        data = frames[0] if len(frames) == 1 else b"".join(frames)
        self.frames = []
        if self.curr_msg_data_type == "text":
            try:
                text: str | bytes = data.decode()
            except UnicodeDecodeError:
                self.logger.warning("invalid UTF-8 in a text frame; closing (1007)")
                self.conn.send_close(1007)
                self.handle_parser_exception()
                return
        else:
            text = bytes(data)
        handler(text)

    def write_text(self, text: str) -> bool:
        """Write one text frame now if the socket can take it; ``False`` when
        it cannot (paused for back-pressure, closing or closed) — the caller
        queues the frame for its sender task instead, which waits."""
        if self.disconnected or self.close_sent or not self.handshake_complete or not self.writable.is_set():
            return False
        if self.transport.is_closing():
            return False
        payload = text.encode()
        if self.lean and self.conn.state is State.OPEN:
            ln = len(payload)
            if ln < 126:
                head = bytes((0x81, ln))
            elif ln < 65536:
                head = b"\x81\x7e" + ln.to_bytes(2, "big")
            else:
                head = b"\x81\x7f" + ln.to_bytes(8, "big")
            self.transport.write(head + payload)
            return True
        try:
            self.conn.send_text(payload)
        except InvalidState:
            return False
        self.transport.write(b"".join(self.conn.data_to_send()))
        return True
