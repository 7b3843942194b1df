"""Who is connected right now, across server processes.

Each open socket registers itself with a status (``online`` or ``away`` when
the page is hidden).  A person's status is the best over their sockets:
online > away > offline.  The Redis variant stores one key per socket with a
TTL that this process refreshes, so a crashed process's sockets fade out on
their own instead of showing a listener online forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod

log = logging.getLogger("miaohui.presence")

_RANK = {"offline": 0, "away": 1, "online": 2}

# Commands per Redis pipeline when many sockets or people are concerned at
# once.  redis-py packs the commands and parses the replies on the event
# loop, without yielding in between: a pipeline of 2,000 took ~34 ms of the
# loop here, 200 took ~3.6 (docs/performance.md, session 32).
PIPELINE_CHUNK = 200


def best(statuses) -> str:
    out = "offline"
    for s in statuses:
        if _RANK.get(s, 0) > _RANK[out]:
            out = s
    return out


class Presence(ABC):
    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    @abstractmethod
    async def set(self, user_id: str, conn_id: str, status: str) -> None: ...

    @abstractmethod
    async def clear(self, user_id: str, conn_id: str) -> None: ...

    @abstractmethod
    async def statuses(self, user_ids: list[str]) -> dict[str, str]: ...

    async def status(self, user_id: str) -> str:
        return (await self.statuses([user_id]))[user_id]


class LocalPresence(Presence):
    def __init__(self) -> None:
        self._conns: dict[str, dict[str, str]] = {}

    async def set(self, user_id: str, conn_id: str, status: str) -> None:
        self._conns.setdefault(user_id, {})[conn_id] = status

    async def clear(self, user_id: str, conn_id: str) -> None:
        conns = self._conns.get(user_id)
        if conns is not None:
            conns.pop(conn_id, None)
            if not conns:
                del self._conns[user_id]

    async def statuses(self, user_ids: list[str]) -> dict[str, str]:
        return {u: best(self._conns.get(u, {}).values()) for u in user_ids}


class RedisPresence(Presence):
    def __init__(self, url: str, ttl: int) -> None:
        self.url = url
        self.ttl = ttl
        self._redis = None
        self._local: dict[tuple[str, str], str] = {}
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        import redis.asyncio as aioredis

        self._redis = aioredis.from_url(self.url, decode_responses=True)
        self._task = asyncio.create_task(self._refresh_loop())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._redis is not None:
            with contextlib.suppress(Exception):
                pipe = self._redis.pipeline(transaction=False)
                for (user_id, conn_id) in self._local:
                    pipe.delete(f"mh:pres:{user_id}:{conn_id}")
                    pipe.srem(f"mh:presconns:{user_id}", conn_id)
                await pipe.execute()
            await self._redis.aclose()

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(max(1.0, self.ttl / 3))
            try:
                await self.refresh()
            except Exception:
                log.exception("presence refresh failed")

    async def refresh(self) -> int:
        """Renew the key of every socket this process holds, in pipelines of
        :data:`PIPELINE_CHUNK`, so that a process with thousands of sockets
        never holds the loop for all of them at once.  A socket gone while
        an earlier chunk was in flight is skipped.  Returns how many."""
        keys = list(self._local)
        renewed = 0
        for k in range(0, len(keys), PIPELINE_CHUNK):
            pipe = self._redis.pipeline(transaction=False)
            for user_id, conn_id in keys[k : k + PIPELINE_CHUNK]:
                status = self._local.get((user_id, conn_id))
                if status is not None:
                    pipe.set(f"mh:pres:{user_id}:{conn_id}", status, ex=self.ttl)
                    renewed += 1
            await pipe.execute()
        return renewed

    async def set(self, user_id: str, conn_id: str, status: str) -> None:
        self._local[(user_id, conn_id)] = status
        pipe = self._redis.pipeline(transaction=False)
        pipe.set(f"mh:pres:{user_id}:{conn_id}", status, ex=self.ttl)
        pipe.sadd(f"mh:presconns:{user_id}", conn_id)
        await pipe.execute()

    async def clear(self, user_id: str, conn_id: str) -> None:
        self._local.pop((user_id, conn_id), None)
        pipe = self._redis.pipeline(transaction=False)
        pipe.delete(f"mh:pres:{user_id}:{conn_id}")
        pipe.srem(f"mh:presconns:{user_id}", conn_id)
        await pipe.execute()

    async def statuses(self, user_ids: list[str]) -> dict[str, str]:
        """Everyone's best status, :data:`PIPELINE_CHUNK` people at a time
        (the duty tick asks about every listener at once)."""
        out: dict[str, str] = {}
        for k in range(0, len(user_ids), PIPELINE_CHUNK):
            out.update(await self._statuses(user_ids[k : k + PIPELINE_CHUNK]))
        return out

    async def _statuses(self, user_ids: list[str]) -> dict[str, str]:
        pipe = self._redis.pipeline(transaction=False)
        for u in user_ids:
            pipe.smembers(f"mh:presconns:{u}")
        members = await pipe.execute()
        pipe = self._redis.pipeline(transaction=False)
        for u, conns in zip(user_ids, members, strict=True):
            for c in conns:
                pipe.get(f"mh:pres:{u}:{c}")
        values = iter(await pipe.execute())
        out: dict[str, str] = {}
        stale = self._redis.pipeline(transaction=False)
        for u, conns in zip(user_ids, members, strict=True):
            found = []
            for c in conns:
                v = next(values)
                if v is None:
                    stale.srem(f"mh:presconns:{u}", c)
                else:
                    found.append(v)
            out[u] = best(found)
        await stale.execute()
        return out


def make_presence(redis_url: str, ttl: int) -> Presence:
    return RedisPresence(redis_url, ttl) if redis_url else LocalPresence()
