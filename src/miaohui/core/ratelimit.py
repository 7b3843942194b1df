"""Sliding-window counter for login failures, keyed by IP and by account.

In-process is enough for the default single-process deployment; with Redis
configured the same interface counts across processes.
"""

from __future__ import annotations

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

    def blocked(self, *keys: str) -> bool:
        return any(len(self._prune(k)) >= self.max_failures for k in keys)

    def fail(self, *keys: str) -> None:
        t = self.clock.now().timestamp()
        for k in keys:
            self._prune(k).append(t)
        if len(self._hits) > 100_000:  # bound memory under a spray attack
            for k in list(self._hits)[:50_000]:
                del self._hits[k]

    def reset(self, *keys: str) -> None:
        for k in keys:
            self._hits.pop(k, None)
