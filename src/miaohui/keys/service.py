"""Key rotation across every domain that stores ciphertext.

Each domain lists its ciphertext (``encrypted_stores()`` in its service:
tables with a key-id column, and the proof files); this service only asks
them to count rows by key and to move rows to the active key, a batch per
transaction, so a rotation can run beside live traffic and be stopped and
re-run at any point (``core.rekey``).
"""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from miaohui.core.crypto import KeyRing
from miaohui.core.rekey import Progress

log = logging.getLogger(__name__)


def stores(data_dir: Path) -> list:
    from miaohui.chat import service as chat
    from miaohui.companion import service as companion
    from miaohui.orders import service as orders
    from miaohui.payments import service as payments
    from miaohui.push import service as push
    from miaohui.supervision import service as supervision
    from miaohui.verification import service as verification

    return [*chat.encrypted_stores(), *companion.encrypted_stores(), *supervision.encrypted_stores(),
            *orders.encrypted_stores(), *payments.encrypted_stores(), *push.encrypted_stores(),
            *verification.encrypted_stores(data_dir)]


async def status(db: AsyncSession, keyring: KeyRing, data_dir: Path) -> dict:
    """Rows per key for every store; which ring keys nothing uses any more
    (safe to remove) and which keys rows use that the ring lacks (those rows
    cannot be read: put the key back)."""
    by_store = {s.name: await s.count(db) for s in stores(data_dir)}
    used: dict[str, int] = {}
    for counts in by_store.values():
        for kid, n in counts.items():
            used[kid] = used.get(kid, 0) + n
    return {
        "active": keyring.active_id,
        "ring": list(keyring.ids),
        "rows_by_key": used,
        "stores": by_store,
        "not_active": sum(n for kid, n in used.items() if kid != keyring.active_id),
        "unused_keys": [k for k in keyring.ids if k != keyring.active_id and not used.get(k)],
        "missing_keys": sorted(k for k in used if k not in keyring.ids),
    }


async def rotate(sessionmaker: async_sessionmaker, keyring: KeyRing, data_dir: Path, *, batch: int = 500) -> dict:
    """Re-encrypt everything not under the active key; returns per-store counts."""
    report = {}
    for store in stores(data_dir):
        progress, cursor = Progress(), None
        while True:
            async with sessionmaker() as db:
                cursor = await store.rekey(db, keyring, cursor, batch, progress)
            if cursor is None:
                break
        report[store.name] = progress.as_dict()
        log.info("keys rotate store=%s rekeyed=%d changed=%d", store.name, progress.rekeyed, progress.changed)
    return report
