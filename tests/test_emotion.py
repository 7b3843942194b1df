"""``miaohui.nlp.emotion(text)``: seven calibrated scores from the shipped
artifact (n-grams + lexicon cues, NB-LR), the cue features (negation,
intensity, emoticons), about a millisecond a call, and the
``miaohui nlp eval-emotion`` command on a CLUE-format file."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import miaohui.nlp
from miaohui.nlp import emotion, emotion_plus


def test_callable_module_gives_seven_scores():
    s = miaohui.nlp.emotion("今天考试过了，太开心了[哈哈]")
    assert set(s) == set(emotion.LABELS) and abs(sum(s.values()) - 1) < 1e-3
    assert list(s)[0] == "happiness" and list(s.values()) == sorted(s.values(), reverse=True)
    assert emotion("气死我了，凭什么这样对我[怒]") and max(emotion("气死我了，凭什么这样对我[怒]").items(),
                                                     key=lambda kv: kv[1])[0] == "anger"
    assert next(iter(emotion("好难过，一个人哭了一晚上[泪]"))) == "sadness"
    assert emotion_plus.default_model() is not None  # the enhanced artifact ships in the package
    assert emotion.classify("好难过")[0].label == "sadness"  # the n-gram model (used by the safety step) too


def test_cue_tokens():
    toks = emotion_plus.cue_tokens("我一点都不开心!!真的好委屈[泪]😭")
    assert "L:sadness" in toks and "F:委屈" in toks and "L:sadness:int" in toks
    assert "B:[泪]" in toks and "E:😭" in toks and "P:exc" in toks and "P:exc2" in toks
    neg = emotion_plus.cue_tokens("我并不害怕")
    assert "L:fear:neg" in neg and "L:fear" not in neg


def test_about_a_millisecond():
    texts = ["今天好开心", "气死我了", "我好害怕明天的面试", "没想到他居然来了！", "好恶心的人[吐]"] * 40
    emotion("预热")
    t = time.perf_counter()
    for x in texts:
        emotion(x)
    assert (time.perf_counter() - t) / len(texts) < 0.005


def test_eval_emotion_cli(tmp_path):
    rows = [("今天太开心了[哈哈]", "happiness"), ("好难过，想哭[泪]", "sadness"), ("气死我了[怒]", "anger"),
            ("好恶心[吐]", "disgust"), ("我好害怕", "fear"), ("天哪，居然是真的！", "surprise"),
            ("好喜欢这只猫，太可爱了[爱你]", "like")]
    f = tmp_path / "cl.jsonl"
    f.write_text("\n".join(json.dumps({"id": i, "content": c, "label": lab}, ensure_ascii=False)
                           for i, (c, lab) in enumerate(rows)), encoding="utf-8")
    out = subprocess.run([sys.executable, "-m", "miaohui", "nlp", "eval-emotion", str(f)], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    assert r["n"] == 7 and 0 <= r["accuracy"] <= 1 and 0 <= r["macro_f1"] <= 1 and set(r["f1"]) == set(emotion.LABELS)
    assert r["accuracy"] >= 0.5 and r["latency_ms"]["p50"] < 5 and r["latency_ms"]["p99"] >= r["latency_ms"]["p50"]
    bad = subprocess.run([sys.executable, "-m", "miaohui", "nlp", "eval-emotion", str(tmp_path / "none.jsonl")],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "error" in json.loads(bad.stdout)
