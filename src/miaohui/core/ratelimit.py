"""Rate limits: login failures, and how fast one person may send messages.

Login failures: a sliding-window counter keyed by IP and by account.
In-process (:class:`LoginLimiter`) for the default single-process deployment;
with Redis configured (:class:`RedisLoginLimiter`) the same interface counts
across every server process, so spreading guesses over processes gains an
attacker nothing.

A login *reserves* its attempt (:meth:`LoginLimiter.reserve`) before the
password is checked: the check and the count are one step (atomic in the
event loop; one Lua script in Redis), so attempts sent in parallel cannot all
pass the check while the first ones are still being verified.  A reservation
stands as the failure it will most likely be; a correct password releases it.

Sends: a token bucket per person (:class:`SendLimiter`), in-process and
synchronous, because it runs on the chat socket's hot path for every message.

All use the injectable clock.
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

    async def reserve(self, *keys: str) -> object | None:
        """Count an attempt against every key now, before it is checked:
        ``None`` (nothing counted) when any key is at its limit, else a handle
        for :meth:`release`.  No ``await`` between the check and the count, so
        concurrent attempts cannot slip in between."""
        if any(len(self._prune(k)) >= self.max_failures for k in keys):
            return None
        t = self.clock.now().timestamp()
        for k in keys:
            self._prune(k).append(t)
        self._bound()
        return t

    async def release(self, handle: object, *keys: str) -> None:
        """Take back a reservation (the password was right, or it was never
        checked)."""
        for k in keys:
            q = self._hits.get(k)
            if q is not None:
                try:
                    q.remove(handle)
                except ValueError:
                    pass  # already slid out of the window, or reset

    async def fail(self, *keys: str) -> None:
        t = self.clock.now().timestamp()
        for k in keys:
            self._prune(k).append(t)
        self._bound()

    def _bound(self) -> None:
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

    # KEYS: the counters; ARGV: window edge, now, limit, ttl, member.  Checks
    # every key, then counts in all of them, or in none: one atomic step.
    RESERVE = """
for _, k in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', k, '-inf', ARGV[1])
  if redis.call('ZCARD', k) >= tonumber(ARGV[3]) then return 0 end
end
for _, k in ipairs(KEYS) do
  redis.call('ZADD', k, ARGV[2], ARGV[5])
  redis.call('EXPIRE', k, ARGV[4])
end
return 1
"""

    def __init__(self, url: str, clock: Clock, max_failures: int, window_seconds: int) -> None:
        super().__init__(clock, max_failures, window_seconds)
        import redis.asyncio as redis

        self.redis = redis.from_url(url)
        self._reserve = self.redis.register_script(self.RESERVE)

    async def reserve(self, *keys: str) -> object | None:
        now = self.clock.now().timestamp()
        member = uuid.uuid4().hex
        ok = await self._reserve(
            keys=[self.PREFIX + k for k in keys],
            args=[now - self.window, now, self.max_failures, self.window + 60, member],
        )
        return member if ok else None

    async def release(self, handle: object, *keys: str) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for k in keys:
            pipe.zrem(self.PREFIX + k, handle)
        await pipe.execute()

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


class SendLimiter:
    """How fast one person may send messages: a token bucket per key,
    ``rate`` messages a second on average, bursts of up to ``burst``.

    A flood (a stuck retry loop, a script, someone harassing a listener)
    would otherwise store and deliver everything it sends: every message
    costs a commit, the listener's attention and the server's capacity for
    everyone else.  People type a few messages a second at most, and a
    reconnect's outbox flush is a burst of what was unacknowledged, which the
    burst allowance covers.

    Per server process: with several processes, one person's sockets spread
    over them get up to that many times the rate, still bounded.  Keys whose
    bucket has refilled are dropped once ``max_keys`` are held (they would be
    recreated identical), so memory stays bounded."""

    def __init__(self, clock: Clock, rate: float, burst: int, max_keys: int = 100_000) -> None:
        self._monotonic = clock.monotonic
        self.rate = rate
        self.burst = float(burst)
        self.max_keys = max_keys
        self._buckets: dict[str, list[float]] = {}  # key -> [tokens, as of (monotonic s)]

    def take(self, key: str) -> float:
        """Spend one token of ``key``'s: ``0.0`` when it may send now, else
        the seconds until it may (nothing spent)."""
        now = self._monotonic()
        b = self._buckets.get(key)
        if b is None:
            if len(self._buckets) >= self.max_keys:
                self._prune(now)
            self._buckets[key] = [self.burst - 1.0, now]
            return 0.0
        tokens = b[0] + (now - b[1]) * self.rate
        if tokens > self.burst:
            tokens = self.burst
        b[1] = now
        if tokens >= 1.0:
            b[0] = tokens - 1.0
            return 0.0
        b[0] = tokens
        return (1.0 - tokens) / self.rate

    def _prune(self, now: float) -> None:
        buckets = self._buckets
        for k in [k for k, (t, at) in buckets.items() if t + (now - at) * self.rate >= self.burst]:
            del buckets[k]
        if len(buckets) >= self.max_keys:  # all of them busy: forget the longest held half
            for k in list(buckets)[: self.max_keys // 2]:
                del buckets[k]
