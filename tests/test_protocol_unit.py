"""Frame validation never lets anything but a FrameError escape, whatever arrives."""

from __future__ import annotations

import asyncio
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from miaohui.chat.protocol import FrameError, parse_frame, seq_of, validate_send
from miaohui.clock import FakeClock
from miaohui.core.ratelimit import LoginLimiter, RedisLoginLimiter

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=50),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=10,
)


@given(st.one_of(st.text(max_size=200), st.binary(max_size=200)))
def test_arbitrary_bytes_only_raise_frame_error(raw):
    try:
        parse_frame(raw, 64 * 1024)
    except FrameError as e:
        assert e.code and e.message and e.message_en
        assert json.loads(e.frame())["type"] == "error"


@given(st.dictionaries(st.sampled_from(["type", "client_id", "body", "seq", "after_seq"]), json_values))
def test_arbitrary_objects_validate_or_raise_frame_error(obj):
    raw = json.dumps({**obj, "type": "send"})
    frame = parse_frame(raw, 64 * 1024)
    try:
        client_id, body = validate_send(frame, 4000)
        assert 8 <= len(client_id) <= 64 and body.strip() and len(body) <= 4000
    except FrameError:
        pass
    try:
        assert seq_of(frame) >= 0
    except FrameError:
        pass


@pytest.mark.parametrize("backend", ["memory", "redis"])
def test_limiter_window_is_per_key_and_slides(backend, request):
    """The same sliding window in-process and in a real redis-server (which
    is what several server processes share)."""
    clock = FakeClock()
    if backend == "redis":
        url = request.getfixturevalue("redis_server").url
        lim = RedisLoginLimiter(url, clock, max_failures=2, window_seconds=60)
    else:
        lim = LoginLimiter(clock, max_failures=2, window_seconds=60)

    async def go():
        await lim.reset("ip:1", "user:a", "user:b")
        await lim.fail("ip:1", "user:a")
        clock.advance(30)
        await lim.fail("ip:1", "user:a")
        assert await lim.blocked("user:a") and not await lim.blocked("user:b")
        clock.advance(31)
        assert not await lim.blocked("user:a")
        await lim.fail("user:a")
        assert await lim.blocked("user:a")
        await lim.reset("user:a")
        assert not await lim.blocked("user:a")
        await lim.aclose()

    asyncio.run(go())
