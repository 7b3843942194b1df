"""Boundary signals in chat messages, from either side, as data.

Two families, each a table of :class:`Signal` rows (a regular expression over
a position-preserving normal form of the text, with examples that must match
and near misses that must not — both are tested):

* **attachment / transference** (``我爱上你了``, ``你是唯一懂我的人``, ``想见你``,
  ``做我女朋友``): the listener gets a boundary note, supervision gets a flag;
* **off-platform contact and payment outside the escrow** (``加微信``, ``vx``,
  ``私下转账``, ``备注自愿赠与``, ``支付宝账号``, ``QQ``, phone numbers): both
  sides get a warning, supervision a flag — this is how clients get cheated.

Contact details themselves are *masked* in the body that is stored and
delivered (:data:`MASKS`: mobile numbers, also spaced out or written in
Chinese digits, landlines, ids after a contact keyword, e-mail addresses),
and so are resident id and bank card numbers, which no one should send a
stranger.
Public hotlines (12356, 400-161-9995, 110 …) are never masked.

``scan(text)`` costs about 5 µs on chat text; it runs on every message before it
is stored.  Nothing here logs or keeps text.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import NamedTuple

from miaohui.nlp.regex_gate import char_class as _char_class
from miaohui.nlp.regex_gate import required_strings, trie_pattern

ATTACHMENT = "attachment"
OFF_PLATFORM = "off_platform"


@dataclass(frozen=True)
class Signal:
    """One row of a signal table.  ``pattern`` is matched against
    :func:`fold` (lower case, half-width) of the message."""

    name: str
    kind: str  # ATTACHMENT | OFF_PLATFORM
    label: str  # Chinese, shown to listeners and supervisors
    pattern: str
    examples: tuple[str, ...]
    near_misses: tuple[str, ...] = ()


@dataclass(frozen=True)
class Mask:
    """Contact details to hide.  The named group ``x`` is replaced by
    ``replacement``; ``examples`` are ``(text, masked text)`` and are tested."""

    name: str
    label: str
    pattern: str
    replacement: str
    examples: tuple[tuple[str, str], ...]
    # A match holds at least this many digits (:data:`D`, Chinese numerals
    # included): messages with fewer skip the search (exact; tested).
    min_digits: int = 0


# Digits as people type them to slip past filters: ASCII (full-width is folded),
# Chinese numerals, financial numerals, 幺 (one, on the phone).
D = "[0-9零〇一二三四五六七八九壹贰叁肆伍陆柒捌玖幺]"
ONE = "[1一壹幺]"
SEP = r"[\s\-—–_.·•,，、/|*~()（）]"  # what goes between digits ("138 1234-5678", "1.3.8…")
_KW_SEP = r"(?:\s|[:：=是为叫号码加搜#@]|账号|帐号){0,4}"

ATTACHMENT_SIGNALS: tuple[Signal, ...] = (
    Signal("love", ATTACHMENT, "表白/爱慕",
           r"(?:爱上|喜欢上|迷上)(?:了)?你|(?<!不)我(?:好|真的|是真的)?爱你|(?<!不)(?:好|真的)?喜欢你(?:了|啊|呀)?(?:$|[，。!！~])",
           ("我爱上你了", "我好像喜欢上你了", "我真的爱你", "我真的好喜欢你！"),
           ("我爱上了这首歌", "我不爱你", "我喜欢你推荐的那本书", "你喜欢你的工作吗")),
    Signal("only_you", ATTACHMENT, "唯一依赖",
           r"唯一(?:一个)?(?:懂|理解|在乎|关心|心疼)我|只有你(?:能|会|才|最)?(?:懂|理解|在乎|关心|心疼|明白)我|你是我(?:的)?(?:唯一|全部|一切)",
           ("你是唯一懂我的人", "只有你懂我", "只有你才理解我", "你是我的全部"),
           ("只有你一个人在线吗", "唯一的问题是我睡不着")),
    Signal("meet", ATTACHMENT, "想线下见面",
           r"(?<!不)想见(?:见)?你|(?:见个面|见一面|线下见|出来见|约你出来|面基)|(?:我们|咱们)(?:可以)?见面|你(?:住|家)(?:在)?哪",
           ("好想见你", "我们见一面吧", "可以线下见面吗", "你住在哪里呀"),
           ("我不想见你", "明天要和朋友见面", "想见见我外婆")),
    Signal("romance", ATTACHMENT, "想发展恋爱关系",
           r"(?:做|当)我(?:的)?(?:男|女)(?:朋友|友)|(?:我们|咱们)在一起(?:吧|好不好|好吗)|和我在一起|处对象|(?:和我)?交往吧|嫁给我|娶我",
           ("做我女朋友好不好", "当我男朋友吧", "我们在一起吧", "你愿意和我在一起吗"),
           ("我男朋友不理我", "和男朋友在一起三年了", "我们在一起工作")),
    Signal("dependence", ATTACHMENT, "过度依赖",
           r"离不开你|没有你我(?:不行|怎么办|活不)|(?:只想|只愿意)(?:和|跟)你(?:聊|说)|天天都想(?:和|跟)你",
           ("我离不开你了", "没有你我不行", "我只想和你聊"),
           ("离不开手机", "我只想睡一觉")),
)

OFF_PLATFORM_SIGNALS: tuple[Signal, ...] = (
    Signal("contact_app", OFF_PLATFORM, "引导站外联系",
           r"加(?:个|下|一下|我)?(?:的)?(?:微信|威信|薇信|v信|vx|wx|v(?![a-z])|qq|扣扣|企鹅|好友|飞书|钉钉)"
           r"|(?:微信|威信|vx|wx|qq|电报|telegram|whatsapp)(?:上)?(?:号|聊|联系|私聊)"
           r"|(?:去|到|换到?|用)(?:微信|qq|vx|电报|telegram|抖音|小红书|别的软件|其他软件|别的平台|其他平台)(?:上)?(?:聊|联系|说)"
           r"|(?:留|给|发|报)(?:个|一下|我)?(?:你的)?(?:电话|手机号|联系方式|微信号|qq号)|联系方式|私信我|加好友",
           ("加个微信吧", "加我vx", "我们去微信上聊", "留个电话给我", "你的联系方式是什么", "加v详聊", "微信号多少"),
           ("微信支付可以吗", "我在公司群里被骂了", "我的vip到期了")),
    Signal("pay_outside", OFF_PLATFORM, "平台外付款",
           r"私下(?:转账|交易|付|给钱|打钱|收费|联系|约)|(?:直接|私下|偷偷)?(?:转账|打钱|转钱|付钱)给我|自愿赠与|备注(?:一下|上|成|写)?[\"“”']?赠与"
           r"|绕(?:过|开)平台|不走平台|跳过平台|平台(?:以)?外(?:交易|付|转|聊)|(?:支付宝|微信|银行卡)(?:转账|转我|付给我|收款)"
           r"|收款码|扫(?:我的|这个)?码(?:付款|付钱|转账|支付)|(?:给我|私下)发(?:个)?红包|发我(?:个)?红包|红包给我"
           r"|便宜(?:点|些)?(?:私下|直接)|(?:抽成|佣金)(?:太高|太多)",
           ("我们私下转账吧，便宜点", "转账的时候备注自愿赠与", "绕过平台，直接转给我", "扫我的收款码", "直接转账给我就行",
            "给我发个红包吧"),
           ("平台的服务挺好的", "我今天给朋友转了钱", "这不是赠与", "过年家里发红包", "扫码点了外卖")),
)

SIGNALS: tuple[Signal, ...] = ATTACHMENT_SIGNALS + OFF_PLATFORM_SIGNALS

MASKS: tuple[Mask, ...] = (
    Mask("contact_id", "联系账号",
         r"(?:微信|威信|薇信|v信|vx|wx|weixin|wechat|qq|扣扣|企鹅|抖音|小红书|telegram|电报|支付宝|收款)(?:号|帐号|账号|账户|id)?"
         + _KW_SEP + r"(?P<x>[a-z][-_a-z0-9]{5,19}(?![-_a-z0-9])|" + D + r"(?:" + SEP + r"{0,2}" + D + r"){4,12}(?!" + D + r"))",
         "[账号已隐藏]",
         (("加我微信 abc_12345", "加我微信 [账号已隐藏]"), ("vx：Miaohui-2024", "vx：[账号已隐藏]"),
          ("我QQ是 12345678", "我QQ是 [账号已隐藏]"), ("支付宝账号 zhangsan88", "支付宝账号 [账号已隐藏]"))),
    # Before the phone numbers: an 18-digit id or a card number holds runs a phone pattern could take.
    Mask("id_number", "身份证号",
         r"(?<![0-9])(?P<x>[1-9][0-9]{5}(?:18|19|20)[0-9]{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])[0-9]{3}[0-9x])"
         r"(?![0-9a-z])",
         "[证件号已隐藏]",
         (("我身份证 110101199003071234", "我身份证 [证件号已隐藏]"), ("证件号44030419851231002x", "证件号[证件号已隐藏]")),
         min_digits=17),
    Mask("bank_card", "银行卡号",
         r"(?<![0-9])(?P<x>[1-9][0-9]{3}(?:[ \-]?[0-9]{4}){2}[ \-]?[0-9]{4,7})(?![0-9])",
         "[卡号已隐藏]",
         (("卡号 6222021234567890123", "卡号 [卡号已隐藏]"), ("转到 6217 0000 1234 5678 就行", "转到 [卡号已隐藏] 就行"),
          ("4392-2500-1234-5678", "[卡号已隐藏]")),
         min_digits=16),
    Mask("mobile", "手机号",
         r"(?<!" + D + r")(?P<x>(?:\+?86" + SEP + r"{0,2})?" + ONE + r"(?:" + SEP + r"{0,2}" + D + r"){10})(?!" + D + r")",
         "[号码已隐藏]",
         (("我电话13812345678", "我电话[号码已隐藏]"), ("打给我 138 1234 5678 吧", "打给我 [号码已隐藏] 吧"),
          ("一三八一二三四五六七八", "[号码已隐藏]"), ("+86 139-0000-1111", "[号码已隐藏]"),
          ("1 3 8 1 2 3 4 5 6 7 8", "[号码已隐藏]"), ("１３８１２３４５６７８", "[号码已隐藏]")),
         min_digits=11),
    Mask("landline", "座机号",
         r"(?<!" + D + r")(?P<x>0[0-9]{2,3}" + SEP + r"{0,2}[0-9]{7,8})(?!" + D + r")",
         "[号码已隐藏]",
         (("座机 021-66668888", "座机 [号码已隐藏]"),), min_digits=10),
    Mask("email", "邮箱", r"(?P<x>[a-z0-9._%+-]{2,}@[a-z0-9-]+(?:\.[a-z0-9-]+)+)", "[邮箱已隐藏]",
         (("发我邮箱 me.li@example.com", "发我邮箱 [邮箱已隐藏]"),)),
)

# Public numbers that are never masked (digits only): crisis hotlines and
# emergency services.  Settings can add regional ones (see :func:`scan`).
PUBLIC_NUMBERS = frozenset({"110", "120", "119", "12356", "12320", "01082951332", "4001619995", "8008101117"})

# Examples of masking that must leave the text alone.
MASK_NEAR_MISSES: tuple[str, ...] = (
    "全国心理援助热线 12356", "北京心理危机研究与干预中心 010-82951332", "希望24热线 400-161-9995",
    "我 2024-05-01 那天", "订单号 20240501", "我今年23岁，存款10000元", "晚上11点到12点",
    "工资 9000，花了 5000", "1990年3月7日出生",
)

_ZH_DIGITS = str.maketrans("零〇一二三四五六七八九壹贰叁肆伍陆柒捌玖幺", "001234567891234567891")
# Each regex with the substrings a match cannot do without (``nlp.regex_gate``):
# its search is skipped, exactly, when the message contains none of them.  Most
# messages contain no needle of any row and cost a few substring tests.
def _needles(pattern: str) -> re.Pattern[str] | None:
    strings = required_strings(pattern)
    return re.compile("|".join(map(re.escape, sorted(strings, key=len, reverse=True)))) if strings else None


_SIGNAL_RX = tuple((s, re.compile(s.pattern), _needles(s.pattern)) for s in SIGNALS)
_MASK_RX = tuple((m, re.compile(m.pattern), _needles(m.pattern)) for m in MASKS)
_DIGITS = "0123456789零〇一二三四五六七八九壹贰叁肆伍陆柒捌玖幺"  # the characters of D
_DIGIT_RX = re.compile(f"[{_DIGITS}]")
_SEP_RX = re.compile(SEP)
# What every match of a mask with ``min_digits`` (mobile, landline) holds:
# that many digits of D in a row, at most two separators (``SEP{0,2}``)
# between neighbours.  A message without such a run skips those masks
# (``_first_test``; the gated-against-ungated test spells numbers out with
# every separator).  A new mask with ``min_digits`` must keep its digits that
# close together.  Chat counts 一 as a digit, so counting digits instead let
# 0.65 % of messages through, and took twice as long.
_RUN = min(m.min_digits for m in MASKS if m.min_digits)
# Every needle of every row that has needles and no digit bound: a message
# that contains none of them (in any spelling) and no run of digits skips the
# tables (``_first_test``).
_ANY_NEEDLES = frozenset().union(*(
    required_strings(x.pattern) or () for x in (*SIGNALS, *(m for m in MASKS if not m.min_digits))
))
_ALWAYS = any(n is None for _, _, n in _SIGNAL_RX) or any(n is None for m, _, n in _MASK_RX if not m.min_digits)


def _fold_char(c: str) -> str:
    f = unicodedata.normalize("NFKC", c).lower()
    return f if len(f) == 1 else c


class _FoldTable(dict):
    """``str.translate`` table filled on first sight of each character, so
    folding a message is one C-level pass (a per-character Python loop cost
    ~30 µs a message).  Bounded: past 65,536 entries new characters are
    folded without being remembered."""

    def __missing__(self, code: int) -> str:
        f = _fold_char(chr(code))
        if len(self) < 65_536:
            self[code] = f
        return f


_FOLD = _FoldTable()


def fold(text: str) -> str:
    """Lower case and half-width, **one character for one character**, so a
    match in the folded text masks the same span of the original."""
    if text.isascii():
        return text.lower()
    if _needs_fold().search(text) is None:  # plain Chinese chat: lower() already is the fold (tested)
        return text.lower()
    return text.translate(_FOLD)


_NEEDS_FOLD: re.Pattern[str] | None = None
_FIRST: tuple[re.Pattern[str], ...] | None = None


def _needs_fold() -> re.Pattern[str]:
    """A character class of every code point whose fold differs from what
    ``str.lower()`` makes of it (full-width forms, compatibility characters,
    letters whose lower case is two characters, Σ whose lower case depends on
    its neighbours).  Built once, on first use, with :func:`_first_test`'s
    patterns (one pass over every code point, ≈0.5 s, at start-up: ``warm``)."""
    if _NEEDS_FOLD is None:
        _build_fold_patterns()
    return _NEEDS_FOLD


def _first_test() -> tuple[re.Pattern[str], ...]:
    """``(odd, needles, run, folded_needles, folded_run)``, the tests that let the ~98 %
    of messages with no needle and no number pass without being folded.

    * ``needles`` finds any of ``_ANY_NEEDLES`` in a *raw* text, written in
      any characters that fold to them (ＶＸ, ｖ信 …), as long as the text
      holds no ``odd`` character.  Odd are the characters beyond the Basic
      Multilingual Plane (emoji; the mathematical letters that fold to a–z
      are there) and the non-ASCII spellings of a needle's *first*
      character (Ｖ, ⓥ, ＠ …).  Each of those was a branch of its own at the
      trie's top level, walked at every position where a needle could start:
      108 branches instead of 65, a third of the search's time.  A text with
      an odd character is folded and searched with ``folded_needles`` and
      ``folded_run``.
    * ``run`` finds, in the raw text, every run of digits that a mask with
      ``min_digits`` needs (``_RUN``), its classes holding every character
      of the BMP that folds to a digit or a separator.  (With characters
      beyond the BMP in them, ``re`` tests a class a range at a time: 2 µs
      a message instead of 0.7.)

    The fold being one character for one character, these find in the raw
    text exactly what the needles and the masks would find in the folded one
    (tested against the ungated scan)."""
    if _FIRST is None:
        _build_fold_patterns()
    return _FIRST


def _build_fold_patterns() -> None:
    global _NEEDS_FOLD, _FIRST
    odd: list[str] = []
    digits: set[str] = set()
    seps: set[str] = set()
    spellings: dict[str, set[str]] = {}  # folded character -> the other characters that fold to it
    for cp in range(0x110000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        c = chr(cp)
        f = _fold_char(c)
        if _odd(c, f):
            odd.append(c)
        if f != c:
            spellings.setdefault(f, set()).add(c)
        if cp < 0x10000 and f in _DIGITS:
            digits.add(c)
        elif cp < 0x10000 and _SEP_RX.fullmatch(f):
            seps.add(c)
    bmp = {f: {c for c in cs if c < "\U00010000"} for f, cs in spellings.items()}
    ascii_ = {f: {c for c in cs if c.isascii()} for f, cs in spellings.items()}
    firsts = {n[0] for n in _ANY_NEEDLES}
    strange = {c for f in firsts for c in bmp.get(f, ()) if not c.isascii()}

    def run(d: str, sep: str) -> re.Pattern[str]:
        return re.compile(f"[{d}](?:{sep}{{0,2}}[{d}]){{{_RUN - 1}}}")

    _FIRST = (
        re.compile(f"[\U00010000-\U0010ffff{_char_class(strange)}]"),  # odd
        re.compile(trie_pattern(_ANY_NEEDLES, bmp, first_spellings=ascii_)),  # needles
        run(_char_class(digits), f"[{_char_class(seps)}]"),  # run
        re.compile(trie_pattern(_ANY_NEEDLES)),  # folded_needles
        run(_DIGITS, SEP),  # folded_run
    )
    _NEEDS_FOLD = re.compile(f"[{_char_class(odd)}]")


def _odd(c: str, folded: str) -> bool:
    low = c.lower()
    return c == "Σ" or len(low) != 1 or low != folded


def digits_of(s: str) -> str:
    return "".join(c for c in s.translate(_ZH_DIGITS) if c.isdigit())


class Scan(NamedTuple):
    """What :func:`scan` found.  ``text`` is the body to store and deliver
    (masked when ``masked`` is not empty).  A named tuple, not a frozen
    dataclass: one is built for every chat message on the event loop, and a
    frozen dataclass's ``__init__`` (``object.__setattr__`` per field) cost
    ~1 µs of the scan's ~5; a tuple of strings is also untracked by the
    garbage collector."""

    text: str
    attachment: tuple[str, ...] = ()
    off_platform: tuple[str, ...] = ()
    masked: tuple[str, ...] = ()

    @property
    def flagged(self) -> bool:
        return bool(self.attachment or self.off_platform or self.masked)

    @property
    def kinds(self) -> tuple[str, ...]:
        out = []
        if self.attachment:
            out.append(ATTACHMENT)
        if self.off_platform or self.masked:
            out.append(OFF_PLATFORM)
        return tuple(out)


_clean = tuple.__new__  # ``_clean(Scan, fields)``: a Scan without the Python-level ``__new__``

LABELS: dict[str, str] = {**{s.name: s.label for s in SIGNALS}, **{m.name: m.label for m in MASKS}}


def scan(text: str, public_numbers: frozenset[str] = PUBLIC_NUMBERS) -> Scan:
    """Signals in ``text`` and the text with contact details masked."""
    return _scan(text, public_numbers, True)


def _may(needles: re.Pattern[str] | None, folded: str) -> bool:
    return needles is None or needles.search(folded) is not None


def _scan(text: str, public_numbers: frozenset[str], gated: bool) -> Scan:
    """``gated=False`` runs every regex (the tests' reference for the gates)."""
    folded = None
    if gated and not _ALWAYS:
        odd, needles, run, folded_needles, folded_run = _first_test()
        if odd.search(text) is None:
            if needles.search(text) is None and run.search(text) is None:
                return _clean(Scan, (text, (), (), ()))
        else:
            folded = fold(text)
            if folded_needles.search(folded) is None and folded_run.search(folded) is None:
                return _clean(Scan, (text, (), (), ()))
    if folded is None:
        folded = fold(text)
    attachment = tuple(s.name for s, rx, req in _SIGNAL_RX
                       if s.kind == ATTACHMENT and (not gated or _may(req, folded)) and rx.search(folded))
    off = tuple(s.name for s, rx, req in _SIGNAL_RX
                if s.kind == OFF_PLATFORM and (not gated or _may(req, folded)) and rx.search(folded))
    spans: list[tuple[int, int, str]] = []
    masked: list[str] = []
    digits = -1
    for m, rx, req in _MASK_RX:
        if gated:
            if not _may(req, folded):
                continue
            if m.min_digits:
                if digits < 0:
                    digits = len(_DIGIT_RX.findall(folded))
                if digits < m.min_digits:
                    continue
        for hit in rx.finditer(folded):
            a, b = hit.span("x")
            if digits_of(folded[a:b]) in public_numbers or digits_of(folded[a:b]).lstrip("0") in public_numbers:
                continue
            if m.name == "landline" and digits_of(folded[a:b]).startswith(("400", "800")):
                continue
            if any(a < y and x < b for x, y, _ in spans):
                continue  # already inside a mask (an id that is also a number)
            spans.append((a, b, m.replacement))
            if m.name not in masked:
                masked.append(m.name)
    if not (attachment or off or spans):
        return Scan(text)
    if spans:
        out, last = [], 0
        for a, b, rep in sorted(spans):
            out.append(text[last:a])
            out.append(rep)
            last = b
        out.append(text[last:])
        text = "".join(out)
    return Scan(text, attachment, off, tuple(masked))
