"""The vectorised parts of the safety step give exactly what the per-message
code gives: ``BatchScorer`` against ``JointScorer``, ``assess_many`` against
``assess``, and the regex gate (skipping searches whose required characters
are absent) against running every search."""

from __future__ import annotations

import random
import re

import numpy as np
import pytest

from miaohui.nlp.linear import BatchScorer
from miaohui.nlp.regex_gate import Gate, NeedleIndex, required_chars, required_strings
from miaohui.nlp.text import normalise
from miaohui.safety import assess, assess_many
from miaohui.safety import boundaries as B
from miaohui.safety import knowledge as K
from miaohui.safety.assess import RULES, _scorer, default_model

from .test_safety_monitor import MIXED


def _corpus() -> list[str]:
    texts = list(MIXED)
    for p in K.PATTERNS:
        texts += [*p.examples, *p.counter]
    for r in RULES:
        texts += [e[0] for e in r.examples]
    rng = random.Random(7)
    alphabet = "我你他想死活累药楼跳今天晚上不会没有哈😂，。！？ abc123ＡＢＣ〇的了是在"
    texts += ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40))) for _ in range(300)]
    texts += ["", " ", "a", "我", "x" * 700, "跳" * 300 + "安眠药"]
    return texts


@pytest.fixture(scope="module")
def scorers():
    joint = _scorer(default_model())
    return joint, BatchScorer(joint.models)


def test_batch_scorer_equals_joint_scorer(scorers):
    joint, batch = scorers
    texts = [normalise(t) for t in _corpus()]
    want = [joint.decisions(t) for t in texts]
    for size in (1, 7, 64, len(texts)):  # dict look-ups (small) and the hash table (large)
        got = []
        for i in range(0, len(texts), size):
            got += batch.decisions_many(texts[i : i + size])
        assert len(got) == len(want)
        for w, g in zip(want, got, strict=True):
            for wm, gm in zip(w, g, strict=True):
                assert gm == pytest.approx(wm, abs=1e-9)
    assert batch.decisions_many([]) == []


def test_batch_scorer_hash_table_finds_every_vocabulary_ngram_and_nothing_else(scorers):
    joint, batch = scorers
    grams = list(joint.index)[::97]
    keys = [BatchScorer.key(g) for g in grams]

    vocab = list(joint.index)
    for n in (batch.SMALL // 2, batch.SMALL * 2):  # the dict path, the hash table path
        arr = np.array((keys * 4)[:n], np.uint64)
        ids = batch.lookup(arr)  # joint ids
        assert (grams * 4)[:n] == [vocab[j] for j in ids.tolist()]
    absent = np.array([BatchScorer.key(g) for g in ("龘龘龘", "𠀀", "zq")], np.uint64)
    assert (batch.lookup(absent) == -1).all()


def test_hash_table_rounds_and_the_dict_tail_agree_on_the_whole_vocabulary(scorers, monkeypatch):
    """Every n-gram of the vocabulary, the longest probe chains among them, mixed
    with absent ones: the table's rounds alone (``TAIL = 0``), the default (the
    last few keys of long chains by dict) and the dict alone give the same ids."""
    joint, batch = scorers
    vocab = list(joint.index)
    rng = random.Random(3)
    absent = ["龘龘龘", "𠀀", "zq", *("".join(rng.choice("龘靐齉爩") for _ in range(3)) for _ in range(50))]
    grams = vocab + [g for g in absent if g not in joint.index]
    rng.shuffle(grams)
    keys = np.array([BatchScorer.key(g) for g in grams], np.uint64)
    want = np.array([joint.index.get(g, -1) for g in grams])
    assert batch._rounds > 3  # long chains exist, so the tail path is exercised
    assert (batch.lookup(keys) == want).all()
    assert (batch._dict_lookup(keys) == want).all()
    monkeypatch.setattr(batch, "TAIL", 0)
    assert (batch.lookup(keys) == want).all()


def test_assess_many_equals_assess_with_and_without_history():
    texts = _corpus()
    histories = [None, ["我真的不想活了"], ["哈哈哈今天又被老板骂了", "开玩笑的啦"], ["我打算今晚吃安眠药"]]
    items = [(t, histories[i % len(histories)]) for i, t in enumerate(texts)]
    got = []
    for i in range(0, len(items), 50):
        got += assess_many(items[i : i + 50])
    for (t, h), g in zip(items, got, strict=True):
        w = assess(t, h)
        assert (g.tier, g.level, g.signals, g.rules, g.topics) == (w.tier, w.level, w.signals, w.rules, w.topics), t
        assert g.score == pytest.approx(w.score, abs=1e-6)
        assert [lab for lab, _ in g.emotions] == [lab for lab, _ in w.emotions]
    lean = assess_many([("今天吃了火锅", None), ("我不想活了", None)], extras="risk")
    assert lean[0].tier == "none" and lean[0].emotions == () and lean[1].emotions


def test_required_chars():
    assert required_chars("abc") == frozenset("a")  # any one mandatory element will do
    assert required_chars("(?:今晚|明天)就去") in (frozenset("今明"), frozenset("就"), frozenset("去"))
    assert required_chars("a?") is None  # may match the empty string
    assert required_chars(".{2}") is None
    assert required_chars("[^a]x") == frozenset("x")
    assert required_chars("(?i)abc") is None
    assert required_chars("[a-c]+") == frozenset("abc")
    assert not Gate("跳楼|上吊").may_match(set("今天天气不错"))
    assert Gate("跳楼|上吊").may_match(set("我想跳"))  # may, not must
    assert Gate(".").may_match(set())


def test_the_gate_never_changes_a_detection():
    """Every pattern of the knowledge and boundary tables, gated vs ungated, on their own
    examples and counter-examples and on random texts made of their characters."""
    texts = [normalise(t) for t in _corpus()]
    rng = random.Random(3)
    every = "".join({c for p in K.PATTERNS for c in p.regex if ord(c) > 127})
    texts += ["".join(rng.choice(every) for _ in range(rng.randint(1, 30))) for _ in range(400)]
    # needles of the rows' index side by side and overlapping (过完生日, 今天晚上 …)
    needles = list(K._plan()[2].needles)
    texts += ["".join(rng.choice(needles) if rng.random() < 0.6 else rng.choice(every)
                      for _ in range(rng.randint(1, 12))) for _ in range(400)]
    for t in texts:
        want_text, want_hits = t, []
        for i, p in enumerate(K.PATTERNS):
            if p.signal in K.MASKING:
                want_text, n = p.compiled.subn(K._mask, want_text)
                if n:
                    want_hits.append(i)
        for i, p in enumerate(K.PATTERNS):
            if p.signal not in K.MASKING and p.compiled.search(want_text):
                want_hits.append(i)
        d = K.detect(t, normalised=True)
        assert d.text == want_text and sorted(i for _, i in d.hits) == sorted(want_hits), t
        folded = B.fold(t)
        for s in B.SIGNALS:
            if not Gate(s.pattern).may_match(set(folded)):
                assert re.search(s.pattern, folded) is None


def test_nfkc_a_character_at_a_time_is_the_whole_strings_nfkc():
    import unicodedata

    from miaohui.nlp.text import _NFKC_SMALL, nfkc

    small = [chr(cp) for lo, hi in _NFKC_SMALL for cp in range(lo, hi + 1)]
    for a in small:  # every pair of the non-ideograph safe ranges, and each with an ideograph and a mark
        for b in small:
            assert nfkc(a + b) == unicodedata.normalize("NFKC", a + b), (a, b)
        for t in (a + "死", "死" + a, a + "\u0301", "e" + a, a + "\u3099", "ｶ" + a, a + "ﾞ"):
            assert nfkc(t) == unicodedata.normalize("NFKC", t), t
    rng = random.Random(11)
    pool = small + [chr(cp) for cp in range(0x4E00, 0x4E00 + 300)] + list("\u0301\u3099ﾞｶ가ᄀ①㍿ﬁ\u00a8\u203e")
    for _ in range(3000):
        t = "".join(rng.choice(pool) for _ in range(rng.randint(0, 30)))
        assert nfkc(t) == unicodedata.normalize("NFKC", t), t
    for t in _corpus():
        assert nfkc(t) == unicodedata.normalize("NFKC", t), t


def test_dense_head_decisions_equal_pooling_then_heads():
    head = default_model().dense
    texts = [normalise(t) for t in _corpus()]
    for size in (1, 25, len(texts)):
        for i in range(0, len(texts), size):
            part = texts[i : i + size]
            want = head.bias + head.pooled_many(part) @ head.coef
            assert np.allclose(head.decisions_many(part), want, rtol=0, atol=1e-9)


def test_normalise_many_is_normalise_of_each():
    from miaohui.nlp import text as X

    rng = random.Random(17)
    pool = list("哈啊。！ \t\n\u3000\u00a0\x1fａＡ殺") + ["\x00", "  ", "哈哈哈哈", "。。。。。"]
    texts = _corpus() + ["".join(rng.choice(pool) for _ in range(rng.randint(0, 12))) for _ in range(3000)]
    assert [X._tidy(t) for t in texts] == [X._SPACE.sub(" ", X._REPEAT.sub(r"\1\1\1", t)).strip() for t in texts]
    for size in (1, 3, 50, 400):
        got = []
        for i in range(0, len(texts), size):
            got += X.normalise_many(texts[i : i + size])
        assert got == [normalise(t) for t in texts]


def test_negative_share_is_on_the_side_of_the_threshold_the_rounded_share_is():
    import math

    from miaohui.safety.assess import _negative_idx, _negative_share

    idx = _negative_idx()
    rng = np.random.default_rng(9)
    for _ in range(20000):
        z = rng.normal(0, rng.choice([0.5, 2.0, 6.0]), 7)
        p = (np.exp(z - z.max()) / np.exp(z - z.max()).sum()).tolist()
        for thr in (0.6, 0.3, float(np.round(sum(p[i] for i in idx), 4))):  # the last: at the threshold
            rounded = math.fsum(round(p[i], 4) for i in idx)
            assert (_negative_share(p, thr) >= thr) == (rounded >= thr), (p, thr)


def test_rules_gathered_by_signal_are_the_rules_of_the_whole_table():
    from miaohui.safety.assess import _fired

    names = sorted({k for r in RULES for d in (r.all_of, r.any_of, r.none_of) for k in d} | set(K.SIGNALS))
    rng = random.Random(21)
    for _ in range(5000):
        sig = {k: rng.choice([0.0, 0.3, 0.5, 0.6, 0.9, 1.0]) for k in rng.sample(names, rng.randint(0, 8))}
        assert _fired(sig) == [r for r in RULES if r.applies(sig)], sig


def test_segment_max_is_maximum_reduceat():
    from miaohui.safety.model import _segment_max

    rng = np.random.default_rng(5)
    for rows in (1, 2, 17, 300):
        v = rng.standard_normal((rows, 100)).astype(np.float32)
        for _ in range(20):
            starts = np.unique(np.r_[0, rng.integers(0, rows, rng.integers(0, rows + 1))])
            assert np.array_equal(_segment_max(v, starts), np.maximum.reduceat(v, starts))


def test_needle_index_finds_overlapping_and_nested_needles(monkeypatch):
    idx = NeedleIndex({"a": "今天晚上.{0,3}死", "b": "今天", "c": "晚上好", "d": "天晚", "e": ".*"})
    for small in (10**9, 0):  # text by text, and the whole batch as one array
        monkeypatch.setattr(NeedleIndex, "SMALL", small)
        texts = ["今天晚上好", "今天", "天晚上好", "", "晚", "上好今"]
        want = [{"a", "b", "c", "d", "e"}, {"b", "e"}, {"c", "d", "e"}, {"e"}, {"e"}, {"e"}]
        assert [idx.candidates(t) for t in texts] == want  # nested (今天 ⊂ 今天晚上) and overlapping
        assert idx.candidates_many(texts) == want  # 晚|上好 and 好|今天: needles split across two texts are not found


def test_needle_index_needs_every_set_of_an_alternative_when_the_scan_looks_for_them_anyway():
    rows = {"ask": "(?:怎么|如何).{0,8}(?:死|自杀)|致死量", "death": "死|自杀"}
    idx = NeedleIndex(rows)
    assert idx.candidates("怎么办呢") == set()  # 怎么 with no word of death: neither branch can match
    assert idx.candidates("怎么才能死") == {"ask", "death"}
    assert idx.candidates("致死量是多少") == {"ask", "death"}
    assert idx.candidates("死") == {"death"}
    # with no other row looking for the death words, the scan does not add them: 怎么 alone lets "ask" through
    assert NeedleIndex({"ask": rows["ask"]}).candidates("怎么办呢") == {"ask"}


def test_the_batch_needle_scan_equals_the_scan_of_each_text(monkeypatch):
    """``candidates_many`` (two table look-ups a character, then an anchored match at each
    marked position) against ``candidates`` (the trie searched along each text), on the
    knowledge table's rows, in batches cut at random so needles straddle two texts."""
    monkeypatch.setattr(NeedleIndex, "SMALL", 0)
    index = K._plan()[2]
    needles = list(index.needles)
    rng = random.Random(13)
    every = "".join({c for p in K.PATTERNS for c in p.regex if ord(c) > 127})
    texts = [normalise(t) for t in _corpus()]
    texts += ["".join(rng.choice(needles) if rng.random() < 0.5 else rng.choice(every)
                      for _ in range(rng.randint(0, 10))) for _ in range(600)]
    texts += [n[: rng.randint(1, len(n))] for n in needles] + [n[rng.randint(0, len(n) - 1) :] for n in needles]
    rng.shuffle(texts)
    i = 0
    while i < len(texts):
        k = rng.randint(1, 40)
        batch = texts[i : i + k]
        assert index.candidates_many(batch) == [index.candidates(t) for t in batch], batch
        assert K.detect_many(batch) == [K.detect(t, normalised=True) for t in batch]
        i += k


def test_assess_many_alone_reads_each_message_once_and_equals_assessing_twice():
    from miaohui.safety.assess import assess_many_alone, history_signals_from, rank_alone

    texts = _corpus()
    signals = [None, {}, history_signals_from([(3, False)]), history_signals_from([(1, True)])]
    items = [(t, signals[i % len(signals)]) for i, t in enumerate(texts)]
    got = assess_many_alone(items, extras="risk")
    for (t, h), (a, alone) in zip(items, got, strict=True):
        w = assess(t, h, extras="risk")
        assert (a.tier, a.level, a.signals, a.rules, a.emotions, a.topics) == (
            w.tier, w.level, w.signals, w.rules, w.emotions, w.topics), t
        assert alone == rank_alone(assess(t)), t


def test_fold_table_is_the_per_character_fold():
    for t in _corpus() + ["ＡＢＣ１２３！", "ﬁ Ⅻ ㍿ İ ß 微信ＶＸ"]:
        assert B.fold(t) == "".join(B._fold_char(c) for c in t)
        assert len(B.fold(t)) == len(t)


def test_the_gates_never_change_a_boundary_scan(monkeypatch):
    """``scan`` with its required-character gates equals ``scan`` with every regex run."""
    texts = _corpus() + [e for sig in B.SIGNALS for e in (*sig.examples, *sig.near_misses)]
    texts += [t for m in B.MASKS for t, _ in m.examples] + list(B.MASK_NEAR_MISSES)
    rng = random.Random(5)
    every = "".join({c for s in B.SIGNALS for c in s.pattern if ord(c) > 127}) + "0123456789 @.-vxqwa一二三四五六七八九"
    texts += ["".join(rng.choice(every) for _ in range(rng.randint(1, 40))) for _ in range(600)]
    digits = "0123456789一二三四五六七八九〇零壹幺 -.@"
    texts += ["".join(rng.choice(digits) for _ in range(rng.randint(8, 30))) for _ in range(600)]
    texts += ["电话" + "".join(rng.choice(digits) for _ in range(rng.randint(9, 14))) for _ in range(300)]
    texts += ["ＶＸ：ｍｉａｏｈｕｉ２０２４", "加我ＷＸ", "ＱＱ号１２３４５６７８", "ΑΣ ΑΣ", "İstanbul 微信 abc_12345"]
    # other spellings of what the tables look for: the first test runs on the raw text
    odd = "ＶｖＸｘＷｗＱｑ＠１２３４５６７８９０①②③⑩㆒㆓㆔ＡＢ😊𝐯𝐱𝐰𝐪𝟏𝟐𝟑"
    texts += ["".join(rng.choice(every + odd) for _ in range(rng.randint(1, 40))) for _ in range(600)]
    texts += ["".join(rng.choice(digits + odd) for _ in range(rng.randint(8, 30))) for _ in range(600)]
    # numbers spelled out with separators, in every spelling the run test's classes hold
    seps = " -—–_.·•,，、/|*~()（）\u3000－．／＿｜～\t"
    numerals = "0123456789一二三四五六七八九〇零壹贰幺１２３４５６７８９０①②③⑩𝟏𝟐𝟑"

    def number() -> str:
        kind = rng.randint(0, 2)  # anything, a mobile, a landline
        digits = [rng.choice("1一壹幺") if kind == 1 else "0" if kind == 2 else rng.choice(numerals)]
        pool = "0123456789０１２３４５６７８９" if kind == 2 else numerals
        digits += [rng.choice(pool) for _ in range(rng.choice((9, 10, 11)) if kind else rng.randint(7, 12))]
        return "".join("".join(rng.choice(seps) for _ in range(rng.choice((0,) * 12 + (1, 1, 2, 3)) if i else 0)) + d
                       for i, d in enumerate(digits))

    texts += [rng.choice(("", "我的号码是", "座机", "打给我", "😊")) + number() + rng.choice(("", "吧", "，谢谢"))
              for _ in range(1500)]
    spelled = ["加我𝐯𝐱", "😊加我ｖｘ", "加我ＶＸ吧", "𝐪𝐪号𝟏𝟐𝟑𝟒𝟓𝟔𝟕𝟖", "手机𝟏𝟑𝟖𝟏𝟐𝟑𝟒𝟓𝟔𝟕𝟖", "手机①③⑧①②③④⑤⑥⑦⑧", "我爱你😊"]
    assert all(B.scan(t).flagged for t in spelled)
    texts += spelled
    gated = [B.scan(t) for t in texts]
    assert [B._scan(t, B.PUBLIC_NUMBERS, False) for t in texts] == gated
    assert any(g.flagged for g in gated) and any(g.masked for g in gated)
    assert sum(1 for g in gated if "mobile" in g.masked) >= 100
    assert sum(1 for g in gated if "landline" in g.masked) >= 40


def test_required_strings():
    assert required_strings("微信|qq") == frozenset({"微信", "qq"})
    assert required_strings("加(?:个|下)?微信") == frozenset({"加微信", "加个微信", "加下微信"})
    assert required_strings("(?:只想|只愿意)(?:和|跟)你") is not None
    assert required_strings("a?") is None and required_strings("(?i)ab") is None
    for pattern in [s.pattern for s in B.SIGNALS] + [m.pattern for m in B.MASKS]:
        needles = required_strings(pattern)
        for text in [e for s in B.SIGNALS for e in s.examples] + [t for m in B.MASKS for t, _ in m.examples]:
            folded = B.fold(text)
            if re.search(pattern, folded):
                assert needles is None or any(n in folded for n in needles), (pattern, text)


def test_fold_fast_path_is_the_per_character_fold():
    rng = random.Random(11)
    pool = "的一是了我你，。！？：；（）ＡＢＣａｂｃ１２３　ΣσİßﬁⅫ㍿😂abcXYZ微信ＶＸ"
    for _ in range(2000):
        t = "".join(rng.choice(pool) for _ in range(rng.randint(0, 12)))
        assert B.fold(t) == "".join(B._fold_char(c) for c in t), t


def test_stage2_over_the_present_terms_is_the_full_vectors_sum():
    """``RiskModel.score`` sums only the stage-1 outputs and the signals a detection has;
    the same probability, bit for bit, as the dot product over every stage-2 feature."""
    import math

    from miaohui.nlp.linear import sigmoid

    model = default_model()
    texts = [normalise(t) for t in _corpus()]
    n = 0
    for t in texts:
        det = K.detect(t, normalised=True)
        outs = [*model.text_model.decision(det.text), *model.dense.decision(det.text)]
        base = dict(zip(model.output_names, outs, strict=True))
        vec = [base[f] if f in base else det.signals.get(f, 0.0) for f in model.stage2_features]
        want = sigmoid(model.stage2_bias + math.fsum(w * x for w, x in zip(model.stage2_coef, vec, strict=True)))
        assert model.score(det, outs).prob == want
        n += bool(det.signals)
    assert n > 50  # many detections with signals


def test_unique_counts_is_numpys_unique_with_counts():
    from miaohui.nlp.linear import _unique_counts

    rng = np.random.default_rng(5)
    for n in (0, 1, 2, 3, 17, 400, 5000):
        for dtype in (np.int32, np.int64):
            a = rng.integers(0, max(1, n // 3), n).astype(dtype)
            want, want_counts = np.unique(a, return_counts=True)
            got, counts = _unique_counts(a)
            assert got.dtype == want.dtype and got.tolist() == want.tolist()
            assert counts.tolist() == want_counts.tolist()
