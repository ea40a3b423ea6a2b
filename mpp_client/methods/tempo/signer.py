"""Who signs Tempo payments: the ``Signer`` protocol and two implementations.

A signer produces Tempo *signature envelopes* over 32-byte digests:

* ``LocalKeySigner``: a secp256k1 private key held in memory (coincurve / libsecp256k1;
  RFC 6979 deterministic, low-s). Envelope: 65 bytes ``r || s || v`` with ``v`` = 27/28.
* ``AccessKeySigner``: a Tempo access key acting for a root account (keychain signature V2).
  The access key signs ``keccak256(0x04 || digest || root)``; the envelope is
  ``0x04 || root (20 bytes) || inner signature (65 bytes)``. The paying account (``address``)
  is the root account.

A key store (OS keyring, hardware, remote signer) plugs in by implementing the same protocol.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from mpp_client.extras import require_extra
from mpp_client.methods.tempo.keccak import checksum_address, keccak256, normalize_address
from mpp_client.secret import Secret

if TYPE_CHECKING:
    from coincurve import PrivateKey

__all__ = [
    "AccessKeySigner",
    "LocalKeySigner",
    "Signer",
    "recover_address",
]

_SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
KEYCHAIN_V2 = 0x04


@runtime_checkable
class Signer(Protocol):
    """Signs for one Tempo account.

    ``address`` is the EIP-55 address of the account that pays (and that appears in the
    credential ``source``). ``sign_hash`` returns the Tempo signature envelope for a 32-byte
    digest, ready to be placed in a transaction's sender-signature field.
    ``sign_raw_hash`` returns a plain 65-byte secp256k1 signature (``r || s || v``, v = 27/28)
    by the account's own key, for EIP-712 messages; signers that cannot produce one (access
    keys) raise ``NotImplementedError``.
    """

    @property
    def address(self) -> str: ...

    def sign_hash(self, digest: bytes) -> bytes: ...

    def sign_raw_hash(self, digest: bytes) -> bytes: ...


def _load_key(private_key: str | bytes) -> PrivateKey:
    require_extra("tempo", "a Tempo signer")
    from coincurve import PrivateKey

    raw = (
        bytes.fromhex(private_key.removeprefix("0x"))
        if isinstance(private_key, str)
        else private_key
    )
    if len(raw) != 32 or not 0 < int.from_bytes(raw, "big") < _SECP256K1_N:
        raise ValueError("a secp256k1 private key is 32 bytes in [1, n)")
    return PrivateKey(raw)


def _secret_key(private_key: str | bytes) -> Secret[PrivateKey]:
    # The key object inside a Secret (no repr, vars or captured local shows it); ``also``
    # lets ``scrub`` find its raw bytes in any text form.
    key = _load_key(private_key)
    return Secret(key, also=[bytes(key.secret)])


def _address_of(key: PrivateKey) -> str:
    public = key.public_key.format(compressed=False)[1:]
    return checksum_address(keccak256(public)[-20:])


def _sign(key: PrivateKey, digest: bytes) -> bytes:
    if len(digest) != 32:
        raise ValueError("sign a 32-byte digest")
    # hasher=None: the digest is already Keccak-256; libsecp256k1 emits low-s signatures.
    sig = key.sign_recoverable(digest, hasher=None)
    return sig[:64] + bytes((27 + sig[64],))


class LocalKeySigner:
    """A secp256k1 private key in process memory. ``repr`` never shows the key."""

    __slots__ = ("_address", "_key")

    def __init__(self, private_key: str | bytes) -> None:
        """``private_key``: 32 bytes, or their hex (with or without ``0x``)."""
        self._key = _secret_key(private_key)
        self._address = _address_of(self._key.reveal())

    @classmethod
    def generate(cls) -> LocalKeySigner:
        """A new random key (from the OS CSPRNG)."""
        while True:
            raw = secrets.token_bytes(32)
            if 0 < int.from_bytes(raw, "big") < _SECP256K1_N:
                return cls(raw)

    @property
    def address(self) -> str:
        """The account address (EIP-55)."""
        return self._address

    def sign_hash(self, digest: bytes) -> bytes:
        """65-byte ``r || s || v`` signature of ``digest`` (v = 27/28)."""
        return _sign(self._key.reveal(), digest)

    def sign_raw_hash(self, digest: bytes) -> bytes:
        """Same as ``sign_hash``: a plain secp256k1 signature."""
        return _sign(self._key.reveal(), digest)

    def export_private_key(self) -> str:
        """The private key as ``0x`` hex. Only for moving it into a key store; never log it."""
        return "0x" + self._key.reveal().secret.hex()

    def __repr__(self) -> str:
        return f"LocalKeySigner(address={self._address}, key=<redacted>)"


class AccessKeySigner:
    """A Tempo access key that signs for ``root_account`` (keychain signature V2).

    The access key must already be authorized for the root account on chain (or be authorized
    by a key authorization carried in the same transaction). Spending limits set in that
    authorization are enforced by the chain.
    """

    __slots__ = ("_key", "_key_address", "_root", "_root_raw")

    def __init__(self, private_key: str | bytes, root_account: str) -> None:
        """``private_key``: the access key; ``root_account``: the account it acts for."""
        self._key = _secret_key(private_key)
        self._key_address = _address_of(self._key.reveal())
        self._root = checksum_address(normalize_address(root_account))
        self._root_raw = bytes.fromhex(self._root[2:])

    @property
    def address(self) -> str:
        """The root account (the payer)."""
        return self._root

    @property
    def key_address(self) -> str:
        """The access key's own address (its key id on chain)."""
        return self._key_address

    def sign_hash(self, digest: bytes) -> bytes:
        """Keychain V2 envelope: ``0x04 || root || sig(keccak256(0x04 || digest || root))``."""
        if len(digest) != 32:
            raise ValueError("sign a 32-byte digest")
        bound = keccak256(bytes((KEYCHAIN_V2,)) + digest + self._root_raw)
        return bytes((KEYCHAIN_V2,)) + self._root_raw + _sign(self._key.reveal(), bound)

    def sign_raw_hash(self, digest: bytes) -> bytes:
        """Access keys cannot sign as the root account outside a transaction."""
        raise NotImplementedError("an access key cannot make a plain signature for its root")

    def __repr__(self) -> str:
        return f"AccessKeySigner(root={self._root}, key_id={self._key_address}, key=<redacted>)"


def recover_address(digest: bytes, signature: bytes) -> str:
    """The EIP-55 address that made the 65-byte ``r || s || v`` ``signature`` over ``digest``."""
    from coincurve import PublicKey

    if len(signature) != 65:
        raise ValueError("a secp256k1 signature has 65 bytes")
    v = signature[64]
    recid = v - 27 if v >= 27 else v
    public = PublicKey.from_signature_and_message(
        signature[:64] + bytes((recid,)), digest, hasher=None
    )
    return checksum_address(keccak256(public.format(compressed=False)[1:])[-20:])
