"""The crisis-risk model on hand-written cases, its knowledge and rule tables, and ``miaohui safety eval``.

Fast and self-contained: only the shipped artifacts, never ../shared/data.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest

from miaohui import cli
from miaohui.nlp import normalise
from miaohui.nlp.linear import LinearTextModel
from miaohui.nlp.topics import detect_topics
from miaohui.safety import LEVEL_RANGE, RULES, TIERS, assess, emotions, topics
from miaohui.safety.knowledge import MASKING, PATTERNS, SIGNALS, detect

RANK = {t: i for i, t in enumerate(TIERS)}


def rank(text: str, history: list[str] | None = None) -> int:
    return RANK[assess(text, history).tier]


# ---- hand-written cases ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text", ["累死了", "笑死我了", "气死我了", "死线快到了", "饿死了", "热死了，空调坏了", "我是周杰伦的死忠粉",
             "今天加班忙得要死", "这道题难死了", "手机又卡死了"],
)
def test_colloquial_death_words_are_not_risk(text):
    assert assess(text).tier in ("none", "distress")


@pytest.mark.parametrize("text", ["不想活了", "我真的好想死", "活着没意思"])
def test_wish_to_die_without_plan_is_ideation(text):
    assert assess(text).tier == "ideation"


@pytest.mark.parametrize(
    "text",
    ["我现在在天台上，风好大", "药已经吃下去了，谢谢你陪我聊天", "这是我最后一条消息了",
     "我把猫托付给朋友了，存款也转给我妈了", "安眠药我已经买好了", "等过完生日我就去死", "我打算今晚去烧炭"],
)
def test_implicit_and_explicit_plans_are_high_risk(text):
    a = assess(text)
    assert a.tier in ("plan", "imminent"), a
    assert a.high_risk and a.score >= 0.5 and a.level >= 6


def test_means_in_hand_and_height_now_are_imminent():
    assert assess("药已经吃下去了，谢谢你陪我聊天").tier == "imminent"
    assert assess("我现在在天台上，风好大").tier == "imminent"
    a = assess("药已经吃下去了")
    assert {"acquired_means"} <= set(a.signals)


@pytest.mark.parametrize("text", ["我从来没想过自杀", "我不想死", "放心，我不会做傻事的", "我没有自杀的想法"])
def test_negation_stays_below_ideation(text):
    assert rank(text) < RANK["ideation"]
    assert "negation" in assess(text).signals


def test_negation_does_not_hide_other_risk():
    assert assess("我不想死，但是药已经吃下去了").tier == "imminent"


@pytest.mark.parametrize("marker", ["（狗头）", "哈哈哈", "，开玩笑的", " doge"])
def test_joke_markers_lower_risk(marker):
    serious, joking = assess("作业写不完，我要去跳楼了"), assess("作业写不完，我要去跳楼了" + marker)
    assert serious.high_risk
    assert RANK[joking.tier] <= RANK["ideation"] and joking.score < serious.score
    assert "joke" in joking.signals


def test_jokes_never_lower_means_in_hand():
    assert assess("药已经吃下去了哈哈").tier == "imminent"


def test_history_raises_risk():
    ready = "好了，我准备好了"
    assert rank(ready) < RANK["plan"]
    assert rank(ready, ["我真的不想活了"]) >= RANK["plan"]
    assert assess(ready, ["最近好累", "我打算今晚吃安眠药"]).tier == "imminent"
    thanks = "谢谢你陪我聊天"
    assert rank(thanks) < RANK["plan"] <= rank(thanks, ["活着没意思，我想死"])
    assert "history_risk" in assess(thanks, ["活着没意思，我想死"]).signals


def test_history_of_jokes_lowers_risk():
    text = "我要去跳楼"
    assert assess(text).high_risk
    assert not assess(text, ["哈哈哈今天又被老板骂了", "开玩笑的啦"]).high_risk


def test_ordinary_talk_is_not_risk():
    for text in ["今天吃了火锅", "你好", "谢谢你的建议", "我想问一下怎么提高学习效率", "周末去爬山了", "还有其他的方法吗"]:
        assert rank(text) < RANK["ideation"], text


@pytest.mark.parametrize("text", ["我把药都攒好了", "安眠药我攒了很多", "囤了三十片安眠药", "医生开的安眠药我都攒好了"])
def test_stockpiled_pills_are_means_in_hand(text):
    a = assess(text)
    assert a.tier == "imminent" and "acquired_means" in a.signals, a


@pytest.mark.parametrize("text", ["我在吃安眠药治疗失眠", "医生开的安眠药，每晚吃一片", "艾司唑仑是医生开的，用来助眠"])
def test_medicine_taken_as_treatment_is_not_an_alarm(text):
    a = assess(text)
    assert rank(text) < RANK["ideation"] and "medical" in a.signals, a


def test_medical_words_do_not_hide_intent():
    assert assess("医生开的安眠药，我打算今晚全吃了，我不想活了").high_risk
    assert assess("我在吃安眠药治疗失眠，今晚就去跳楼").high_risk


@pytest.mark.parametrize("text", ["你好", "在吗", "在吗？", "您好呀", "hello", "有人吗"])
def test_bare_greetings_are_none(text):
    assert assess(text).tier == "none"


def test_greeting_after_risk_is_not_an_alarm_of_its_own():
    assert rank("在吗", ["我真的不想活了"]) <= RANK["ideation"]


def test_a_not_a_question_is_not_a_negation():
    a = assess("我要跳七楼会不会死掉？")
    assert "negation" not in a.signals and a.high_risk


@pytest.mark.parametrize("text", ["有江西的吗 一起走好不好", "征病友一起走", "想自杀的可以约我", "有没有一起烧炭的"])
def test_partner_search_is_high_risk(text):
    a = assess(text)
    assert "together" in a.signals and a.high_risk, a


@pytest.mark.parametrize("text", ["我们一起去吃饭吧", "周末约了朋友去唱歌", "要不要一起去吃饭", "希望我们能够一起走出困境",
                                  "合上电脑前写的最后一句。", "有人约我一起吃饭"])
def test_everyday_invitations_are_not_alarms(text):
    assert rank(text) < RANK["ideation"], assess(text)


def test_assessment_contract():
    for text, history in [("我现在在天台上，风好大", None), ("不想活了", None), ("今天好开心", None),
                          ("好了，我准备好了", ["我真的不想活了"]), ("", None)]:
        a = assess(text, history)
        assert a.tier in TIERS
        lo, hi = LEVEL_RANGE[a.tier]
        assert lo <= a.level <= hi and isinstance(a.level, int)
        assert 0.0 <= a.score <= 1.0 and (a.score >= 0.5) == a.high_risk
        d = json.loads(json.dumps(a.to_dict(), ensure_ascii=False))
        assert d["tier"] == a.tier and isinstance(d["signals"], list)
        with pytest.raises(dataclasses.FrozenInstanceError):
            a.tier = "none"  # type: ignore[misc]


# ---- knowledge and rule tables -----------------------------------------------------------------------
@pytest.mark.parametrize("i", range(len(PATTERNS)))
def test_knowledge_rows_match_their_examples(i):
    p = PATTERNS[i]
    assert p.signal in SIGNALS and 0.0 < p.weight <= 1.0 and p.examples
    for text in p.examples:
        assert p.compiled.search(normalise(text)), (p.signal, text)
        if p.signal not in MASKING:
            assert detect(text).signals.get(p.signal, 0) >= p.weight - 1e-9, (p.signal, text)
    for text in p.counter:
        assert not p.compiled.search(normalise(text)), (p.signal, text)


def test_masking_rows_remove_death_words():
    for p in PATTERNS:
        if p.signal in MASKING:
            for text in p.examples:
                det = detect(text)
                assert "ideation" not in det.signals and "死" not in det.text and "自杀" not in det.text, text


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.name)
def test_rule_examples_behave_as_documented(rule):
    assert rule.examples, rule.name
    for text, history, allowed in rule.examples:
        a = assess(text, list(history))
        assert a.tier in allowed.split("|"), (rule.name, text, history, a)
        if rule.floor:
            assert RANK[a.tier] >= RANK[rule.floor] or not rule.hard


# ---- emotions, topics, text utilities --------------------------------------------------------------------
def test_emotions_have_chinese_labels_and_probabilities():
    out = emotions("今天收到了礼物，好开心啊")
    assert out[0].zh in ("快乐", "喜爱") and 0 < out[0].prob <= 1
    labels = {e.zh for e in emotions("气死我了，他又骗我", top=7)}
    assert labels == {"喜爱", "快乐", "悲伤", "愤怒", "厌恶", "恐惧", "惊讶"}
    assert abs(sum(e.prob for e in emotions("随便说点什么", top=7)) - 1.0) < 1e-3
    assert emotions("我好害怕，晚上一个人不敢睡", top=3)[0].zh in ("恐惧", "悲伤")
    assert any(zh == "悲伤" for zh, _ in assess("我好难过，一直在哭").emotions)


def test_topics():
    assert {"失恋/情感", "失眠"} <= set(topics("和男朋友分手了，整晚睡不着"))
    assert "工作/职场" in detect_topics("老板天天让我加班")
    assert "学业/考试" in assess("明天就要考试了，好焦虑").topics
    assert topics("嗯") == ()


def test_normalise():
    assert normalise("ＡＢＣ！１２３") == "abc!123"
    assert normalise("我殺了兩次  遺書") == "我杀了两次 遗书"
    assert normalise("哈哈哈哈哈哈哈") == "哈哈哈"


def test_linear_model_round_trip(tmp_path):
    vocab = ["死", "天台", "好"]
    m = LinearTextModel(vocab, np.array([1.0, 2.0, 1.5], np.float32), np.array([[1.0], [2.0], [-1.0]], np.float32),
                        np.array([0.5], np.float32), {"ngram_range": [1, 2], "outputs": ["x"]})
    m.save(tmp_path / "m.npz")
    m2 = LinearTextModel.load(tmp_path / "m.npz")
    # "天台好": 1-2-grams in vocabulary: 好 (tf 1, idf 1.5), 天台 (tf 1, idf 2) -> l2-normalised
    expected = 0.5 + (2.0 * 2.0 - 1.0 * 1.5) / np.hypot(2.0, 1.5)
    assert m2.decision("天台好")[0] == pytest.approx(expected, rel=1e-6)
    assert m2.decision("")[0] == pytest.approx(0.5)


def test_linear_model_keeps_extra_arrays(tmp_path):
    extra = {"emb_chars": np.array(["死", "好"], dtype="<U1"), "emb_vectors": np.eye(2, dtype=np.float32)}
    m = LinearTextModel(["死"], np.ones(1, np.float32), np.ones((1, 1), np.float32), np.zeros(1, np.float32),
                        {"outputs": ["x"]}, extra)
    m.save(tmp_path / "m.npz")
    m2 = LinearTextModel.load(tmp_path / "m.npz")
    assert set(m2.extra) == set(extra)
    assert m2.extra["emb_chars"].tolist() == ["死", "好"]
    assert np.array_equal(m2.extra["emb_vectors"], extra["emb_vectors"])


def test_char_embedding_head_pools_mean_and_max():
    from miaohui.safety.model import CharEmbeddingHead

    vec = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 3.0]])
    coef = np.array([[1.0], [0.0], [0.0], [2.0]])  # mean of dim 0, max of dim 1
    h = CharEmbeddingHead(["死", "好", "累"], vec, coef, np.array([0.5]), ["e"])
    # "好死x": 好 and 死 known, x unknown -> mean [0.5, 0.5], max [1, 1]
    assert h.decision("好死x") == pytest.approx([0.5 + 0.5 + 2.0])
    assert h.decision("xyz") == pytest.approx([0.5])  # no known character: zeros


def test_shipped_risk_model_has_its_dense_view():
    from miaohui.safety.model import default_model

    m = default_model()
    assert m.dense is not None and set(m.dense.names) <= set(m.stage2_features)
    assert m.dense.vectors.shape[0] == len(m.dense.index) and m.dense.coef.shape == (2 * m.dense.dim, len(m.dense.names))


def test_runtime_needs_numpy_only():
    code = ("import sys; from miaohui.safety import assess; a = assess('我现在在天台上'); "
            "assert a.tier == 'imminent'; assert 'sklearn' not in sys.modules and 'scipy' not in sys.modules; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


# ---- the eval CLI --------------------------------------------------------------------------------------
ROWS = [
    ("我现在在天台上，风好大", "1", "10", "imminent"),
    ("药已经吃下去了，谢谢你陪我聊天", "1", "9", "plan"),
    ("今天吃了火锅", "0", "0", "none"),
    ("累死了", "0", "1", "distress"),
    ("不想活了", "0", "4", "ideation"),
    ("这是我最后一条消息了", "1", "6", "plan"),
]


@pytest.mark.parametrize("column", ["high_risk", "level", "tier"])
def test_eval_cli(tmp_path, capsys, column):
    i = {"high_risk": 1, "level": 2, "tier": 3}[column]
    path = tmp_path / "gold.tsv"
    path.write_text("text\t" + column + "\n" + "".join(f"{r[0]}\t{r[i]}\n" for r in ROWS), encoding="utf-8")
    with pytest.raises(SystemExit) as exc:
        cli.main(["safety", "eval", str(path)])
    assert exc.value.code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n"] == len(ROWS) and report["gold_column"] == column
    assert report["precision"] == report["recall"] == report["f1"] == report["accuracy"] == 1.0
    assert report["confusion"] == {"tp": 3, "fp": 0, "fn": 0, "tn": 3}
    assert 0 < report["latency_ms"]["p50"] <= report["latency_ms"]["p99"]


def test_eval_cli_rejects_a_file_without_gold(tmp_path, capsys):
    path = tmp_path / "bad.tsv"
    path.write_text("text\n你好\n", encoding="utf-8")
    with pytest.raises(SystemExit) as exc:
        cli.main(["safety", "eval", str(path)])
    assert exc.value.code == 2 and "high_risk" in capsys.readouterr().err


def test_assess_cli(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["safety", "assess", "好了，我准备好了", "--history", "我真的不想活了"])
    assert exc.value.code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["tier"] in ("plan", "imminent") and "history_risk" in out["signals"]
