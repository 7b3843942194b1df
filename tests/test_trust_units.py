"""Pure parts of trust and matching: resident ID validation (GB 11643), the
training quiz, the listing-wording rule, proof sniffing, and the ranker's
guarantees (an offline listener never outranks an online equal, one usually
on duty at this hour outranks one who is not; a crisis request only returns
listeners with a verified professional qualification)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from miaohui.core.crypto import KeyRing, generate_key_spec
from miaohui.matching import ranker
from miaohui.matching.directory import Filters, apply, directory_filters
from miaohui.matching.ranker import Candidate, Request, rank
from miaohui.verification import course, identity, proofs
from miaohui.verification.records import COUNSELING_CLAIM, allowed_claims, scrub_claims

TODAY = date(2026, 1, 1)

# ----------------------------------------------------------------- ID numbers


def test_valid_numbers_pass_including_check_character_x():
    p = identity.check_id("11010519491231002X", TODAY)  # the standard's worked example
    assert p.birth == date(1949, 12, 31) and p.female
    p = identity.check_id("110105 19900307 1239", TODAY)  # spaces are ignored
    assert p.number == "110105199003071239" and not p.female
    assert identity.check_id("11010519491231002x", TODAY).number.endswith("X")  # lower-case x
    assert identity.check_id("１１０１０５１９４９１２３１００２Ｘ", TODAY).number == "11010519491231002X"  # full-width


@pytest.mark.parametrize("last", [c for c in "0123456789X" if c != "9"])
def test_wrong_check_digit_is_refused(last):
    good = identity.make_id("110105", date(1990, 3, 7), 123)
    assert good[-1] == "9"
    with pytest.raises(identity.IdError) as e:
        identity.check_id(good[:-1] + last, TODAY)
    assert e.value.code == "id_checksum"


@pytest.mark.parametrize("birth", ["19900230", "19901301", "19900000", "20010229", "18991231"])
def test_impossible_or_implausible_birth_dates_are_refused(birth):
    first17 = f"110105{birth}123"
    number = first17 + identity.check_char(first17)  # a correct check digit: the date alone is wrong
    with pytest.raises(identity.IdError) as e:
        identity.check_id(number, TODAY)
    assert e.value.code == "id_birth_date"


def test_future_birth_date_is_refused():
    with pytest.raises(identity.IdError) as e:
        identity.check_id(identity.make_id("110105", date(2026, 6, 1), 123), TODAY)
    assert e.value.code == "id_birth_date"


@pytest.mark.parametrize("raw,code", [
    ("1101051949123100", "id_format"),  # 16 characters
    ("11010519491231002XX", "id_format"),
    ("1101051949123100X2", "id_format"),  # X only as the last character
    ("99010519491231002X", "id_region"),
    ("", "id_format"),
])
def test_shape_and_region(raw, code):
    with pytest.raises(identity.IdError) as e:
        identity.check_id(raw, TODAY)
    assert e.value.code == code


def test_age_and_the_eighteenth_birthday():
    birth = date(2008, 1, 2)
    assert identity.age_on(birth, date(2026, 1, 1)) == 17  # under 18 the day before
    assert identity.age_on(birth, date(2026, 1, 2)) == 18
    assert identity.adult_on(birth) == date(2026, 1, 2)
    assert identity.adult_on(date(2008, 2, 29)) == date(2026, 3, 1)  # leap-day births turn 18 on 1 March


def test_legal_names_and_masks():
    assert identity.check_name(" 阿依古丽•买买提 ") == "阿依古丽·买买提"
    for bad in ("李", "Li Lei", "张三1", "", "·张三"):
        with pytest.raises(identity.IdError):
            identity.check_name(bad)
    assert identity.mask_id("11010519491231002X") == "110105********002X"
    assert identity.mask_name("张小明") == "张**"


# -------------------------------------------------------------------- course


def test_quiz_passes_with_the_key_and_fails_on_any_crisis_mistake():
    key = course.answer_key()
    assert course.grade(key).passed and course.grade(key).correct == len(course.QUESTIONS)
    musts = [q for q in course.QUESTIONS if q.must]
    assert len(musts) >= 3 and all(q.section == "crisis" for q in musts)
    # One crisis answer wrong: 9/10 is not enough.
    g = course.grade({**key, musts[0].id: (musts[0].answer + 1) % 4})
    assert not g.passed and g.correct == 9 and g.missed_must == (musts[0].id,)
    # Two ordinary mistakes: 8/10 passes; three do not.
    plain = [q for q in course.QUESTIONS if not q.must]
    two = {**key, **{q.id: (q.answer + 1) % 4 for q in plain[:2]}}
    assert course.grade(two).passed
    assert not course.grade({**two, plain[2].id: (plain[2].answer + 1) % 4}).passed
    assert not course.grade({}).passed  # unanswered counts as wrong


def test_course_is_in_chinese_and_names_the_hotlines():
    text = " ".join(p for s in course.SECTIONS for p in s.points)
    for must in ("12356", "110", "120", "我担心对方", "移情", "微信", "不截图"):
        assert must in text
    public = course.public_course()
    assert all("answer" not in q and "why" not in q for q in public["questions"])


# --------------------------------------------------------- wording, proofs


def test_counseling_wording_follows_verified_qualifications():
    assert COUNSELING_CLAIM.search("国家三级心理咨询师") and COUNSELING_CLAIM.search("提供心理咨询")
    assert not COUNSELING_CLAIM.search("情感倾听")
    counselor = [{"counseling": True}]
    social = [{"counseling": False}]
    assert allowed_claims(["国家三级心理咨询师", "社工"], social) == ["社工"]
    assert allowed_claims(["国家三级心理咨询师"], counselor) == ["国家三级心理咨询师"]
    assert scrub_claims("专业心理咨询，陪你聊", social) == ""
    assert scrub_claims("做了四年倾听。我是国家三级心理咨询师！擅长失眠。", social) == "做了四年倾听。擅长失眠。"
    assert scrub_claims("我是国家三级心理咨询师", counselor) == "我是国家三级心理咨询师"


def test_proofs_are_sniffed_and_encrypted(tmp_path):
    png = b"\x89PNG\r\n\x1a\n" + b"\0" * 100
    assert proofs.sniff(png) == "image/png"
    assert proofs.sniff(b"%PDF-1.7 ...") == "application/pdf"
    assert proofs.sniff(b"\xff\xd8\xff\xe0....") == "image/jpeg"
    assert proofs.sniff(b"RIFF\0\0\0\0WEBPVP8 ") == "image/webp"
    assert proofs.sniff(b"<svg xmlns=...>") is None and proofs.sniff(b"GIF89a") is None
    kr = KeyRing(generate_key_spec("t"))
    key_id, digest = proofs.store(kr, tmp_path, "q1", png)
    blob = (tmp_path / "proofs" / "q1.bin").read_bytes()
    assert png not in blob and b"PNG" not in blob
    assert proofs.load(kr, tmp_path, "q1", key_id) == png
    (tmp_path / "proofs" / "q2.bin").write_bytes(blob)  # a file moved onto another record does not decrypt
    with pytest.raises(Exception):  # noqa: B017 - cryptography's InvalidTag
        proofs.load(kr, tmp_path, "q2", key_id)


# -------------------------------------------------------------------- ranker

PRO = {"kind": "counselor_3", "title": "国家三级心理咨询师", "counseling": True, "professional": True}
DEGREE = {"kind": "degree", "title": "心理学本科", "counseling": False, "professional": False}


def demo_candidates() -> list[Candidate]:
    return [
        Candidate("lin", "林晴", "失恋、分手后的夜晚，我陪你慢慢说", "擅长陪伴分手后的失眠夜。", ["失恋", "情感", "孤独"],
                  window_s=10, price_fen=6000, night_price_fen=18000, badges=[PRO]),
        Candidate("zhou", "周言", "职场压力、焦虑、睡不着", "懂加班、绩效和裁员的焦虑。", ["职场", "焦虑", "失眠"],
                  window_s=30, price_fen=8000, night_price_fen=24000,
                  badges=[{**PRO, "kind": "social_worker", "title": "社会工作者", "counseling": False}]),
        Candidate("jin", "阿瑾", "家庭关系、亲子与原生家庭", "两个孩子的妈妈。", ["家庭", "亲子", "原生家庭"],
                  window_s=60, price_fen=5000, night_price_fen=15000, badges=[DEGREE]),
        Candidate("bai", "小白", "学业压力、考研、室友关系", "刚毕业的研究生。", ["学业", "人际", "自我成长"],
                  window_s=30, price_fen=3000, night_price_fen=9000),
    ]


@pytest.mark.parametrize("text,top", [
    ("和男朋友分手三个月了，晚上还是睡不着", "lin"),
    ("老板天天让我加班，绩效又差，我快撑不住了", "zhou"),
    ("我妈总是控制我，家里喘不过气", "jin"),
    ("考研二战又没上岸，不知道该怎么办", "bai"),
])
def test_topic_fit_finds_the_right_listener(text, top):
    ranked = rank(demo_candidates(), Request(text))
    assert ranked[0].candidate.listener_id == top
    assert ranked[0].explanation.startswith("擅长")


def test_explanation_is_one_line_of_measured_facts():
    cs = demo_candidates()
    cs[0] = replace(cs[0], online=True, instant_rate=0.97, turns=40, rating=4.8, review_count=12)
    (r, *_) = rank(cs, Request("失恋了，好难受", budget_fen=8000))
    assert r.explanation == "擅长失恋话题 · 现在在线 · 近30天秒回率 97% · 4.8 分（12 条评价） · 在预算内"
    assert "\n" not in r.explanation


def test_partner_words_are_not_friendship():
    assert "人际" not in ranker.concepts("和男朋友分手了")
    assert "人际" in ranker.concepts("和室友合不来，没有朋友")


candidate_st = st.builds(
    Candidate,
    listener_id=st.sampled_from(["a", "b"]),
    headline=st.sampled_from(["", "失恋陪伴", "职场焦虑", "家庭关系"]),
    topics=st.lists(st.sampled_from(["失恋", "职场", "家庭", "学业", "焦虑"]), max_size=3),
    served_topics=st.dictionaries(st.sampled_from(["失恋/情感", "家庭", "焦虑"]), st.integers(1, 9), max_size=2),
    accepting=st.booleans(),
    load=st.integers(0, 3),
    capacity=st.integers(1, 3),
    instant_rate=st.one_of(st.none(), st.floats(0, 1)),
    turns=st.integers(0, 50),
    window_s=st.sampled_from([None, 10, 30, 60, 120]),
    rating=st.one_of(st.none(), st.floats(1, 5)),
    review_count=st.integers(0, 30),
    price_fen=st.integers(0, 30000),
    night_price_fen=st.integers(0, 90000),
    badges=st.sampled_from([[], [PRO], [DEGREE]]),
    usual_now=st.booleans(),
)
request_st = st.builds(
    Request,
    text=st.sampled_from(["", "失恋了睡不着", "加班好焦虑", "家里吵架", "我不知道怎么说"]),
    budget_fen=st.one_of(st.none(), st.integers(1000, 20000)),
    window_s=st.sampled_from([None, 10, 30, 60]),
    night=st.booleans(),
)


@settings(max_examples=150, deadline=None)
@given(c=candidate_st, others=st.lists(candidate_st, max_size=4), r=request_st)
def test_an_offline_listener_never_outranks_an_online_equal(c, others, r):
    online = replace(c, listener_id="zz-online", online=True)
    offline = replace(c, listener_id="aa-offline", online=False)  # wins any id tie-break, if there were one
    pool = [replace(o, listener_id=f"o{i}") for i, o in enumerate(others)] + [offline, online]
    order = [x.candidate.listener_id for x in rank(pool, r)]
    assert order.index("zz-online") < order.index("aa-offline")


@settings(max_examples=100, deadline=None)
@given(c=candidate_st, r=request_st)
def test_offline_but_usually_here_at_this_hour_ranks_above_offline_and_says_so(c, r):
    c = replace(c, online=False, accepting=True)
    usual = replace(c, listener_id="zz-usual", usual_now=True)
    not_now = replace(c, listener_id="aa-not-now", usual_now=False)
    out = {x.candidate.listener_id: x for x in rank([usual, not_now], r)}
    if out:
        assert out["zz-usual"].score > out["aa-not-now"].score
        assert "现在不在线，通常这个时段在线，可先留言" in out["zz-usual"].reasons
        assert "现在不在线，可先留言" in out["aa-not-now"].reasons


@settings(max_examples=100, deadline=None)
@given(pool=st.lists(candidate_st, min_size=1, max_size=6), r=request_st)
def test_a_crisis_request_only_returns_verified_professionals(pool, r):
    pool = [replace(c, listener_id=f"c{i}") for i, c in enumerate(pool)]
    out = rank(pool, replace(r, crisis=True))
    assert all(x.candidate.professional for x in out)
    assert {x.candidate.listener_id for x in out} == {c.listener_id for c in pool if c.professional}
    for x in out:
        assert x.reasons[0].startswith("持证：")


def test_not_ready_listeners_are_never_recommended():
    cs = demo_candidates()
    cs[0] = replace(cs[0], ready=False, online=True)
    assert "lin" not in [x.candidate.listener_id for x in rank(cs, Request("失恋了"))]


def test_budget_and_reply_speed_preferences():
    cs = [replace(c, online=True) for c in demo_candidates()]
    r = rank(cs, Request("我想找人聊聊", budget_fen=5000))
    by = {x.candidate.listener_id: x for x in r}
    assert "在预算内" in by["bai"].explanation and "超出预算 ¥30/小时" in by["zhou"].explanation
    assert by["bai"].parts["price"] == 1.0 and by["zhou"].parts["price"] < 1.0
    night = {x.candidate.listener_id: x for x in rank(cs, Request("聊聊", budget_fen=10000, night=True))}
    assert "在预算内" in night["bai"].explanation and "超出预算" in night["jin"].explanation
    fast = {x.candidate.listener_id: x for x in rank(cs, Request("聊聊", window_s=10))}
    assert fast["lin"].parts["speed"] > fast["zhou"].parts["speed"]


# ------------------------------------------------------------------ filters


def card(uid, **kw) -> dict:
    base = {"user_id": uid, "display_name": uid, "headline": "", "bio": "", "topics": [], "languages": ["普通话"],
            "price_per_hour_fen": 5000, "night_price_per_hour_fen": 15000, "online_now": False, "presence": "offline",
            "accepting": True, "load": 0, "capacity": 2, "ready": True, "badges": [], "gender": None,
            "response_window_s": 30, "rating": None, "review_count": 0, "served_topics": {}, "usual_now": False,
            "stats": {"instant_rate": None, "turns": 0, "median_reply_ms": None, "completed_orders": 0}}
    return {**base, **kw}


def test_directory_filters_and_sorts():
    cards = [
        card("a", topics=["失恋"], price_per_hour_fen=6000, night_price_per_hour_fen=18000, gender="female",
             badges=[PRO], response_window_s=10, online_now=True, presence="online"),
        card("b", topics=["职场"], price_per_hour_fen=8000, night_price_per_hour_fen=24000, gender="male",
             languages=["普通话", "English"], rating=4.9, review_count=20,
             stats={"instant_rate": 0.99, "turns": 50, "median_reply_ms": 4000, "completed_orders": 9}),
        card("c", topics=["家庭"], price_per_hour_fen=3000, night_price_per_hour_fen=9000, badges=[DEGREE],
             response_window_s=60, rating=5.0, review_count=1, favorite=True),
    ]
    ids = lambda f: [c["user_id"] for c in apply(cards, f)]  # noqa: E731
    assert ids(Filters(topic="职场")) == ["b"]
    assert sorted(ids(Filters(price_min_fen=5000, price_max_fen=8000))) == ["a", "b"]
    assert ids(Filters(price_max_fen=10000, night=True)) == ["c"]
    assert ids(Filters(online=True)) == ["a"]
    assert ids(Filters(window_s=10)) == ["a"] and ids(Filters(window_s=30)) == ["a", "b"]
    assert sorted(ids(Filters(qualification="any"))) == ["a", "c"] and ids(Filters(qualification="counselor_3")) == ["a"]
    assert ids(Filters(gender="female")) == ["a"]  # listeners who did not show a gender never match one
    assert ids(Filters(language="English")) == ["b"]
    assert ids(Filters(sort="price")) == ["c", "a", "b"]
    assert ids(Filters(sort="price", night=True)) == ["c", "a", "b"]
    assert ids(Filters(sort="rating"))[0] == "b"  # 20 reviews at 4.9 beat one 5-star review
    assert ids(Filters(sort="speed"))[0] == "b"  # measured 99 % first
    assert ids(Filters())[0] == "a"  # recommended: online now
    assert ids(Filters(favorites=True)) == ["c"] and Filters(favorites=True).active
    assert directory_filters({"fav": "1"}).favorites and not directory_filters({"fav": "yes"}).favorites
    f = directory_filters({"price": "50-100", "period": "night", "window": "10", "qual": "nope", "gender": "x",
                           "sort": "bogus", "online": "1"})
    assert (f.price_min_fen, f.price_max_fen, f.night, f.window_s, f.qualification, f.gender, f.sort, f.online) == (
        5000, 10000, True, 10, None, None, "recommended", True)
