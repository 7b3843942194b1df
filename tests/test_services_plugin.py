"""Smoke test for tests/plugins/services.py: both real servers start and answer."""

import asyncio

import asyncpg
import redis.asyncio as aioredis


def test_postgres_server_starts(pg_server):
    dsn = pg_server.create_database()
    assert dsn.startswith("postgresql+asyncpg://")
    plain = dsn.replace("postgresql+asyncpg://", "postgresql://", 1)

    async def check():
        conn = await asyncpg.connect(plain)
        try:
            return await conn.fetchval("SELECT 1"), await conn.fetchval("SELECT current_database()")
        finally:
            await conn.close()

    one, dbname = asyncio.run(check())
    assert one == 1
    assert dsn.endswith("/" + dbname)
    pg_server.drop_database(dbname)


def test_redis_server_starts(redis_server):
    assert redis_server.url.startswith("redis://127.0.0.1:")

    async def check():
        client = aioredis.from_url(redis_server.url)
        try:
            return await client.ping()
        finally:
            await client.aclose()

    assert asyncio.run(check()) is True
