"""Presence shared through a real redis-server (chat.presence.RedisPresence)
when one process holds more sockets than one pipeline should carry.

A process with thousands of sockets renews all their keys every ttl/3
seconds, and the duty tick asks for every listener's status at once.
redis-py packs a pipeline's commands and parses its replies on the event
loop without yielding, so both go in pipelines of at most
``PIPELINE_CHUNK`` commands; what they answer must be the same."""

from __future__ import annotations

import asyncio
import uuid

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline

from miaohui.chat import presence as pres


def test_many_sockets_are_renewed_and_read_in_bounded_pipelines(redis_server, monkeypatch):
    sizes: list[int] = []
    original = Pipeline.execute

    async def execute(self, *a, **kw):
        sizes.append(len(self.command_stack))
        return await original(self, *a, **kw)

    monkeypatch.setattr(Pipeline, "execute", execute)
    n = 2 * pres.PIPELINE_CHUNK + 50
    run = uuid.uuid4().hex[:8]
    users = [f"u{run}{i:04d}" for i in range(n)]

    async def go():
        p = pres.RedisPresence(redis_server.url, ttl=30)
        await p.start()
        r = aioredis.from_url(redis_server.url, decode_responses=True)
        try:
            for i, u in enumerate(users):
                await p.set(u, "c1", "away" if i % 3 == 0 else "online")
            await p.set(users[0], "c2", "online")  # a second socket: the best of the two counts
            await p.clear(users[1], "c1")  # gone: offline
            # A key about to fade (as after a stall of this process) is renewed by the refresh.
            await r.expire(f"mh:pres:{users[5]}:c1", 1)
            sizes.clear()
            assert await p.refresh() == n  # n + 1 sockets, one cleared
            assert sizes and max(sizes) <= pres.PIPELINE_CHUNK and sum(sizes) == n
            assert await r.ttl(f"mh:pres:{users[5]}:c1") > 1

            sizes.clear()
            got = await p.statuses([*users, f"nobody{run}"])
            assert max(sizes) <= pres.PIPELINE_CHUNK
            assert got[users[0]] == "online" and got[users[1]] == "offline" and got[f"nobody{run}"] == "offline"
            assert got[users[3]] == "away" and got[users[4]] == "online"
            assert sum(s == "away" for s in got.values()) == len(range(3, n, 3))
            assert sum(s == "online" for s in got.values()) == n - 1 - len(range(3, n, 3))
        finally:
            await p.stop()  # deletes this process's keys
            left = [k async for k in r.scan_iter(f"mh:pres:u{run}*")]
            await r.aclose()
        assert left == []

    asyncio.run(go())
