"""Uploaded qualification proofs on disk: sniffed, size-limited, encrypted.

Files live under ``<data_dir>/proofs/<qualification id>.bin`` (directory
0700, files 0600), AES-GCM encrypted with the app's key ring and bound to
the qualification id, so a file copied onto another record does not
decrypt.  The type is decided from the bytes (PNG, JPEG, WebP, PDF), never
from the client's ``Content-Type`` or file name; the file name is not kept.
No route serves this directory: only the admin proof view decrypts a file.
Key rotation re-encrypts the files too (``service.ProofFiles``).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from cryptography.exceptions import InvalidTag

from miaohui.core.errors import AppError

TYPES: tuple[tuple[str, bytes, int], ...] = (
    ("image/png", b"\x89PNG\r\n\x1a\n", 0),
    ("image/jpeg", b"\xff\xd8\xff", 0),
    ("application/pdf", b"%PDF-", 0),
    ("image/webp", b"WEBP", 8),
)


def sniff(data: bytes) -> str | None:
    for mime, magic, offset in TYPES:
        if data[offset:offset + len(magic)] == magic and (mime != "image/webp" or data[:4] == b"RIFF"):
            return mime
    return None


def check(data: bytes, max_bytes: int) -> str:
    if not data:
        raise AppError("proof_empty", "请上传资质证明文件", "a proof file is required", 400)
    if len(data) > max_bytes:
        raise AppError("proof_too_large", f"文件不能超过 {max_bytes // (1024 * 1024)} MB",
                       f"proof larger than {max_bytes} bytes", 413)
    mime = sniff(data)
    if mime is None:
        raise AppError("proof_type", "只支持 JPG、PNG、WebP 图片或 PDF 文件", "only JPEG, PNG, WebP or PDF", 415)
    return mime


def _dir(data_dir: Path) -> Path:
    d = Path(data_dir) / "proofs"
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    return d


def _aad(qual_id: str) -> bytes:
    return f"proof|{qual_id}".encode()


def store(keyring, data_dir: Path, qual_id: str, data: bytes) -> tuple[str, str]:
    """Encrypt and write atomically; returns ``(key id, sha256 of the plaintext)``."""
    key_id, blob = keyring.encrypt_bytes(data, _aad(qual_id))
    final = _dir(data_dir) / f"{qual_id}.bin"
    tmp = final.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(blob)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, final)
    return key_id, hashlib.sha256(data).hexdigest()


def load(keyring, data_dir: Path, qual_id: str, key_id: str) -> bytes:
    """Decrypt with the key the record names; if that fails, with the ring's
    other keys: ``miaohui keys rotate`` replaces the file before it updates
    the record, and may stop in between."""
    path = _dir(data_dir) / f"{qual_id}.bin"
    try:
        blob = path.read_bytes()
    except FileNotFoundError:
        raise AppError("proof_missing", "证明文件不存在", "proof file missing", 404) from None
    tried = [key_id] if key_id in keyring.ids else []
    for kid in tried + [k for k in keyring.ids if k != key_id]:
        try:
            return keyring.decrypt_bytes(kid, blob, _aad(qual_id))
        except InvalidTag:
            continue
    raise InvalidTag


def rekey(keyring, data_dir: Path, qual_id: str, key_id: str) -> str:
    """Re-encrypt a proof file under the active key (atomically replaced);
    returns the active key id for the record."""
    data = load(keyring, data_dir, qual_id, key_id)
    return store(keyring, data_dir, qual_id, data)[0]


def remove(data_dir: Path, qual_id: str) -> None:
    (Path(data_dir) / "proofs" / f"{qual_id}.bin").unlink(missing_ok=True)
