"""Re-encrypting stored ciphertext under the key ring's active key.

Rotating a key (``core.crypto``) is three steps: put a new key first in
``MIAOHUI_MESSAGE_KEYS`` and restart, so everything *written* from then on
uses it; re-encrypt what was written before (this module, through
``miaohui keys rotate``); drop the old key once ``miaohui keys status``
counts no row under it.  Without the middle step an old key could never be
retired, and a leaked one would keep every old message readable.

Each domain that stores ciphertext describes it as an :class:`EncryptedColumns`
(its own table, primary key, key-id column, ciphertext columns and the
associated data each was bound to) and hands that to the ``keys`` service;
no domain's tables are touched by anyone else's code.

A batch reads rows not under the active key in primary-key order (keyset
pagination, so a row that cannot be moved is passed once, not re-read
forever), decrypts with the row's key, encrypts under the active key with
the *same* associated data, and writes with a conditional UPDATE that also
matches the old key id and the old ciphertexts: a row rewritten meanwhile
(a dispute decided, a note added by a process still on the old ring) is left
alone and counted ``changed``; the next run picks it up if it still needs
it.  Message hash chains cover the plaintext, so evidence stays valid.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from sqlalchemy import Table, and_, func, select, true, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from miaohui.core.crypto import KeyRing
from miaohui.core.db import begin_write


@dataclass(frozen=True)
class EncryptedColumns:
    """One table's ciphertext: ``fields`` are the ciphertext columns (NULL
    for none), all under the row's ``key`` column; ``aad(row, column)`` is
    the associated data the column was encrypted with (``row`` maps every
    column the table has)."""

    name: str
    table: Table
    fields: tuple[str, ...]
    aad: Callable[[Mapping, str], bytes]
    key: str = "key_id"

    async def count(self, db: AsyncSession) -> dict[str, int]:
        return await count_by_key(db, self.table.c[self.key])

    async def rekey(self, db: AsyncSession, keyring: KeyRing, cursor: tuple | None, limit: int,
                    progress: Progress) -> tuple | None:
        """Move up to ``limit`` rows after ``cursor`` to the active key in one
        transaction; returns the next cursor, or None when the table is done."""
        t, key = self.table, self.table.c[self.key]
        rows = await rows_to_move(db, keyring, t, key, cursor, limit)
        for row in rows:
            old = row[self.key]
            if old not in keyring.ids:
                progress.missing_key[old] = progress.missing_key.get(old, 0) + 1
                continue
            values: dict = {self.key: keyring.active_id}
            try:
                for f in self.fields:
                    if row[f] is not None:
                        aad = self.aad(row, f)
                        values[f] = keyring.encrypt_bytes(keyring.decrypt_bytes(old, row[f], aad), aad)[1]
            except InvalidTag:
                progress.undecryptable.append(row_name(t, row))
                continue
            match = [c == row[c.name] for c in t.primary_key.columns] + [key == old]
            match += [_same(t.c[f], row[f]) for f in self.fields]
            if (await db.execute(update(t).where(and_(*match)).values(**values))).rowcount:
                progress.rekeyed += 1
            else:
                progress.changed += 1
        await db.commit()
        return next_cursor(t, rows, limit)


@dataclass
class Progress:
    """What one pass over a store did (counts and row ids only, never text)."""

    rekeyed: int = 0
    changed: int = 0  # rewritten by someone else between read and write
    missing_key: dict[str, int] = field(default_factory=dict)  # under a key the ring lacks
    undecryptable: list[str] = field(default_factory=list)  # failed authentication: tampered or misfiled
    missing_files: list[str] = field(default_factory=list)  # a record whose file is gone

    def as_dict(self) -> dict:
        return {"rekeyed": self.rekeyed, "changed": self.changed, "missing_key": self.missing_key,
                "undecryptable": self.undecryptable[:20], "undecryptable_count": len(self.undecryptable),
                "missing_files": self.missing_files[:20], "missing_files_count": len(self.missing_files)}


def _after(pk: tuple, cursor: tuple | None):
    if cursor is None:
        return true()
    return pk[0] > cursor[0] if len(pk) == 1 else tuple_(*pk) > tuple_(*cursor)


def _same(col, value):
    return col.is_(None) if value is None else col == value


async def count_by_key(db: AsyncSession, key_col) -> dict[str, int]:
    rows = await db.execute(select(key_col, func.count()).where(key_col.is_not(None), key_col != "")
                            .group_by(key_col))
    return {k: n for k, n in rows.all()}


async def rows_to_move(db: AsyncSession, keyring: KeyRing, table: Table, key_col, cursor: tuple | None,
                       limit: int) -> list[Mapping]:
    """The next ``limit`` rows after ``cursor`` (primary-key order) under a
    key other than the active one, in a writer's transaction."""
    pk = tuple(table.primary_key.columns)
    await begin_write(db)
    return (await db.execute(
        select(table).where(key_col.is_not(None), key_col != "", key_col != keyring.active_id, _after(pk, cursor))
        .order_by(*pk).limit(limit))).mappings().all()


def next_cursor(table: Table, rows: list[Mapping], limit: int) -> tuple | None:
    if len(rows) < limit:
        return None
    return tuple(rows[-1][c.name] for c in table.primary_key.columns)


def row_name(table: Table, row: Mapping) -> str:
    return "|".join(str(row[c.name]) for c in table.primary_key.columns)
