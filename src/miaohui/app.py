"""Application factory: wires settings, clock, database, broker, presence and
the message writer into one :class:`~miaohui.context.AppContext`."""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from sqlalchemy import text

from miaohui import __version__
from miaohui.accounts.routes import router as accounts_router
from miaohui.chat.gateway import router as gateway_router
from miaohui.chat.presence import make_presence
from miaohui.chat.routes import router as chat_router
from miaohui.chat.writer import MessageWriter
from miaohui.clock import Clock
from miaohui.companion.pages import router as companion_pages
from miaohui.companion.routes import router as companion_router
from miaohui.companion.service import Companion
from miaohui.config import Settings
from miaohui.context import AppContext
from miaohui.core.broker import make_broker
from miaohui.core.crypto import KeyRing
from miaohui.core.db import make_engine, make_sessionmaker
from miaohui.core.errors import install_handlers
from miaohui.core.gcpolicy import gc_maintenance, tune_gc
from miaohui.core.headers import SecurityHeaders
from miaohui.core.logs import quiet_access_lines
from miaohui.core.ratelimit import SendLimiter, make_login_limiter
from miaohui.ledger.pages import router as ledger_pages
from miaohui.ledger.routes import router as ledger_router
from miaohui.listeners.duty import DutySampler
from miaohui.listeners.routes import router as listeners_router
from miaohui.matching.pages import router as matching_pages
from miaohui.matching.routes import router as matching_router
from miaohui.orders.pages import router as orders_pages
from miaohui.orders.routes import router as orders_router
from miaohui.orders.scheduler import OrderScheduler
from miaohui.payments.gateway import SandboxGateway
from miaohui.payments.pages import router as payments_pages
from miaohui.payments.routes import router as payments_router
from miaohui.privacy.routes import pages as privacy_pages
from miaohui.privacy.routes import router as privacy_router
from miaohui.push.relay import PushRelay
from miaohui.push.routes import pages as push_pages
from miaohui.push.routes import router as push_router
from miaohui.reviews.pages import router as reviews_pages
from miaohui.reviews.routes import router as reviews_router
from miaohui.supervision.monitor import SafetyMonitor
from miaohui.supervision.pages import router as supervision_pages
from miaohui.supervision.routes import router as supervision_router
from miaohui.verification.pages import router as verification_pages
from miaohui.verification.provider import make_provider
from miaohui.verification.routes import router as verification_router
from miaohui.web.routes import error_page_for
from miaohui.web.routes import router as web_router

log = logging.getLogger("miaohui")
STATIC_DIR = Path(__file__).parent / "web" / "static"


def build_context(settings: Settings, clock: Clock) -> AppContext:
    engine = make_engine(settings.resolved_database_url)
    keyring = KeyRing(settings.effective_message_keys)
    ctx = AppContext(
        settings=settings,
        clock=clock,
        engine=engine,
        sessionmaker=make_sessionmaker(engine, clock, keyring),
        keyring=keyring,
        broker=make_broker(settings.redis_url),
        login_limiter=make_login_limiter(
            settings.redis_url, clock, settings.login_max_failures, settings.login_window_seconds
        ),
        send_limiter=SendLimiter(clock, settings.chat_send_rate_per_s, settings.chat_send_burst),
    )
    ctx.presence = make_presence(settings.redis_url, settings.presence_ttl_seconds)
    ctx.companion = Companion(ctx)  # answers only in companion conversations
    ctx.writer = MessageWriter(engine, clock, ctx.broker)
    ctx.gateway = SandboxGateway(
        ctx.sessionmaker, clock, settings.effective_gateway_secret, settings.gateway_tolerance_seconds,
        enabled=settings.sandbox_payments_enabled,
    )
    ctx.orders = OrderScheduler(ctx)
    ctx.duty = DutySampler(ctx)
    ctx.writer.on_contracted.append(ctx.orders.on_contracted)
    ctx.safety = SafetyMonitor(ctx)
    ctx.verifier = make_provider(settings.verification_provider)
    ctx.push = PushRelay(ctx)
    return ctx


def create_app(settings: Settings | None = None, clock: Clock | None = None) -> FastAPI:
    settings = settings or Settings()
    clock = clock or Clock()
    quiet_access_lines()  # after uvicorn set up its loggers: no client address or query in the log
    if settings.database_url == "" and not settings.data_dir.exists():
        settings.data_dir.mkdir(parents=True, exist_ok=True)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        ctx = build_context(settings, clock)
        app.state.ctx = ctx
        await ctx.broker.start()
        await ctx.presence.start()
        await ctx.writer.start()
        await ctx.orders.start()
        await ctx.duty.start()
        await ctx.companion.start()
        # Load the safety models now (off the loop), not on the first seeker message; before
        # tune_gc() so their arrays and tables are frozen with everything else long-lived.
        await asyncio.to_thread(ctx.safety.warm)
        await ctx.safety.start()  # the risk worker process, if any, with its models loaded
        await ctx.push.start()
        gc_task = None
        if settings.gc_tuning:
            tune_gc()
            gc_task = asyncio.create_task(
                gc_maintenance(
                    full_every=settings.gc_full_every_seconds,
                    activity=lambda: ctx.writer.messages,
                    monotonic=ctx.clock.monotonic,
                ),
                name="gc-maintenance",
            )
        try:
            yield
        finally:
            if gc_task is not None:
                gc_task.cancel()
            await ctx.push.stop()
            await ctx.orders.stop()
            await ctx.duty.stop()
            await ctx.companion.stop()  # replies being written are cancelled; the writer flushes what was sent
            await ctx.writer.stop()  # flush accepted messages before anything else goes
            await ctx.safety.drain()  # risk cases of the last messages
            ctx.safety.close()
            await ctx.presence.stop()
            await ctx.login_limiter.aclose()
            await ctx.broker.stop()
            await ctx.gateway.aclose()
            await ctx.engine.dispose()

    app = FastAPI(
        title="秒回 Miaohui API",
        version=__version__,
        description="Instant-reply emotional support. Realtime protocol: see docs/protocol.md.",
        lifespan=lifespan,
    )
    install_handlers(app, page=error_page_for)
    app.add_middleware(SecurityHeaders, hsts=settings.secure_cookies)
    app.include_router(companion_router)
    app.include_router(companion_pages)

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict:
        ctx: AppContext = app.state.ctx
        async with ctx.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return {"status": "ok", "version": __version__, "broker": type(ctx.broker).__name__,
                "writer": ctx.writer.counters(), "safety": ctx.safety.counters(), "push": ctx.push.counters}

    for router in (accounts_router, listeners_router, chat_router, gateway_router, orders_router, orders_pages,
                   ledger_router, ledger_pages, payments_router, payments_pages, supervision_router,
                   supervision_pages, verification_router, verification_pages, reviews_router, reviews_pages,
                   matching_router, matching_pages, privacy_router, privacy_pages, push_router,
                   push_pages, web_router):
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
