"""Sliding-window counter for login failures, keyed by IP and by account.

In-process (:class:`LoginLimiter`) for the default single-process deployment;
with Redis configured (:class:`RedisLoginLimiter`) the same interface counts
across every server process, so spreading guesses over processes gains an
attacker nothing.  Both use the injectable clock.
"""

from __future__ import annotations

import uuid
from collections import deque

from miaohui.clock import Clock


class LoginLimiter:
    def __init__(self, clock: Clock, max_failures: int, window_seconds: int) -> None:
        self.clock = clock
        self.max_failures = max_failures
        self.window = window_seconds
        self._hits: dict[str, deque[float]] = {}

    def _prune(self, key: str) -> deque[float]:
        q = self._hits.setdefault(key, deque())
        edge = self.clock.now().timestamp() - self.window
        while q and q[0] < edge:
            q.popleft()
        return q

    async def blocked(self, *keys: str) -> bool:
        return any(len(self._prune(k)) >= self.max_failures for k in keys)

    async def fail(self, *keys: str) -> None:
        t = self.clock.now().timestamp()
        for k in keys:
            self._prune(k).append(t)
        if len(self._hits) > 100_000:  # bound memory under a spray attack
            for k in list(self._hits)[:50_000]:
                del self._hits[k]

    async def reset(self, *keys: str) -> None:
        for k in keys:
            self._hits.pop(k, None)

    async def aclose(self) -> None:
        return None


class RedisLoginLimiter(LoginLimiter):
    """One sorted set per key (member: a unique id, score: failure time),
    trimmed to the window on every touch and expiring with it."""

    PREFIX = "miaohui:login:"

    def __init__(self, url: str, clock: Clock, max_failures: int, window_seconds: int) -> None:
        super().__init__(clock, max_failures, window_seconds)
        import redis.asyncio as redis

        self.redis = redis.from_url(url)

    async def blocked(self, *keys: str) -> bool:
        edge = self.clock.now().timestamp() - self.window
        pipe = self.redis.pipeline(transaction=False)
        for k in keys:
            pipe.zremrangebyscore(self.PREFIX + k, "-inf", edge)
            pipe.zcard(self.PREFIX + k)
        counts = (await pipe.execute())[1::2]
        return any(c >= self.max_failures for c in counts)

    async def fail(self, *keys: str) -> None:
        t = self.clock.now().timestamp()
        pipe = self.redis.pipeline(transaction=False)
        for k in keys:
            pipe.zadd(self.PREFIX + k, {uuid.uuid4().hex: t})
            pipe.expire(self.PREFIX + k, self.window + 60)
        await pipe.execute()

    async def reset(self, *keys: str) -> None:
        await self.redis.delete(*(self.PREFIX + k for k in keys))

    async def aclose(self) -> None:
        await self.redis.aclose()


def make_login_limiter(redis_url: str, clock: Clock, max_failures: int, window_seconds: int) -> LoginLimiter:
    if redis_url:
        return RedisLoginLimiter(redis_url, clock, max_failures, window_seconds)
    return LoginLimiter(clock, max_failures, window_seconds)
