"""Fan-out of realtime events between connections, possibly across processes.

Events are published on topics (``conv:<id>`` for a conversation's stream,
``user:<id>`` for a person's inbox) as already-serialised JSON text, so a
message is encoded once however many sockets receive it.

* :class:`LocalBroker` delivers inside one process (the default).
* :class:`RedisBroker` publishes through Redis pub/sub so a seeker connected to
  one server process and a listener connected to another see each other.  A
  process subscribes to a Redis channel only while it has local subscribers
  for that topic.

Pub/sub is fire-and-forget by design: durability comes from the database.  A
client that misses an event (a Redis hiccup, a reconnect) catches up by
sequence number, so the broker never has to be reliable — only fast.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable

log = logging.getLogger("miaohui.broker")

Handler = Callable[[str], None]


class Broker(ABC):
    def __init__(self) -> None:
        self._subs: dict[str, set[Handler]] = {}
        # Sees every event this process publishes, once, before fan-out
        # (push.relay: a notice for whoever has no page open).
        self.tap: Callable[[str, str], None] | None = None

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    def _dispatch(self, topic: str, data: str) -> None:
        for handler in tuple(self._subs.get(topic, ())):
            try:
                handler(data)
            except Exception:  # a broken subscriber must not stop fan-out
                log.exception("subscriber failed on %s", topic)

    async def subscribe(self, topic: str, handler: Handler) -> None:
        self._subs.setdefault(topic, set()).add(handler)

    async def unsubscribe(self, topic: str, handler: Handler) -> None:
        handlers = self._subs.get(topic)
        if handlers is not None:
            handlers.discard(handler)
            if not handlers:
                del self._subs[topic]

    @abstractmethod
    def publish_nowait(self, topic: str, data: str) -> None:
        """Queue ``data`` for every subscriber of ``topic``; never blocks."""


class LocalBroker(Broker):
    def publish_nowait(self, topic: str, data: str) -> None:
        if self.tap is not None:
            self.tap(topic, data)
        self._dispatch(topic, data)


class RedisBroker(Broker):
    PREFIX = "miaohui:"

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url
        self._redis = None
        self._pubsub = None
        self._reader: asyncio.Task | None = None
        self._outq: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self._writer: asyncio.Task | None = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        import redis.asyncio as aioredis

        self._redis = aioredis.from_url(self.url, decode_responses=True)
        await self._redis.ping()
        self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        # A placeholder channel keeps the pub/sub connection in subscribe mode
        # so the reader loop can start before any real topic is subscribed.
        await self._pubsub.subscribe(self.PREFIX + "_")
        self._reader = asyncio.create_task(self._read_loop())
        self._writer = asyncio.create_task(self._write_loop())

    async def stop(self) -> None:
        for task in (self._writer, self._reader):
            if task:
                task.cancel()
                try:
                    await task
                except (asyncio.CancelledError, Exception):
                    pass
        if self._pubsub is not None:
            await self._pubsub.aclose()
        if self._redis is not None:
            await self._redis.aclose()

    async def _read_loop(self) -> None:
        assert self._pubsub is not None
        while True:
            try:
                msg = await self._pubsub.get_message(timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("redis pub/sub read failed; retrying")
                await asyncio.sleep(0.5)
                continue
            if msg and msg.get("type") == "message":
                self._dispatch(msg["channel"][len(self.PREFIX):], msg["data"])

    async def subscribe(self, topic: str, handler: Handler) -> None:
        async with self._lock:
            first = topic not in self._subs
            await super().subscribe(topic, handler)
            if first:
                await self._pubsub.subscribe(self.PREFIX + topic)

    async def unsubscribe(self, topic: str, handler: Handler) -> None:
        async with self._lock:
            await super().unsubscribe(topic, handler)
            if topic not in self._subs:
                await self._pubsub.unsubscribe(self.PREFIX + topic)

    def publish_nowait(self, topic: str, data: str) -> None:
        if self.tap is not None:
            self.tap(topic, data)
        self._outq.put_nowait((topic, data))

    async def _write_loop(self) -> None:
        """One writer, one connection, pipelined: events reach Redis in the
        order they were published, which keeps a conversation's messages in
        sequence order for every subscriber."""
        while True:
            batch = [await self._outq.get()]
            while not self._outq.empty() and len(batch) < 500:
                batch.append(self._outq.get_nowait())
            try:
                pipe = self._redis.pipeline(transaction=False)
                for topic, data in batch:
                    pipe.publish(self.PREFIX + topic, data)
                await pipe.execute()
            except asyncio.CancelledError:
                raise
            except Exception:
                # Clients resume from the database by sequence number.
                log.exception("redis publish failed; %d events dropped", len(batch))


def make_broker(redis_url: str) -> Broker:
    return RedisBroker(redis_url) if redis_url else LocalBroker()
