"""Real PostgreSQL and Redis servers for the test session (no docker).

Registered from tests/conftest.py with ``pytest_plugins = ["tests.plugins.services"]``.

Fixtures (session scoped, started lazily on first use, stopped at session end):

* ``pg_server`` -> :class:`PostgresServer`
    - ``dsn_for(dbname)`` -> ``postgresql+asyncpg://miaohui@127.0.0.1:PORT/dbname``
    - ``create_database(name=None)`` -> creates the db (unique name if None), returns its DSN.
      Sync, safe to call from sync *and* async code (runs asyncpg on its own thread/loop).
    - ``acreate_database`` / ``drop_database`` / ``adrop_database``.
    - ``MIAOHUI_TEST_POSTGRES_DSN`` (e.g. ``postgresql+asyncpg://u:pw@host:5432``) uses that
      server instead of starting one.
* ``redis_server`` -> :class:`RedisServer` with ``.url`` (``redis://127.0.0.1:PORT/0``) and
  ``url_for(db)``. ``MIAOHUI_TEST_REDIS_URL`` uses an existing server instead.

A missing binary is a hard failure (pytest.fail), never a skip: CI must really test against
these services.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import glob
import os
import pwd
import re
import shlex
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

PG_USER = "miaohui"


# --------------------------------------------------------------------------- helpers


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _read(path: str) -> str:
    try:
        with open(path, errors="replace") as f:
            return f.read()[-8000:]
    except OSError as exc:
        return f"<no log: {exc}>"


def _run_sync(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine to completion even if the calling thread already runs an event loop."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# --------------------------------------------------------------------------- postgres


@dataclass
class PostgresServer:
    base_dsn: str  # postgresql+asyncpg://user[:pw]@host:port  (no database)
    _created: set[str] = field(default_factory=set, repr=False)

    def dsn_for(self, dbname: str) -> str:
        return f"{self.base_dsn}/{dbname}"

    def asyncpg_dsn(self, dbname: str = "postgres") -> str:
        """Plain libpq-style DSN (what ``asyncpg.connect`` wants)."""
        return self.dsn_for(dbname).replace("postgresql+asyncpg://", "postgresql://", 1)

    async def acreate_database(self, name: str | None = None) -> str:
        import asyncpg

        name = name or f"t_{uuid.uuid4().hex[:12]}"
        conn = await asyncpg.connect(self.asyncpg_dsn("postgres"))
        try:
            await conn.execute(f"CREATE DATABASE {_quote_ident(name)}")
        finally:
            await conn.close()
        self._created.add(name)
        return self.dsn_for(name)

    def create_database(self, name: str | None = None) -> str:
        return _run_sync(self.acreate_database(name))

    async def adrop_database(self, name: str) -> None:
        import asyncpg

        conn = await asyncpg.connect(self.asyncpg_dsn("postgres"))
        try:
            await conn.execute(f"DROP DATABASE IF EXISTS {_quote_ident(name)} WITH (FORCE)")
        finally:
            await conn.close()
        self._created.discard(name)

    def drop_database(self, name: str) -> None:
        _run_sync(self.adrop_database(name))


def _pg_bindir() -> str:
    override = os.environ.get("MIAOHUI_PG_BINDIR")
    if override:
        if not os.path.exists(os.path.join(override, "initdb")):
            pytest.fail(f"MIAOHUI_PG_BINDIR={override!r} has no initdb", pytrace=False)
        return override
    # Debian keeps server binaries out of PATH; prefer the newest installed major version.
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: [int(x) for x in re.findall(r"\d+", p)],
    )
    if candidates:
        return os.path.dirname(candidates[-1])
    found = shutil.which("initdb")
    if found:
        return os.path.dirname(found)
    pytest.fail(
        "PostgreSQL server binaries not found (no /usr/lib/postgresql/*/bin/initdb, no initdb "
        "on PATH). Install them (apt-get install postgresql, or run scripts/test.sh), set "
        "MIAOHUI_PG_BINDIR, or point MIAOHUI_TEST_POSTGRES_DSN at a running server.",
        pytrace=False,
    )


class _LocalPostgres:
    """initdb + pg_ctl in a private temp dir. As root, runs as the ``postgres`` user
    because initdb/postgres refuse to run as root."""

    def __init__(self) -> None:
        self.bindir = _pg_bindir()
        self.as_root = os.geteuid() == 0
        # Not tmp_path_factory: its base dir is 0700 root-owned, so the postgres user
        # could not reach a data directory below it.
        self.dir = tempfile.mkdtemp(prefix="miaohui-pg-")
        self.data = os.path.join(self.dir, "data")
        self.log = os.path.join(self.dir, "postgres.log")
        self.port = 0
        if self.as_root:
            try:
                pw = pwd.getpwnam("postgres")
            except KeyError:
                pytest.fail(
                    "running as root but there is no 'postgres' system user to run "
                    "initdb/pg_ctl as (it is created by the postgresql Debian package).",
                    pytrace=False,
                )
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        os.chmod(self.dir, 0o700)

    def _cmd(self, *args: str) -> list[str]:
        cmd = [os.path.join(self.bindir, args[0]), *args[1:]]
        if not self.as_root:
            return cmd
        if shutil.which("runuser"):
            return ["runuser", "-u", "postgres", "--", *cmd]
        return ["su", "postgres", "-s", "/bin/sh", "-c", shlex.join(cmd)]

    def _run(self, *args: str, what: str) -> None:
        # cwd: the postgres user may not be allowed into the repo checkout.
        res = subprocess.run(self._cmd(*args), cwd=self.dir, capture_output=True, text=True, timeout=120)
        if res.returncode != 0:
            pytest.fail(
                f"{what} failed (exit {res.returncode}): {shlex.join(self._cmd(*args))}\n"
                f"--- stdout ---\n{res.stdout}\n--- stderr ---\n{res.stderr}\n"
                f"--- {self.log} ---\n{_read(self.log)}",
                pytrace=False,
            )

    def start(self) -> PostgresServer:
        self._run(
            "initdb",
            "-D",
            self.data,
            "-U",
            PG_USER,
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
            what="initdb",
        )
        # Settings live in postgresql.conf (not `pg_ctl -o`) to avoid shell quoting via su.
        # Durability is pointless for throw-away test data; turning it off is much faster.
        self.port = _free_port()
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            f.write(
                "\n# miaohui test settings\n"
                "listen_addresses = '127.0.0.1'\n"
                f"port = {self.port}\n"
                f"unix_socket_directories = '{self.dir}'\n"
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                "max_connections = 200\n"
            )
        self._run(
            "pg_ctl",
            "-D",
            self.data,
            "-l",
            self.log,
            "-w",
            "-t",
            "60",
            "start",
            what="pg_ctl start",
        )
        return PostgresServer(base_dsn=f"postgresql+asyncpg://{PG_USER}@127.0.0.1:{self.port}")

    def stop(self) -> None:
        if os.path.exists(os.path.join(self.data, "postmaster.pid")):
            subprocess.run(
                self._cmd("pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop"),
                cwd=self.dir,
                capture_output=True,
                timeout=60,
            )
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    external = os.environ.get("MIAOHUI_TEST_POSTGRES_DSN")
    if external:
        base = external.rstrip("/")
        base = re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql+asyncpg://", base)
        yield PostgresServer(base_dsn=base)
        return
    local = _LocalPostgres()
    try:
        yield local.start()
    finally:
        local.stop()


# --------------------------------------------------------------------------- redis


@dataclass
class RedisServer:
    host: str
    port: int
    db: int = 0

    @property
    def url(self) -> str:
        return self.url_for(self.db)

    def url_for(self, db: int) -> str:
        return f"redis://{self.host}:{self.port}/{db}"


def _redis_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    external = os.environ.get("MIAOHUI_TEST_REDIS_URL")
    if external:
        m = re.match(r"redis://(?:[^@/]*@)?([^:/]+):?(\d*)/?(\d*)", external)
        if not m:
            pytest.fail(f"cannot parse MIAOHUI_TEST_REDIS_URL={external!r}", pytrace=False)
        yield RedisServer(m[1], int(m[2] or 6379), int(m[3] or 0))
        return

    binary = shutil.which("redis-server") or next(
        (p for p in ("/usr/bin/redis-server", "/usr/sbin/redis-server") if os.path.exists(p)),
        None,
    )
    if not binary:
        pytest.fail(
            "redis-server not found. Install it (apt-get install redis-server, or run "
            "scripts/test.sh) or set MIAOHUI_TEST_REDIS_URL.",
            pytrace=False,
        )
    workdir = tempfile.mkdtemp(prefix="miaohui-redis-")
    log = os.path.join(workdir, "redis.log")
    port = _free_port()
    with open(log, "wb") as logf:
        proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                workdir,
            ],
            stdout=logf,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=workdir,
        )
    try:
        deadline = time.monotonic() + 30
        while not _redis_ping(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(
                    f"redis-server did not answer PING on port {port} "
                    f"(exit code {proc.poll()}).\n--- {log} ---\n{_read(log)}",
                    pytrace=False,
                )
            time.sleep(0.05)
        yield RedisServer("127.0.0.1", port)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)
