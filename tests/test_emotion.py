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


def test_word_ngrams_are_words_and_pairs():
    w = emotion_plus.words("我一点都不开心")
    assert "开心" in w and "".join(w) == "我一点都不开心"
    grams = emotion_plus.word_ngrams("我一点都不开心")
    assert grams[: len(w)] == list(w) and "不 开心" in grams and len(grams) == 2 * len(w) - 1
    assert emotion_plus.word_ngrams("") == []
    assert emotion_plus.embed_tokens("char", "好累") == ["好", "累"] and emotion_plus.embed_tokens("word", "好累")


def _toy_model(shift=None) -> emotion_plus.EmotionPlus:
    import numpy as np

    labels = ["a", "b"]
    blocks = [{"name": "char", "kind": "char", "lo": 1, "hi": 1, "weight": 1.0}]
    embeds = [({"name": "embed_char", "kind": "embed", "tokens": "char"}, ["好", "累"],
               np.array([[1.0, 0.0], [0.0, 3.0]]))]
    return emotion_plus.EmotionPlus(blocks, [["好", "x"]], [np.array([1.0, 2.0])], np.array([[2.0, 0.0], [0.0, 1.0]]),
                                    np.array([0.1, -0.1]), labels, shift=shift, embeds=embeds)


def test_embed_block_is_the_mean_of_token_rows(tmp_path):
    import numpy as np

    m = _toy_model()
    # char block: only 好 in vocabulary → l2-normalised value 1 → +[2, 0]; embed: mean of rows 好, 累 (x, 呀 unknown)
    assert np.allclose(m.logits("好累呀"), [0.1 + 2 + 0.5, -0.1 + 1.5])
    assert np.allclose(m.logits("呀"), [0.1, -0.1])  # nothing known: the bias alone
    m.save(tmp_path / "m.npz")
    back = emotion_plus.EmotionPlus.load(tmp_path / "m.npz")
    assert [b["name"] for b in back.embed_blocks] == ["embed_char"]
    for t in ("好累呀", "累", "x好", ""):
        assert np.allclose(back.logits(t), m.logits(t), atol=1e-6)
    with np.load(tmp_path / "m.npz", allow_pickle=False) as z:  # a plain npz: no object arrays
        assert all(z[k].dtype != object for k in z.files)


def test_shipped_artifact_is_small_and_calibrated():
    m = emotion_plus.default_model()
    assert emotion_plus.ARTIFACT.stat().st_size < 4_000_000
    cv = m.meta.get("cv") or {}
    assert cv.get("raw", {}).get("accuracy", 0) >= 0.555  # nested 5-fold CV on CLUEmotion's training file (shipped: no shifts)


def test_ppmi_svd_embeddings():
    import importlib.util
    from pathlib import Path

    import numpy as np

    path = Path(__file__).resolve().parents[1] / "scripts" / "train_emotion.py"
    spec = importlib.util.spec_from_file_location("train_emotion", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    seqs = [list("我很开心"), list("我很高兴"), list("他很难过"), list("她很伤心")] * 5
    vocab, e = mod.ppmi_svd(seqs, dim=4, window=2, min_count=3)
    assert vocab[0] == "很" and e.shape == (len(vocab), 4) and np.allclose(np.linalg.norm(e, axis=1), 1, atol=1e-4)
    again = mod.ppmi_svd(seqs, dim=4, window=2, min_count=3)
    assert again[0] == vocab and np.allclose(again[1], e)  # fixed seed: reproducible
    means = mod.mean_vectors(["开心", "zz"], "char", vocab, e)
    assert np.allclose(means[0], e[[vocab.index("开"), vocab.index("心")]].mean(0)) and not means[1].any()
