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
rows a message may match, from one scan), where ``required_needles`` also
says which branch of a row needs which needles *together*.
"""

from __future__ import annotations

import re

import numpy as np

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
    return _best_strs(_strs_options(items))


def _strs_options(items) -> list[frozenset[str]]:
    """Every needle set :func:`_strs_seq` chooses from; each one alone is necessary."""
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
    return options


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


def required_needles(regex: str | re.Pattern[str]) -> tuple[tuple[frozenset[str], ...], ...] | None:
    """Which needles a match needs, as alternatives: every match satisfies at
    least one alternative, and an alternative is a tuple of needle sets (the
    cheapest first, then the others) each of which the match contains a
    needle of.  A pattern whose top level is an alternation gets one
    alternative per branch, so ``(?:怎么|如何).{0,8}(?:死|自杀)|致死量`` gives
    ((怎么, 如何), (死, 自杀)) and ((致死量,)).  ``None`` when some branch
    needs nothing that can be read off (the pattern may match anything)."""
    try:
        compiled = regex if isinstance(regex, re.Pattern) else re.compile(regex)
        tree = list(parser.parse(compiled.pattern, compiled.flags))
    except re.error:
        return None
    if compiled.flags & re.IGNORECASE:
        return None
    branches = tree[0][1][1] if len(tree) == 1 and tree[0][0] is c.BRANCH else [tree]
    out = []
    for items in branches:
        options = sorted(set(_strs_options(items)), key=lambda s: (_cost_strs(s), sorted(s)))
        if not options:
            return None
        out.append(tuple(options))
    return tuple(out)


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


def trie_pattern(strings, spellings: dict[str, set[str]] | None = None,
                 first_spellings: dict[str, set[str]] | None = None) -> str:
    """One regular expression for "any of ``strings``", as a trie:
    ``(?:我(?:爱你|好爱你)|喜欢你)`` instead of ``我爱你|我好爱你|喜欢你``.
    Python's ``re`` tries the branches of an alternation one after another;
    with the common prefixes shared it tries one per first character, and a
    top level of plain characters lets it skip every position whose character
    starts no needle (on chat text, 3 µs a message instead of 12 for ~300
    needles).  ``spellings[c]``: other characters that stand for ``c`` — a
    class inside, one branch each at the top level, which stays plain.
    ``first_spellings``: the spellings for the top level, when they differ
    (default ``spellings``).  At a position whose character starts a needle, ``re``
    walks *every* top-level branch (each fails on its first character but
    one), so each branch there costs every such position of the text."""
    spellings = spellings or {}
    first_spellings = spellings if first_spellings is None else first_spellings
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
                alts += [re.escape(c) + rest for c in sorted({ch} | first_spellings.get(ch, set()))]
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

    ``rows``: ``{key: regex}``.  Every regex's :func:`required_needles` go
    into one trie regex, searched again one character after each match, so
    overlapping occurrences are found too.  At a position the trie reports
    the longest needle there, and every shorter needle starting there is a
    prefix of it, so the needles a text holds are the prefixes of what the
    trie reports.  ``candidates(text)`` holds every key whose regex can match
    ``text`` (and the keys with no needles, always).  Exact: a key left out
    certainly does not match.

    ``candidates_many(texts)`` gives the same for a batch with no regex scan:
    it marks, with two table look-ups a character over the whole batch, the
    positions where a one-character needle stands or where two characters
    begin a longer one, and tries only there an anchored match of the needles
    that start with those two characters (in batches of 20 chat lines, 6–8 µs
    a line against 17–19; a line has three or four such positions)."""

    SMALL = 300  # characters (~4 chat lines): below this a batch is scanned text by text (the arrays' fixed cost, ~50 µs)
    _PAIR_BITS = 18  # the two-character table: 256 KiB of flags, ~0.4 % false marks for ~1,000 pairs
    _PAIR_MUL = 40_503  # an odd multiplier: CJK pairs spread evenly over the table

    def __init__(self, rows: dict) -> None:
        options = {k: required_needles(rx) for k, rx in rows.items()}
        self.always = frozenset(k for k, alts in options.items() if alts is None)
        # Each alternative needs its cheapest set; other sets it needs are required too when every
        # needle of theirs is wanted anyway (the scan finds them at no extra cost): 怎么 … 死 needs
        # 死, which other rows look for.  A set of new needles would cost the scan more than it saves.
        wanted = {n for alts in options.values() for sets in alts or () for n in sets[0]}
        conds = {k: [(sets[0], *[s for s in sets[1:] if s <= wanted and s.isdisjoint(sets[0])][:2]) for sets in alts]
                 for k, alts in options.items() if alts is not None}
        sat: dict[str, list[tuple]] = {}
        slot = 0
        for k, alts in conds.items():
            for sets in alts:
                full = (1 << len(sets)) - 1
                for bit, needles in enumerate(sets):
                    for n in needles:
                        sat.setdefault(n, []).append((k, slot, 1 << bit, full))
                slot += 1
        self.needles = tuple(sorted(sat))
        # What the trie reports at a position stands for every needle that starts there (its
        # prefixes): the keys those satisfy outright, and their part of alternatives that need more.
        self._direct: dict[str, frozenset] = {}
        self._partial: dict[str, tuple] = {}
        for n in self.needles:
            entries = [e for x in self.needles if n.startswith(x) for e in sat[x]]
            self._direct[n] = frozenset(k for k, _, bit, full in entries if bit == full)
            self._partial[n] = tuple(e for e in entries if e[2] != e[3])
        # A plain trie: a look-ahead wrapper (``(?=(…))``, every overlapping
        # match in one findall) would hide the trie's first characters from
        # re's prefix skip — 56 µs a chat line instead of ~20.
        trie = re.compile(trie_pattern(self.needles)) if self.needles else None
        self._search = trie.search if trie else None
        # the batch scan's tables: one-character needles by code point; longer needles by their first two
        single = [ord(n) for n in self.needles if len(n) == 1]
        self._single = np.zeros((max(single) + 2) if single else 1, bool)  # the last entry: "beyond", False
        self._single[single] = True
        # at a marked position: the needles that start with its two characters, as a small trie of
        # their own (the whole trie's top level tries its ~600 first characters one by one)
        by_pair: dict[str, list[str]] = {}
        for n in self.needles:
            if len(n) > 1:
                by_pair.setdefault(n[:2], []).append(n)
        self._pair_match = {p: re.compile(trie_pattern(ns)).match for p, ns in by_pair.items()}
        self._singles = frozenset(n for n in self.needles if len(n) == 1)  # ``_single`` as a set, for one character
        pairs = np.array(sorted((ord(p[0]), ord(p[1])) for p in by_pair), np.int64).reshape(-1, 2)
        self._pairs = np.zeros(1 << self._PAIR_BITS, bool)
        self._pairs[self._pair_slots(pairs[:, 0], pairs[:, 1])] = True

    @classmethod
    def _pair_slots(cls, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        """Where two characters' flag sits (int64 code points; distinct pairs may share one)."""
        return (first * cls._PAIR_MUL + second) & ((1 << cls._PAIR_BITS) - 1)

    def _rows(self, reported) -> frozenset | set:
        """The candidate keys, from what the trie reported (the longest needle at each position)."""
        if not reported:
            return self.always
        out = set(self.always)
        partial: dict[int, int] = {}
        for n in reported:
            out |= self._direct[n]
            for k, slot, bit, full in self._partial[n]:  # one of several sets: the alternative needs the others too
                if (bits := partial.get(slot, 0) | bit) == full:
                    out.add(k)
                partial[slot] = bits
        return out

    def candidates(self, text: str) -> frozenset | set:
        search = self._search
        if search is None or (m := search(text)) is None:
            return self.always
        reported = []
        while m is not None:
            reported.append(m.group())
            m = search(text, m.start() + 1)
        return self._rows(reported)

    def candidates_many(self, texts: list[str]) -> list[frozenset | set]:
        """``[candidates(t) for t in texts]``, scanned as one array."""
        from miaohui.nlp.text import code_points  # (nlp.text imports this module)

        if sum(map(len, texts)) < self.SMALL or not self.needles:
            return [self.candidates(t) for t in texts]
        cp = code_points("".join(texts)).astype(np.int64)
        mark = self._single.take(np.minimum(cp, len(self._single) - 1))
        mark[:-1] |= self._pairs.take(self._pair_slots(cp[:-1], cp[1:]))
        marked = np.flatnonzero(mark)
        reported: list[list[str]] = [[] for _ in texts]
        if len(marked):
            starts = np.cumsum([0, *map(len, texts)])
            docs = (np.searchsorted(starts, marked, "right") - 1).tolist()
            starts = starts.tolist()
            pair_match, singles = self._pair_match, self._singles
            for d, g in zip(docs, marked.tolist(), strict=True):
                # The longest needle there, in its own text (a pair mark may be a hash collision,
                # or span two texts); every needle starting there is its prefix.
                t, o = texts[d], g - starts[d]
                if (match := pair_match.get(t[o : o + 2])) is not None and (m := match(t, o)) is not None:
                    reported[d].append(m.group())
                elif t[o] in singles:
                    reported[d].append(t[o])
        return [self._rows(r) for r in reported]
