"""The risk model in a process of its own (``safety_workers`` > 0).

The server sends batches of seeker messages, each with its history signals,
and gets back what :func:`miaohui.supervision.monitor.assess_batch` made of
them, over the JSON-lines pipe of :mod:`miaohui.core.lineproc` (why a
subprocess rather than a process pool is written there).  A dead worker is
restarted, and the batch it held is assessed on the loop instead, so no
message goes unassessed.

Protocol: first line ``{"nice": n}``; then one line per batch,
``{"id": k, "items": [[text, history signals], ...]}``, answered in order
by ``{"id": k, "r": [[tier, level, score, signals, rules, emotions, topics,
rank alone, joking alone], ...]}`` (or ``{"id": k, "error": "..."}``).
Message text travels only over this private pipe and is never logged.
"""

from __future__ import annotations

from miaohui.core.lineproc import RESTART_AFTER_S, RESTART_MAX_S, LineProcess, serve_lines
from miaohui.core.lineproc import ProcessGone as WorkerGone

__all__ = ["RESTART_AFTER_S", "RESTART_MAX_S", "RiskWorker", "WorkerGone"]


def encode_results(out) -> list:
    return [[a.tier, a.level, a.score, a.signals, a.rules, a.emotions, a.topics, rank, joke]
            for a, (rank, joke) in out]


def decode_results(rows: list) -> list:
    from miaohui.safety.assess import Assessment

    return [(Assessment(t, lv, sc, tuple(sg), tuple(ru), tuple(tuple(e) for e in em), tuple(tp)), (rank, joke))
            for t, lv, sc, sg, ru, em, tp, rank, joke in rows]


def _setup(hello: dict):
    from miaohui.supervision.monitor import _warm, assess_batch

    _warm(int(hello.get("nice", 0)))
    return lambda job: encode_results(assess_batch([(t, h or None) for t, h in job["items"]]))


def main() -> None:
    """``python -m miaohui.supervision.worker`` (started by :class:`RiskWorker`)."""
    serve_lines(_setup, "risk worker")


class RiskWorker(LineProcess):
    """The server's end.  :meth:`assess` sends a batch and awaits its answer;
    it raises :class:`WorkerGone` when the process died (the caller assesses
    that batch itself), and the next call starts a new process."""

    name = "risk worker"

    def __init__(self, nice: int = 0, module: str = "miaohui.supervision.worker") -> None:
        super().__init__(module, {"nice": nice})
        self.nice = nice

    @property
    def batches(self) -> int:
        return self.calls

    async def assess(self, items: list[tuple[str, dict]]) -> list:
        return decode_results(await self.call({"items": items}))


if __name__ == "__main__":
    main()
