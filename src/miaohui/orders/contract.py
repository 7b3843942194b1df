"""The 秒回 contract: the terms shown before payment, stored immutably with
the order, and the settlement arithmetic that follows from them.

Everything here is a pure function of the contract copy (never of today's
settings), so an order bought under one set of thresholds is settled under
the same ones even after the platform changes them.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime

from miaohui.orders.pricing import KIND_LABELS, Quote, Tariff, value_of

# Reasons that refund the time the listener did not serve.
REFUND_UNSERVED = ("disappeared", "listener_ended", "blocked", "suspended")
END_REASON_LABELS = {
    "completed": "服务完成",
    "disappeared": "倾听师失联（10分钟未回复）",
    "no_show": "倾听师未到场",
    "listener_ended": "倾听师提前结束",
    "blocked": "倾听师拉黑",
    "seeker_ended": "你提前结束",
    "suspended": "倾听师被平台暂停服务",
}


def build(settings, quote: Quote, *, window_s: int, listener: dict, seeker_id: str) -> dict:
    s = settings
    terms = {
        "version": 1,
        "parties": {"seeker_id": seeker_id, "listener_id": listener["user_id"], "listener_name": listener["display_name"]},
        "kind": quote.kind,
        "kind_label": KIND_LABELS[quote.kind],
        "price": quote.to_dict(),
        "tariff": {
            "timezone": s.timezone, "night_start_hour": s.night_start_hour, "night_end_hour": s.night_end_hour,
            "night_surcharge_pct": s.night_surcharge_pct,
        },
        "response_window_s": window_s,
        "breach_deduction_pct": s.breach_deduction_pct,
        "breach_cap_pct": s.breach_cap_pct,
        "disappear_minutes": s.disappear_minutes,
        "no_show_minutes": s.no_show_minutes,
        "end_notice_minutes": s.end_notice_minutes,
        "dispute_window_hours": s.dispute_window_hours,
        "commission_pct": s.commission_pct,
    }
    terms["text"] = text(terms)
    return terms


def text(t: dict) -> list[str]:
    """The contract in plain Chinese, one clause per line."""
    w = t["response_window_s"]
    price = t["price"]["total_fen"] / 100
    return [
        f"本订单是你与倾听师「{t['parties']['listener_name']}」之间、经由秒回平台订立的倾听服务合同，"
        "不是赠与；费用由平台托管，服务完成后才结算给倾听师。",
        f"服务：{t['kind_label']}文字倾诉，费用 ¥{price:.2f}（夜间 {t['tariff']['night_start_hour']}:00–"
        f"{t['tariff']['night_end_hour']}:00 按日间价的 {100 + t['tariff']['night_surcharge_pct']}% 计）。",
        f"秒回承诺：服务期间你的每条消息，倾听师须在 {w} 秒内回复（以服务器时间计）；"
        f"超时一次扣减订单金额的 {t['breach_deduction_pct']}% 赔付给你，最多 {t['breach_cap_pct']}%。",
        f"失联：你的消息 {t['disappear_minutes']} 分钟无回复，订单提前结束，未服务时长全额退款（另计超时赔付）。",
        f"未到场：开始后 {t['no_show_minutes']} 分钟内倾听师未发出消息，全额退款。",
        "倾听师提前结束、拉黑你或被平台暂停服务：未服务时长全额退款；尚未开始的订单全额退款。",
        f"结束后 {t['dispute_window_hours']} 小时内可申诉，由督导依据服务器记录裁决；期满自动结算，"
        f"平台从倾听师所得中收取 {t['commission_pct']}% 服务费。",
        "消息全程加密存储并以哈希链存证，任何改动都可被检测。",
    ]


def digest(terms: dict) -> str:
    return hashlib.sha256(json.dumps(terms, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def _windows(order) -> list[tuple[datetime, datetime]]:
    return [(datetime.fromisoformat(a), datetime.fromisoformat(b)) for a, b in order.windows]


def served_windows(order, until: datetime) -> list[tuple[datetime, datetime]]:
    return [(a, min(b, until)) for a, b in _windows(order) if a < until]


def value_at_agreed_rate(order, windows: list[tuple[datetime, datetime]]) -> int:
    """What ``windows`` of time are worth at the order's agreed rate (its base,
    night rule and discount, from the contract copy)."""
    c = order.contract
    t = c["tariff"]
    tariff = Tariff(t["timezone"], t["night_start_hour"], t["night_end_hour"], t["night_surcharge_pct"])
    return value_of(windows, c["price"]["base_fen_per_hour"], tariff, c["price"]["discount_pct"])


def outcome(order, *, refund_override: int | None = None, at: datetime | None = None) -> dict:
    """Who gets what, in fen.  ``refund_override`` is a supervisor's dispute
    decision (total refund); otherwise the contract decides.  ``at`` is the
    end used for an order still running (for a live estimate)."""
    c = order.contract
    price = order.price_fen
    if order.end_reason == "no_show" or order.status == "refunded":
        return {"price": price, "unserved": price, "compensation": 0, "refund": price, "commission": 0,
                "listener_net": 0, "breaches": order.breaches}
    unserved = 0
    ended = order.ended_at or at
    if order.end_reason in REFUND_UNSERVED and ended is not None:
        unserved = max(0, price - value_at_agreed_rate(order, served_windows(order, ended)))
    per = price * c["breach_deduction_pct"] // 100
    compensation = min(order.breaches * per, price * c["breach_cap_pct"] // 100, price - unserved)
    refund = unserved + compensation
    if refund_override is not None:
        refund = max(0, min(price, refund_override))
    gross = price - refund
    commission = (gross * c["commission_pct"] + 50) // 100
    return {"price": price, "unserved": unserved, "compensation": compensation if refund_override is None else
            max(0, refund - unserved), "refund": refund, "commission": commission,
            "listener_net": gross - commission, "breaches": order.breaches}
