"""Parsing and validating client frames (see docs/protocol.md).

Hand-written rather than Pydantic because it runs for every frame on the hot
path; every rejection names a code and a Chinese and English reason, and
never closes the connection.
"""

from __future__ import annotations

import math
import re

import orjson

CLIENT_ID_RE = re.compile(r"^[A-Za-z0-9_\-:.]{8,64}$")
CLIENT_TYPES = {"send", "typing", "read", "delivered", "presence", "ping", "sync"}


class FrameError(Exception):
    def __init__(self, code: str, message: str, message_en: str, client_id: str | None = None,
                 extra: dict | None = None):
        super().__init__(code)
        self.code = code
        self.message = message
        self.message_en = message_en
        self.client_id = client_id
        self.extra = extra  # machine-readable details the client acts on (e.g. retry_after_ms)

    def frame(self) -> str:
        d = {"type": "error", "code": self.code, "message": self.message, "message_en": self.message_en}
        if self.client_id:
            d["client_id"] = self.client_id
        if self.extra:
            d.update(self.extra)
        return orjson.dumps(d).decode()


def too_fast(wait_s: float, client_id: str | None = None) -> FrameError:
    """A send refused by the sender's rate limit (core.ratelimit.SendLimiter):
    nothing stored; the client resends it, same client id, after
    ``retry_after_ms``."""
    return FrameError("too_fast", "发送太快了，稍等一下会自动重发", "sending too fast; resend after retry_after_ms",
                      client_id, {"retry_after_ms": math.ceil(wait_s * 1000)})


def parse_frame(raw: str | bytes, max_bytes: int, types: frozenset[str] | set[str] = CLIENT_TYPES) -> dict:
    if len(raw) > max_bytes:
        raise FrameError("frame_too_large", "消息帧过大", "frame too large")
    try:
        frame = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise FrameError("malformed_json", "消息格式错误（不是合法的 JSON）", "malformed JSON frame") from None
    if not isinstance(frame, dict):
        raise FrameError("malformed_frame", "消息格式错误（应为对象）", "frame must be a JSON object")
    ftype = frame.get("type")
    if ftype not in types:
        raise FrameError("unknown_type", "未知的事件类型", "unknown event type")
    return frame


def validate_send(frame: dict, max_chars: int) -> tuple[str, str]:
    client_id = frame.get("client_id")
    if not isinstance(client_id, str) or not CLIENT_ID_RE.match(client_id):
        raise FrameError("bad_client_id", "缺少或无效的 client_id（8–64 位字母数字）", "missing or invalid client_id")
    body = frame.get("body")
    if not isinstance(body, str):
        raise FrameError("bad_body", "消息内容必须是文本", "body must be a string", client_id)
    if not body.strip():
        raise FrameError("empty_body", "不能发送空消息", "message is empty", client_id)
    if len(body) > max_chars:
        raise FrameError(
            "body_too_long", f"消息过长（最多 {max_chars} 字）", f"message longer than {max_chars} characters", client_id
        )
    return client_id, body


def seq_of(frame: dict) -> int:
    seq = frame.get("seq", frame.get("after_seq"))
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0 or seq > 2**31:
        raise FrameError("bad_seq", "无效的序号", "invalid sequence number")
    return seq
