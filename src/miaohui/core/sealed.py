"""Free text people write about each other, encrypted at rest like message bodies.

A dispute's reason and a supervisor's note on it, the reason a listener gave
for a block, reports and their decisions, suspension reasons, why a
withdrawal was refused, an admin's note on a qualification: short texts, but
written about a person in a hard moment.  A model that keeps such text
mixes in :class:`Sealed` and declares each field as :class:`SealedText`; the
column is ``<field>_ct`` (AES-GCM ``nonce ‖ ciphertext`` from the app's key
ring, NULL for no text) and the row has one ``key_id``.  The associated data
(:func:`~miaohui.core.crypto.field_aad`) binds a ciphertext to its table,
row (``SEALED_KEY``, the primary key) and field.

Writing: ``row.seal(keyring, reason=…)`` on a row (the row's other fields are
encrypted again under the active key with it: one key id per row), or
``Model.sealed_values(keyring, row_key, **every_field)`` for a conditional
UPDATE.  Reading is unchanged for callers: ``row.reason`` is decrypted on
first use, with the key ring of the session the row was loaded through
(``session.info["keyring"]``, :func:`~miaohui.core.db.make_sessionmaker`) or
the one it was sealed with.  Reading without either raises rather than
showing nothing.  Migration 0010 moved the plaintext columns here.
"""

from __future__ import annotations

from typing import ClassVar

from sqlalchemy import event
from sqlalchemy.orm import object_session

from miaohui.core.crypto import KeyRing, field_aad


class SealedText:
    """The plaintext of the column ``<name>_ct``; read-only (write with ``seal``)."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name
        owner.SEALED = (*owner.__dict__.get("SEALED", ()), name)

    def __get__(self, row, owner=None):
        if row is None:
            return self
        return row._unseal(self.name)

    def __set__(self, row, value) -> None:
        raise AttributeError(f"{type(row).__name__}.{self.name} is encrypted: use .seal(keyring, {self.name}=...)")


class Sealed:
    """Mixin for a model with :class:`SealedText` fields and a ``key_id`` column."""

    SEALED: ClassVar[tuple[str, ...]] = ()
    SEALED_KEY: ClassVar[tuple[str, ...]] = ("id",)  # the columns that name the row in the associated data

    @property
    def sealed_key(self) -> str:
        return "|".join(str(getattr(self, c)) for c in self.SEALED_KEY)

    @classmethod
    def sealed_values(cls, keyring: KeyRing, row_key: str, **text: str | None) -> dict:
        """Column values for every sealed field of one row (all must be given,
        so the row's fields share its ``key_id``)."""
        if set(text) != set(cls.SEALED):
            raise ValueError(f"{cls.__name__}: give every sealed field {cls.SEALED}")
        values: dict = {"key_id": None}
        for f in cls.SEALED:
            values[f"{f}_ct"] = None
            if text[f]:
                values["key_id"], values[f"{f}_ct"] = keyring.encrypt(text[f], field_aad(cls.__tablename__, row_key, f))
        return values

    def seal(self, keyring: KeyRing, **text: str | None) -> None:
        """Set some fields' text; the others keep theirs.  The primary key must be set."""
        kept = {f: self._unseal(f, keyring) for f in self.SEALED if f not in text}
        for column, value in self.sealed_values(keyring, self.sealed_key, **kept, **text).items():
            setattr(self, column, value)
        self.__dict__["_sealed_ring"] = keyring

    def _unseal(self, name: str, keyring: KeyRing | None = None) -> str:
        blob = getattr(self, f"{name}_ct")
        if blob is None:
            return ""
        memo = self.__dict__.setdefault("_sealed_memo", {})
        if name in memo and memo[name][0] == blob:
            return memo[name][1]
        ring = keyring or self.__dict__.get("_sealed_ring")
        if ring is None and (session := object_session(self)) is not None:
            ring = session.info.get("keyring")
        if ring is None:
            raise LookupError(f"{type(self).__name__}.{name} read without a key ring")
        text = ring.decrypt(self.key_id, blob, field_aad(self.__tablename__, self.sealed_key, name))
        memo[name] = (blob, text)
        return text


@event.listens_for(Sealed, "load", propagate=True)
@event.listens_for(Sealed, "refresh", propagate=True)
def _take_ring(row: Sealed, context, attrs=None) -> None:
    """Loaded or refreshed through a session: remember its key ring (an
    UPDATE's in-place synchronisation refreshes with no context)."""
    session = context.session if context is not None else None
    ring = session.info.get("keyring") if session is not None else None
    if ring is not None:
        row.__dict__["_sealed_ring"] = ring


def sealed_columns(model: type[Sealed]):
    """A sealed model's ciphertext, for ``miaohui keys rotate`` (``core.rekey``)."""
    from miaohui.core.rekey import EncryptedColumns

    table = model.__table__

    def aad(row, column: str) -> bytes:
        return field_aad(table.name, "|".join(str(row[c]) for c in model.SEALED_KEY), column.removesuffix("_ct"))

    return EncryptedColumns(table.name, table, tuple(f"{f}_ct" for f in model.SEALED), aad)
