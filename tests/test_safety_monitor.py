"""The safety step on the message path, without a server: the per-conversation
history it keeps gives exactly what ``assess(text, history)`` gives with the
full history, at half the cost; what it decides to publish, and to whom."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import orjson

from miaohui.config import Settings
from miaohui.safety import assess
from miaohui.supervision.monitor import SafetyMonitor, private_topic

MIXED = [
    "今天又被老板骂了", "哈哈哈开玩笑的", "我要去跳楼了（狗头）", "最近总是睡不着", "我不想活了",
    "谢谢你陪我聊天", "好了，我准备好了", "买好了", "累死了", "我坐在窗台上", "这是我最后一条消息了",
    "男朋友跟我分手了", "你是唯一懂我的人", "考试又挂了不想活了哈哈哈", "药已经吃下去了", "吃饭了吗",
]


class Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict]] = []

    def publish_nowait(self, topic: str, data: str) -> None:
        self.sent.append((topic, orjson.loads(data)))


def monitor() -> tuple[SafetyMonitor, Recorder]:
    broker = Recorder()
    return SafetyMonitor(SimpleNamespace(settings=Settings(safety_workers=0), broker=broker)), broker


def test_history_kept_by_the_monitor_gives_the_same_assessments_as_full_history():
    m, _ = monitor()
    for start in range(len(MIXED)):
        conv = f"c{start}"
        history: list[str] = []
        for i in range(12):
            text = MIXED[(start * 5 + i * 7) % len(MIXED)]
            full = assess(text, history[-8:])
            v = m.check(conv, "seeker-1", "seeker", "listener-1", text)
            got = (v.tier, v.level, v.signals) if v is not None and v.tier != "none" else ("none",)
            want = (full.tier, full.level, full.signals) if full.tier != "none" else ("none",)
            assert got == want, (history[-8:], text)
            history.append(text)


def test_listeners_are_scanned_not_assessed_and_notices_are_left_alone():
    m, _ = monitor()
    assert m.check("c", "l", "listener", "s", "我不想活了") is None  # a listener quoting is not a risk
    assert m.assessed == 0
    v = m.check("c", "l", "listener", "s", "加我微信 abc_12345")
    assert v is not None and v.body == "加我微信 [账号已隐藏]" and v.tier == "none"
    assert m.check("c", "system", "system", "s", "电话 13812345678") is None
    assert m.check("c", "sup", "supervisor", "s", "可以打 12356") is None


def test_what_is_published_and_to_whom():
    async def go():
        m, broker = monitor()
        v = m.check("c1", "seeker-1", "seeker", "listener-1", "今晚我就跳下去，再见了")
        m._spawn = lambda coro: coro.close()  # no database here: only the events
        m.committed(v, 7)
        return broker.sent

    sent = asyncio.run(go())
    topics = [t for t, _ in sent]
    assert topics == [private_topic("c1", "listener-1"), "user:listener-1", private_topic("c1", "seeker-1")]
    risk, console, card = (f for _, f in sent)
    assert risk["type"] == console["type"] == "risk" and risk["seq"] == 7 and "guidance" in risk
    assert card["type"] == "hotline" and card["lines"][0]["number"] == "12356"


def test_a_resend_publishes_nothing_again():
    m, broker = monitor()
    v = m.check("c1", "seeker-1", "seeker", "listener-1", "我好难过，男朋友跟我分手了")
    m.committed(v, 3, duplicate=True)
    assert broker.sent == []


def test_batched_path_after_commit_equals_checking_each_message_in_order():
    """The WebSocket path scans before storing and assesses after COMMIT, a
    loop turn's seeker messages in batches — several of one conversation in
    the same turn included (an earlier one may change the next one's history).
    Every message's published risk tier equals the one-at-a-time ``check``."""

    async def go():
        batched, broker = monitor()
        batched._spawn = lambda coro: coro.close()  # no database here
        batched.linger_s = 0  # one batch per turn below (the linger has its own test)
        single, _ = monitor()
        want: list[tuple[int, str]] = []
        tiers: list[tuple[int, str, str]] = []
        seq = 0
        for turn in range(6):  # each turn: several messages from 3 conversations, as one writer batch would
            for k in range(5):
                conv = f"c{(turn + k) % 3}"
                text = MIXED[(turn * 5 + k * 3) % len(MIXED)]
                seq += 1
                v = single.check(conv, "seeker-1", "seeker", "listener-1", text)
                want.append((seq, v.tier if v is not None else "none"))
                sc = batched.prescan("seeker", text)
                assert sc is not None and sc.text == (v.body if v is not None else text)
                batched.after_commit(conv, "seeker-1", "seeker", "listener-1", text, sc, seq,
                                     then=lambda tier, s=seq, c=conv: tiers.append((s, tier, c)))
            await asyncio.sleep(0)  # the loop turn ends: the batch is assessed
            await asyncio.sleep(0)
        for _ in range(3):
            await asyncio.sleep(0)
        # A batch takes each conversation once (the next message of one waits for
        # the history this one leaves); the rest follow in the next loop turn.
        assert 12 >= batched.batches >= 6 and batched.assessed == 30
        return want, tiers, broker.sent

    want, tiers, sent = asyncio.run(go())
    # Every message gets the tier checking it alone (in order) gives; within a
    # conversation they are finished in order (across conversations a batch may
    # take a later message of another conversation first).
    assert sorted((s, t) for s, t, _ in tiers) == want
    for conv in {c for _, _, c in tiers}:
        seqs = [s for s, _, c in tiers if c == conv]
        assert seqs == sorted(seqs)
    # Guidance goes for every message at ideation and above; a distress hint
    # at most once per refresh interval in a conversation (here: the first).
    risky = {s for s, t in want if t != "none"}
    guided = {s for s, t in want if t not in ("none", "distress")}
    published = {f["seq"] for _, f in sent if f["type"] == "risk"}
    assert guided and guided <= published <= risky


def test_batched_path_listeners_and_resends():
    async def go():
        m, broker = monitor()
        m._spawn = lambda coro: coro.close()
        got: list[str] = []
        sc = m.prescan("listener", "加我微信 abc_12345")
        assert sc.text == "加我微信 [账号已隐藏]"
        m.after_commit("c", "l", "listener", "s", "加我微信 abc_12345", sc, 1, then=got.append)
        assert m.prescan("supervisor", "电话 13812345678") is None
        sc = m.prescan("seeker", "我不想活了")
        m.after_commit("c", "s", "seeker", "l", "我不想活了", sc, 2, duplicate=True, then=got.append)
        await asyncio.sleep(0)
        return m, got, broker.sent

    m, got, sent = asyncio.run(go())
    assert got == ["none", "none"] and m.assessed == 0  # listeners are not assessed; a resend was handled before
    assert [f["type"] for _, f in sent] == ["boundary", "boundary"]  # both sides warned, once


def test_a_long_queue_is_assessed_in_bounded_batches_in_order():
    from miaohui.supervision.monitor import FLUSH_MAX

    async def go():
        m, _ = monitor()
        m._spawn = lambda coro: coro.close()
        m.linger_s = 0
        tiers: list[int] = []
        n = FLUSH_MAX * 2 + 5
        for seq in range(1, n + 1):
            text = MIXED[seq % len(MIXED)]
            m.after_commit(f"c{seq}", "s", "seeker", "l", text, m.prescan("seeker", text), seq,
                           then=lambda tier, s=seq: tiers.append(s))
        for _ in range(5):
            await asyncio.sleep(0)
        return m, tiers, n

    m, tiers, n = asyncio.run(go())
    assert tiers == list(range(1, n + 1)) and m.batches == 3 and m.assessed == n


def test_messages_within_the_linger_are_one_batch_and_drain_flushes_the_rest():
    async def go():
        m, _ = monitor()
        m._spawn = lambda coro: coro.close()
        m.linger_s = 0.05
        got: list[int] = []
        for seq in (1, 2, 3):
            m.after_commit(f"c{seq}", "s", "seeker", "l", "我不想活了", m.prescan("seeker", "我不想活了"), seq,
                           then=lambda tier, s=seq: got.append(s))
            await asyncio.sleep(0.005)
        assert got == [] and m.batches == 0  # still lingering
        await asyncio.sleep(0.08)
        assert got == [1, 2, 3] and m.batches == 1
        m.after_commit("c", "s", "seeker", "l", "好累", m.prescan("seeker", "好累"), 4,
                       then=lambda tier: got.append(4))
        await m.drain()  # shutdown does not wait for the linger, and loses nothing
        return got, m.batches

    assert asyncio.run(go()) == ([1, 2, 3, 4], 2)


def test_counters_show_the_backlog_and_how_long_the_oldest_message_waited():
    async def go():
        m, _ = monitor()
        m._spawn = lambda coro: coro.close()
        m.linger_s = 0.05
        assert m.counters() == {"queued": 0, "assessed": 0, "batches": 0, "lag_ms": 0.0, "lag_ms_max": 0.0}
        for seq in (1, 2):
            m.after_commit(f"c{seq}", "s", "seeker", "l", "睡不着", m.prescan("seeker", "睡不着"), seq)
        waiting = m.counters()
        await asyncio.sleep(0.1)
        return waiting, m.counters()

    waiting, done = asyncio.run(go())
    assert waiting["queued"] == 2 and waiting["assessed"] == 0
    assert done["queued"] == 0 and done["assessed"] == 2 and done["batches"] == 1
    # the first message waited out the linger (50 ms) before the batch was assessed
    assert 45 <= done["lag_ms"] == done["lag_ms_max"] < 5000


def test_healthz_reports_the_safety_backlog(server, seeker, conversation):
    import time

    import httpx

    before = httpx.get(server.url + "/healthz").json()["safety"]
    assert set(before) == {"queued", "assessed", "batches", "lag_ms", "lag_ms_max"}
    r = httpx.post(f"{server.url}/api/conversations/{conversation}/messages",
                   json={"client_id": "health-1", "body": "最近总是睡不着"}, headers=seeker.headers)
    assert r.status_code == 201, r.text
    deadline = time.monotonic() + 5
    while (after := httpx.get(server.url + "/healthz").json()["safety"])["assessed"] == before["assessed"]:
        assert time.monotonic() < deadline, after
        time.sleep(0.02)
    assert after["assessed"] == before["assessed"] + 1 and after["queued"] == 0


def test_an_unchanged_distress_hint_is_sent_once_guidance_always():
    m, broker = monitor()
    m._spawn = lambda coro: coro.close()
    sad = m.check("c1", "seeker-1", "seeker", "listener-1", "我好难过，男朋友跟我分手了")
    assert sad is not None and sad.tier == "distress"
    m.committed(sad, 1)
    m.committed(sad, 2)  # the same emotions, topics and hint: nothing new for the listener
    assert [f["seq"] for _, f in broker.sent if f["type"] == "risk"] == [1, 1]  # chat + console, once
    plan = m.check("c1", "seeker-1", "seeker", "listener-1", "今晚我就跳下去，再见了")
    m.committed(plan, 3)
    m.committed(plan, 4)  # guidance is never held back
    m.committed(sad, 5)  # after guidance, a hint is news again
    risk = [(f["seq"], "guidance" in f) for _, f in broker.sent if f["type"] == "risk"]
    assert risk == [(1, False), (1, False), (3, True), (3, True), (4, True), (4, True), (5, False), (5, False)]
    other = m.check("c2", "seeker-2", "seeker", "listener-1", "我好难过，男朋友跟我分手了")
    m.committed(other, 1)  # another conversation has its own
    assert sum(1 for _, f in broker.sent if f["type"] == "risk" and f["conversation_id"] == "c2") == 2


def test_a_changed_distress_hint_waits_for_the_refresh_interval_guidance_never():
    from miaohui.clock import FakeClock
    from miaohui.supervision.monitor import HINT_REFRESH_S

    clock = FakeClock()
    broker = Recorder()
    m = SafetyMonitor(SimpleNamespace(settings=Settings(safety_workers=0), broker=broker, clock=clock))
    m._spawn = lambda coro: coro.close()

    def hints(conv="c1"):
        return [(f["seq"], sorted(f["topics"])) for t, f in broker.sent
                if f["type"] == "risk" and f["conversation_id"] == conv and not t.startswith("user:")]

    sad = m.check("c1", "seeker-1", "seeker", "listener-1", "我好难过，男朋友跟我分手了")
    work = m.check("c1", "seeker-1", "seeker", "listener-1", "工作压力太大了，每天都很焦虑，睡不着")
    assert sad.tier == work.tier == "distress" and set(sad.topics) != set(work.topics)
    m.committed(sad, 1)
    clock.advance(HINT_REFRESH_S - 1)
    m.committed(work, 2)  # a different card, but the last one is too recent: the slot stays as it is
    assert hints() == [(1, sorted(sad.topics))]
    other = m.check("c2", "seeker-2", "seeker", "listener-1", "工作压力太大了，每天都很焦虑，睡不着")
    m.committed(other, 1)  # each conversation has its own interval
    assert hints("c2") == [(1, sorted(other.topics))]
    clock.advance(1)
    m.committed(work, 3)  # the interval is over: the current card goes
    m.committed(sad, 4)  # and starts the next interval
    assert hints() == [(1, sorted(sad.topics)), (3, sorted(work.topics))]
    assert "hint" in [f for _, f in broker.sent if f["type"] == "risk" and f["seq"] == 3][0]
    plan = m.check("c1", "seeker-1", "seeker", "listener-1", "今晚我就跳下去，再见了")
    m.committed(plan, 5)  # guidance never waits
    m.committed(sad, 6)  # and after it a hint is news at once
    assert [s for s, _ in hints()] == [1, 3, 5, 6]
