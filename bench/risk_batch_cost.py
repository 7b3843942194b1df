"""What the safety step's model costs a seeker message, as the risk worker calls it.

Run from the repository root::

    .venv/bin/python bench/risk_batch_cost.py                       # this tree, batches of 2, 10, 20
    .venv/bin/python bench/risk_batch_cost.py --baseline /tmp/old  # against another tree (DIR/src)
    .venv/bin/python bench/risk_batch_cost.py --instructions       # valgrind's count too (slow)

``/tmp/old`` is e.g. ``mkdir /tmp/old && git archive <commit> src | tar -x -C /tmp/old``.

Prints ONE JSON object.  Not a test.  It measures
``assess_many_alone(items, extras="risk")`` — what ``supervision.worker``
runs — on the benchmark's chat lines (``chat_latency.load_bodies``, SmileChat
seeker turns when ../shared/data is there), in batches as the monitor sends
them (its 10 ms linger gathers ~10 seeker messages at 2,000 msg/s, ~25 at
5,000):

* ``cpu_us``: process CPU per message, one pinned core, each tree in its own
  process, the trees alternating, the best of three passes per process; the
  minimum and median over the rounds.  On a shared machine this moves by
  ±15 % from minute to minute, hence the rounds and the same-run baseline.
* ``instructions`` (``--instructions``): instructions per message counted by
  ``valgrind --tool=cachegrind`` (a run over the messages minus a run over
  none, so the models' loading cancels out).  Deterministic to ~0.1 %, so it
  shows changes of a few per cent that timing cannot; it does not see cache
  misses, which the n-gram tables' random reads are bound by.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# One measurement, in a fresh interpreter: argv = src dir, batch size, messages, passes.
_CHILD = r"""
import sys, time, importlib
src, size, count, passes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
sys.path.insert(0, sys.argv[5]); sys.path.insert(0, src)
from chat_latency import load_bodies
A = importlib.import_module("miaohui.safety.assess")
bodies, _ = load_bodies()
items = [(b, {}) for b in bodies[5000 : 5000 + max(count, 60)]]
A.assess_many_alone(items[:60], extras="risk")  # the models loaded and warm
best = float("inf")
for _ in range(passes):
    t = time.process_time()
    for i in range(0, count, size):
        A.assess_many_alone(items[i : i + size], extras="risk")
    best = min(best, time.process_time() - t)
print(best / max(count, 1) * 1e6 if count else 0.0)
"""


def _child(src: str, size: int, count: int, passes: int, valgrind: bool = False) -> float:
    cmd = [sys.executable, "-c", _CHILD, src, str(size), str(count), str(passes), str(ROOT / "bench")]
    env = dict(os.environ, PYTHONHASHSEED="0", OPENBLAS_NUM_THREADS="1")
    if valgrind:
        cmd = ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null", *cmd]
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
        m = re.search(r"I\s+refs:\s+([\d,]+)", out.stderr)
        if m is None:
            raise RuntimeError("valgrind printed no instruction count")
        return float(m.group(1).replace(",", ""))
    if hasattr(os, "sched_getaffinity") and shutil.which("taskset"):
        cpu = max(os.sched_getaffinity(0))
        cmd = ["taskset", "-c", str(cpu), *cmd]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", default=str(ROOT / "src"), help="the tree to measure (its src/ dir or the dir holding it)")
    ap.add_argument("--baseline", help="another tree, measured in the same run (DIR or DIR/src)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[2, 10, 20], help="batch sizes (default 2 10 20)")
    ap.add_argument("--messages", type=int, default=4000, help="messages per pass (default 4000)")
    ap.add_argument("--rounds", type=int, default=5, help="processes per tree and size (default 5)")
    ap.add_argument("--instructions", action="store_true", help="also count instructions with valgrind")
    args = ap.parse_args()

    def tree(path: str) -> str:
        p = Path(path)
        return str(p / "src" if (p / "src" / "miaohui").is_dir() else p)

    trees = {"this": tree(args.src)}
    if args.baseline:
        trees["baseline"] = tree(args.baseline)
    result: dict = {"what": "assess_many_alone(extras='risk') per seeker message", "trees": trees,
                    "messages": args.messages, "cpu_us": {}, "instructions": {}}
    for size in args.sizes:
        samples: dict[str, list[float]] = {name: [] for name in trees}
        for r in range(args.rounds):
            order = list(trees.items()) if r % 2 == 0 else list(reversed(trees.items()))
            for name, src in order:
                samples[name].append(_child(src, size, args.messages, 3))
                print(f"batch {size} round {r + 1}: {name} {samples[name][-1]:.1f} µs", file=sys.stderr)
        result["cpu_us"][str(size)] = {
            name: {"min": round(min(v), 1), "median": round(statistics.median(v), 1), "all": [round(x, 1) for x in v]}
            for name, v in samples.items()
        }
        if args.instructions:
            count = min(args.messages, 2000)
            result["instructions"][str(size)] = {
                name: round((_child(src, size, count, 1, True) - _child(src, size, 0, 1, True)) / count)
                for name, src in trees.items()
            }
    if "baseline" in trees:
        result["ratio_median"] = {size: round(v["this"]["median"] / v["baseline"]["median"], 3)
                                  for size, v in result["cpu_us"].items()}
    print(json.dumps(result, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
