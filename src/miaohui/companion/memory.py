"""What the companion may keep about a person, and how it notices it.

Only three kinds, each visible (and editable, deletable) on the memory page:

* ``name`` — what they want to be called (叫我小雨);
* ``fact`` — something about their life they told (我是大三学生, 我养了一只猫);
* ``preference`` — how they like to be talked to (别给我建议, 说话直接一点).

Extraction is a small pattern table over the seeker's own sentences; nothing
is inferred about health, and contact details never get here (the boundary
scan masks them before anything is stored).  A seeker can switch memory off.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from miaohui.nlp.text import normalise

KINDS = {"name": "称呼", "fact": "关于你", "preference": "你的偏好"}
MAX_TEXT = 80


@dataclass(frozen=True)
class Found:
    kind: str
    text: str


_RULES: tuple[tuple[str, re.Pattern, str], ...] = (
    ("name", re.compile(r"(?:叫我|你可以叫我|我的名字是|我叫)([\u4e00-\u9fffa-z]{1,6}?)(?:就好|就行|吧|啊|哦|呀|[,，。!！~ ]|$)"), "{0}"),
    ("fact", re.compile(r"我是(?:一名|一个|个)?((?:大[一二三四]|研[一二三]|高[一二三]|初[一二三])?(?:学生|研究生|程序员|老师|护士|医生|"
                        r"设计师|宝妈|上班族|打工人|销售|会计|工程师|自由职业者?))"), "是{0}"),
    ("fact", re.compile(r"我(养了|有)(一只|一条|两只|只)?(猫|狗|小猫|小狗|仓鼠|兔子)(叫([\u4e00-\u9fffa-z]{1,6}))?"),
     "养了{2}{3}"),
    ("fact", re.compile(r"我(在|住在)([\u4e00-\u9fff]{2,6}?)(上学|上班|工作|读书)"), "在{1}{2}"),
    ("fact", re.compile(r"我(今年)?([1-9][0-9])岁"), "{1}岁"),
    ("preference", re.compile(r"(别|不要|不用)(给我|跟我讲|跟我说)?(建议|讲道理|说教|安慰我)"), "不想听{2}，更想被倾听"),
    ("preference", re.compile(r"(说话|你)?(直接一点|说实话|别绕弯子)"), "喜欢直接、诚实的说法"),
    ("preference", re.compile(r"我喜欢(听|看|画|写|跑步|散步|弹|唱)([\u4e00-\u9fff]{0,8})"), "喜欢{0}{1}"),
)


def extract(text: str) -> list[Found]:
    """Memories suggested by one seeker message (at most a few, deduplicated)."""
    t = normalise(text)
    out: list[Found] = []
    for kind, rx, fmt in _RULES:
        m = rx.search(t)
        if not m:
            continue
        groups = [g or "" for g in m.groups()]
        value = fmt.format(*groups).strip()
        if kind == "fact" and fmt.startswith("养了") and groups[4]:
            value = f"养了{groups[2]}，叫{groups[4]}"
        if value and len(value) <= MAX_TEXT and all(f.text != value for f in out):
            out.append(Found(kind, value))
    return out[:3]
