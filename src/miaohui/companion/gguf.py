"""Optional: a local GGUF model through llama-cpp-python.

**Optional extra, not installed by default**: ``pip install 'miaohui[gguf]'``
(llama-cpp-python compiles llama.cpp) and set ``MIAOHUI_COMPANION_ENGINE=gguf``
and ``MIAOHUI_COMPANION_GGUF_PATH=/path/model.gguf``.  Without the package
or the file, building the engine raises :class:`EngineError` and the
companion runs on the skills engine (logged once).

llama.cpp is synchronous: generation runs in a worker thread and chunks
cross to the event loop through a queue; cancelling the reader stops the
generation at the next token.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading

from miaohui.companion import prompt
from miaohui.companion.engine import EngineError, Turn


def load_llama(path: str, n_ctx: int = 4096, n_threads: int | None = None):
    try:
        from llama_cpp import Llama  # optional extra
    except ImportError as e:
        raise EngineError("llama-cpp-python is not installed (optional extra: pip install 'miaohui[gguf]')") from e
    try:
        return Llama(model_path=path, n_ctx=n_ctx, n_threads=n_threads, verbose=False)
    except Exception as e:  # a missing or broken file
        raise EngineError(f"cannot load GGUF model: {type(e).__name__}") from e


class GGUFEngine:
    name = "gguf"

    def __init__(self, path: str = "", *, llm=None, max_tokens: int = 400, temperature: float = 0.7,
                 max_history: int = 12, timeout: float = 120.0):
        self.llm = llm if llm is not None else load_llama(path)
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.max_history = max_history
        self.timeout = timeout
        self._lock = asyncio.Lock()  # one generation at a time per loaded model

    async def aclose(self) -> None:
        return None

    async def stream(self, turn: Turn):
        loop = asyncio.get_running_loop()
        q: asyncio.Queue = asyncio.Queue()
        stop = threading.Event()
        msgs = prompt.messages(turn, self.max_history)

        def run() -> None:
            try:
                for chunk in self.llm.create_chat_completion(messages=msgs, stream=True, max_tokens=self.max_tokens,
                                                             temperature=self.temperature):
                    if stop.is_set():
                        break
                    delta = (chunk.get("choices") or [{}])[0].get("delta", {}).get("content")
                    if delta:
                        loop.call_soon_threadsafe(q.put_nowait, ("text", delta))
                loop.call_soon_threadsafe(q.put_nowait, ("end", None))
            except Exception as e:  # noqa: BLE001 - reported to the reader
                loop.call_soon_threadsafe(q.put_nowait, ("error", type(e).__name__))

        async with self._lock:
            worker = threading.Thread(target=run, daemon=True, name="gguf-generate")
            worker.start()
            produced = False
            try:
                while True:
                    try:
                        async with asyncio.timeout(self.timeout):
                            kind, value = await q.get()
                    except TimeoutError:
                        raise EngineError("local model timed out") from None
                    if kind == "text":
                        produced = True
                        yield value
                    elif kind == "error":
                        raise EngineError(f"local model failed: {value}")
                    else:
                        break
                if not produced:
                    raise EngineError("local model gave no text")
            finally:
                stop.set()
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(worker.join, 5)
