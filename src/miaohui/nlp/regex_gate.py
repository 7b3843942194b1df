"""Which characters a regular expression cannot match without.

``required_chars(regex)`` returns a set of characters such that every match of
``regex`` contains at least one of them (or ``None`` when no such set can be
read off the pattern: it may match the empty string, starts with ``.``, uses a
negated class …).  Scanning a message against dozens of patterns is the
largest cost of the knowledge table, and most patterns in it begin with an
optional part or a wide alternation, where Python's ``re`` has no literal
prefix to skip ahead with and tries a match at every position.  A pattern
whose required characters are all absent from a message cannot match it, so
``Gate.may_match(chars)`` lets the caller skip the search with one set test
(``set(text)`` is computed once per message).  Skipping is exact: it never
changes a result, only avoids searches that would fail (tested on every
pattern of the knowledge and boundary tables).

``required_strings`` does the same with substrings, which let far fewer
messages through; the tables use them — the boundary scan as one trie test
of all its rows, the knowledge table through :class:`NeedleIndex` (which
rows a message may match, from one scan).
"""

from __future__ import annotations

import re

try:  # Python 3.11+
    from re import _constants as c
    from re import _parser as parser
except ImportError:  # pragma: no cover - older Pythons
    import sre_constants as c  # type: ignore[no-redef]
    import sre_parse as parser  # type: ignore[no-redef]

# Very frequent characters in Chinese chat: a required set that contains one of
# them rarely lets a search be skipped, so another set is preferred if there is one.
_COMMON = frozenset(
    "的一是了我不人在他有这个上们来到时大地为子中你说生国年着就那和要她出也得里后自以会家可下而过天去能对"
    "小多然于心学么之都好看起发当没成只如事把还用第样道想作种开美总从无情己面最女但现前些所同日手又行意动"
    "吗吧呢啊哦嗯呀啦哈很太真再给让被跟才觉 ,.!?，。！？、…~～"
)
_MAX_RANGE = 256  # a class range wider than this is treated as "any character"


def _cost(s: frozenset[str]) -> int:
    return len(s) + 100 * len(s & _COMMON)


def _best(sets: list[frozenset[str]]) -> frozenset[str] | None:
    return min(sets, key=_cost) if sets else None


def _seq(items) -> frozenset[str] | None:
    return _best([r for op, av in items if (r := _item(op, av)) is not None])


def _item(op, av, seq=_seq) -> frozenset[str] | None:
    """What one parsed item requires; ``seq`` reads nested sequences (single
    characters for :func:`required_chars`, needles for :func:`required_strings`)."""
    if op is c.LITERAL:
        return frozenset(chr(av))
    if op is c.IN:
        out: set[str] = set()
        for iop, iav in av:
            if iop is c.LITERAL:
                out.add(chr(iav))
            elif iop is c.RANGE and iav[1] - iav[0] <= _MAX_RANGE:
                out.update(chr(x) for x in range(iav[0], iav[1] + 1))
            else:  # NEGATE, CATEGORY, wide ranges: could be anything
                return None
        return frozenset(out)
    if op is c.BRANCH:
        alts = [seq(alt) for alt in av[1]]
        if any(a is None for a in alts):
            return None
        return frozenset().union(*alts)
    if op is c.SUBPATTERN:
        return seq(av[-1])
    if op in (c.MAX_REPEAT, c.MIN_REPEAT) or op is getattr(c, "POSSESSIVE_REPEAT", None):
        lo, _hi, sub = av
        return seq(sub) if lo >= 1 else None
    if op is getattr(c, "ATOMIC_GROUP", None):
        return seq(av)
    return None  # ANY, NOT_LITERAL, AT, assertions, back-references: nothing required


def required_chars(regex: str | re.Pattern[str]) -> frozenset[str] | None:
    """A set of characters every match contains at least one of, or ``None``."""
    try:
        compiled = regex if isinstance(regex, re.Pattern) else re.compile(regex)
        tree = parser.parse(compiled.pattern, compiled.flags)
    except re.error:
        return None
    if compiled.flags & re.IGNORECASE:  # inline (?i) included
        return None  # case folding would need every case variant
    return _seq(list(tree))


def _cost_strs(s: frozenset[str]) -> float:
    """How often a set of needles is expected to let a message through: a
    single very common character (的, 一, 我 …) nearly always, another
    Chinese character often (加: 加油, 加班), an ASCII one seldom; two
    characters less often, fewer still when neither is common (没有 vs
    微信); three or more almost never."""
    return sum(_cost_needle(x) for x in s)


def _cost_needle(x: str) -> float:
    # Roughly "in how many of 10,000 chat messages does it occur".
    common = sum(ch in _COMMON for ch in x)
    if len(x) == 1:
        return 5000.0 if common else 300.0 if ord(x) > 0x2E7F else 20.0
    if len(x) == 2:
        return 10.0 + 30.0 * common
    if len(x) == 3:
        return 1.0 + 3.0 * common
    return 0.3


def _best_strs(sets: list[frozenset[str]]) -> frozenset[str] | None:
    return min(sets, key=_cost_strs) if sets else None


_MAX_EXACT = 64  # the most strings an item (or a run of items) is expanded into


def _product(a: frozenset[str], b: frozenset[str]) -> frozenset[str] | None:
    if len(a) * len(b) > _MAX_EXACT:
        return None
    return frozenset(x + y for x in a for y in b)


def _exact_seq(items) -> frozenset[str] | None:
    out: frozenset[str] | None = frozenset(("",))
    for op, av in items:
        e = _exact(op, av)
        if e is None or out is None:
            return None
        out = _product(out, e)
    return out


def _exact(op, av) -> frozenset[str] | None:
    """Every string the item can match, when they are few (else ``None``)."""
    if op is c.LITERAL:
        return frozenset(chr(av))
    if op is c.IN:
        chars = _item(op, av)
        return frozenset(chars) if chars is not None and len(chars) <= _MAX_EXACT else None
    if op is c.BRANCH:
        alts = [_exact_seq(alt) for alt in av[1]]
        if any(a is None for a in alts):
            return None
        union = frozenset().union(*alts)
        return union if len(union) <= _MAX_EXACT else None
    if op is c.SUBPATTERN:
        return _exact_seq(av[-1])
    if op in (c.MAX_REPEAT, c.MIN_REPEAT) or op is getattr(c, "POSSESSIVE_REPEAT", None):
        lo, hi, sub = av
        if hi > 2:
            return None
        one = _exact_seq(sub)
        if one is None:
            return None
        out: set[str] = set()
        cur: frozenset[str] | None = frozenset(("",))
        for k in range(hi + 1):
            if k >= lo:
                out |= cur
            if k < hi:
                cur = _product(cur, one)
                if cur is None:
                    return None
        return frozenset(out) if len(out) <= _MAX_EXACT else None
    if op in (c.AT, c.ASSERT, c.ASSERT_NOT):  # anchors and look-arounds consume nothing
        return frozenset(("",))
    return None


def _strs_seq(items) -> frozenset[str] | None:
    """The cheapest needle set among: each mandatory item's own needles, and
    every run of consecutive items whose matches are few, expanded into the
    strings the run can match (``(?:只想|只愿意)(?:和|跟)你`` → 只想和你, 只想跟你,
    只愿意和你, 只愿意跟你 instead of 只)."""
    items = list(items)
    options: list[frozenset[str]] = []
    for op, av in items:
        if (r := _item(op, av, _strs_seq)) is not None:
            options.append(r)
    exact = [_exact(op, av) for op, av in items]
    for i in range(len(items)):
        run: frozenset[str] | None = frozenset(("",))
        for j in range(i, len(items)):
            if exact[j] is None or run is None:
                break
            run = _product(run, exact[j])
            if run is not None and "" not in run:
                options.append(run)
    return _best_strs(options)


def required_strings(regex: str | re.Pattern[str]) -> frozenset[str] | None:
    """Like :func:`required_chars`, with strings: every match contains at
    least one of them *as a substring*, or ``None``.  A run of literal
    characters is one needle (``微信`` rather than ``微``), so the test
    ``any(n in text for n in needles)`` — a few C substring searches, no set
    of the text to build — lets far fewer messages through than single
    characters do."""
    try:
        compiled = regex if isinstance(regex, re.Pattern) else re.compile(regex)
        tree = parser.parse(compiled.pattern, compiled.flags)
    except re.error:
        return None
    if compiled.flags & re.IGNORECASE:
        return None
    return _strs_seq(list(tree))


class Gate:
    """``may_match(chars)``: False only when ``regex`` certainly cannot match a text made of ``chars``."""

    __slots__ = ("required",)

    def __init__(self, regex: str | re.Pattern[str]):
        self.required = required_chars(regex)

    def may_match(self, chars: set[str] | frozenset[str]) -> bool:
        return self.required is None or not self.required.isdisjoint(chars)


def char_class(chars) -> str:
    """The inside of a character class for ``chars`` (runs of code points as ranges)."""
    cps = sorted(map(ord, chars))
    ranges, start, prev = [], cps[0], cps[0]
    for cp in cps[1:]:
        if cp != prev + 1:
            ranges.append((start, prev))
            start = cp
        prev = cp
    ranges.append((start, prev))
    return "".join(re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in ranges)


def trie_pattern(strings, spellings: dict[str, set[str]] | None = None) -> str:
    """One regular expression for "any of ``strings``", as a trie:
    ``(?:我(?:爱你|好爱你)|喜欢你)`` instead of ``我爱你|我好爱你|喜欢你``.
    Python's ``re`` tries the branches of an alternation one after another;
    with the common prefixes shared it tries one per first character, and a
    top level of plain characters lets it skip every position whose character
    starts no needle (on chat text, 3 µs a message instead of 12 for ~300
    needles).  ``spellings[c]``: other characters that stand for ``c`` — a
    class inside, one branch each at the top level, which stays plain."""
    spellings = spellings or {}
    trie: dict = {}
    for s in strings:
        node = trie
        for ch in s:
            node = node.setdefault(ch, {})
        node[""] = {}

    def emit(node: dict, top: bool = False) -> str:
        alts = []
        for ch, child in sorted(node.items()):
            if not ch:
                continue
            rest = emit(child)
            if top:
                alts += [re.escape(c) + rest for c in sorted({ch} | spellings.get(ch, set()))]
            elif ch in spellings:
                alts.append(f"[{char_class({ch} | spellings[ch])}]{rest}")
            else:
                alts.append(re.escape(ch) + rest)
        if not alts:
            return ""
        body = alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"
        return f"(?:{body})?" if "" in node else body

    return emit(trie, top=True)


class NeedleIndex:
    """Which of many patterns a text may match, from one scan of the text.

    ``rows``: ``{key: regex}``.  Every regex's :func:`required_strings` go
    into one trie regex, searched again one character after each match, so
    overlapping occurrences are found too.  At a position the trie reports
    the longest needle there, and every shorter needle starting there is a
    prefix of it, so each needle is mapped to the keys of all its prefixes:
    ``candidates(text)`` holds every key whose regex can match ``text`` (and
    the keys with no needles, always).  Exact: a key left out certainly does
    not match."""

    def __init__(self, rows: dict) -> None:
        needles = {k: required_strings(rx) for k, rx in rows.items()}
        self.always = frozenset(k for k, ns in needles.items() if not ns)
        every = set().union(*(ns for ns in needles.values() if ns))
        self.keys_of = {n: frozenset(k for k, ns in needles.items() if ns and any(n.startswith(x) for x in ns))
                        for n in every}
        # A plain trie: a look-ahead wrapper (``(?=(…))``, every overlapping
        # match in one findall) would hide the trie's first characters from
        # re's prefix skip — 56 µs a chat line instead of ~20.
        self._search = re.compile(trie_pattern(every)).search if every else None

    def candidates(self, text: str) -> frozenset | set:
        search = self._search
        if search is None:
            return self.always
        m = search(text)
        if m is None:
            return self.always
        keys_of = self.keys_of
        out = set(self.always)
        while m is not None:
            out |= keys_of[m.group()]
            m = search(text, m.start() + 1)
        return out
