"""Baseline security headers on every HTTP response (API and static too).

Pure ASGI rather than ``BaseHTTPMiddleware``: it adds a few headers to the
response start message and never touches WebSocket traffic or bodies.
Served over HTTPS (``settings.secure_cookies``: production by default) it
adds HSTS too, so a browser never again sends a session cookie over plain
http to this host.
"""

from __future__ import annotations

BASELINE = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"same-origin")]


class SecurityHeaders:
    def __init__(self, app, hsts: bool = False) -> None:
        self.app = app
        self.headers = BASELINE + ([(b"strict-transport-security", b"max-age=31536000")] if hsts else [])

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in self.headers if k not in present]
                message = {**message, "headers": headers}
            await send(message)

        return await self.app(scope, receive, send_with_headers)
