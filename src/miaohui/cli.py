"""The ``miaohui`` command: serve, migrate, demo."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from miaohui.config import Settings


def _migrate(settings: Settings) -> None:
    from miaohui.migrate import upgrade

    upgrade(settings.resolved_database_url)


def _serve(settings: Settings, host: str, port: int) -> None:
    import uvicorn

    uvicorn.run(
        "miaohui.app:create_app",
        ws=settings.ws_impl,
        factory=True,
        host=host,
        port=port,
        ws_max_size=256 * 1024,
        # Chat frames are small; per-message deflate would cost CPU and ~300 KB
        # of zlib state per socket for almost no saving.
        ws_per_message_deflate=False,
        log_level="info",
        # Access logs carry paths only; message text never reaches a log.
        access_log=False,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="miaohui", description="秒回 instant-reply emotional support platform")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_serve = sub.add_parser("serve", help="run the web server")
    p_serve.add_argument("--host", default=None)
    p_serve.add_argument("--port", type=int, default=None)
    p_serve.add_argument("--no-migrate", action="store_true", help="do not upgrade the database first")
    sub.add_parser("migrate", help="upgrade the database schema to the latest revision")
    p_demo = sub.add_parser("demo", help="migrate, seed demo accounts and data, then serve")
    p_demo.add_argument("--host", default=None)
    p_demo.add_argument("--port", type=int, default=None)
    p_demo.add_argument("--no-serve", action="store_true", help="seed only")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Settings()
    if args.cmd in ("serve", "demo"):
        # Fail fast on missing production secrets; create local ones on first run.
        _ = settings.effective_secret_key, settings.effective_message_keys
    if args.cmd == "migrate":
        _migrate(settings)
        print("数据库已是最新 / database is up to date")
        return
    if args.cmd == "serve":
        if not args.no_migrate:
            _migrate(settings)
        _serve(settings, args.host or settings.host, args.port or settings.port)
        return
    if args.cmd == "demo":
        from miaohui.demo import print_logins, seed

        _migrate(settings)
        asyncio.run(seed(settings))
        host, port = args.host or settings.host, args.port or settings.port
        print_logins(f"http://{host}:{port}")
        sys.stdout.flush()
        if not args.no_serve:
            _serve(settings, host, port)


if __name__ == "__main__":
    main()
