"""Crisis-risk and emotion models: cross-validated quality, false alarms, latency, hand-written cases.

Run from the repository root (needs ``pip install -e '.[train]'`` and ../shared/data)::

    .venv/bin/python bench/safety_model.py            # full run (~4 min on 2 cores)
    .venv/bin/python bench/safety_model.py --quick    # latency + hand-written cases only (seconds)

Prints ONE JSON object on stdout (and writes it to bench/results/safety_model.json
unless --no-save); progress goes to stderr. Not a test. What it measures:

(a) 5-fold CV on the SOS-1K binary task: every fold retrains the *whole* pipeline
    (stage 1, out-of-fold stacking, stage 2, threshold) on the other four folds via
    ``miaohui.safety.training`` and predicts the held-out fold with the runtime
    ``assess`` (high risk ⇔ tier plan/imminent). Only sos1k/train.tsv is used.
(b) False alarms: share of SmileChat client turns with tier ≥ ideation, among turns
    that do not talk about death (``training.DEATH_TALK``, a documented regex), held
    out dialogue-wise in the same folds (the model never trained on them).
(c) Latency of ``assess`` (with emotions and topics) per message on one core, pinned
    with sched_setaffinity, models warm: SOS-1K texts, SmileChat turns, short chat
    (median of 3 timings per message; see ``latency``), plus a cold start.
(d) Hand-written implicit crisis messages and colloquial 死 messages with outcomes.
(e) Emotion model: 5-fold CV accuracy on CLUEmotion (the validation split we have).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from miaohui.nlp.emotion import EMOTION_ARTIFACT  # noqa: E402
from miaohui.safety import training  # noqa: E402
from miaohui.safety.assess import TIERS, assess  # noqa: E402
from miaohui.safety.model import RISK_ARTIFACT  # noqa: E402

# (text, history, acceptable tiers)
HAND_WRITTEN: list[tuple[str, list[str], tuple[str, ...]]] = [
    # implicit, chat-style crisis messages
    ("我现在在天台上，风好大", [], ("plan", "imminent")),
    ("药已经吃下去了，谢谢你陪我聊天", [], ("imminent",)),
    ("这是我最后一条消息了", [], ("plan", "imminent")),
    ("我把猫托付给朋友了，存款也转给我妈了", [], ("plan", "imminent")),
    ("欠大家的钱都还清了，银行卡密码写在抽屉里", [], ("plan", "imminent")),
    ("安眠药攒够了", [], ("plan", "imminent")),
    ("等过完生日我就走", [], ("plan", "imminent")),
    ("好了，我准备好了", ["我真的不想活了"], ("plan", "imminent")),
    ("谢谢你陪我聊天", ["活着没意思，我想死"], ("plan", "imminent")),
    ("买好了", ["我想吃安眠药死掉"], ("imminent",)),
    ("我坐在窗台上，下面的车好小", [], ("plan", "imminent")),
    ("炭已经点上了，屋里有点闷", [], ("imminent",)),
    ("遗书写好了，放在桌上", [], ("plan", "imminent")),
    ("有没有人一起走，北京的", [], ("plan", "imminent")),
    ("我打算今晚吃安眠药", [], ("plan", "imminent")),
    ("我把药都攒好了", [], ("imminent",)),
    ("有江西的吗 一起走好不好", [], ("plan", "imminent")),
    # wish to die without plan: ideation, not an alarm
    ("不想活了", [], ("ideation",)),
    ("活着好累，好想消失", [], ("ideation",)),
    ("有时候真的好想死", [], ("ideation",)),
    # colloquial 死 and jokes: no alarm
    ("累死了", [], ("none", "distress")),
    ("笑死我了", [], ("none", "distress")),
    ("气死我了", [], ("none", "distress")),
    ("死线快到了", [], ("none", "distress")),
    ("饿死了，点外卖", [], ("none", "distress")),
    ("热死了", [], ("none", "distress")),
    ("我是他的死忠粉", [], ("none", "distress")),
    ("作业写不完我要跳楼了哈哈哈", [], ("none", "distress", "ideation")),
    ("我要去跳楼了（狗头）", [], ("none", "distress", "ideation")),
    ("我从来没想过自杀", [], ("none", "distress")),
    ("放心，我不会做傻事的", [], ("none", "distress")),
    ("周末去爬山了", [], ("none", "distress")),
    ("还有其他的方法吗", [], ("none", "distress")),
    # medicine as treatment, greetings, everyday invitations: no alarm
    ("我在吃安眠药治疗失眠", [], ("none", "distress")),
    ("你好", [], ("none",)),
    ("在吗", [], ("none",)),
    ("我们一起去吃饭吧", [], ("none", "distress")),
    ("周末约了朋友去唱歌", [], ("none", "distress")),
    ("合上电脑前写的最后一句", [], ("none", "distress")),
    ("有人约我一起吃饭", [], ("none", "distress")),
]


def percentile(sorted_ms: list[float], q: float) -> float:
    return round(sorted_ms[min(len(sorted_ms) - 1, int(q * len(sorted_ms)))], 3)


def latency(texts: list[str], passes: int = 3) -> dict:
    """Per-message ``assess`` time on one core. The machine is shared (2 cores, other test suites), so each
    message is timed ``passes`` times in separate passes and its median is used (``p50_ms``/``p99_ms``);
    ``raw_p99_ms`` pools every single timing, scheduler noise included."""
    try:
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[-1]})
        pinned = True
    except (AttributeError, OSError):
        pinned = False
    assess("预热 warm-up")  # loads both models (once per process)
    for t in texts[:200]:
        assess(t)
    runs: list[list[float]] = []
    for _ in range(passes):
        times = []
        for t in texts:
            s = time.perf_counter()
            assess(t)
            times.append((time.perf_counter() - s) * 1000)
        runs.append(times)
    per_msg = sorted(statistics.median(x) for x in zip(*runs, strict=True))
    raw = sorted(x for r in runs for x in r)
    return {"n": len(per_msg), "p50_ms": percentile(per_msg, 0.5), "p99_ms": percentile(per_msg, 0.99),
            "max_ms": round(per_msg[-1], 3), "raw_p99_ms": percentile(raw, 0.99),
            "mean_chars": round(sum(map(len, texts)) / len(texts), 1), "one_core": pinned}


def cold_start_ms() -> float:
    """A fresh interpreter: import miaohui.safety and assess one message (loads both .npz models)."""
    code = ("import time; t = time.perf_counter(); from miaohui.safety import assess; assess('你好'); "
            "print((time.perf_counter() - t) * 1000)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    return round(float(out.stdout.strip()), 1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="skip the cross-validation (a, b, e)")
    ap.add_argument("--no-save", action="store_true")
    args = ap.parse_args(argv)

    def log(msg: str) -> None:
        print(f"[bench] {msg}", file=sys.stderr, flush=True)

    sos, smile = training.load_sos(args.data), training.load_smile(args.data)
    emo = training.load_emotion(args.data)
    out: dict = {"artifacts_bytes": {"risk.npz": RISK_ARTIFACT.stat().st_size,
                                     "emotion.npz": EMOTION_ARTIFACT.stat().st_size}}
    cases = []
    for text, history, ok in HAND_WRITTEN:
        a = assess(text, history)
        cases.append({"text": text, "history": history, "tier": a.tier, "level": a.level, "score": a.score,
                      "signals": list(a.signals), "expected": "|".join(ok), "ok": a.tier in ok})
    out["hand_written"] = {"passed": sum(c["ok"] for c in cases), "n": len(cases), "cases": cases}

    chat = [t for d in smile[:600] for t in d]
    out["latency"] = {
        "sos1k": latency([r.text for r in sos]),
        "smilechat": latency(chat),
        "short_chat": latency([c[0] for c in HAND_WRITTEN] * 20),
    }
    out["latency"]["cold_start_ms"] = cold_start_ms()
    log(f"latency {json.dumps(out['latency'])}")

    if not args.quick:
        t0 = time.perf_counter()
        cv = training.cross_validate(sos, smile, folds=5, seed=args.seed, everyday=[t for t, _ in emo], log=log,
                                     embed_corpus=training.load_unlabelled(args.data))
        out["cv_sos1k"] = cv["sos1k"]
        out["false_alarms_smilechat"] = cv["smilechat_false_alarms"]
        out["cv_seconds"] = round(time.perf_counter() - t0, 1)
        log("emotion CV")
        out["emotion_cv"] = training.cross_validate_emotion(emo, folds=5, seed=args.seed)
    targets = {"cv_f1>=0.89": out.get("cv_sos1k", {}).get("f1", 0) >= 0.89,
               "false_alarms<=2%": out.get("false_alarms_smilechat", {}).get("rate", 1) <= 0.02,
               "p99<=2ms": all(v["p99_ms"] <= 2.0 for v in out["latency"].values() if isinstance(v, dict))}
    out["targets_met"] = targets
    out["tiers"] = list(TIERS)
    text = json.dumps(out, ensure_ascii=False, indent=2)
    print(text)
    if not args.no_save and not args.quick:
        (ROOT / "bench" / "results").mkdir(exist_ok=True)
        (ROOT / "bench" / "results" / "safety_model.json").write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
