"""Settings, read from ``MIAOHUI_*`` environment variables.

Defaults are safe for local use: an embedded SQLite file under ``var/`` and
secrets generated once into ``var/secrets.json`` (never a key baked into the
source).  In production (``MIAOHUI_ENV=production``) every secret must come
from the environment, so a forgotten variable fails loudly at start instead of
silently using a development key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from functools import cached_property
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MIAOHUI_", extra="ignore")

    env: str = "development"
    data_dir: Path = Path("var")
    database_url: str = ""
    redis_url: str = ""
    host: str = "127.0.0.1"
    port: int = 8000

    # Secrets.  ``secret_key`` signs CSRF tokens; ``message_keys`` is a
    # comma-separated key ring "kid:base64(32 bytes),..."; the first is used to
    # encrypt, all of them decrypt, so keys can be rotated without re-encrypting.
    secret_key: str = ""
    message_keys: str = ""

    # Sessions and login protection.
    session_days: int = 30
    cookie_secure: bool = False
    login_max_failures: int = 5
    login_window_seconds: int = 300

    # ---- Money (ledger, payments).  Amounts in integer fen.
    # HMAC secret shared with the payment gateway for its callbacks; empty
    # derives one from ``secret_key`` (the embedded sandbox gateway).
    gateway_secret: str = ""
    gateway_tolerance_seconds: int = 300  # callbacks signed longer ago than this are refused
    topup_min_fen: int = 100
    topup_max_fen: int = 500_000
    withdrawal_min_fen: int = 1_000

    # Chat limits.
    max_message_chars: int = 4000
    max_frame_bytes: int = 64 * 1024
    history_page_max: int = 200
    outbound_queue_max: int = 2000
    typing_min_interval_ms: int = 300
    gc_tuning: bool = True
    # uvicorn WebSocket implementation (auto | websockets | websockets-sansio |
    # wsproto).  The sans-I/O one sustained ~4,000+ msgs/s against ~3,500 for
    # the legacy one in bench/chat_latency.py (docs/performance.md).
    ws_impl: str = "websockets-sansio"
    presence_ttl_seconds: int = 60

    # Allowed browser origins for WebSockets and unsafe requests; empty means
    # "same host as the request" only.
    allowed_origins: list[str] = Field(default_factory=list)

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'miaohui.db').as_posix()}"

    def _local_secrets(self) -> dict[str, str]:
        if self.is_production:
            raise RuntimeError(
                "MIAOHUI_SECRET_KEY 与 MIAOHUI_MESSAGE_KEYS 在生产环境必须设置 / "
                "MIAOHUI_SECRET_KEY and MIAOHUI_MESSAGE_KEYS are required in production"
            )
        path = self.data_dir / "secrets.json"
        if path.exists():
            return json.loads(path.read_text())
        self.data_dir.mkdir(parents=True, exist_ok=True)
        data = {
            "secret_key": secrets.token_urlsafe(32),
            "message_keys": "k1:" + base64.b64encode(os.urandom(32)).decode(),
        }
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(data, f)
        return data

    @cached_property
    def effective_secret_key(self) -> str:
        return self.secret_key or self._local_secrets()["secret_key"]

    @cached_property
    def effective_message_keys(self) -> str:
        return self.message_keys or self._local_secrets()["message_keys"]

    @cached_property
    def effective_gateway_secret(self) -> str:
        if self.gateway_secret:
            return self.gateway_secret
        return hmac.new(self.effective_secret_key.encode(), b"miaohui-gateway-v1", hashlib.sha256).hexdigest()
