"""The Web Push wire format, with nothing but ``cryptography``.

Two standards make a push message:

* **RFC 8291 / RFC 8188** (``aes128gcm``): the payload is encrypted to the
  browser's subscription keys (``p256dh``, an ECDH P-256 public key, and
  ``auth``, a 16-byte secret), so the push service (Google's FCM, Mozilla's
  autopush, Apple's) carries bytes it cannot read.  Every message gets a fresh
  ephemeral key and salt.
* **RFC 8292** (VAPID): the request carries a short ES256 JWT signed by the
  platform's application-server key, whose public half the browser was given
  at subscription time; the push service refuses messages for that
  subscription signed by anyone else.

Kept to these two functions so that a unit test can hold them to RFC 8291's
Appendix A vector byte for byte, and a test push service can check and
decrypt what the platform sends exactly as a browser would.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import struct

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

RECORD_SIZE = 4096  # one record: a notification payload is far below it
# The largest payload a push service must accept is 4,096 bytes of body
# (RFC 8291 §4): 86 bytes of header, a 16-byte tag and the delimiter leave this much.
MAX_PLAINTEXT = 4096 - 86 - 16 - 1
_CURVE = ec.SECP256R1()


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64u(text: str) -> bytes:
    """base64url with or without padding (browsers send it without)."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def public_bytes(key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) -> bytes:
    """The 65-byte uncompressed point (``0x04 ‖ x ‖ y``) that Web Push uses for keys."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        key = key.public_key()
    return key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)


def load_public(raw: bytes) -> ec.EllipticCurvePublicKey:
    """A browser's ``p256dh`` key; ``ValueError`` unless it is a point on P-256."""
    if len(raw) != 65 or raw[0] != 4:
        raise ValueError("not an uncompressed P-256 point")
    return ec.EllipticCurvePublicKey.from_encoded_point(_CURVE, raw)


def private_from_bytes(raw: bytes) -> ec.EllipticCurvePrivateKey:
    return ec.derive_private_key(int.from_bytes(raw, "big"), _CURVE)


def derive_vapid_key(secret: str) -> ec.EllipticCurvePrivateKey:
    """The application-server key, derived from the platform's signing
    secret: every server process has the same key without another secret to
    distribute (the browser's subscription is bound to it, so a second key
    would break every subscription made through another process)."""
    n = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551  # the order of P-256
    digest = hmac.new(secret.encode(), b"miaohui-vapid-v1", hashlib.sha512).digest()
    return ec.derive_private_key(int.from_bytes(digest, "big") % (n - 1) + 1, _CURVE)


def _hkdf(salt: bytes, ikm: bytes, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)


def encrypt(
    plaintext: bytes,
    ua_public: bytes,
    auth_secret: bytes,
    *,
    salt: bytes | None = None,
    sender: ec.EllipticCurvePrivateKey | None = None,
) -> bytes:
    """The request body for one push (RFC 8291 §3–4, one ``aes128gcm`` record).

    ``salt`` and ``sender`` (the ephemeral key) are random unless given; a
    test gives the RFC's to compare bytes."""
    if len(plaintext) > MAX_PLAINTEXT:
        raise ValueError("push payload too large")
    salt = salt if salt is not None else os.urandom(16)
    sender = sender if sender is not None else ec.generate_private_key(_CURVE)
    as_public = public_bytes(sender)
    shared = sender.exchange(ec.ECDH(), load_public(ua_public))
    ikm = _hkdf(auth_secret, shared, b"WebPush: info\x00" + ua_public + as_public, 32)
    cek = _hkdf(salt, ikm, b"Content-Encoding: aes128gcm\x00", 16)
    nonce = _hkdf(salt, ikm, b"Content-Encoding: nonce\x00", 12)
    record = AESGCM(cek).encrypt(nonce, plaintext + b"\x02", None)  # 0x02: the last (only) record
    return salt + struct.pack("!IB", RECORD_SIZE, len(as_public)) + as_public + record


def decrypt(body: bytes, ua_private: ec.EllipticCurvePrivateKey, auth_secret: bytes) -> bytes:
    """The browser's side of :func:`encrypt`: what a test push service (and a
    test acting as the browser) uses to read what the platform sent."""
    salt, (rs, idlen) = body[:16], struct.unpack("!IB", body[16:21])
    as_public = body[21:21 + idlen]
    record = body[21 + idlen:]
    if len(record) > rs:
        raise ValueError("more than one record")
    ua_public = public_bytes(ua_private)
    shared = ua_private.exchange(ec.ECDH(), load_public(as_public))
    ikm = _hkdf(auth_secret, shared, b"WebPush: info\x00" + ua_public + as_public, 32)
    cek = _hkdf(salt, ikm, b"Content-Encoding: aes128gcm\x00", 16)
    nonce = _hkdf(salt, ikm, b"Content-Encoding: nonce\x00", 12)
    padded = AESGCM(cek).decrypt(nonce, record, None)
    text = padded.rstrip(b"\x00")
    if not text.endswith(b"\x02"):
        raise ValueError("not a last record")
    return text[:-1]


def vapid_header(key: ec.EllipticCurvePrivateKey, audience: str, subject: str, expires: int) -> str:
    """``Authorization: vapid t=<JWT>, k=<public key>`` (RFC 8292 §2–3).
    ``audience`` is the push service's origin; ``expires`` a Unix time at most
    24 hours ahead."""
    header = b64u(json.dumps({"typ": "JWT", "alg": "ES256"}, separators=(",", ":")).encode())
    claims = b64u(json.dumps({"aud": audience, "exp": expires, "sub": subject}, separators=(",", ":")).encode())
    signing_input = f"{header}.{claims}".encode()
    r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
    signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")  # JWS wants r ‖ s, not DER
    return f"vapid t={header}.{claims}.{b64u(signature)}, k={b64u(public_bytes(key))}"


def verify_vapid(authorization: str) -> tuple[dict, bytes]:
    """A push service's check of :func:`vapid_header`: the JWT's claims and
    the public key it was signed with; ``ValueError`` if the signature fails."""
    scheme, _, rest = authorization.partition(" ")
    if scheme.lower() != "vapid":
        raise ValueError("not a vapid authorization")
    params = dict(p.strip().split("=", 1) for p in rest.split(","))
    key_raw = unb64u(params["k"])
    header, claims, signature = params["t"].split(".")
    sig = unb64u(signature)
    der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
    try:
        load_public(key_raw).verify(der, f"{header}.{claims}".encode(), ec.ECDSA(hashes.SHA256()))
    except Exception as e:
        raise ValueError("bad vapid signature") from e
    return json.loads(unb64u(claims)), key_raw
