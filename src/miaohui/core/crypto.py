"""Message bodies are encrypted at rest with AES-256-GCM.

Each ciphertext is stored with the id of the key that made it.  The key ring's
first key encrypts; every key decrypts, so rotating means putting a new key
first and keeping the old ones until ``miaohui keys rotate`` has re-encrypted
the rows under them (``core.rekey``) and ``miaohui keys status`` counts none.
The associated data binds a ciphertext to its conversation and sender, so a
row copied into another conversation fails to decrypt instead of lying.
"""

from __future__ import annotations

import base64
import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM


class KeyRing:
    def __init__(self, spec: str) -> None:
        self._keys: dict[str, AESGCM] = {}
        self.active_id = ""
        for part in (p.strip() for p in spec.split(",") if p.strip()):
            kid, _, b64 = part.partition(":")
            raw = base64.b64decode(b64)
            if len(raw) != 32 or not kid:
                raise ValueError("message key must be 'kid:base64(32 bytes)'")
            self._keys[kid] = AESGCM(raw)
            self.active_id = self.active_id or kid
        if not self._keys:
            raise ValueError("empty message key ring")

    @property
    def ids(self) -> tuple[str, ...]:
        """Every key id, the active one first."""
        return tuple(self._keys)

    def encrypt(self, plaintext: str, aad: bytes) -> tuple[str, bytes]:
        return self.encrypt_bytes(plaintext.encode(), aad)

    def decrypt(self, key_id: str, blob: bytes, aad: bytes) -> str:
        return self.decrypt_bytes(key_id, blob, aad).decode()

    def encrypt_bytes(self, data: bytes, aad: bytes) -> tuple[str, bytes]:
        """Binary payloads (uploaded proofs): ``(key id, nonce ‖ ciphertext)``."""
        nonce = os.urandom(12)
        return self.active_id, nonce + self._keys[self.active_id].encrypt(nonce, data, aad)

    def decrypt_bytes(self, key_id: str, blob: bytes, aad: bytes) -> bytes:
        return self._keys[key_id].decrypt(blob[:12], blob[12:], aad)


def message_aad(conversation_id: str, sender_id: str, client_id: str) -> bytes:
    return f"{conversation_id}|{sender_id}|{client_id}".encode()


def field_aad(table: str, row_key: str, field: str) -> bytes:
    """Free text kept in a row (``core.sealed``): bound to its table, row and
    field, so a ciphertext moved to another row or column fails to decrypt."""
    return f"{table}|{row_key}|{field}".encode()


def generate_key_spec(kid: str = "k1") -> str:
    return f"{kid}:{base64.b64encode(os.urandom(32)).decode()}"
