"""Resident identity numbers (公民身份号码, GB 11643-1999) and legal names.

Pure functions, no I/O.  An 18-character number is::

    6 digits  address code (the first two: a province-level region)
    8 digits  date of birth, YYYYMMDD
    3 digits  sequence (odd for men, even for women)
    1 char    check character: ISO 7064 MOD 11-2 over the first 17 digits,
              "0"–"9" or "X" (for 10)

``check_id`` validates all of it and returns the parsed birth date; the
age rule (≥ 18 to serve as a listener, < 18 cannot buy) is applied by the
caller with the platform clock.  Nothing here keeps or logs a number.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
CHECK_CHARS = "10X98765432"  # index: weighted sum mod 11
# Province-level codes in use (GB/T 2260), plus 71/81/82 (Taiwan, Hong Kong,
# Macao) and 83 (residence permits for Taiwan residents).
PROVINCES = frozenset({
    11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46,
    50, 51, 52, 53, 54, 61, 62, 63, 64, 65, 71, 81, 82, 83,
})
ADULT_AGE = 18
_SHAPE = re.compile(r"^\d{17}[\dX]$")
# Han characters with the middle dot of minority and transliterated names (阿依古丽·买买提).
_NAME = re.compile(r"^[\u3400-\u4dbf\u4e00-\u9fff]+(?:[·•][\u3400-\u4dbf\u4e00-\u9fff]+)*$")


class IdError(ValueError):
    """Why a number was refused: ``code`` is stable, ``zh``/``en`` are shown."""

    def __init__(self, code: str, zh: str, en: str) -> None:
        super().__init__(en)
        self.code, self.zh, self.en = code, zh, en


@dataclass(frozen=True)
class ParsedId:
    number: str
    birth: date
    female: bool


def normalise_id(raw: str) -> str:
    """Spaces and hyphens dropped, full-width digits folded, ``x`` upper-cased."""
    out = []
    for c in raw or "":
        if "０" <= c <= "９":
            c = chr(ord(c) - 0xFEE0)
        if c in " -\u3000\t":
            continue
        out.append(c.upper() if c in "xXｘＸ" else c)
    return "".join(out).replace("Ｘ", "X")


def check_char(first17: str) -> str:
    return CHECK_CHARS[sum(int(d) * w for d, w in zip(first17, WEIGHTS, strict=True)) % 11]


def check_id(raw: str, today: date | None = None) -> ParsedId:
    """Validate shape, region, date of birth and check character."""
    number = normalise_id(raw)
    if not _SHAPE.match(number):
        raise IdError("id_format", "身份证号应为 18 位（最后一位可以是 X）", "an ID number has 18 characters")
    if int(number[:2]) not in PROVINCES:
        raise IdError("id_region", "身份证号的地区码无效", "unknown region code")
    try:
        birth = date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        raise IdError("id_birth_date", "身份证号中的出生日期不存在", "impossible date of birth") from None
    if birth.year < 1900 or (today is not None and birth > today):
        raise IdError("id_birth_date", "身份证号中的出生日期不合理", "implausible date of birth")
    if today is not None and age_on(birth, today) > 120:
        raise IdError("id_birth_date", "身份证号中的出生日期不合理", "implausible date of birth")
    if check_char(number[:17]) != number[17]:
        raise IdError("id_checksum", "身份证号校验位不正确，请核对后重新输入", "wrong check character")
    return ParsedId(number, birth, int(number[16]) % 2 == 0)


def age_on(birth: date, day: date) -> int:
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def adult_on(birth: date) -> date:
    """The day a person born on ``birth`` turns 18 (29 Feb → 1 Mar)."""
    try:
        return birth.replace(year=birth.year + ADULT_AGE)
    except ValueError:
        return date(birth.year + ADULT_AGE, 3, 1)


def check_name(raw: str) -> str:
    name = (raw or "").strip().replace(" ", "").replace("\u3000", "")
    if not 2 <= len(name) <= 30 or not _NAME.match(name):
        raise IdError("legal_name", "请输入身份证上的中文姓名（2–30 个字）", "enter the legal name as on the ID card")
    return name.replace("•", "·")


def make_id(region: str, birth: date, seq: int) -> str:
    """A well-formed number (for tests, the demo and the sandbox provider's fixtures)."""
    first17 = f"{region}{birth:%Y%m%d}{seq:03d}"
    return first17 + check_char(first17)


def mask_id(number: str) -> str:
    """What the owner may see of their own number: ``110105********002X``."""
    return number[:6] + "*" * 8 + number[14:] if len(number) == 18 else "*" * len(number)


def mask_name(name: str) -> str:
    return name[:1] + "*" * (len(name) - 1) if name else ""
