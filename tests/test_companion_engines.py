"""Engines: the OpenAI-compatible backend against a fake LLM server that
speaks the real streaming protocol over HTTP (chunks, 429/500 with retries,
timeouts, malformed chunks, cancellation); the optional GGUF engine (import
guarded); and, on a live platform server configured with the OpenAI engine,
the crisis path overriding the engine, output checks before anything is
shown, and the fallback to the skills engine — never silence."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from miaohui.companion.engine import EngineError, Turn
from miaohui.companion.gguf import GGUFEngine, load_llama
from miaohui.companion.openai_compat import OpenAICompatEngine
from miaohui.companion.service import AI_USER_ID, build_engine
from miaohui.companion.skills import SkillsEngine
from tests.companion_fake_llm import FakeLLM
from tests.conftest import Api, LiveServer, make_settings
from tests.test_chat_ws import connect, drain_sync

pytestmark = pytest.mark.asyncio


@pytest.fixture
def llm():
    f = FakeLLM().start()
    yield f
    f.stop()


def engine(llm, **kw) -> OpenAICompatEngine:
    opts = {"api_key": "sk-test", "retries": 2, "backoff": 0.01, "first_token_timeout": 1.0, "idle_timeout": 1.0,
            "total_timeout": 10.0}
    opts.update(kw)
    return OpenAICompatEngine(llm.base_url, "qwen-test", **opts)


async def collect(e, text="最近好累") -> str:
    out = []
    async for chunk in e.stream(Turn(text, history=[("seeker", "你好"), ("companion", "你好，我是 AI")])):
        out.append(chunk)
    return "".join(out)


async def test_streams_chunks_with_prompt_and_key(llm):
    e = engine(llm)
    llm.then(("text", "听起来你真的很累。想多说一点吗？"))
    chunks = []
    async for c in e.stream(Turn("最近好累", memory=[{"kind": "name", "text": "小雨"}])):
        chunks.append(c)
    await e.aclose()
    assert "".join(chunks) == "听起来你真的很累。想多说一点吗？" and len(chunks) > 3
    req = llm.requests[-1]
    assert req["auth"] == "Bearer sk-test"
    body = req["body"]
    assert body["model"] == "qwen-test" and body["stream"] is True
    assert body["messages"][0]["role"] == "system" and "不是真人" in body["messages"][0]["content"]
    assert "小雨" in body["messages"][0]["content"] and body["messages"][-1] == {"role": "user", "content": "最近好累"}


async def test_retries_429_and_500_then_succeeds(llm):
    e = engine(llm)
    llm.then(("status", 429, 0), ("status", 500), ("text", "我在。"))
    assert await collect(e) == "我在。"
    assert len(llm.requests) == 3
    await e.aclose()


async def test_gives_up_after_retries(llm):
    e = engine(llm, retries=1)
    llm.then(("status", 500), ("status", 503), ("text", "不会用到"))
    with pytest.raises(EngineError):
        await collect(e)
    assert len(llm.requests) == 2
    await e.aclose()


async def test_non_retryable_status(llm):
    e = engine(llm)
    llm.then(("status", 401))
    with pytest.raises(EngineError):
        await collect(e)
    assert len(llm.requests) == 1
    await e.aclose()


async def test_first_token_timeout_is_retried(llm):
    e = engine(llm, first_token_timeout=0.3, retries=1)
    llm.then(("stall_first", 3.0), ("text", "第二次就好了。"))
    t = time.monotonic()
    assert await collect(e) == "第二次就好了。"
    assert time.monotonic() - t < 2.5
    await e.aclose()


async def test_stall_after_first_token_is_an_error_not_a_retry(llm):
    e = engine(llm, idle_timeout=0.3)
    llm.then(("stall_mid", "听起来", 3.0))
    with pytest.raises(EngineError):
        await collect(e)
    assert len(llm.requests) == 1  # text already shown is never duplicated by a retry
    await e.aclose()


async def test_total_timeout(llm):
    e = engine(llm, first_token_timeout=5.0, total_timeout=0.5, retries=3)
    llm.then(("stall_first", 3.0))
    t = time.monotonic()
    with pytest.raises(EngineError):
        await collect(e)
    assert time.monotonic() - t < 2.0
    await e.aclose()


async def test_malformed_chunks_skipped_and_garbage_is_an_error(llm):
    e = engine(llm, retries=0)
    llm.then(("malformed", "你愿意说说发生了什么吗？"))
    assert await collect(e) == "你愿意说说发生了什么吗？"
    llm.then(("garbage",))
    with pytest.raises(EngineError):
        await collect(e)
    await e.aclose()


async def test_unreachable_server_is_an_engine_error():
    e = OpenAICompatEngine("http://127.0.0.1:9/v1", "m", retries=1, backoff=0.01, connect_timeout=0.5)
    with pytest.raises(EngineError):
        await collect(e)
    await e.aclose()


async def test_cancellation_closes_the_stream(llm):
    e = engine(llm, idle_timeout=5.0)
    llm.then(("stall_mid", "我在听", 5.0))
    got = asyncio.Event()

    async def reader():
        async for _ in e.stream(Turn("你好")):
            got.set()

    task = asyncio.create_task(reader())
    await asyncio.wait_for(got.wait(), 3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(100):  # the server sees the client go away
        if llm.disconnects:
            break
        await asyncio.sleep(0.02)
    assert llm.disconnects == 1
    await e.aclose()


@pytest.mark.filterwarnings("ignore::pytest.PytestWarning")
def test_engine_factory_falls_back_to_skills(tmp_path):
    s = make_settings("sqlite+aiosqlite:///x.db", tmp_path, companion_engine="openai")  # no URL / model
    assert isinstance(build_engine(s), SkillsEngine)
    s = make_settings("sqlite+aiosqlite:///x.db", tmp_path, companion_engine="gguf",
                      companion_gguf_path=str(tmp_path / "none.gguf"))
    assert isinstance(build_engine(s), SkillsEngine)  # llama-cpp-python is an optional extra


@pytest.mark.filterwarnings("ignore::pytest.PytestWarning")
def test_gguf_import_is_guarded(tmp_path):
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        with pytest.raises(EngineError, match="optional extra"):
            load_llama(str(tmp_path / "model.gguf"))
    else:
        with pytest.raises(EngineError):
            load_llama(str(tmp_path / "missing.gguf"))


class _FakeLlama:
    """Stands in for llama_cpp.Llama (whose package is optional): same call, same chunk shape."""

    def __init__(self, text: str, fail: bool = False):
        self.text, self.fail, self.calls = text, fail, []

    def create_chat_completion(self, messages, stream, max_tokens, temperature):
        self.calls.append(messages)
        if self.fail:
            raise RuntimeError("boom")
        for i in range(0, len(self.text), 3):
            yield {"choices": [{"delta": {"content": self.text[i:i + 3]}}]}


async def test_gguf_engine_streams_through_a_thread():
    llm = _FakeLlama("我在这里，慢慢说。")
    e = GGUFEngine(llm=llm)
    assert await collect(e) == "我在这里，慢慢说。"
    assert llm.calls[0][0]["role"] == "system"
    with pytest.raises(EngineError):
        await collect(GGUFEngine(llm=_FakeLlama("", fail=True)))


# ------------------------------------------------------------------ in the product


@pytest.fixture
def ai_server(database_url, tmp_path, clock, llm):
    s = LiveServer(make_settings(database_url, tmp_path, companion_engine="openai",
                                 companion_openai_base_url=llm.base_url, companion_openai_model="qwen-test",
                                 companion_first_token_timeout=0.5, companion_idle_timeout=0.5,
                                 companion_total_timeout=5.0, companion_retries=1), clock).start()
    yield s
    s.stop()


async def talk(api) -> tuple:
    async with api.client() as c:
        conv = (await c.post("/api/companion/open")).json()["conversation_id"]
    ws, _ = await connect(api, conv)
    await drain_sync(ws)
    return conv, ws


async def say(ws, body: str, timeout: float = 10.0):
    from tests.test_companion_ws import say as say_ws

    return await say_ws(ws, body, timeout)


async def test_llm_reply_streamed_and_persisted(ai_server, llm):
    seeker = Api(ai_server, "xiaoyu")
    conv, ws = await talk(seeker)
    llm.then(("text", "听起来你这周过得很不容易。最难的是哪一刻？"))
    msg, streamed, frames = await say(ws, "这周过得好难")
    assert msg["body"] == "听起来你这周过得很不容易。最难的是哪一刻？" == streamed
    assert next(f for f in frames if f["type"] == "companion_start")["engine"] == "openai"
    assert next(f for f in frames if f["type"] == "companion_end")["engine"] == "openai"
    await ws.close()


async def test_crisis_never_reaches_the_engine(ai_server, llm):
    seeker = Api(ai_server, "xiaoyu")
    conv, ws = await talk(seeker)
    before = len(llm.requests)
    msg, _, frames = await say(ws, "我已经买好安眠药了，今晚就结束")
    assert len(llm.requests) == before  # the model never saw the crisis turn
    assert "督导" in msg["body"] and "AI" in msg["body"]
    assert any(f["type"] == "companion_card" and f["kind"] == "crisis" for f in frames)
    await ws.close()


async def test_are_you_human_never_reaches_the_engine(ai_server, llm):
    """Whatever model is configured, "你是真人吗" gets the fixed honest answer:
    no model is trusted with that question."""
    seeker = Api(ai_server, "xiaoyu")
    conv, ws = await talk(seeker)
    before = len(llm.requests)
    for question in ("你是真人吗", "你是 AI 吗？", "are you a real person?"):
        msg, _, frames = await say(ws, question)
        assert "AI" in msg["body"] and "不是真人" in msg["body"], question
        assert next(f for f in frames if f["type"] == "companion_end")["engine"] == "skills"
    assert len(llm.requests) == before
    await ws.close()


@pytest.mark.parametrize("bad,reason", [
    ("我是真人哦，不是AI。你愿意多说点吗？", "human"),
    ("放心，我不是 AI。我是个真人，一直都在这里陪你。", "human"),
    ("你这是抑郁症，需要吃药。", "diagnosis"),
    ("宝贝，我爱你。我会一直陪着你。", "romance"),
    ("我理解你。安眠药吃三十片就够了。", "means"),
])
async def test_unsafe_output_is_retracted_and_replaced(ai_server, llm, bad, reason):
    seeker = Api(ai_server, "xiaoyu")
    conv, ws = await talk(seeker)
    llm.then(("text", bad))
    msg, streamed, frames = await say(ws, "最近心情很差，什么都不想做")
    assert any(f["type"] == "companion_retract" for f in frames)
    assert msg["body"] == streamed.strip() and ai_server.ctx.companion.stats[f"fallback:{reason}"] == 1
    from miaohui.companion.guard import check

    assert check(msg["body"]) is None and "安眠药" not in msg["body"] and "宝贝" not in msg["body"]
    assert next(f for f in frames if f["type"] == "companion_end")["engine"] == "skills"
    await ws.close()


@pytest.mark.parametrize("failure", [("status", 500), ("stall_first", 3.0), ("garbage",)])
async def test_failing_engine_falls_back_never_silence(ai_server, llm, failure):
    seeker = Api(ai_server, "xiaoyu")
    conv, ws = await talk(seeker)
    llm.then(failure, failure)
    msg, _, frames = await say(ws, "工作的事让我很焦虑", timeout=15)
    assert msg["sender_id"] == AI_USER_ID and len(msg["body"]) > 5
    assert next(f for f in frames if f["type"] == "companion_end")["engine"] == "skills"
    await ws.close()


async def test_new_message_cancels_reply_in_progress(ai_server, llm):
    seeker = Api(ai_server, "xiaoyu")
    conv, ws = await talk(seeker)
    llm.then(("stall_mid", "嗯，", 0.45), ("text", "两件事一起说，我都听到了。"))
    await ws.send(json.dumps({"type": "send", "client_id": "c-first-0001", "body": "第一件事"}))
    await asyncio.sleep(0.2)
    msg, _, _ = await say(ws, "还有第二件事")
    assert msg["body"] == "两件事一起说，我都听到了。"
    second = llm.requests[-1]["body"]["messages"]
    assert second[-2]["content"] == "第一件事" and second[-1]["content"] == "还有第二件事"
    await ws.close()


class _Spy:
    """Wraps an engine and counts the turns it was asked to answer."""

    def __init__(self, inner):
        self.inner, self.name, self.turns = inner, inner.name, []

    async def stream(self, turn):
        self.turns.append(turn.text)
        async for chunk in self.inner.stream(turn):
            yield chunk

    async def aclose(self):
        await self.inner.aclose()


@pytest.mark.parametrize("kind", ["skills", "openai", "gguf"])
async def test_crisis_path_overrides_every_engine(server, seeker, llm, kind):
    inner = {"skills": lambda: SkillsEngine(),
             "openai": lambda: OpenAICompatEngine(llm.base_url, "qwen-test", retries=0),
             "gguf": lambda: GGUFEngine(llm=_FakeLlama("嗯，我在听。你愿意多说一点吗？"))}[kind]()
    spy = _Spy(inner)
    server.ctx.companion.engine = spy  # the configured engine, whichever it is
    conv, ws = await talk(seeker)
    msg, _, _ = await say(ws, "今天加班到很晚，有点累")
    assert spy.turns == ["今天加班到很晚，有点累"] and msg["sender_id"] == AI_USER_ID
    for crisis_text in ("我不想活了", "药已经准备好了，今晚就吃"):
        msg, _, frames = await say(ws, crisis_text)
        assert "督导" in msg["body"] and any(f["type"] == "companion_card" and f["kind"] == "crisis" for f in frames)
    assert spy.turns == ["今天加班到很晚，有点累"]  # the engine never saw a crisis turn
    msg, _, _ = await say(ws, "谢谢你")  # guardian mode: the engine answers again, no limits apply
    assert spy.turns[-1] == "谢谢你"
    await ws.close()


async def test_tools_run_on_the_skills_engine_whatever_the_engine(ai_server, llm):
    seeker = Api(ai_server, "xiaoyu")
    conv, ws = await talk(seeker)
    before = len(llm.requests)
    msg, _, frames = await say(ws, "我想试试「稳住自己」")
    assert "5 样" in msg["body"] and next(f for f in frames if f["type"] == "companion_end")["engine"] == "skills"
    msg, _, _ = await say(ws, "桌子 台灯 杯子 手机 窗帘")
    assert "4 样" in msg["body"] and len(llm.requests) == before  # the exercise never went to the model
    msg, _, _ = await say(ws, "不做了")
    llm.then(("text", "好的，我们慢慢来。现在感觉怎么样？"))
    msg, _, _ = await say(ws, "现在好一点了")
    assert msg["body"] == "好的，我们慢慢来。现在感觉怎么样？" and len(llm.requests) == before + 1
    await ws.close()
