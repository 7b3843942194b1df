"""帮我找人 benchmark: how often is a right-topic listener in the top 3?

Run from the repository root (needs ../shared/data; the product never does)::

    .venv/bin/python bench/matching.py            # prints one JSON object, writes bench/results/matching.json
    .venv/bin/python bench/matching.py --no-save

The labelled set, from SmileChat (3,000 counseling dialogues):

* **Gold topic** of a dialogue: the topic-detector label (``miaohui.nlp.topics``)
  found in the most client turns *after the opening one* (ties: table order).
  Dialogues with no label are left out.  The opening turn never decides its
  own label.
* **Split** (seeded): half of the labelled dialogues are *served* history, the
  other half are *requests* — a request is the client's opening turn only.
* **Listeners** are built from topic clusters of the served half: for every
  label with enough served dialogues, ``LISTENERS_PER_TOPIC`` listeners, each
  with a disjoint share of that cluster.  A listener declares the label's words
  as topics (失恋/情感 → 失恋, 情感) and has the served-topic counts the product
  indexes for past orders (``matching.served``: detector labels of each
  served dialogue's client turns).  Everything else is equal (all online, same
  price, no reviews), so only topic fit decides.
* A **hit**: at least one listener of the gold topic among the top 3.

Variants: ``product`` (the shipped ranker), ``declared_only`` (cold start: no
served history), ``served_only`` (a listener who declared nothing: only the
topics of their past orders), ``words_only`` (BM25 over the words of each listener's served
dialogues, no detector at all — an independent check that the label-based
gold does not simply reward the detector), and ``random`` (expected value).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import Counter, defaultdict
from math import comb
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from miaohui.matching import ranker  # noqa: E402
from miaohui.nlp.topics import TOPICS, detect_topics  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "smilechat" / "dialogues.jsonl"
OUT = ROOT / "bench" / "results" / "matching.json"
LISTENERS_PER_TOPIC = 2
MIN_SERVED_PER_LISTENER = 10
TOP_K = 3
SEED = 6
ORDER = {name: i for i, (name, _) in enumerate(TOPICS)}


def load(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def client_turns(d: dict) -> list[str]:
    return [t["content"] for t in d["turns"] if t["role"] == "client" and t["content"].strip()]


def gold_label(turns: list[str]) -> str | None:
    counts: Counter[str] = Counter()
    for t in turns:
        counts.update(detect_topics(t))
    if not counts:
        return None
    return min(counts, key=lambda lab: (-counts[lab], ORDER[lab]))


def served_labels(turns: list[str]) -> set[str]:
    """What the product's indexer keeps of one served order: its labels."""
    out: set[str] = set()
    for t in turns:
        out.update(detect_topics(t))
    return out


def build(dialogues: list[dict], seed: int):
    labelled = []
    for d in dialogues:
        turns = client_turns(d)
        if len(turns) < 2:
            continue
        gold = gold_label(turns[1:])
        if gold is not None:
            labelled.append((d["id"], turns, gold))
    rng = random.Random(seed)
    rng.shuffle(labelled)
    half = len(labelled) // 2
    served, requests = labelled[:half], labelled[half:]
    clusters: dict[str, list] = defaultdict(list)
    for item in served:
        clusters[item[2]].append(item)
    listeners = []
    for label, items in sorted(clusters.items(), key=lambda kv: ORDER[kv[0]]):
        share = len(items) // LISTENERS_PER_TOPIC
        if share < MIN_SERVED_PER_LISTENER:
            continue
        for k in range(LISTENERS_PER_TOPIC):
            mine = items[k * share:(k + 1) * share]
            counts: Counter[str] = Counter()
            for _id, turns, _g in mine:
                counts.update(served_labels(turns))
            listeners.append({"id": f"{label}#{k}", "label": label, "topics": label.split("/"),
                              "served": dict(counts), "text": " ".join(t for _i, ts, _g in mine for t in ts)})
    covered = {ls["label"] for ls in listeners}
    requests = [(i, turns[0], gold) for i, turns, gold in requests if gold in covered]
    return labelled, served, requests, listeners


def candidates(listeners: list[dict], declared: bool = True, served: bool = True) -> list[ranker.Candidate]:
    return [ranker.Candidate(listener_id=ls["id"], topics=ls["topics"] if declared else [],
                             served_topics=ls["served"] if served else {}, online=True, window_s=30, price_fen=6000,
                             night_price_fen=18000) for ls in listeners]


def random_expectation(n_listeners: int, n_right: int, k: int = TOP_K) -> float:
    return 1 - comb(n_listeners - n_right, k) / comb(n_listeners, k)


def evaluate(requests, listeners) -> dict:
    label_of = {ls["id"]: ls["label"] for ls in listeners}
    by_label = Counter(ls["label"] for ls in listeners)
    variants = {"product": candidates(listeners), "declared_only": candidates(listeners, served=False),
                "served_only": candidates(listeners, declared=False)}
    words_bm25 = ranker.BM25([ranker.words(ls["text"]) for ls in listeners])
    ids = [ls["id"] for ls in listeners]
    hits: dict[str, int] = defaultdict(int)
    top1: dict[str, int] = defaultdict(int)
    per_label: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    no_label_in_opening = [0, 0]
    times = []
    for _id, text, gold in requests:
        req = ranker.Request(text=text)
        for name, cands in variants.items():
            t0 = time.perf_counter()
            ranked = ranker.rank(cands, req, TOP_K)
            if name == "product":
                times.append(time.perf_counter() - t0)
            got = [label_of[r.candidate.listener_id] for r in ranked]
            hit = gold in got
            hits[name] += hit
            top1[name] += got[0] == gold
            if name == "product":
                per_label[gold][0] += hit
                per_label[gold][1] += 1
                if not ranker.concepts(text):
                    no_label_in_opening[0] += hit
                    no_label_in_opening[1] += 1
        scores = words_bm25.scores(ranker.words(text))
        order = sorted(range(len(ids)), key=lambda i: (-scores[i], ids[i]))[:TOP_K]
        got = [label_of[ids[i]] for i in order]
        hits["words_only"] += gold in got
        top1["words_only"] += got[0] == gold
    n = len(requests)
    rnd = sum(random_expectation(len(listeners), by_label[g]) for _i, _t, g in requests) / n
    times.sort()
    return {
        "top3_hit_rate": {k: round(v / n, 4) for k, v in hits.items()} | {"random": round(rnd, 4)},
        "top1_accuracy": {k: round(v / n, 4) for k, v in top1.items()},
        "product_top3_by_topic": {lab: {"hit_rate": round(h / m, 4), "requests": m}
                                  for lab, (h, m) in sorted(per_label.items(), key=lambda kv: ORDER[kv[0]])},
        "product_top3_when_opening_has_no_topic_keyword": {
            "hit_rate": round(no_label_in_opening[0] / no_label_in_opening[1], 4) if no_label_in_opening[1] else None,
            "requests": no_label_in_opening[1]},
        "rank_ms_per_request": {"p50": round(times[len(times) // 2] * 1000, 3),
                                "p95": round(times[int(len(times) * 0.95)] * 1000, 3)},
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--no-save", action="store_true")
    args = ap.parse_args()
    t0 = time.perf_counter()
    dialogues = load(args.data)
    labelled, served, requests, listeners = build(dialogues, args.seed)
    print(f"{len(dialogues)} dialogues, {len(labelled)} labelled, {len(listeners)} listeners, "
          f"{len(requests)} requests", file=sys.stderr)
    result = {
        "benchmark": "matching top-3 (帮我找人)",
        "data": "SmileChat dialogues.jsonl (../shared/data)",
        "dialogues": len(dialogues),
        "labelled": len(labelled),
        "served_dialogues": len(served),
        "listeners": len(listeners),
        "listeners_per_topic": LISTENERS_PER_TOPIC,
        "topics": sorted({ls["label"] for ls in listeners}, key=ORDER.get),
        "requests": len(requests),
        "seed": args.seed,
        **evaluate(requests, listeners),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    text = json.dumps(result, ensure_ascii=False, indent=2)
    print(text)
    if not args.no_save:
        OUT.parent.mkdir(parents=True, exist_ok=True)
        OUT.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
