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
    # Cookies only over HTTPS, and HSTS on every response.  Unset: on in
    # production (which runs behind HTTPS), off in development (plain http).
    cookie_secure: bool | None = None
    login_max_failures: int = 5
    login_window_seconds: int = 300

    # ---- Money (ledger, payments).  Amounts in integer fen.
    # HMAC secret shared with the payment gateway for its callbacks; empty
    # derives one from ``secret_key`` (the embedded sandbox gateway).
    gateway_secret: str = ""
    gateway_tolerance_seconds: int = 300  # callbacks signed longer ago than this are refused
    # The embedded sandbox gateway (top-ups confirmed by a button, payouts that
    # send nothing).  Unset: on, except in production, where it would credit
    # money that never arrived; set MIAOHUI_SANDBOX_PAYMENTS=1 for a staging site.
    sandbox_payments: bool | None = None
    topup_min_fen: int = 100
    topup_max_fen: int = 500_000
    withdrawal_min_fen: int = 1_000

    # Chat limits.
    max_message_chars: int = 4000
    max_frame_bytes: int = 64 * 1024
    history_page_max: int = 200
    outbound_queue_max: int = 2000
    typing_min_interval_ms: int = 300
    # How fast one person may send (core.ratelimit.SendLimiter): on average,
    # and in a burst (a reconnect resends what was not yet acknowledged).
    chat_send_rate_per_s: float = Field(3.0, gt=0)
    chat_send_burst: int = Field(30, ge=1)
    gc_tuning: bool = True
    # How often the frozen generation is released and fully collected (core.gcpolicy.gc_maintenance),
    # in a quiet interval once due, at the latest twice this long after the last release.
    gc_full_every_seconds: float = Field(86_400.0, gt=0)
    # uvicorn WebSocket implementation: ``direct`` (uvicorn's sans-I/O one
    # with a direct lane for chat frames, miaohui.chat.wsdirect) or any name
    # uvicorn knows (auto | websockets | websockets-sansio | wsproto), on which
    # the gateway uses the plain ASGI loop (docs/performance.md).
    ws_impl: str = "direct"
    presence_ttl_seconds: int = 60
    # How often each process notes which listeners are on duty (listeners.duty):
    # the measured 常在线时段 have one-minute bits, so once a minute is enough.
    duty_sample_seconds: float = Field(60.0, gt=0)

    # ---- Orders, pricing and the 秒回 contract (issue 3).  The contract copy
    # stored with each order keeps the values in force when it was bought.
    timezone: str = "Asia/Shanghai"
    night_start_hour: int = 23
    night_end_hour: int = 7
    night_surcharge_pct: int = 200  # night hours cost base × (100 + pct) / 100
    # Percent off per package kind.
    package_discounts: dict[str, int] = Field(
        default_factory=lambda: {"30m": 0, "1h": 0, "night": 10, "day": 15, "month": 25}
    )
    commission_pct: int = 30
    max_concurrent_orders: int = 3  # platform maximum for a listener's capacity
    response_windows: list[int] = Field(default_factory=lambda: [10, 30, 60, 120])
    breach_deduction_pct: int = 5
    breach_cap_pct: int = 50
    disappear_minutes: int = 10
    no_show_minutes: int = 5
    end_notice_minutes: int = 5
    dispute_window_hours: int = 24
    schedule_ahead_days: int = 7
    sla_tick_seconds: float = 1.0
    # Gifts: optional, after a session, capped, refundable within the dispute window.
    gift_max_fen: int = 20000
    gift_max_pct_of_order: int = 50
    # Spending protection.
    budget_warn_pct: int = 80
    late_night_confirm_fen: int = 20000  # purchases above this between 00:00 and 06:00 …
    late_night_hours: tuple[int, int] = (0, 6)
    late_night_pause_seconds: int = 10  # … need a second confirmation after this pause

    # ---- AI companion (issue 5).  Engine: skills (built in, default) | openai
    # (any OpenAI-compatible /chat/completions endpoint) | gguf (optional extra).
    companion_engine: str = "skills"
    companion_openai_base_url: str = ""  # e.g. http://127.0.0.1:11434/v1 (Ollama), https://api.deepseek.com/v1
    companion_openai_model: str = ""
    companion_openai_api_key: str = ""
    companion_gguf_path: str = ""
    companion_connect_timeout: float = 5.0
    companion_first_token_timeout: float = 20.0
    companion_idle_timeout: float = 20.0  # between two streamed chunks
    companion_total_timeout: float = 90.0
    companion_retries: int = 2
    companion_max_tokens: int = 400
    companion_max_reply_chars: int = 1200
    companion_stream_delay_ms: int = 25  # pacing of the skills engine's streamed chunks
    companion_daily_turns: int = 300  # platform soft limit per seeker per day (never during a crisis)
    companion_pause_after_minutes: int = 120  # suggest a pause after this much continuous use
    companion_break_minutes: int = 30  # a gap this long ends "continuous" use
    companion_nudge_every: int = 9  # turns between gentle nudges toward people in real life

    # The platform's address as payers and the payment gateway reach it, e.g.
    # https://miaohui.example.cn; payment callbacks go there.  Empty: the address
    # this server is listening on (the demo).  Never taken from a request's Host.
    public_url: str = ""

    # Allowed browser origins for WebSockets and unsafe requests; empty means
    # "same host as the request" only.
    allowed_origins: list[str] = Field(default_factory=list)

    # The safety step's side work in processes of its own: the risk model on
    # the message path (batched, after COMMIT) and risk-case records
    # (docs/performance.md).  -1 = auto: on when the machine has two or more
    # CPUs, else off; 0 = off, everything in this process (the test suite's
    # servers, to start fast); any positive number = on (one risk worker:
    # batches are assessed in order, each with the history the last one left).
    safety_workers: int = -1
    # The risk worker runs at this nice level, so the kernel runs the event
    # loop first whenever both want a core: the risk model is background work
    # to the message path.  19 rather than 10: at 10 the loop still waited
    # for a core behind a worker batch often enough to set the p99 (9.2 → 6.9
    # ms at 1,000 msg/s with 19; docs/performance.md).  The case recorder is
    # not niced: it holds SQLite's write lock, and the writer waits for it.
    safety_workers_nice: int = 19

    # ---- Safety in the product (issue 4).  The hotline card a seeker sees at
    # plan / imminent risk: the national lines, plus ``regional_hotlines[hotline_region]``
    # (e.g. MIAOHUI_REGIONAL_HOTLINES='{"上海": [{"name": "…", "number": "…"}]}').
    hotlines: list[dict[str, str]] = Field(default_factory=lambda: [
        {"name": "全国心理援助热线", "number": "12356", "note": "24 小时"},
        {"name": "北京心理危机研究与干预中心", "number": "010-82951332", "note": "24 小时"},
        {"name": "希望24热线", "number": "400-161-9995", "note": "24 小时"},
        {"name": "报警", "number": "110", "note": "有人身危险时"},
        {"name": "急救", "number": "120", "note": "已受伤或服药时"},
    ])
    regional_hotlines: dict[str, list[dict[str, str]]] = Field(default_factory=dict)
    hotline_region: str = ""
    # Guardian mode: while a case is open, a held order is looked at again this often
    # (resolving the case asks for a look at once); the platform pays at most this much extra time.
    guardian_recheck_seconds: float = 30.0
    guardian_pay_cap_minutes: int = 240

    # ---- Trust and matching (issue 6).  Real-name checks, proofs, training.
    verification_provider: str = "sandbox"  # the only one shipped; a real provider plugs in behind the same interface
    identity_valid_days: int = 1095  # a real-name check is redone after this
    identity_max_failures: int = 5  # failed real-name attempts per user per 24 h
    training_valid_days: int = 365  # the course is retaken yearly
    qualification_valid_days: int = 730  # default validity an admin gives a verified proof
    proof_max_bytes: int = 5 * 1024 * 1024
    proof_max_per_listener: int = 8
    review_max_chars: int = 500

    # ---- 关闭页面后也提醒: Web Push (push/).  Subscriptions may only point at
    # these push services (the server POSTs to the endpoint a browser gave:
    # anything else would let a user aim the server at an internal address).
    # A host, or ".suffix" for a vendor's subdomains.
    push_enabled: bool = True
    push_services: list[str] = Field(default_factory=lambda: [
        "fcm.googleapis.com", "updates.push.services.mozilla.com", "web.push.apple.com", ".notify.windows.com",
    ])
    # Further push services by exact origin ("https://push.example.org",
    # "http://127.0.0.1:9000" for a test or self-hosted one; http only here).
    push_extra_origins: list[str] = Field(default_factory=list)
    # RFC 8292's contact for push services that need to reach the operator.
    vapid_subject: str = "mailto:support@miaohui.example"
    push_cooldown_seconds: float = 60.0  # at most one notice per person and conversation this often
    push_max_devices: int = 10  # per person; the oldest subscription gives way

    @property
    def effective_safety_workers(self) -> int:
        if self.safety_workers >= 0:
            return self.safety_workers
        return 1 if (os.cpu_count() or 1) >= 2 else 0

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @property
    def secure_cookies(self) -> bool:
        return self.cookie_secure if self.cookie_secure is not None else self.is_production

    @property
    def sandbox_payments_enabled(self) -> bool:
        return self.sandbox_payments if self.sandbox_payments is not None else not self.is_production

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


def uvicorn_ws(settings: Settings):
    """The ``ws`` argument for uvicorn: :class:`DirectProtocol` for
    ``direct``, else uvicorn's own name for an implementation."""
    if settings.ws_impl == "direct":
        from miaohui.chat.wsdirect import DirectProtocol

        return DirectProtocol
    return settings.ws_impl
