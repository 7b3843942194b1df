"""The running platform's shared parts, built once per app and injectable.

Tests build an :class:`AppContext` with a :class:`~miaohui.clock.FakeClock`, a
fresh database and, when they need it, a Redis broker.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from miaohui.clock import Clock
from miaohui.config import Settings
from miaohui.core.broker import Broker
from miaohui.core.crypto import KeyRing
from miaohui.core.ratelimit import LoginLimiter, SendLimiter

if TYPE_CHECKING:
    from miaohui.chat.presence import Presence
    from miaohui.chat.writer import MessageWriter
    from miaohui.companion.service import Companion
    from miaohui.listeners.duty import DutySampler
    from miaohui.orders.scheduler import OrderScheduler
    from miaohui.payments.gateway import PaymentGateway
    from miaohui.push.relay import PushRelay
    from miaohui.supervision.monitor import SafetyMonitor
    from miaohui.verification.provider import VerificationProvider


@dataclass
class AppContext:
    settings: Settings
    clock: Clock
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    keyring: KeyRing
    broker: Broker
    login_limiter: LoginLimiter
    send_limiter: SendLimiter
    presence: Presence = field(init=False)
    writer: MessageWriter = field(init=False)
    companion: Companion = field(init=False)
    orders: OrderScheduler = field(init=False)
    duty: DutySampler = field(init=False)
    gateway: PaymentGateway = field(init=False)
    safety: SafetyMonitor = field(init=False)
    push: PushRelay = field(init=False)
    verifier: VerificationProvider = field(init=False)
