"""The payment-gateway interface and the embedded sandbox gateway.

A gateway takes money in (top-ups) and out (payouts).  Like Stripe or
Alipay, it tells the platform how a payment ended with an *asynchronous*,
*signed* HTTP callback that may arrive late, more than once, or never
(then it is retried).  The platform trusts nothing but a valid signature:

    Miaohui-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + raw body)>

Callbacks signed more than ``tolerance`` seconds away from the platform's
clock are refused (replays of captured requests), and the body's
``payment_id``/``amount_fen`` must match what the platform recorded.

:class:`SandboxGateway` behaves that way without leaving the process: its
checkout page (``/sandbox/pay/{payment_id}``, clearly labelled 沙箱) lets the
payer confirm or fail the payment, and it then POSTs the signed event over
real HTTP to the ``notify_url`` given at intent creation, retrying with
back-off until it gets a 2xx.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urljoin

import httpx
import orjson
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from miaohui.clock import Clock
from miaohui.core.db import begin_write, new_id
from miaohui.core.errors import AppError
from miaohui.payments.models import SandboxIntent

log = logging.getLogger("miaohui.payments")

SIGNATURE_HEADER = "Miaohui-Signature"
EVENT_TYPES = ("payment.succeeded", "payment.failed")


@dataclass(frozen=True)
class GatewayEvent:
    id: str
    type: str  # payment.succeeded | payment.failed
    payment_id: str
    amount_fen: int
    created: int


class PaymentGateway(Protocol):
    name: str

    def check_open(self) -> None:
        """AppError 503 when the gateway takes no payments here (checked before anything is recorded)."""

    async def create_intent(self, amount: int, payment_id: str, notify_url: str) -> str:
        """Register a payment of ``amount`` fen; return the URL the payer opens."""

    def verify_callback(self, headers: Mapping[str, str], raw_body: bytes) -> GatewayEvent:
        """The event in a callback, or AppError 400 if it is not authentic."""

    async def payout(self, amount: int, reference: str) -> str:
        """Send ``amount`` fen out; idempotent by ``reference``; returns the gateway's id."""

    async def aclose(self) -> None: ...


def sign(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    return f"t={timestamp},v1={sign(secret, timestamp, body)}"


def bad_signature(en: str = "invalid signature") -> AppError:
    return AppError("bad_signature", "回调签名无效", en, 400)


def verify_signature(
    secret: str, headers: Mapping[str, str], raw_body: bytes, now: int, tolerance: int
) -> GatewayEvent:
    header = headers.get(SIGNATURE_HEADER) or headers.get(SIGNATURE_HEADER.lower()) or ""
    timestamp, candidates = None, []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value.isdigit() and len(value) <= 12:
            timestamp = int(value)
        elif name == "v1" and value:
            candidates.append(value)
    if timestamp is None or not candidates:
        raise bad_signature("missing or malformed signature header")
    expected = sign(secret, timestamp, raw_body)
    if not any(hmac.compare_digest(expected, c) for c in candidates):
        raise bad_signature()
    if abs(now - timestamp) > tolerance:
        raise AppError("stale_callback", "回调已过期", "callback timestamp outside the tolerance", 400)
    try:
        data = orjson.loads(raw_body)
        obj = data["data"]
        event = GatewayEvent(
            id=str(data["id"]),
            type=str(data["type"]),
            payment_id=str(obj["payment_id"]),
            amount_fen=obj["amount_fen"],
            created=int(data.get("created", timestamp)),
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise AppError("bad_event", "回调内容无效", "malformed event", 400) from e
    if event.type not in EVENT_TYPES or not isinstance(event.amount_fen, int) or isinstance(event.amount_fen, bool):
        raise AppError("bad_event", "回调内容无效", "malformed event", 400)
    return event


class SandboxGateway:
    """An in-process stand-in for a real gateway (see module docstring).  Its
    records (``sandbox_intents``) are what a real gateway would keep on its
    side; the platform's own record is the ``payments`` row."""

    name = "sandbox"

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        clock: Clock,
        secret: str,
        tolerance: int = 300,
        retry_delays: Sequence[float] = (0.2, 0.5, 1, 2, 4, 8, 15),
        enabled: bool = True,
    ) -> None:
        # Off in production unless asked for (``Settings.sandbox_payments_enabled``):
        # a sandbox that says "paid" there would credit wallets with money that never
        # arrived, and mark payouts paid that were never sent.
        self.enabled = enabled
        self.sessionmaker = sessionmaker
        self.clock = clock
        self.secret = secret
        self.tolerance = tolerance
        self.retry_delays = tuple(retry_delays)
        self._tasks: set[asyncio.Task] = set()
        self._client: httpx.AsyncClient | None = None

    # ------------------------------------------------------------ gateway API

    def check_open(self) -> None:
        """Refuse before anything is recorded when the sandbox is off."""
        if not self.enabled:
            raise AppError("payments_unavailable", "支付暂未开通：生产环境需要接入真实的支付通道",
                           "payments are unavailable: production needs a real payment gateway", 503)

    async def create_intent(self, amount: int, payment_id: str, notify_url: str) -> str:
        self.check_open()
        async with self.sessionmaker() as s:
            s.add(
                SandboxIntent(
                    payment_id=payment_id, amount_fen=amount, notify_url=notify_url, status="pending",
                    created_at=self.clock.now(),
                )
            )
            await s.commit()
        return urljoin(notify_url, f"/sandbox/pay/{payment_id}")

    def verify_callback(self, headers: Mapping[str, str], raw_body: bytes) -> GatewayEvent:
        return verify_signature(self.secret, headers, raw_body, int(self.clock.now().timestamp()), self.tolerance)

    async def payout(self, amount: int, reference: str) -> str:
        self.check_open()
        if amount <= 0:
            raise AppError("bad_amount", "打款金额无效", "invalid payout amount", 400)
        return "sbpo_" + hashlib.sha256(f"{self.secret}:{reference}".encode()).hexdigest()[:24]

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # ------------------------------------------------------- sandbox checkout

    async def intent(self, payment_id: str) -> SandboxIntent | None:
        if not payment_id or len(payment_id) > 32:
            return None
        async with self.sessionmaker() as s:
            return await s.get(SandboxIntent, payment_id)

    async def complete(self, payment_id: str, outcome: str) -> SandboxIntent:
        """The payer confirmed (``succeed``) or the payment failed (``fail``):
        record it, then call the merchant back in the background."""
        self.check_open()
        if outcome not in ("succeed", "fail"):
            raise AppError("bad_outcome", "无效的支付结果", "outcome must be succeed or fail", 400)
        status = "succeeded" if outcome == "succeed" else "failed"
        async with self.sessionmaker() as s:
            await begin_write(s)
            result = await s.execute(
                update(SandboxIntent)
                .where(SandboxIntent.payment_id == payment_id, SandboxIntent.status == "pending")
                .values(status=status, completed_at=self.clock.now())
            )
            intent = await s.scalar(select(SandboxIntent).where(SandboxIntent.payment_id == payment_id))
            await s.commit()
        if intent is None:
            raise AppError("not_found", "支付单不存在", "payment not found", 404)
        if result.rowcount == 0:
            if intent.status == status:
                return intent  # a double click: already done, already notified
            raise AppError("intent_closed", "这笔支付已经结束", "this payment is already completed", 409)
        self._spawn(self.notify(intent))
        return intent

    def event_body(self, intent: SandboxIntent) -> bytes:
        return orjson.dumps(
            {
                "id": f"evt_{new_id()}",
                "type": f"payment.{intent.status}",
                "created": int(self.clock.now().timestamp()),
                "data": {"payment_id": intent.payment_id, "amount_fen": intent.amount_fen},
            }
        )

    def signed_headers(self, body: bytes) -> dict[str, str]:
        t = int(self.clock.now().timestamp())
        return {"content-type": "application/json", SIGNATURE_HEADER: signature_header(self.secret, t, body)}

    async def notify(self, intent: SandboxIntent) -> bool:
        """POST the event until the merchant answers 2xx (each try freshly
        signed); False when every retry failed."""
        body = self.event_body(intent)
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=10)
        for attempt, delay in enumerate((0.0, *self.retry_delays)):
            if delay:
                await asyncio.sleep(delay)
            try:
                r = await self._client.post(intent.notify_url, content=body, headers=self.signed_headers(body))
                if 200 <= r.status_code < 300:
                    return True
                log.warning("sandbox callback attempt %d: HTTP %d", attempt + 1, r.status_code)
            except httpx.HTTPError as e:
                log.warning("sandbox callback attempt %d: %s", attempt + 1, type(e).__name__)
        log.error("sandbox callback for payment %s gave up", intent.payment_id)
        return False

    def _spawn(self, coro) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
