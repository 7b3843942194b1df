"""Database plumbing: declarative base, engine and session factories.

SQLite is the embedded default (WAL, ``synchronous=FULL`` so an acknowledged
message survives a power cut); PostgreSQL is the production target.  Both run
the same SQLAlchemy Core/ORM code and the same Alembic migrations.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from datetime import UTC
from pathlib import Path

from sqlalchemy import DateTime, Engine, MetaData, create_engine, event, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite drops tzinfo)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None:
            if value.tzinfo is None:
                raise ValueError("naive datetime")
            value = value.astimezone(UTC)
            if dialect.name == "sqlite":
                value = value.replace(tzinfo=None)
        return value

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


def new_id() -> str:
    """Opaque, non-enumerable identifiers for users and conversations."""
    return uuid.uuid4().hex


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def _sqlite_autocommit_driver(dbapi_conn, _record) -> None:
    # Let SQLAlchemy, not the sqlite3 module, decide how transactions begin
    # (the documented pysqlite recipe), so writers can ask for BEGIN IMMEDIATE.
    dbapi_conn.isolation_level = None


def _sqlite_begin(conn) -> None:
    """``BEGIN IMMEDIATE`` for transactions that will write after reading.

    A deferred SQLite transaction that reads and then writes fails at once
    with SQLITE_BUSY when another connection committed in between (its
    snapshot is stale; ``busy_timeout`` cannot help).  Taking the write lock
    up front makes such transactions queue behind each other instead, the
    SQLite counterpart of ``SELECT … FOR UPDATE`` on PostgreSQL.
    """
    if conn.get_execution_options().get("sqlite_immediate"):
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        conn.exec_driver_sql("BEGIN")


def private_sqlite_file(url: str) -> None:
    """Create the SQLite database file readable by its owner only (0600).

    SQLite makes a new database (and its ``-wal``/``-shm`` files, which take the
    database's permissions) under the process's umask: usually world-readable.
    Bodies are encrypted, but accounts, orders and the ledger are not; other
    users of the machine have no business reading them.  Safe to call again."""
    path = make_url(url).database
    if not path or path == ":memory:" or path.startswith("file:"):
        return
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(p, os.O_CREAT | os.O_WRONLY, 0o600))
    for f in (p, p.with_name(p.name + "-wal"), p.with_name(p.name + "-shm")):
        with contextlib.suppress(FileNotFoundError):
            if f.stat().st_mode & 0o077:
                f.chmod(0o600)


def make_engine(url: str, connect_args: dict | None = None, **kw) -> AsyncEngine:
    if url.startswith("sqlite"):
        private_sqlite_file(url)
        engine = create_async_engine(url, connect_args={"timeout": 30, **(connect_args or {})}, **kw)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "connect", _sqlite_autocommit_driver)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
        return engine
    return create_async_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True, **kw)


def make_sync_engine(url) -> Engine:
    """A synchronous SQLite engine for the message writer's own thread."""
    private_sqlite_file(str(url))
    engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, pool_size=2, max_overflow=0)
    event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def make_sessionmaker(engine: AsyncEngine, clock=None, keyring=None) -> async_sessionmaker[AsyncSession]:
    """Sessions carry the platform clock in ``session.info["clock"]`` so
    services that only get a session (the ledger) stamp rows with it, and
    the key ring in ``session.info["keyring"]``, so encrypted free text
    (``core.sealed``) reads back as text from rows loaded through them."""
    info = {k: v for k, v in (("clock", clock), ("keyring", keyring)) if v is not None}
    return async_sessionmaker(engine, expire_on_commit=False, info=info or None)


async def begin_write(session: AsyncSession) -> None:
    """Start ``session``'s transaction as a writer, before its first query.

    On SQLite this is ``BEGIN IMMEDIATE`` (see :func:`_sqlite_begin`); on
    PostgreSQL a plain BEGIN — there, money paths lock what they change with
    conditional UPDATEs or ``FOR UPDATE``.  Call it first thing in a service
    function that reads and then writes state that others may race on
    (ledger, orders).  Harmless if the transaction already began.
    """
    if not session.in_transaction():
        await session.connection(execution_options={"sqlite_immediate": True})


def upsert(session: AsyncSession, table):
    """``INSERT`` with ``ON CONFLICT`` for the session's dialect (PostgreSQL
    and SQLite spell it the same; SQLAlchemy has a construct per dialect)."""
    return upsert_for(session.get_bind().dialect.name, table)


def upsert_for(dialect: str, table):
    """:func:`upsert` by dialect name, for statements built once and cached."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table)
