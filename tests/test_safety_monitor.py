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
    return SafetyMonitor(SimpleNamespace(settings=Settings(), broker=broker)), broker


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
