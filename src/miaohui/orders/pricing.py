"""Service periods and prices — pure functions of time and settings.

A package is a list of service *windows* (``[start, end)`` in UTC): one for
30 min / 1 h / 包夜 / 包天, thirty daily ones for 包月.  The price of any
stretch of time is the listener's daytime hourly base, pro-rated to the
second, with night seconds (23:00–07:00 Asia/Shanghai by default) at
``100 + night_surcharge_pct`` percent.  All arithmetic is integer fen; one
rounding (half up) at the end of each step, so a quote, a receipt and a
refund of unserved time always agree.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

KINDS = ("30m", "1h", "night", "day", "month")
KIND_LABELS = {"30m": "30分钟", "1h": "1小时", "night": "包夜", "day": "包天", "month": "包月"}
MONTH_DAYS = 30


@dataclass(frozen=True)
class Tariff:
    """The pricing rules in force (copied into each order's contract)."""

    timezone: str = "Asia/Shanghai"
    night_start_hour: int = 23
    night_end_hour: int = 7
    night_surcharge_pct: int = 200

    @classmethod
    def from_settings(cls, s) -> Tariff:
        return cls(s.timezone, s.night_start_hour, s.night_end_hour, s.night_surcharge_pct)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def night_label(self) -> str:
        """``23:00–07:00``, local time, as pages print it."""
        return f"{self.night_start_hour:02d}:00–{self.night_end_hour:02d}:00"

    def night_hourly(self, base: int) -> int:
        """What one whole night hour costs at daytime ``base`` fen/hour: the
        figure a quote charges for it, so the price shown is the price paid."""
        return _div_round(base * (100 + self.night_surcharge_pct), 100)

    def is_night_hour(self, hour: int) -> bool:
        a, b = self.night_start_hour, self.night_end_hour
        return (hour >= a or hour < b) if a > b else (a <= hour < b)

    @property
    def night_hours(self) -> frozenset[int]:
        return frozenset(h for h in range(24) if self.is_night_hour(h))


def _div_round(num: int, den: int) -> int:
    """Integer division rounding half up (non-negative operands)."""
    return (2 * num + den) // (2 * den)


def split_day_night(start: datetime, end: datetime, tariff: Tariff) -> tuple[int, int]:
    """Seconds of ``[start, end)`` that fall in day and in night hours (local time)."""
    tz = tariff.tz
    day = night = 0
    t = start
    while t < end:
        local = t.astimezone(tz)
        # The next local hour boundary (hours are the unit of the night rule).
        nxt_local = (local.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1))
        nxt = min(end, nxt_local.astimezone(UTC))
        secs = (nxt - t).total_seconds()
        if tariff.is_night_hour(local.hour):
            night += secs
        else:
            day += secs
        t = nxt
    return round(day), round(night)


@dataclass(frozen=True)
class Quote:
    kind: str
    base_fen_per_hour: int
    night_multiplier_pct: int
    day_seconds: int
    night_seconds: int
    day_fen: int
    night_fen: int
    subtotal_fen: int
    discount_pct: int
    discount_fen: int
    total_fen: int
    starts_at: datetime
    ends_at: datetime
    windows: list[tuple[datetime, datetime]]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["kind_label"] = KIND_LABELS[self.kind]
        d["starts_at"] = self.starts_at.isoformat()
        d["ends_at"] = self.ends_at.isoformat()
        d["windows"] = [[a.isoformat(), b.isoformat()] for a, b in self.windows]
        return d


def _priced(windows, base: int, tariff: Tariff) -> tuple[int, int, int, int]:
    """``(day_seconds, night_seconds, day_fen, night_fen)`` of the windows."""
    day = night = 0
    for a, b in windows:
        if b > a:
            d, n = split_day_night(a, b, tariff)
            day += d
            night += n
    mult = 100 + tariff.night_surcharge_pct
    return day, night, _div_round(base * day, 3600), _div_round(base * night * mult, 3600 * 100)


def value_of(windows, base: int, tariff: Tariff, discount_pct: int = 0) -> int:
    """Price of the given windows at ``base`` fen/hour after the discount
    (the same arithmetic as :func:`quote`, so refunds match quotes)."""
    _, _, day_fen, night_fen = _priced(windows, base, tariff)
    subtotal = day_fen + night_fen
    return subtotal - _div_round(subtotal * discount_pct, 100)


def quote(kind: str, base: int, windows, tariff: Tariff, discount_pct: int) -> Quote:
    day, night, day_fen, night_fen = _priced(windows, base, tariff)
    subtotal = day_fen + night_fen
    discount = _div_round(subtotal * discount_pct, 100)
    return Quote(
        kind=kind, base_fen_per_hour=base, night_multiplier_pct=100 + tariff.night_surcharge_pct, day_seconds=day,
        night_seconds=night, day_fen=day_fen, night_fen=night_fen, subtotal_fen=subtotal, discount_pct=discount_pct,
        discount_fen=discount, total_fen=subtotal - discount, starts_at=windows[0][0], ends_at=windows[-1][1],
        windows=list(windows),
    )


def windows_for(
    kind: str, start: datetime, tariff: Tariff, *, daily_start: str = "21:00", daily_minutes: int = 60
) -> list[tuple[datetime, datetime]]:
    """The service windows of a package bought for ``start`` (UTC).

    - 30m / 1h / 包天: from ``start`` for 30 min / 60 min / 24 h.
    - 包夜: tonight's night (start of the night hours to their end, local);
      bought during the night it runs from now to the morning, pro-rated.
    - 包月: the listener's daily hours (``daily_start`` local, ``daily_minutes``
      long) on 30 consecutive days, the first being today's if it has not
      ended yet (joined late: from now).
    """
    start = start.astimezone(UTC).replace(microsecond=0)
    if kind == "30m":
        return [(start, start + timedelta(minutes=30))]
    if kind == "1h":
        return [(start, start + timedelta(hours=1))]
    if kind == "day":
        return [(start, start + timedelta(hours=24))]
    tz = tariff.tz
    local = start.astimezone(tz)
    if kind == "night":
        ns, ne = tariff.night_start_hour, tariff.night_end_hour
        if tariff.is_night_hour(local.hour):
            # Already night: run to this night's end.
            end_day = local.date() if local.hour < ne else local.date() + timedelta(days=1)
            end = datetime.combine(end_day, time(ne), tz)
            return [(start, end.astimezone(UTC))]
        begin = datetime.combine(local.date(), time(ns), tz)
        end_day = begin.date() + timedelta(days=1) if ns > ne else begin.date()
        end = datetime.combine(end_day, time(ne), tz)
        return [(begin.astimezone(UTC), end.astimezone(UTC))]
    if kind == "month":
        hh, mm = (int(x) for x in daily_start.split(":"))
        out = []
        day = local.date()
        first = datetime.combine(day, time(hh, mm), tz)
        if first + timedelta(minutes=daily_minutes) <= local:
            day += timedelta(days=1)
        for i in range(MONTH_DAYS):
            a = datetime.combine(day + timedelta(days=i), time(hh, mm), tz).astimezone(UTC)
            b = a + timedelta(minutes=daily_minutes)
            out.append((max(a, start), b))
        return out
    raise ValueError(kind)
