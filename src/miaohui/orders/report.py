"""Order reports: every reply latency, breaches, deductions and the chain
head, signed — and the check of a report against the database.

The report is the client's evidence.  Its ``chain`` section pins the
conversation's hash chain (see :mod:`miaohui.chat.evidence`) up to the last
message of the service; ``signature`` is an HMAC over the whole report with
the platform's secret, so neither side can edit a downloaded report, and
:func:`verify` recomputes chain and latencies from the database, so nobody
can edit the database without the report exposing it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from miaohui.chat import evidence
from miaohui.chat import service as chat
from miaohui.orders import contract as terms
from miaohui.orders import service
from miaohui.orders.models import Order
from miaohui.sla import engine


def _canonical(data: dict) -> bytes:
    return json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def sign(secret: str, data: dict) -> str:
    body = {k: v for k, v in data.items() if k != "signature"}
    return hmac.new(secret.encode(), _canonical(body), hashlib.sha256).hexdigest()


def _upto_seq(order: Order, rows) -> int:
    """The last message inside the service (its end, or now if running)."""
    end = order.ended_at or order.ends_at
    last = 0
    for seq, _sender, at in rows:
        if at <= end:
            last = seq
    return last


async def build(db: AsyncSession, ctx, order: Order) -> dict:
    rows = await chat.message_meta(db, order.conversation_id, 0)
    upto = _upto_seq(order, rows)
    chain_rows = await chat.evidence_rows(db, ctx.keyring, order.conversation_id, upto)
    ok, head, bad = evidence.verify(chain_rows)
    windows = service._windows(order)
    started = order.activated_at or order.starts_at
    in_service = [r for r in rows if started <= r[2] and r[0] <= upto]
    latencies = engine.message_latencies(in_service, windows=windows, seeker_id=order.seeker_id,
                                         listener_id=order.listener_id)
    turns = await service.turns_of(db, order.id)
    o = terms.outcome(order, at=ctx.clock.now())
    report = {
        "kind": "miaohui.order_report",
        "version": 1,
        "generated_at": ctx.clock.now().isoformat(),
        "order": service.summary(order, ctx.clock.now()),
        "contract": {"hash": order.contract_hash, "text": order.contract["text"],
                     "response_window_s": order.response_window_s},
        "messages": latencies,
        "turns": [
            {"first_seq": t.first_seq, "reply_seq": t.reply_seq, "asked_at": t.asked_at.isoformat(),
             "replied_at": t.replied_at.isoformat() if t.replied_at else None, "latency_ms": t.latency_ms,
             "breached": t.breached}
            for t in turns
        ],
        "breaches": order.breaches,
        "deductions": {
            "per_breach_fen": order.price_fen * order.contract["breach_deduction_pct"] // 100,
            "compensation_fen": o["compensation"], "unserved_fen": o["unserved"], "refund_fen": o["refund"],
            "commission_fen": o["commission"], "listener_net_fen": o["listener_net"],
        },
        "chain": {"conversation_id": order.conversation_id, "upto_seq": upto, "head": head.hex(),
                  "intact": ok, "first_bad_seq": bad},
    }
    report["signature"] = sign(ctx.settings.effective_secret_key, report)
    return report


async def verify(db: AsyncSession, keyring, secret: str, report: dict) -> dict:
    """Check a report against the database.  Returns ``{"ok": bool, "problems": [...]}``."""
    problems: list[str] = []
    if not hmac.compare_digest(str(report.get("signature", "")), sign(secret, report)):
        problems.append("signature: the report was altered or not issued by this platform")
    ch = report.get("chain") or {}
    conv_id = ch.get("conversation_id", "")
    upto = int(ch.get("upto_seq") or 0)
    rows = await chat.evidence_rows(db, keyring, conv_id, upto)
    if len(rows) != upto:
        problems.append(f"chain: {upto - len(rows)} message(s) missing up to seq {upto}")
    ok, head, bad = evidence.verify(rows)
    if not ok:
        problems.append(f"chain: stored chain broken at seq {bad} (a message was altered or removed)")
    if head.hex() != ch.get("head"):
        problems.append("chain: head differs from the report (history changed since the report)")
    order = await db.get(Order, (report.get("order") or {}).get("id", ""))
    if order is None:
        problems.append("order: not found")
    else:
        turns = {t.first_seq: t for t in await service.turns_of(db, order.id)}
        for t in report.get("turns", []):
            db_t = turns.get(t["first_seq"])
            if db_t is None or db_t.latency_ms != t["latency_ms"] or db_t.breached != t["breached"]:
                problems.append(f"turn {t['first_seq']}: latency or breach differs from the database")
        if order.breaches != report.get("breaches"):
            problems.append("breaches: count differs from the database")
    return {"ok": not problems, "problems": problems, "checked_messages": len(rows)}


def fmt_time(iso: str | None, tz) -> str:
    if not iso:
        return "—"
    return datetime.fromisoformat(iso).astimezone(tz).strftime("%m-%d %H:%M:%S")
