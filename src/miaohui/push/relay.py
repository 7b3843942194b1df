"""From the realtime events to a push on the phone of someone with no page open.

The platform already announces everything a person must hear on their
``user:<id>`` topic (the inbox socket's stream) and urgent cases on the
supervisors' topic.  :class:`PushRelay` watches those publishes in the
process that makes them (the broker's ``tap``: each event is published
once, by one process, so each notice is sent once however many processes
run) and, for a person with a push subscription and **no page in front of
them** (presence not ``online``), sends a notice to their devices.

Kept off the message path: the tap is a set lookup and a deque append; the
parsing, presence, database and HTTP happen on the relay's own task.  A
burst in one conversation makes one notice (``push_cooldown_seconds`` per
person and conversation); the push service collapses what is still queued
for an offline phone by ``Topic``.

What a notice says is what the open page would have said (inbox.js,
supervision.js, notify.js's reply-clock warning), never message text or a
name: a lock screen is not private, and the platform cannot know whether
this device shows names.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import httpx
import orjson

from miaohui.push import service, webpush

log = logging.getLogger("miaohui.push")

SUPERVISION_TOPIC = "supervision"  # supervision.monitor.SUPERVISION_TOPIC (not imported: it pulls the models in)
QUEUE_MAX = 10_000  # events waiting for the relay's task; past it they are dropped (counted)
REFRESH_SECONDS = 60.0  # who has a device, read again (subscriptions made through another process)
SEND_CONCURRENCY = 16
RETRIES = (1.0, 5.0)  # seconds before another try, on a network error, 429 or 5xx
VAPID_LIFETIME = 12 * 3600


@dataclass(frozen=True)
class Notice:
    """One thing to tell: to these people (or everyone of ``role``)."""

    user_ids: frozenset[str] | None
    role: str | None
    title: str
    body: dict[str, str]  # by the recipient's role ("" for any)
    tag: str
    url: str
    urgent: bool
    cooldown_key: str

    def payload(self, role: str) -> bytes:
        body = self.body.get(role) or self.body.get("", "")
        return orjson.dumps({"title": self.title, "body": body, "tag": self.tag, "url": self.url,
                             "urgent": self.urgent})


def notice_for(topic: str, data: str) -> Notice | None:
    """What an event means to someone with no page open; ``None`` for the
    many events that are only for an open page (typing, receipts, hints)."""
    if topic == SUPERVISION_TOPIC:
        e = orjson.loads(data)
        if e.get("type") != "case" or not e.get("alarm"):
            return None
        case_id = e["case"]["id"]
        return Notice(None, "supervisor", "秒回 · 紧急个案", {"": "有个案需要立即处理"}, f"mh-case-{case_id}",
                      "/supervision", True, f"case:{case_id}")
    user_id = topic[5:]
    e = orjson.loads(data)
    kind = e.get("type")
    who = frozenset((user_id,))
    if kind == "activity":
        conv = e["conversation_id"]
        first = e.get("seq") == 1
        return Notice(who, None, "秒回", {"listener": "有人找你倾诉，请尽快回复" if first else "你有一条新消息",
                                           "": "你有一条新消息"},
                      f"mh-conv-{conv}", f"/chat/{conv}", True, f"{user_id}:{conv}")
    if kind == "conversation":
        conv = e["conversation_id"]
        return Notice(who, None, "秒回", {"": "有人找你倾诉，请尽快回复"}, f"mh-conv-{conv}", f"/chat/{conv}", True,
                      f"{user_id}:{conv}")
    if kind == "order" and e.get("clock_warning") and user_id == e["order"]["listener_id"]:
        # The reply clock passed 70 % of the window (orders.service.clock_warning_at).
        o = e["order"]
        conv = o["conversation_id"]
        deadline = datetime.fromisoformat(o["pending_since"]) + timedelta(seconds=o["response_window_s"])
        left = max(1, round((deadline - datetime.fromisoformat(o["server_now"])).total_seconds()))
        return Notice(who, None, "秒回 · 该回复了", {"": f"还有 {left} 秒就超出回复时限"}, f"mh-conv-{conv}",
                      f"/chat/{conv}", True, f"{user_id}:clock:{o['id']}:{o['pending_seq']}")
    if kind == "order" and e.get("started"):
        o = e["order"]
        conv = o["conversation_id"]
        if user_id == o["listener_id"]:
            body = f"新订单开始了：{o['kind_label']}，{o['response_window_s']}秒内回复"
        else:
            body = f"你预约的{o['kind_label']}倾诉开始了"
        return Notice(who, None, "秒回", {"": body}, f"mh-conv-{conv}", f"/chat/{conv}", True,
                      f"{user_id}:order:{o['id']}")
    return None


class PushRelay:
    def __init__(self, ctx) -> None:
        self.ctx = ctx
        self.settings = ctx.settings
        self._queue: collections.deque[tuple[str, str]] = collections.deque()
        self._wake = asyncio.Event()
        self._users: set[str] = set()
        self._supervisors = False
        self._last: dict[str, float] = {}  # cooldown key → monotonic time of its last notice
        self._tasks: list[asyncio.Task] = []
        self._sending: set[asyncio.Task] = set()  # rounds of POSTs under way
        self._limit = asyncio.Semaphore(SEND_CONCURRENCY)  # POSTs at once, across rounds
        self._client: httpx.AsyncClient | None = None
        self._key = None
        self.counters = {"queued": 0, "dropped": 0, "notices": 0, "sent": 0, "failed": 0, "gone": 0}

    @property
    def public_key(self) -> str:
        """The application-server key a browser subscribes with (base64url)."""
        return webpush.b64u(webpush.public_bytes(self.key))

    @property
    def key(self):
        if self._key is None:
            self._key = webpush.derive_vapid_key(self.settings.effective_secret_key)
        return self._key

    async def start(self) -> None:
        if not self.settings.push_enabled:
            return
        await self.refresh()
        self._client = httpx.AsyncClient(timeout=10.0, follow_redirects=False)
        self.ctx.broker.tap = self.see
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._run(), name="push-relay"),
                       loop.create_task(self._refresh_loop(), name="push-refresh")]

    async def stop(self) -> None:
        if self.ctx.broker.tap == self.see:
            self.ctx.broker.tap = None
        for t in (*self._tasks, *self._sending):
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        if self._client is not None:
            await self._client.aclose()

    async def refresh(self) -> None:
        async with self.ctx.sessionmaker() as db:
            self._users, self._supervisors = await service.subscribed(db)

    def subscribed(self, user_id: str, role: str) -> None:
        """A device subscribed in this process: heard from at once."""
        self._users.add(user_id)
        self._supervisors = self._supervisors or role == "supervisor"

    def see(self, topic: str, data: str) -> None:
        """The broker's tap, on every publish: keep what may concern a person with a device."""
        if topic.startswith("user:"):
            if topic[5:] not in self._users:
                return
        elif topic != SUPERVISION_TOPIC or not self._supervisors:
            return
        if len(self._queue) >= QUEUE_MAX:
            self.counters["dropped"] += 1
            return
        self._queue.append((topic, data))
        self.counters["queued"] += 1
        self._wake.set()

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_SECONDS)
            try:
                await self.refresh()
            except Exception:
                log.exception("reading push subscribers failed")

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                notices: dict[str, Notice] = {}  # by cooldown key: a burst is one notice
                while self._queue and len(notices) < 200:
                    topic, data = self._queue.popleft()
                    try:
                        n = notice_for(topic, data)
                    except Exception:
                        log.exception("unreadable event on %s", topic.split(":")[0])
                        continue
                    if n is not None and not self._cooling(n.cooldown_key):
                        notices[n.cooldown_key] = n
                if notices:
                    try:
                        await self.deliver(list(notices.values()))
                    except Exception:
                        log.exception("push delivery failed")

    def _cooling(self, key: str) -> bool:
        last = self._last.get(key)
        return last is not None and time.monotonic() - last < self.settings.push_cooldown_seconds

    def _told(self, keys: set[str]) -> None:
        now = time.monotonic()
        for k in keys:
            self._last[k] = now
        if len(self._last) > 50_000:  # forget the oldest half, not everything
            for k in list(self._last)[:25_000]:
                del self._last[k]

    async def deliver(self, notices: list[Notice]) -> None:
        """Start sending each notice to the devices of its people who have no page in
        front of them: no socket open (``offline``), or only hidden pages
        (``away``: a phone's browser in the background may be frozen; the
        service worker shows nothing twice, see static/js/sw.js)."""
        ctx = self.ctx
        now = ctx.clock.now()
        people = sorted({u for n in notices if n.user_ids for u in n.user_ids})
        status = await ctx.presence.statuses(people) if people else {}
        jobs = []
        async with ctx.sessionmaker() as db:
            for n in notices:
                if n.user_ids is not None:
                    who = {u for u in n.user_ids if status.get(u) != "online"}
                    if not who:
                        continue
                    subs = await service.targets(db, now, user_ids=who)
                else:
                    subs = await service.targets(db, now, role=n.role)
                    seen = await ctx.presence.statuses(sorted({s.user_id for s in subs})) if subs else {}
                    subs = [s for s in subs if seen.get(s.user_id) != "online"]
                jobs += [(n, s.id, s.role, s.endpoint, s.keys) for s in subs]  # unsealed while the session is open
            if db.in_transaction():
                await db.commit()
        if not jobs:
            return
        told = {job[0].cooldown_key for job in jobs}
        self._told(told)
        self.counters["notices"] += len(told)
        # Sent on their own task: a push service that is slow or answering 503
        # (retried for seconds) must not hold back the next notice to someone else.
        task = asyncio.get_running_loop().create_task(self._send_all(jobs, now))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send_all(self, jobs: list, now) -> None:
        async def one(n: Notice, sub_id: str, role: str, endpoint: str, keys: str) -> tuple[str, str]:
            async with self._limit:
                return sub_id, await self.send(endpoint, keys, n.payload(role), n.urgent, n.tag)

        try:
            results = await asyncio.gather(*(one(*job) for job in jobs))
            ok = [i for i, r in results if r == "ok"]
            gone = [i for i, r in results if r == "gone"]
            self.counters["sent"] += len(ok)
            self.counters["gone"] += len(gone)
            self.counters["failed"] += len(results) - len(ok) - len(gone)
            async with self.ctx.sessionmaker() as db:
                await service.sent(db, ok, gone, now)
                await db.commit()
        except Exception:
            log.exception("push delivery failed")

    async def send(self, endpoint: str, keys: str, payload: bytes, urgent: bool, tag: str) -> str:
        """One POST to a push service (RFC 8030): ``ok``, ``gone`` (the
        subscription is dead: 404 / 410) or ``failed`` (after the retries)."""
        p256dh, auth = keys.split(".")
        parts = urlsplit(endpoint)
        audience = f"{parts.scheme}://{parts.netloc}"
        body = webpush.encrypt(payload, webpush.unb64u(p256dh), webpush.unb64u(auth))
        headers = {
            "Content-Encoding": "aes128gcm",
            "Content-Type": "application/octet-stream",
            "TTL": "3600",  # an hour: after that, the notice is stale
            "Urgency": "high" if urgent else "normal",
            # Replaces what is still undelivered for the same conversation (RFC 8030 §5.4: ≤ 32 base64url chars).
            "Topic": webpush.b64u(hashlib.sha256(tag.encode()).digest()[:24]),
            "Authorization": webpush.vapid_header(self.key, audience, self.settings.vapid_subject,
                                                  int(time.time()) + VAPID_LIFETIME),
        }
        assert self._client is not None
        for attempt in range(len(RETRIES) + 1):
            try:
                r = await self._client.post(endpoint, content=body, headers=headers)
            except httpx.HTTPError:
                code = 0
            else:
                code = r.status_code
            if 200 <= code < 300:
                return "ok"
            if code in (404, 410):
                return "gone"
            if code and code != 429 and code < 500:  # 400, 401, 403, 413: trying again will not help
                log.warning("push service %s refused a notice: %d", parts.hostname, code)
                return "failed"
            if attempt < len(RETRIES):
                await asyncio.sleep(RETRIES[attempt])
        log.warning("push service %s unreachable or busy", parts.hostname)
        return "failed"
