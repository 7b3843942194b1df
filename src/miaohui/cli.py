"""The ``miaohui`` command: serve, migrate, demo, and tools (orders, keys, safety, nlp)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from miaohui.config import Settings, uvicorn_ws


def _migrate(settings: Settings) -> None:
    from miaohui.migrate import upgrade

    # The key ring: revisions that encrypt existing text need it (0010).
    upgrade(settings.resolved_database_url, keys=settings.effective_message_keys)


def _serve(settings: Settings, host: str, port: int) -> None:
    import uvicorn

    uvicorn.run(
        "miaohui.app:create_app",
        ws=uvicorn_ws(settings),
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


def _verify_report(settings: Settings, path: str) -> int:
    """Check an order report (JSON) against the database: signature, hash
    chain, reply latencies.  Prints JSON; exit status 0 only if it holds."""
    import json

    from miaohui.core.crypto import KeyRing
    from miaohui.core.db import make_engine, make_sessionmaker
    from miaohui.orders import report

    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        print(json.dumps({"ok": False, "problems": [f"cannot read report: {type(e).__name__}"]}))
        return 2

    async def go():
        engine = make_engine(settings.resolved_database_url)
        try:
            async with make_sessionmaker(engine)() as db:
                return await report.verify(db, KeyRing(settings.effective_message_keys),
                                           settings.effective_secret_key, data)
        finally:
            await engine.dispose()

    result = asyncio.run(go())
    print(json.dumps(result, ensure_ascii=False, indent=2))
    return 0 if result["ok"] else 1


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
    p_orders = sub.add_parser("orders", help="order tools")
    orders_sub = p_orders.add_subparsers(dest="orders_cmd", required=True)
    p_verify = orders_sub.add_parser("verify", help="check an order report (JSON) against the database")
    p_verify.add_argument("report")
    from miaohui.keys.cli import add_parser as add_keys_parser
    from miaohui.nlp.cli import add_parser as add_nlp_parser
    from miaohui.safety.cli import add_parser as add_safety_parser

    add_safety_parser(sub)
    add_nlp_parser(sub)
    add_keys_parser(sub)
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Settings()
    if args.cmd in ("serve", "demo"):
        # Fail fast on missing production secrets; create local ones on first run.
        _ = settings.effective_secret_key, settings.effective_message_keys
    if args.cmd == "orders":
        sys.exit(_verify_report(settings, args.report))
    if args.cmd == "keys":
        from miaohui.keys.cli import run as run_keys

        sys.exit(run_keys(args, settings))
    if args.cmd == "nlp":
        from miaohui.nlp.cli import run as run_nlp

        sys.exit(run_nlp(args))
    if args.cmd == "safety":
        from miaohui.safety.cli import run as run_safety

        sys.exit(run_safety(args))
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
