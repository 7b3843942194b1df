"""OpenAI-compatible chat-completions backend, streamed (vLLM, Ollama, the
llama.cpp server, DeepSeek, Qwen … all speak it).

``POST {base_url}/chat/completions`` with ``stream: true``; the answer is
server-sent events, one ``data: {json}`` line per chunk
(``choices[0].delta.content``) and ``data: [DONE]`` at the end.

* **Timeouts**: connecting, the first token, the gap between two chunks and
  the whole reply each have a limit (settings ``companion_*_timeout``).
* **Retries**: 429, 5xx, connection failures and a first-token timeout are
  retried with exponential back-off (honouring ``Retry-After`` up to a cap) —
  but only before the first token: text already shown is never duplicated.
* **Cancellation**: the reply is an async generator; cancelling the task
  that reads it (the seeker wrote again) closes the HTTP stream at once.
* Malformed chunks (bad JSON, no ``choices``) are skipped; a stream that
  yields no text at all is an error.  Every error is an
  :class:`~miaohui.companion.engine.EngineError`, on which the companion falls
  back to the skills engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import httpx
import orjson

from miaohui.companion import prompt
from miaohui.companion.engine import EngineError, Turn

log = logging.getLogger("miaohui.companion")
RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
MAX_RETRY_AFTER = 5.0


class _Retry(Exception):
    def __init__(self, why: str, after: float | None = None):
        super().__init__(why)
        self.after = after


def _retry_after(value: str | None) -> float | None:
    try:
        return min(MAX_RETRY_AFTER, max(0.0, float(value))) if value else None
    except ValueError:
        return None


class OpenAICompatEngine:
    name = "openai"

    def __init__(self, base_url: str, model: str, api_key: str = "", *, connect_timeout: float = 5.0,
                 first_token_timeout: float = 20.0, idle_timeout: float = 20.0, total_timeout: float = 90.0,
                 retries: int = 2, backoff: float = 0.5, max_tokens: int = 400, temperature: float = 0.7,
                 max_history: int = 12, transport: httpx.AsyncBaseTransport | None = None):
        if not base_url or not model:
            raise EngineError("the OpenAI-compatible engine needs a base URL and a model")
        self.model = model
        self.api_key = api_key
        self.first_token_timeout = first_token_timeout
        self.idle_timeout = idle_timeout
        self.total_timeout = total_timeout
        self.retries = retries
        self.backoff = backoff
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.max_history = max_history
        self.client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            timeout=httpx.Timeout(connect=connect_timeout, read=idle_timeout, write=10.0, pool=connect_timeout),
            transport=transport,
        )

    async def aclose(self) -> None:
        await self.client.aclose()

    def payload(self, turn: Turn) -> dict:
        return {"model": self.model, "messages": prompt.messages(turn, self.max_history), "stream": True,
                "max_tokens": self.max_tokens, "temperature": self.temperature}

    async def stream(self, turn: Turn):
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.total_timeout
        headers = {"Accept": "text/event-stream"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        body = self.payload(turn)
        why = "no attempt"
        wait = 0.0
        for attempt in range(self.retries + 1):
            if attempt:
                await asyncio.sleep(min(wait, max(0.0, deadline - loop.time())))
            started = False
            try:
                async with self.client.stream("POST", "/chat/completions", json=body, headers=headers) as resp:
                    if resp.status_code in RETRY_STATUS:
                        raise _Retry(f"http {resp.status_code}", _retry_after(resp.headers.get("retry-after")))
                    if resp.status_code >= 400:
                        raise EngineError(f"http {resp.status_code}")
                    lines = resp.aiter_lines()
                    while True:
                        left = deadline - loop.time()
                        if left <= 0:
                            raise EngineError("reply took too long")
                        limit = min(self.idle_timeout if started else self.first_token_timeout, left)
                        try:
                            async with asyncio.timeout(limit):  # unlike wait_for, never eats a cancellation
                                line = await anext(lines)
                        except StopAsyncIteration:
                            break
                        except TimeoutError:
                            if started:
                                raise EngineError("stream stalled") from None
                            raise _Retry("first token timeout") from None
                        text, done = _parse(line)
                        if done:
                            break
                        if text:
                            started = True
                            yield text
                    if not started:
                        raise _Retry("empty reply")
                    return
            except _Retry as e:
                why = str(e)
                wait = e.after if e.after is not None else self.backoff * (2**attempt)
            except (httpx.TransportError, httpx.StreamError) as e:
                if started:
                    raise EngineError(f"stream broke: {type(e).__name__}") from None
                why = type(e).__name__
                wait = self.backoff * (2**attempt)
            log.info("companion model attempt %d failed: %s", attempt + 1, why)
            if loop.time() >= deadline:
                break
        raise EngineError(f"model unavailable ({why})")


def _parse(line: str) -> tuple[str, bool]:
    """One SSE line → ``(text, done)``.  Comments, other fields and malformed
    chunks give no text; an ``error`` object is an :class:`EngineError`."""
    if not line.startswith("data:"):
        return "", False
    data = line[5:].strip()
    if data == "[DONE]":
        return "", True
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        log.info("skipping a malformed chunk")
        return "", False
    if not isinstance(obj, dict):
        return "", False
    if obj.get("error"):
        raise EngineError("model returned an error")
    with contextlib.suppress(KeyError, IndexError, TypeError, AttributeError):
        content = obj["choices"][0]["delta"].get("content")
        if isinstance(content, str):
            return content, False
    return "", False
