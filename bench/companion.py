"""Skills-engine reply latency (the built-in AI companion) and emotion-model latency.

    .venv/bin/python bench/companion.py              # SmileChat client turns if ../shared/data is there
    .venv/bin/python bench/companion.py --turns 400  # fewer turns

Replays client turns of SmileChat dialogues (realistic Chinese help-seeking
messages) through ``SkillsEngine.reply`` as 20-turn sessions — each session
keeps its own state, as a conversation does — and times every reply on one
core (pinned with sched_setaffinity where available), plus
``miaohui.nlp.emotion(text)`` on the same texts.  Falls back to the
hand-written test conversations when the data set is absent.  Prints ONE JSON
object (and writes bench/results/companion.json unless --no-save).  Not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from miaohui.companion.engine import Turn  # noqa: E402
from miaohui.companion.skills import SkillsEngine  # noqa: E402
from miaohui.nlp import emotion  # noqa: E402

SMILE = ROOT.parent / "shared" / "data" / "smilechat" / "dialogues.jsonl"


def sessions(limit: int) -> list[list[str]]:
    out: list[list[str]] = []
    if SMILE.exists():
        with open(SMILE, encoding="utf-8") as f:
            for line in f:
                turns = [t["content"] for t in json.loads(line)["turns"] if t["role"] == "client"]
                if turns:
                    out.append(turns[:20])
                if sum(map(len, out)) >= limit:
                    break
        return out
    from tests.test_companion_skills import CONVERSATIONS

    return list(CONVERSATIONS.values())


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(q * len(xs)))], 3)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--turns", type=int, default=2000)
    ap.add_argument("--no-save", action="store_true")
    args = ap.parse_args(argv)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    engine = SkillsEngine()
    engine.reply(Turn("预热", state={}))  # models loaded outside the timings
    convs = sessions(args.turns)
    reply_ms: list[float] = []
    emo_ms: list[float] = []
    repeats = 0
    for conv in convs:
        state: dict = {}
        said: set[str] = set()
        for text in conv:
            t = time.perf_counter()
            r = engine.reply(Turn(text, state=state))
            reply_ms.append((time.perf_counter() - t) * 1000)
            repeats += r.text in said
            said.add(r.text)
            t = time.perf_counter()
            emotion(text)
            emo_ms.append((time.perf_counter() - t) * 1000)
    result = {
        "source": "smilechat client turns" if SMILE.exists() else "tests/test_companion_skills.py conversations",
        "sessions": len(convs),
        "turns": len(reply_ms),
        "repeated_replies_within_a_session": repeats,
        "skills_reply_ms": {"p50": pct(reply_ms, 0.5), "p99": pct(reply_ms, 0.99), "max": round(max(reply_ms), 3),
                            "mean": round(statistics.fmean(reply_ms), 3)},
        "emotion_ms": {"p50": pct(emo_ms, 0.5), "p99": pct(emo_ms, 0.99), "mean": round(statistics.fmean(emo_ms), 3)},
    }
    out = json.dumps(result, ensure_ascii=False, indent=2)
    print(out)
    if not args.no_save:
        (ROOT / "bench" / "results" / "companion.json").write_text(out + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
