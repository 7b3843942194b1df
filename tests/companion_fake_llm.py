"""A fake OpenAI-compatible chat-completions server for tests: the only thing
faked is the language model.  It speaks the real streaming protocol over HTTP
(uvicorn + starlette in a thread): ``POST /v1/chat/completions`` with
``stream: true`` answers ``text/event-stream`` with ``data: {chunk}`` lines and
``data: [DONE]``.  A queue of scripted behaviours decides each request's fate:

* ``("text", "…")`` — stream the text in small chunks;
* ``("status", 429 | 500, retry_after)`` — an error answer;
* ``("stall_first", seconds)`` — headers, then nothing for ``seconds``;
* ``("stall_mid", "partial", seconds)`` — some text, then silence;
* ``("malformed", "…")`` — garbage lines interleaved with valid chunks;
* ``("garbage",)`` — only malformed lines.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections import deque

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route


def _chunk(text: str, model: str = "fake") -> str:
    return "data: " + json.dumps({"id": "c1", "object": "chat.completion.chunk", "model": model,
                                  "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]},
                                 ensure_ascii=False) + "\n\n"


class FakeLLM:
    def __init__(self) -> None:
        self.script: deque = deque()
        self.default = ("text", "听起来你最近真的很辛苦。能和我说说，最累的是哪一部分吗？")
        self.requests: list[dict] = []
        self.disconnects = 0
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        app = Starlette(routes=[Route("/v1/chat/completions", self.completions, methods=["POST"])])
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> FakeLLM:
        self.thread.start()
        deadline = time.time() + 10
        while not self.server.started:
            if time.time() > deadline:
                raise RuntimeError("fake LLM did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    def then(self, *steps) -> FakeLLM:
        self.script.extend(steps)
        return self

    async def completions(self, request: Request):
        body = await request.json()
        self.requests.append({"body": body, "auth": request.headers.get("authorization", "")})
        step = self.script.popleft() if self.script else self.default
        kind = step[0]
        if kind == "status":
            headers = {"retry-after": str(step[2])} if len(step) > 2 and step[2] is not None else {}
            return JSONResponse({"error": {"message": "busy", "type": "rate_limit"}}, status_code=step[1],
                                headers=headers)
        if not body.get("stream"):
            return JSONResponse({"error": {"message": "stream required"}}, status_code=400)

        async def events():
            try:
                if kind == "text":
                    text = step[1]
                    for i in range(0, len(text), 4):
                        yield _chunk(text[i:i + 4])
                        await asyncio.sleep(0.005)
                    yield "data: [DONE]\n\n"
                elif kind == "stall_first":
                    yield ": keep-alive comment\n\n"
                    await asyncio.sleep(step[1])
                    yield _chunk("太晚了。")
                    yield "data: [DONE]\n\n"
                elif kind == "stall_mid":
                    yield _chunk(step[1])
                    await asyncio.sleep(step[2])
                    yield "data: [DONE]\n\n"
                elif kind == "malformed":
                    text = step[1]
                    yield "data: {not json\n\n"
                    for i in range(0, len(text), 5):
                        yield _chunk(text[i:i + 5])
                        yield 'data: {"choices": []}\n\n'
                        yield "data: [1, 2]\n\n"
                    yield "event: ping\n\n"
                    yield "data: [DONE]\n\n"
                elif kind == "garbage":
                    yield "data: {oops\n\n"
                    yield "data: also not json\n\n"
                    yield "data: [DONE]\n\n"
            except asyncio.CancelledError:
                self.disconnects += 1
                raise

        return StreamingResponse(events(), media_type="text/event-stream")
