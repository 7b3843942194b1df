"""Real-name verification providers.

A real provider (a licensed identity service comparing name + number with
the national citizen database, optionally with a liveness check) plugs in
behind :class:`VerificationProvider`; the platform only ever sends it a
name and a number that already passed the local checks (shape, region,
birth date, check character), and stores its reference, never its raw
response.

:class:`SandboxProvider` stands in for one: deterministic, no network.  A
well-formed number matches any well-formed name, except numbers whose
sequence code (digits 15–17) is ``999`` — the sandbox's "name and number
do not match" — and ``998`` — "provider unavailable" — so both failure
paths can be exercised end to end.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class ProviderResult:
    matched: bool
    reference: str  # the provider's id for this check, kept for audits
    reason: str = ""  # "mismatch" | "unavailable" | ""


class ProviderUnavailable(Exception):
    pass


class VerificationProvider(Protocol):
    name: str
    label: str  # shown on the public record ("实名核验：沙箱")

    async def check_identity(self, legal_name: str, id_number: str) -> ProviderResult: ...


class SandboxProvider:
    name = "sandbox"
    label = "沙箱核验（演示环境）"

    async def check_identity(self, legal_name: str, id_number: str) -> ProviderResult:
        seq = id_number[14:17]
        if seq == "998":
            raise ProviderUnavailable("sandbox: unavailable")
        ref = "sbx_" + hashlib.sha256(f"{legal_name}|{id_number}".encode()).hexdigest()[:20]
        if seq == "999":
            return ProviderResult(False, ref, "mismatch")
        return ProviderResult(True, ref)


def make_provider(name: str) -> VerificationProvider:
    if name == "sandbox":
        return SandboxProvider()
    raise ValueError(f"unknown verification provider {name!r}")
