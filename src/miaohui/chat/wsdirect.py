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
"""

from __future__ import annotations

from collections.abc import Callable

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.exceptions import InvalidState


class DirectProtocol(WebSocketsSansIOProtocol):
    on_text: Callable[[str | bytes], None] | None = None

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
        if self.read_paused and not self.close_sent:
            self.read_paused = False
            self.transport.resume_reading()

    def leave_direct(self) -> None:
        self.on_text = None

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
        try:
            self.conn.send_text(text.encode())
        except InvalidState:
            return False
        self.transport.write(b"".join(self.conn.data_to_send()))
        return True
