"""Directory filters and sorts over computed cards (pure).

Filters: topic, price range (day or night price), online now, response
window (committed at most W seconds), verified qualification (any, or one
kind), gender (only listeners who chose to show it can match), language,
the viewer's 收藏.
Sorts: ``recommended`` (the matching ranker with no request text: available
now, reply speed, rating), ``rating`` (Bayesian, so one 5-star review does
not beat forty 4.9s), ``price`` (cheapest first, by the chosen period),
``speed`` (measured 秒回率, then median reply, then the committed window).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from miaohui.listeners.service import GENDERS
from miaohui.matching import ranker
from miaohui.matching.profiles import candidate
from miaohui.verification.records import KINDS

SORTS = {"recommended": "推荐", "rating": "评分", "price": "价格", "speed": "回复速度"}
QUAL_ANY = "any"
QUAL_KINDS = {QUAL_ANY: "任一已核验资质", **{k: v.label for k, v in KINDS.items()}}
PRICE_RANGES = {"0-50": "¥50 以内", "50-100": "¥50–100", "100-200": "¥100–200", "200-": "¥200 以上"}  # yuan/hour
WINDOW_CHOICES = {"10": "10 秒内", "30": "30 秒内", "60": "1 分钟内"}


@dataclass(frozen=True)
class Filters:
    topic: str | None = None
    price_min_fen: int | None = None
    price_max_fen: int | None = None
    night: bool = False  # the price range applies to the night price
    online: bool = False
    window_s: int | None = None
    qualification: str | None = None  # "any" or a kind
    gender: str | None = None
    language: str | None = None
    sort: str = "recommended"
    favorites: bool = False  # only the viewer's 收藏 (cards carry ``favorite`` for a seeker)

    @property
    def active(self) -> bool:
        return any((self.favorites, self.topic, self.price_min_fen is not None, self.price_max_fen is not None, self.online,
                    self.window_s, self.qualification, self.gender, self.language))


def directory_filters(q: Mapping[str, str]) -> Filters:
    """Filters from the directory page's query string; unknown values are ignored, never an error."""
    lo = hi = None
    price = q.get("price", "")
    if price in PRICE_RANGES:
        a, _, b = price.partition("-")
        lo, hi = int(a) * 100 if a else None, int(b) * 100 if b else None
    qual = q.get("qual", "")
    return Filters(
        topic=(q.get("topic") or "").strip()[:20] or None,
        price_min_fen=lo, price_max_fen=hi, night=q.get("period") == "night",
        online=q.get("online") in ("1", "true", "on"),
        window_s=int(q["window"]) if q.get("window") in WINDOW_CHOICES else None,
        qualification=qual if qual in QUAL_KINDS else None,
        gender=q.get("gender") if q.get("gender") in GENDERS else None,
        language=(q.get("lang") or "").strip()[:20] or None,
        sort=q.get("sort") if q.get("sort") in SORTS else "recommended",
        favorites=q.get("fav") in ("1", "true", "on"),
    )


def _price(c: dict, night: bool) -> int:
    return c["night_price_per_hour_fen"] if night else c["price_per_hour_fen"]


def keep(c: dict, f: Filters) -> bool:
    p = _price(c, f.night)
    if f.favorites and not c.get("favorite"):
        return False
    if f.topic and f.topic not in c["topics"]:
        return False
    if f.price_min_fen is not None and p < f.price_min_fen:
        return False
    if f.price_max_fen is not None and p > f.price_max_fen:
        return False
    if f.online and not c["online_now"]:
        return False
    if f.window_s and (c["response_window_s"] is None or c["response_window_s"] > f.window_s):
        return False
    if f.qualification == QUAL_ANY and not c["badges"]:
        return False
    if f.qualification and f.qualification != QUAL_ANY and not any(b["kind"] == f.qualification for b in c["badges"]):
        return False
    if f.gender and c.get("gender") != f.gender:
        return False
    return not (f.language and f.language not in c["languages"])


def _speed_key(c: dict) -> tuple:
    st = c["stats"]
    measured = st["instant_rate"] is not None and st["turns"] >= ranker.MIN_TURNS_FOR_RATE
    return (
        -(st["instant_rate"] if measured else -1.0),
        st["median_reply_ms"] if measured and st["median_reply_ms"] is not None else 10**9,
        c["response_window_s"] or 10**6,
    )


def apply(cards: list[dict], f: Filters) -> list[dict]:
    out = [c for c in cards if keep(c, f)]
    if f.sort == "rating":
        out.sort(key=lambda c: (-ranker.rating(candidate(c)), -c["review_count"], not c["online_now"]))
    elif f.sort == "price":
        out.sort(key=lambda c: (_price(c, f.night), not c["online_now"]))
    elif f.sort == "speed":
        out.sort(key=lambda c: (*_speed_key(c), not c["online_now"]))
    else:
        ranked = ranker.rank([candidate(c) for c in out], ranker.Request(night=f.night))
        order = {r.candidate.listener_id: i for i, r in enumerate(ranked)}
        # Listeners who cannot take orders yet are not ranked; they come last, online first.
        out.sort(key=lambda c: (order.get(c["user_id"], len(order)), not c["online_now"]))
    return out


def distinct(cards: list[dict], key: str) -> list[str]:
    """Every value of a list field (topics, languages) across the cards, first seen first."""
    return list(dict.fromkeys(v for c in cards for v in c[key]))
