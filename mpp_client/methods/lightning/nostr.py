"""The Nostr pieces NWC needs: event ids and BIP-340 signatures (NIP-01), and NIP-04 and
NIP-44 (version 2) encryption between two keys.

Built on ``coincurve`` (secp256k1: Schnorr signatures, ECDH) and ``cryptography`` (AES-CBC,
ChaCha20, HKDF, HMAC); both come with the ``nwc`` extra. Keys are 32-byte secrets and 32-byte
x-only public keys, written as lower-case hex on the wire.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
from typing import Any

__all__ = [
    "nip04_decrypt",
    "nip04_encrypt",
    "nip44_decrypt",
    "nip44_encrypt",
    "public_key_of",
    "sign_event",
    "verify_event",
]


class NostrCryptoError(ValueError):
    """An event or ciphertext failed verification (the message says which check)."""


def public_key_of(secret: bytes) -> str:
    """The x-only public key (64 hex) of a 32-byte secret key."""
    import coincurve

    return bytes(coincurve.PrivateKey(secret).public_key_xonly.format()).hex()


def _event_id(pubkey: str, created_at: int, kind: int, tags: list[list[str]], content: str) -> str:
    serialized = json.dumps(
        [0, pubkey, created_at, kind, tags, content], separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(serialized.encode("utf-8")).hexdigest()


def sign_event(
    secret: bytes,
    kind: int,
    content: str,
    tags: list[list[str]],
    created_at: int | None = None,
) -> dict[str, Any]:
    """A signed NIP-01 event (``id``, ``pubkey``, ``created_at``, ``kind``, ``tags``,
    ``content``, ``sig``)."""
    import coincurve

    pubkey = public_key_of(secret)
    created = int(time.time()) if created_at is None else created_at
    event_id = _event_id(pubkey, created, kind, tags, content)
    signature = coincurve.PrivateKey(secret).sign_schnorr(bytes.fromhex(event_id), os.urandom(32))
    return {
        "id": event_id,
        "pubkey": pubkey,
        "created_at": created,
        "kind": kind,
        "tags": tags,
        "content": content,
        "sig": bytes(signature).hex(),
    }


def verify_event(event: Any) -> bool:
    """Whether ``event`` is well formed, its id is the hash of its fields and its signature is
    its author's."""
    import coincurve

    try:
        pubkey, sig, event_id = event["pubkey"], event["sig"], event["id"]
        expected = _event_id(
            pubkey, event["created_at"], event["kind"], event["tags"], event["content"]
        )
        if expected != event_id:
            return False
        key = coincurve.PublicKeyXOnly(bytes.fromhex(pubkey))
        return bool(key.verify(bytes.fromhex(sig), bytes.fromhex(event_id)))
    except (KeyError, TypeError, ValueError):
        return False


def _shared_x(secret: bytes, pubkey: str) -> bytes:
    """The x coordinate of secret * P (unhashed ECDH, as NIP-04 and NIP-44 use it)."""
    import coincurve

    point = coincurve.PublicKey(b"\x02" + bytes.fromhex(pubkey)).multiply(secret)
    return bytes(point.format(compressed=True))[1:]


# --- NIP-04 (AES-256-CBC; deprecated but still what older wallets speak) -----------------------


def nip04_encrypt(secret: bytes, pubkey: str, plaintext: str) -> str:
    """``base64(ciphertext) + "?iv=" + base64(iv)``."""
    from cryptography.hazmat.primitives import padding
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    iv = os.urandom(16)
    padder = padding.PKCS7(128).padder()
    padded = padder.update(plaintext.encode("utf-8")) + padder.finalize()
    encryptor = Cipher(algorithms.AES(_shared_x(secret, pubkey)), modes.CBC(iv)).encryptor()
    ciphertext = encryptor.update(padded) + encryptor.finalize()
    return f"{base64.b64encode(ciphertext).decode()}?iv={base64.b64encode(iv).decode()}"


def nip04_decrypt(secret: bytes, pubkey: str, payload: str) -> str:
    """Inverse of ``nip04_encrypt``; raises ``NostrCryptoError`` on malformed input."""
    from cryptography.hazmat.primitives import padding
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    try:
        body, _, iv_text = payload.partition("?iv=")
        ciphertext, iv = base64.b64decode(body, validate=True), base64.b64decode(iv_text)
        if len(iv) != 16 or not ciphertext or len(ciphertext) % 16:
            raise ValueError("bad lengths")
        decryptor = Cipher(algorithms.AES(_shared_x(secret, pubkey)), modes.CBC(iv)).decryptor()
        padded = decryptor.update(ciphertext) + decryptor.finalize()
        unpadder = padding.PKCS7(128).unpadder()
        return (unpadder.update(padded) + unpadder.finalize()).decode("utf-8")
    except ValueError:
        raise NostrCryptoError("NIP-04 payload does not decrypt") from None


# --- NIP-44 version 2 (ChaCha20 + HMAC-SHA256, padded lengths) ----------------------------------

_NIP44_SALT = b"nip44-v2"
_NIP44_VERSION = 2


def _conversation_key(secret: bytes, pubkey: str) -> bytes:
    # HKDF-extract(salt, ikm) is HMAC-SHA256(salt, ikm).
    return hmac.new(_NIP44_SALT, _shared_x(secret, pubkey), hashlib.sha256).digest()


def _message_keys(conversation_key: bytes, nonce: bytes) -> tuple[bytes, bytes, bytes]:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

    keys = HKDFExpand(hashes.SHA256(), 76, nonce).derive(conversation_key)
    return keys[:32], keys[32:44], keys[44:]


def _padded_length(length: int) -> int:
    if length <= 32:
        return 32
    next_power = 1 << (length - 1).bit_length()
    chunk = 32 if next_power <= 256 else next_power // 8
    return chunk * ((length - 1) // chunk + 1)


def _chacha20(key: bytes, nonce: bytes, data: bytes) -> bytes:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

    # cryptography takes the 32-bit block counter (0, little-endian) then the 96-bit nonce.
    cipher = Cipher(algorithms.ChaCha20(key, b"\x00\x00\x00\x00" + nonce), mode=None)
    return cipher.encryptor().update(data)


def nip44_encrypt(secret: bytes, pubkey: str, plaintext: str, *, nonce: bytes | None = None) -> str:
    """NIP-44 v2 payload: ``base64(0x02 || nonce || ciphertext || mac)``."""
    raw = plaintext.encode("utf-8")
    if not 1 <= len(raw) <= 65535:
        raise ValueError("NIP-44 plaintext must be 1..65535 bytes")
    nonce = os.urandom(32) if nonce is None else nonce
    chacha_key, chacha_nonce, hmac_key = _message_keys(_conversation_key(secret, pubkey), nonce)
    padded = len(raw).to_bytes(2, "big") + raw + bytes(_padded_length(len(raw)) - len(raw))
    ciphertext = _chacha20(chacha_key, chacha_nonce, padded)
    mac = hmac.new(hmac_key, nonce + ciphertext, hashlib.sha256).digest()
    return base64.b64encode(bytes([_NIP44_VERSION]) + nonce + ciphertext + mac).decode()


def nip44_decrypt(secret: bytes, pubkey: str, payload: str) -> str:
    """Inverse of ``nip44_encrypt``; checks the MAC and the padding."""
    try:
        data = base64.b64decode(payload, validate=True)
    except ValueError:
        raise NostrCryptoError("NIP-44 payload is not base64") from None
    if len(data) < 99 or len(data) > 65603 or data[0] != _NIP44_VERSION:
        raise NostrCryptoError("NIP-44 payload has an unknown version or length")
    nonce, ciphertext, mac = data[1:33], data[33:-32], data[-32:]
    chacha_key, chacha_nonce, hmac_key = _message_keys(_conversation_key(secret, pubkey), nonce)
    expected = hmac.new(hmac_key, nonce + ciphertext, hashlib.sha256).digest()
    if not hmac.compare_digest(expected, mac):
        raise NostrCryptoError("NIP-44 MAC does not verify")
    padded = _chacha20(chacha_key, chacha_nonce, ciphertext)
    length = int.from_bytes(padded[:2], "big")
    if not 1 <= length <= len(padded) - 2 or len(padded) != 2 + _padded_length(length):
        raise NostrCryptoError("NIP-44 padding is invalid")
    try:
        return padded[2 : 2 + length].decode("utf-8")
    except UnicodeDecodeError:
        raise NostrCryptoError("NIP-44 plaintext is not UTF-8") from None
