"""A push service (the part of Google's FCM or Mozilla's autopush the platform
talks to), speaking RFC 8030 over real HTTP on a local port, and the browser
side of a subscription.

The service checks what a real one checks — the VAPID JWT's signature,
audience, expiry and key (RFC 8292), ``Content-Encoding: aes128gcm``, a TTL —
and keeps each message's encrypted body.  It cannot read them, like a real
one; :class:`Device` (the browser's keys) decrypts them (RFC 8291).
Endpoints under ``/gone/`` answer 410 like an unsubscribed browser's;
under ``/busy/`` 503 twice, then 201.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography.hazmat.primitives.asymmetric import ec

from miaohui.push import webpush


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    vapid: dict


@dataclass
class FakePushService:
    port: int
    received: list[Received] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)
    busy_left: dict[str, int] = field(default_factory=dict)
    app_key: bytes | None = None  # the application-server key subscriptions were made with, once known

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakePushService:
        service = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):  # quiet
                pass

            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                code, why = service.check(self.path, dict(self.headers), body)
                self.send_response(code)
                self.send_header("Content-Length", "0")
                if code == 201:
                    self.send_header("Location", f"{service.origin}/m/{len(service.received)}")
                self.end_headers()
                if why:
                    service.refused.append((self.path, why))

        self._httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def check(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, str]:
        h = {k.lower(): v for k, v in headers.items()}
        try:
            claims, key = webpush.verify_vapid(h.get("authorization", ""))
        except (ValueError, KeyError) as e:
            return 401, f"vapid: {e}"
        if claims.get("aud") != self.origin:
            return 403, "vapid audience"
        if not time.time() < claims.get("exp", 0) <= time.time() + 24 * 3600:
            return 403, "vapid expiry"
        if self.app_key is not None and key != self.app_key:
            return 403, "not the key this subscription was made with"
        if h.get("content-encoding") != "aes128gcm" or not h.get("ttl", "").isdigit():
            return 400, "encoding or ttl"
        if len(body) > 4096:
            return 413, "too large"
        if path.startswith("/gone/"):
            return 410, ""
        if path.startswith("/busy/"):
            left = self.busy_left.setdefault(path, 2)
            if left:
                self.busy_left[path] = left - 1
                return 503, ""
        self.received.append(Received(path, h, body, claims))
        return 201, ""

    def for_device(self, device: Device) -> list[Received]:
        return [r for r in self.received if r.path == device.path]

    def wait_for(self, device: Device, n: int = 1, timeout: float = 10.0) -> list[dict]:
        """The first ``n`` notices ``device`` got, decrypted as its browser would."""
        deadline = time.time() + timeout
        while len(self.for_device(device)) < n:
            if time.time() > deadline:
                raise AssertionError(f"{device.path}: {len(self.for_device(device))} of {n} pushes; refused {self.refused}")
            time.sleep(0.02)
        return [device.read(r.body) for r in self.for_device(device)[:n]]


@dataclass
class Device:
    """A browser's push subscription: its endpoint at the service and its keys."""

    service: FakePushService
    kind: str = "sub"
    key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    auth: bytes = field(default_factory=lambda: os.urandom(16))
    name: str = field(default_factory=lambda: os.urandom(12).hex())

    @property
    def path(self) -> str:
        return f"/{self.kind}/{self.name}"

    @property
    def endpoint(self) -> str:
        return self.service.origin + self.path

    def subscription(self) -> dict:
        """What ``PushSubscription.toJSON()`` gives."""
        return {"endpoint": self.endpoint, "expirationTime": None,
                "keys": {"p256dh": webpush.b64u(webpush.public_bytes(self.key)), "auth": webpush.b64u(self.auth)}}

    def read(self, body: bytes) -> dict:
        return json.loads(webpush.decrypt(body, self.key, self.auth))
