"""``miaohui keys new | status | rotate``: rotating the key ring that
encrypts message bodies and other stored text.

1. ``miaohui keys new`` makes a key.  With ``MIAOHUI_MESSAGE_KEYS`` set it
   prints the key, to put *first* in that variable (keep the old ones after
   it); with the local secrets file (development) it adds it there.
2. Restart every process, so new writes use it.
3. ``miaohui keys rotate`` re-encrypts everything older (batches, safe beside
   live traffic, safe to stop and re-run).
4. ``miaohui keys status`` shows rows per key; remove a key from the ring once
   it lists it under ``unused_keys``.  Exit status 1 while rows are under a key
   the ring lacks.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys

from miaohui.config import Settings
from miaohui.core.crypto import KeyRing, generate_key_spec


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("keys", help="encryption keys: new, status, rotate")
    ksub = p.add_subparsers(dest="keys_cmd", required=True)
    ksub.add_parser("new", help="make a new key (first in the ring)")
    ksub.add_parser("status", help="rows per key in every store; prints JSON")
    p_rot = ksub.add_parser("rotate", help="re-encrypt everything under the active key; prints JSON")
    p_rot.add_argument("--batch", type=int, default=500, help="rows per transaction (default 500)")


def _next_id(ids: tuple[str, ...]) -> str:
    n = max((int(m.group(1)) for k in ids if (m := re.fullmatch(r"k(\d+)", k))), default=0)
    return f"k{n + 1}"


def _new(settings: Settings) -> int:
    if settings.message_keys or settings.is_production:
        # The ring lives in the environment (a production server's first key too).
        ids = KeyRing(settings.message_keys).ids if settings.message_keys else ()
        print(generate_key_spec(_next_id(ids)))
        print("把这一项放在 MIAOHUI_MESSAGE_KEYS 的最前面（旧密钥留在后面，用逗号分隔），重启所有进程，"
              "再运行 miaohui keys rotate。\n"
              "Put it first in MIAOHUI_MESSAGE_KEYS (old keys after it, comma-separated), restart every "
              "process, then run: miaohui keys rotate", file=sys.stderr)
        return 0
    ring = KeyRing(settings.effective_message_keys)  # the local secrets file, made on first use
    spec = generate_key_spec(_next_id(ring.ids))
    path = settings.data_dir / "secrets.json"
    data = json.loads(path.read_text())
    data["message_keys"] = spec + "," + data["message_keys"]
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    kid = spec.partition(":")[0]
    print(f"新密钥 {kid} 已加入 {path}（排在最前）。重启服务后运行 miaohui keys rotate。\n"
          f"Added key {kid} first in {path}. Restart the server, then run: miaohui keys rotate")
    return 0


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.keys_cmd == "new":
        return _new(settings)
    from miaohui.core.db import make_engine, make_sessionmaker
    from miaohui.keys import service

    ring = KeyRing(settings.effective_message_keys)
    if args.keys_cmd == "rotate" and not 1 <= args.batch <= 10_000:
        print("--batch 应在 1 到 10000 之间 / --batch must be 1..10000", file=sys.stderr)
        return 2

    async def go():
        engine = make_engine(settings.resolved_database_url)
        try:
            sm = make_sessionmaker(engine, keyring=ring)
            if args.keys_cmd == "rotate":
                report = await service.rotate(sm, ring, settings.data_dir, batch=args.batch)
            else:
                report = None
            async with sm() as db:
                return report, await service.status(db, ring, settings.data_dir)
        finally:
            await engine.dispose()

    report, status = asyncio.run(go())
    out = status if report is None else {"rotated": report, "status": status}
    print(json.dumps(out, ensure_ascii=False, indent=2))
    if status["missing_keys"]:
        print(f"有数据使用了密钥环里没有的密钥：{', '.join(status['missing_keys'])}，请把它们加回 MIAOHUI_MESSAGE_KEYS。\n"
              f"Rows are under keys the ring lacks: {', '.join(status['missing_keys'])}; put them back.",
              file=sys.stderr)
        return 1
    return 0
