"""The engine interface every companion backend implements.

An engine turns one seeker turn (with context) into reply text, streamed as
chunks.  Engines never see a crisis turn — the safety layer
(``companion.service``) answers those itself — and everything an engine
produces is checked (``companion.guard``) before a person sees it.

* :class:`~miaohui.companion.skills.SkillsEngine` — built in, the default;
* :class:`~miaohui.companion.openai_compat.OpenAICompatEngine` — any
  OpenAI-compatible ``/chat/completions`` endpoint, streamed;
* :class:`~miaohui.companion.gguf.GGUFEngine` — optional local model through
  llama-cpp-python (an extra).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol


class EngineError(Exception):
    """The engine could not produce a reply (the service falls back to the skills engine)."""


@dataclass
class Turn:
    """One seeker turn and what the companion knows around it."""

    text: str  # what the seeker wrote (as stored: contact details masked)
    history: list[tuple[str, str]] = field(default_factory=list)  # (role "seeker"|"companion", text), oldest first
    state: dict = field(default_factory=dict)  # the engine's own per-conversation state (JSON-able)
    memory: list[dict] = field(default_factory=list)  # [{kind, text}] what the seeker let the companion keep
    tier: str = "none"  # the safety tier of this turn (below ideation here)
    nudge: bool = False  # time for a gentle word about people in real life
    display_name: str = ""


class Engine(Protocol):
    name: str

    def stream(self, turn: Turn) -> AsyncIterator[str]:
        """Yield reply text chunks; may update ``turn.state``.  Raises :class:`EngineError`."""
        ...

    async def aclose(self) -> None: ...
