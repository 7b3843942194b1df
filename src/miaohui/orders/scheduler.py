"""Runs the contract in time: one task per process.

Two inputs drive orders: committed messages (the writer's hook — the reply
clock advances within milliseconds of a message) and time (every
``sla_tick_seconds`` the scheduler asks the database which orders are due).
All state lives in the ``orders`` rows, so a server killed mid-order picks up
on restart exactly where the database says — late deadlines fire at once,
and messages committed but never applied are caught up from the log.
Several processes may run schedulers at the same time: each order is handled
under its row lock and re-checked, so work is never done twice.
"""

from __future__ import annotations

import asyncio
import logging

from miaohui.orders import service

log = logging.getLogger("miaohui.orders.scheduler")


class OrderScheduler:
    def __init__(self, ctx) -> None:
        self.ctx = ctx
        self._task: asyncio.Task | None = None
        self._running: dict[str, asyncio.Task] = {}
        self._dirty: set[str] = set()
        self._rechecks: set[asyncio.Task] = set()
        self._wake = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="order-scheduler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await asyncio.gather(*self._running.values(), *self._rechecks, return_exceptions=True)

    def wake(self) -> None:
        self._wake.set()

    def recheck_conversation(self, conversation_id: str) -> None:
        """Guardian mode ended in this conversation: look at its order now."""

        async def go() -> None:
            try:
                if await service.due_now(self.ctx, conversation_id):
                    self.wake()
            except Exception:
                log.exception("guardian recheck failed")

        task = asyncio.get_running_loop().create_task(go())
        self._rechecks.add(task)
        task.add_done_callback(self._rechecks.discard)

    # -------------------------------------------------------- message hook

    def on_contracted(self, committed) -> None:
        for order_id in {c.order_id for c in committed}:
            self._kick(order_id)

    def _kick(self, order_id: str) -> None:
        if order_id in self._running:
            self._dirty.add(order_id)
            return
        self._running[order_id] = asyncio.get_running_loop().create_task(self._apply(order_id))

    async def _apply(self, order_id: str) -> None:
        try:
            while True:
                self._dirty.discard(order_id)
                try:
                    await service.on_messages(self.ctx, order_id)
                except Exception:
                    log.exception("reply clock update failed")
                if order_id not in self._dirty:
                    break
        finally:
            self._running.pop(order_id, None)

    # ---------------------------------------------------------------- time

    async def run_due(self) -> int:
        """Handle everything due now; returns how many orders were looked at."""
        ctx = self.ctx
        now = ctx.clock.now()
        async with ctx.sessionmaker() as db:
            due = await service.due_ids(db, now)
            behind = await service.unapplied_ids(db)
        for order_id in behind:
            await service.on_messages(ctx, order_id)
        for order_id in due:
            try:
                await service.tick(ctx, order_id)
            except Exception:
                log.exception("order tick failed")
        await service.settle_gifts(ctx, now)
        return len(due) + len(behind)

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_due()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("scheduler pass failed")
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), self.ctx.settings.sla_tick_seconds)
            except TimeoutError:
                pass
