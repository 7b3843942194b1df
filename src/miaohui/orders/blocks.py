"""Blocks: a listener who blocked a seeker (``POST /api/orders/{id}/block``).

A leaf module (only the ``blocks`` table), like ``verification.records``, so
that ``chat.service`` can ask it without an import cycle (``orders.service``
calls chat).  A block means no more contact from that seeker to that
listener: no new order (``orders.service.purchase``), no reopening their
conversation and no sending in it (``chat.service``).
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from miaohui.core.errors import AppError
from miaohui.orders.models import Block


async def is_blocked(db: AsyncSession, listener_id: str, seeker_id: str) -> bool:
    return await db.get(Block, (listener_id, seeker_id)) is not None


def blocked_error() -> AppError:
    """What the blocked seeker is told when they try to reach the listener in chat."""
    return AppError(
        "blocked",
        "该倾听师已结束与你的联系，你不能再给 TA 发消息。你可以选择其他倾听师，或随时使用 AI 陪伴。",
        "this listener has blocked you: you can no longer message them",
        403,
    )
