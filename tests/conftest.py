"""Shared fixtures: a real server (uvicorn on a real port, real WebSockets) over
a real database — every test that takes ``server`` runs twice, once on SQLite
and once on PostgreSQL.

Databases are cloned from a template that was migrated (Alembic) and seeded
with the demo data once per session, so each test starts from the same state
in milliseconds.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import uvicorn

from miaohui.accounts import service as accounts_service
from miaohui.app import create_app
from miaohui.clock import Clock, FakeClock
from miaohui.config import Settings, uvicorn_ws
from miaohui.core.crypto import generate_key_spec
from miaohui.demo import PASSWORD, seed
from miaohui.migrate import upgrade

pytest_plugins = ["tests.plugins.services"]

# Cheap argon2 for speed; the algorithm and code path stay the real ones.
accounts_service.set_hasher_params(time_cost=1, memory_cost=1024, parallelism=1)

KEYS = generate_key_spec("t1")
SECRET = "test-secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_sync(coro):
    """Run a coroutine to completion from any thread (even inside a running loop)."""
    out: dict = {}

    def target():
        try:
            out["v"] = asyncio.run(coro)
        except BaseException as e:  # noqa: BLE001 - re-raised below
            out["e"] = e

    t = threading.Thread(target=target)
    t.start()
    t.join()
    if "e" in out:
        raise out["e"]
    return out.get("v")


def make_settings(database_url: str, data_dir: Path, **kw) -> Settings:
    kw.setdefault("safety_workers", 0)  # in-loop risk model: servers start in a blink (tests/test_safety_workers.py)
    # Many tests send tens to hundreds of messages at once under a frozen clock;
    # the per-person send limit has its own tests (tests/test_send_limit.py).
    kw.setdefault("chat_send_burst", 100_000)
    kw.setdefault("message_keys", KEYS)
    return Settings(database_url=database_url, data_dir=data_dir, secret_key=SECRET, **kw)


@dataclass
class LiveServer:
    """uvicorn serving the real app on a real port, in a background thread."""

    settings: Settings
    clock: Clock
    port: int = field(default_factory=free_port)
    _server: uvicorn.Server | None = None
    _thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def app(self):
        return self._server.config.app if self._server else None

    @property
    def ctx(self):
        return self._app.state.ctx

    def start(self) -> LiveServer:
        self._app = create_app(self.settings, self.clock)
        config = uvicorn.Config(
            self._app, host="127.0.0.1", port=self.port, log_level="warning", ws_max_size=256 * 1024, ws_per_message_deflate=False, lifespan="on",
            ws=uvicorn_ws(self.settings),
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.time() + 15
        while not self._server.started:
            if time.time() > deadline or not self._thread.is_alive():
                raise RuntimeError("server did not start")
            time.sleep(0.01)
        return self

    def db(self, fn):
        """Run ``await fn(session)`` against the server's database, on a fresh
        engine in its own loop (connections cannot cross event loops)."""
        from miaohui.core.db import make_engine, make_sessionmaker

        async def go():
            engine = make_engine(self.settings.resolved_database_url)
            try:
                async with make_sessionmaker(engine)() as session:
                    return await fn(session)
            finally:
                await engine.dispose()

        return run_sync(go())

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
            self._thread.join(15)
            self._server = None

    def restart(self) -> None:
        self.stop()
        self.start()


class Api:
    """A signed-in API client (bearer token)."""

    def __init__(self, server: LiveServer, username: str, password: str = PASSWORD):
        self.server = server
        r = httpx.post(f"{server.url}/api/auth/login", json={"username": username, "password": password})
        r.raise_for_status()
        data = r.json()
        self.token = data["token"]
        self.user = data["user"]
        self.id = self.user["id"]

    @property
    def headers(self) -> dict:
        return {"authorization": f"Bearer {self.token}"}

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.server.url, headers=self.headers, timeout=10)

    def ws(self, path: str, **kw):
        import websockets

        return websockets.connect(self.server.ws_url + path, additional_headers=self.headers, **kw)


# ----------------------------------------------------------------- databases

@pytest.fixture(scope="session")
def seed_files(tmp_path_factory) -> Path:
    """The seeded data's files (uploaded qualification proofs), from both
    templates; each test's data directory gets a copy (:func:`with_seed_files`)."""
    return tmp_path_factory.mktemp("seed-files")


def with_seed_files(request, data_dir: Path) -> None:
    src = request.getfixturevalue("seed_files") / "proofs"
    if src.exists():
        shutil.copytree(src, data_dir / "proofs", dirs_exist_ok=True)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory, seed_files) -> Path:
    path = tmp_path_factory.mktemp("tmpl") / "template.db"
    url = f"sqlite+aiosqlite:///{path}"
    upgrade(url)
    run_sync(seed(make_settings(url, seed_files)))
    return path


@pytest.fixture(scope="session")
def pg_template(pg_server, seed_files) -> str:
    name = f"tmpl_{uuid.uuid4().hex[:8]}"
    url = pg_server.create_database(name)
    upgrade(url)
    run_sync(seed(make_settings(url, seed_files)))
    return name


def _clone_pg(pg_server, template: str) -> str:
    import asyncpg

    name = f"t_{uuid.uuid4().hex[:12]}"

    async def go():
        conn = await asyncpg.connect(pg_server.asyncpg_dsn("postgres"))
        try:
            await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        finally:
            await conn.close()

    run_sync(go())
    return pg_server.dsn_for(name)


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        path = tmp_path / "miaohui.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        url = f"sqlite+aiosqlite:///{path}"
    else:
        url = _clone_pg(request.getfixturevalue("pg_server"), request.getfixturevalue("pg_template"))
    with_seed_files(request, tmp_path)  # after the template: seeding writes them
    return url


@pytest.fixture
def sqlite_url(request, tmp_path, sqlite_template) -> str:
    path = tmp_path / "miaohui.db"
    shutil.copy(sqlite_template, path)
    with_seed_files(request, tmp_path)
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def server(request, database_url, tmp_path, clock):
    """The platform in a thread on a free port. A module or test changes its
    settings with ``pytest.mark.server_settings(name=value, ...)``."""
    marker = request.node.get_closest_marker("server_settings")
    s = LiveServer(make_settings(database_url, tmp_path, **(marker.kwargs if marker else {})), clock).start()
    yield s
    s.stop()


@pytest.fixture
def seeker(server) -> Api:
    return Api(server, "xiaoyu")


@pytest.fixture
def seeker2(server) -> Api:
    return Api(server, "ahe")


@pytest.fixture
def listener(server) -> Api:
    return Api(server, "linqing")


@pytest.fixture
def admin(server) -> Api:
    return Api(server, "admin")


@pytest.fixture
def conversation(server, seeker, listener) -> str:
    r = httpx.post(f"{server.url}/api/conversations", json={"listener_id": listener.id}, headers=seeker.headers)
    assert r.status_code == 201, r.text
    return r.json()["id"]
