"""Tempo transactions (EIP-2718 type ``0x76``) and the ``0x78`` fee-payer hand-off envelope.

Field order of the signed ``0x76`` envelope (RLP list)::

    0 chain_id   1 max_priority_fee_per_gas   2 max_fee_per_gas   3 gas_limit
    4 calls [[to, value, data], ...]          5 access_list        6 nonce_key   7 nonce
    8 valid_before   9 valid_after   10 fee_token   11 fee_payer_signature
    12 aa_authorization_list   (13 key_authorization, only when present)   last: sender signature

* The sender signs ``keccak256(0x76 || rlp(fields 0..12 [+ key_authorization]))``. When a fee
  payer sponsors the transaction the sender does not commit to the fee token (slot 10 empty)
  and slot 11 holds the single byte ``0x00``.
* The fee payer signs ``keccak256(0x78 || rlp(fields 0..9, fee_token, sender, aa_list
  [, key_authorization]))``.
* The hand-off envelope a payer sends to a sponsoring server is ``0x78 || rlp(fields 0..9,
  fee_token (empty), sender, aa_list [, key_authorization], sender_signature)``: the server
  decodes it, picks its fee token, co-signs and broadcasts a ``0x76``.

Gas prices are in attodollars per gas unit (wei-like); TIP-20 amounts are in micro-dollars, so a
fee in token base units is ``gas_used * gas_price / 10**12``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from mpp_client.methods.tempo import rlp
from mpp_client.methods.tempo.keccak import keccak256

__all__ = [
    "EXPIRING_NONCE_KEY",
    "Call",
    "KeyAuthorization",
    "SignedKeyAuthorization",
    "TempoTransaction",
    "TokenLimit",
    "TransactionTemplate",
    "address_bytes",
    "decode_fee_payer_envelope",
]

TX_TYPE = 0x76
FEE_PAYER_TYPE = 0x78
#: The expiring-nonce lane (TIP-1009): nonce 0, replay protection by hash until ``valid_before``.
EXPIRING_NONCE_KEY = 2**256 - 1

_uint = rlp.uint


def address_bytes(address: str | bytes) -> bytes:
    """20 raw bytes of an address given as ``0x`` hex or bytes."""
    raw = bytes.fromhex(address.removeprefix("0x")) if isinstance(address, str) else address
    if len(raw) != 20:
        raise ValueError("an address has 20 bytes")
    return raw


@dataclass(frozen=True, slots=True)
class Call:
    """One call of a batch: ``value`` in the chain's native unit (always 0 on Tempo)."""

    to: bytes
    value: int = 0
    data: bytes = b""

    def item(self) -> rlp.Item:
        return [self.to, _uint(self.value), self.data]


@dataclass(frozen=True, slots=True)
class TokenLimit:
    """A spending limit for an access key: at most ``limit`` base units of ``token``."""

    token: bytes
    limit: int


@dataclass(frozen=True, slots=True)
class KeyAuthorization:
    """A root account's authorization of an access key (``key_id`` = the key's address).

    ``key_type``: 0 secp256k1, 1 P256, 2 WebAuthn. ``expiry``: unix seconds or ``None`` (never).
    ``limits``: per-token spending limits, or ``None`` for unlimited. Trailing optional fields
    are omitted from the encoding when absent.
    """

    chain_id: int
    key_id: bytes
    key_type: int = 0
    expiry: int | None = None
    limits: tuple[TokenLimit, ...] | None = None

    def item(self) -> rlp.Item:
        fields: list[rlp.Item] = [_uint(self.chain_id), _uint(self.key_type), self.key_id]
        if self.expiry is not None or self.limits is not None:
            fields.append(_uint(self.expiry or 0))
        if self.limits is not None:
            fields.append([[limit.token, _uint(limit.limit)] for limit in self.limits])
        return fields

    def digest(self) -> bytes:
        """What the root account signs: ``keccak256(rlp(authorization))``."""
        return keccak256(rlp.encode(self.item()))


@dataclass(frozen=True, slots=True)
class SignedKeyAuthorization:
    """A ``KeyAuthorization`` with the root account's signature envelope."""

    authorization: KeyAuthorization
    signature: bytes

    def item(self) -> rlp.Item:
        return [self.authorization.item(), self.signature]


@dataclass(frozen=True, slots=True)
class TempoTransaction:
    """An unsigned Tempo transaction.

    ``max_fee_per_gas`` / ``max_priority_fee_per_gas`` are in attodollars per gas unit.
    ``valid_before`` / ``valid_after`` are unix seconds (``None``: unset). ``fee_token`` is the
    TIP-20 token the fee is paid in (for a sponsored transaction: the fee payer's choice, not
    part of what the sender signs). ``sponsored`` means a fee payer pays the fee.
    """

    chain_id: int
    calls: tuple[Call, ...]
    gas_limit: int
    max_fee_per_gas: int
    max_priority_fee_per_gas: int = 0
    nonce_key: int = 0
    nonce: int = 0
    valid_before: int | None = None
    valid_after: int | None = None
    fee_token: bytes | None = None
    sponsored: bool = False
    access_list: tuple[tuple[bytes, tuple[bytes, ...]], ...] = ()
    key_authorization: SignedKeyAuthorization | None = None
    # The RLP of fields 0..9 and of the tail, encoded once per transaction: the signing
    # payload, the envelope and the fee payer's forms all share them, so only the two fee
    # slots and the signature are encoded per form (and the signed form reuses the signing
    # body byte for byte).
    _head: bytes = field(init=False, repr=False, compare=False)
    _tail: bytes = field(init=False, repr=False, compare=False)
    _signing_body: bytes | None = field(init=False, repr=False, compare=False, default=None)

    def __post_init__(self) -> None:
        if not self.calls:
            raise ValueError("a Tempo transaction needs at least one call")
        # Hand-inlined RLP for the flat fields (the generic encoder's recursion and type tests
        # cost ~1 µs an item); tests pin the bytes against ``rlp.encode``.
        head = b"".join(
            [
                _enc_uint(self.chain_id),
                _enc_uint(self.max_priority_fee_per_gas),
                _enc_uint(self.max_fee_per_gas),
                _enc_uint(self.gas_limit),
                _list(
                    b"".join(
                        [
                            _list(
                                _enc_bytes(call.to) + _enc_uint(call.value) + _enc_bytes(call.data)
                            )
                            for call in self.calls
                        ]
                    )
                ),
                rlp.encode([[address, list(keys)] for address, keys in self.access_list])
                if self.access_list
                else _EMPTY_LIST,
                _enc_uint(self.nonce_key),
                _enc_uint(self.nonce),
                _enc_uint(self.valid_before or 0),
                _enc_uint(self.valid_after or 0),
            ]
        )
        # aa_authorization_list is always empty here, then the optional key authorization.
        tail = _EMPTY_LIST
        if self.key_authorization is not None:
            tail += rlp.encode(self.key_authorization.item())
        object.__setattr__(self, "_head", head)
        object.__setattr__(self, "_tail", tail)

    def _body(self) -> bytes:
        """RLP of the list the sender signs, without its list prefix."""
        body = self._signing_body
        if body is None:
            if self.sponsored:
                slots = _EMPTY_STRING + b"\x00"
            else:
                slots = rlp.encode(self.fee_token or b"") + _EMPTY_STRING
            body = self._head + slots + self._tail
            object.__setattr__(self, "_signing_body", body)
        return body

    def signing_payload(self) -> bytes:
        """The bytes the sender's digest is taken over (``0x76 || rlp(...)``)."""
        return _typed(TX_TYPE, self._body())

    def signing_hash(self) -> bytes:
        """The 32-byte digest the sender signs."""
        return keccak256(self.signing_payload())

    def encode(self, signature: bytes, fee_payer_signature: bytes | None = None) -> bytes:
        """The broadcastable ``0x76`` bytes with the sender's signature envelope.

        ``fee_payer_signature`` (65 bytes ``r || s || v``) is the sponsor's co-signature.
        """
        if fee_payer_signature is None and not self.sponsored:
            # Same fields as the signing payload, then the signature.
            return _typed(TX_TYPE, self._body() + rlp.encode(signature))
        if fee_payer_signature is not None:
            r, s, v = fee_payer_signature[:32], fee_payer_signature[32:64], fee_payer_signature[64]
            payer_slot: rlp.Item = [_uint(v - 27 if v >= 27 else v), _strip(r), _strip(s)]
        else:
            payer_slot = b"\x00"
        body = (
            self._head
            + rlp.encode(self.fee_token or b"")
            + rlp.encode(payer_slot)
            + self._tail
            + rlp.encode(signature)
        )
        return _typed(TX_TYPE, body)

    def fee_payer_signing_hash(self, sender: bytes) -> bytes:
        """The digest a fee payer signs to sponsor this transaction from ``sender``."""
        body = self._head + rlp.encode(self.fee_token or b"") + rlp.encode(sender) + self._tail
        return keccak256(_typed(FEE_PAYER_TYPE, body))

    def fee_payer_envelope(self, sender: bytes, signature: bytes) -> bytes:
        """The ``0x78`` hand-off a sponsoring server co-signs (not broadcastable itself)."""
        body = self._head + _EMPTY_STRING + rlp.encode(sender) + self._tail + rlp.encode(signature)
        return _typed(FEE_PAYER_TYPE, body)


class TransactionTemplate:
    """The fields many transactions from one payer share, RLP-encoded once.

    A payer signs many transactions that differ only in ``max_fee_per_gas``, the calls'
    data and ``valid_before``; the rest (chain id, priority fee, gas limit, the nonce lane,
    ``valid_after``, the fee slots, the key authorization) is fixed per chain, token and
    configuration. This keeps those encodings and joins them with the varying fields, so a
    payment encodes only what changed. The bytes are those of the ``TempoTransaction`` with the
    same fields (tests pin them against it and against the ox vectors); the access list and the
    aa_authorization_list are empty.
    """

    __slots__ = ("_after", "_gas", "_lane", "_slots", "_start", "_tail", "sponsored")

    def __init__(
        self,
        *,
        chain_id: int,
        gas_limit: int,
        max_priority_fee_per_gas: int = 0,
        nonce_key: int = 0,
        nonce: int = 0,
        valid_after: int | None = None,
        fee_token: bytes | None = None,
        sponsored: bool = False,
        key_authorization: SignedKeyAuthorization | None = None,
    ) -> None:
        self.sponsored = sponsored
        self._start = _enc_uint(chain_id) + _enc_uint(max_priority_fee_per_gas)
        self._gas = _enc_uint(gas_limit)
        # access list (empty), nonce_key, nonce
        self._lane = _EMPTY_LIST + _enc_uint(nonce_key) + _enc_uint(nonce)
        self._after = _enc_uint(valid_after or 0)
        self._slots = (
            _EMPTY_STRING + b"\x00" if sponsored else _enc_bytes(fee_token or b"") + _EMPTY_STRING
        )
        tail = _EMPTY_LIST
        if key_authorization is not None:
            tail += rlp.encode(key_authorization.item())
        self._tail = tail

    @staticmethod
    def call(to: bytes, data: bytes, value: int = 0) -> bytes:
        """The RLP of one call ``[to, value, data]`` (``to``: 20 raw bytes)."""
        return _list(_enc_bytes(to) + _enc_uint(value) + _enc_bytes(data))

    def prefix(self, max_fee_per_gas: int, calls: Sequence[bytes]) -> bytes:
        """Fields 0..7 encoded (``calls``: encodings from ``call``), to join with a
        ``valid_before`` in ``signing_body``."""
        if not calls:
            raise ValueError("a Tempo transaction needs at least one call")
        return (
            self._start
            + _enc_uint(max_fee_per_gas)
            + self._gas
            + _list(b"".join(calls))
            + self._lane
        )

    def signing_body(self, prefix: bytes, valid_before: int | None) -> bytes:
        """RLP of the list the sender signs, without its list prefix (as
        ``TempoTransaction._body``)."""
        return prefix + _enc_uint(valid_before or 0) + self._after + self._slots + self._tail

    @staticmethod
    def signing_hash(body: bytes) -> bytes:
        """The 32-byte digest the sender signs, of ``0x76 || rlp(body)``."""
        return keccak256(_typed(TX_TYPE, body))

    def envelope(
        self, prefix: bytes, body: bytes, valid_before: int | None, sender: bytes, signature: bytes
    ) -> bytes:
        """The sender's signed form: the broadcastable ``0x76`` bytes, or for a sponsored
        transaction the ``0x78`` hand-off (``TempoTransaction.encode`` /
        ``fee_payer_envelope``). ``sender``: 20 raw bytes (used only when sponsored)."""
        if not self.sponsored:
            return _typed(TX_TYPE, body + _enc_bytes(signature))
        head = prefix + _enc_uint(valid_before or 0) + self._after
        return _typed(
            FEE_PAYER_TYPE,
            head + _EMPTY_STRING + _enc_bytes(sender) + self._tail + _enc_bytes(signature),
        )


_EMPTY_STRING = b"\x80"  # rlp(b"")
_EMPTY_LIST = b"\xc0"  # rlp([])


# Cached: most fields (chain id, gas limit, fee, nonce lane, the current second's
# valid_before) repeat from one payment to the next, and a C-level cache hit is cheaper than
# the encoding. Bounded, so it never grows with the number of payments.
@lru_cache(maxsize=1024)
def _enc_uint(value: int) -> bytes:
    """``rlp.encode(rlp.uint(value))``, without the generic encoder."""
    if value < 0x80:
        if value < 0:
            raise ValueError("RLP integers are unsigned")
        return bytes((value,)) if value else _EMPTY_STRING
    size = (value.bit_length() + 7) // 8
    if size >= 56:
        return rlp.encode(_uint(value))
    return bytes((0x80 + size,)) + value.to_bytes(size, "big")


def _enc_bytes(value: bytes) -> bytes:
    """``rlp.encode(value)`` for a byte string."""
    length = len(value)
    if length == 1 and value[0] < 0x80:
        return bytes(value)
    return _prefix(0x80, length) + value


def _list(body: bytes) -> bytes:
    """The RLP list whose items' encodings, joined, are ``body``."""
    return _prefix(0xC0, len(body)) + body


def _typed(tx_type: int, body: bytes) -> bytes:
    """``tx_type || rlp-list-prefix(body) || body`` (``body``: the items' encodings, joined)."""
    return bytes((tx_type,)) + _prefix(0xC0, len(body)) + body


# Cached: a payment's strings and lists have a handful of lengths (addresses, calldata,
# signatures, the body), so the prefixes repeat; bounded by the cache size.
@lru_cache(maxsize=1024)
def _prefix(short: int, length: int) -> bytes:
    """The RLP prefix of a string (``short`` 0x80) or list (0xC0) of ``length`` bytes."""
    if length < 56:
        return bytes((short + length,))
    size = _uint(length)
    return bytes((short + 55 + len(size),)) + size


def _strip(value: bytes) -> bytes:
    return value.lstrip(b"\x00")


def decode_fee_payer_envelope(
    raw: bytes, fee_token: bytes
) -> tuple[TempoTransaction, bytes, bytes]:
    """What a sponsoring server does with a ``0x78`` hand-off: decode it into the sponsored
    ``TempoTransaction`` paying its fee in ``fee_token`` (the sponsor's choice), the sender's
    20-byte address and the sender's signature. ``ValueError`` for anything else (another type,
    a fee token already set, an access list or key authorization, which this decoder does not
    carry over). The caller checks that the signature recovers to the sender, then co-signs
    ``fee_payer_signing_hash(sender)`` and broadcasts ``encode(signature, co_signature)``."""
    if raw[:1] != bytes((FEE_PAYER_TYPE,)):
        raise ValueError("not a 0x78 fee-payer envelope")
    fields = rlp.decode(raw[1:])
    if not isinstance(fields, list) or len(fields) != 14:
        raise ValueError("a 0x78 envelope without a key authorization has 14 fields")
    items = list(fields)
    flat = [items[i] for i in (0, 1, 2, 3, 6, 7, 8, 9, 10, 11, 13)]
    if not all(isinstance(f, bytes) for f in flat) or not isinstance(items[4], list):
        raise ValueError("malformed 0x78 envelope")

    def number(item: rlp.Item) -> int:
        assert isinstance(item, bytes)
        return int.from_bytes(item, "big")

    if items[5] != [] or items[12] != []:
        raise ValueError("access lists and authorization lists are not carried over")
    if items[10] != b"":
        raise ValueError("the sender committed to a fee token: not a sponsored hand-off")
    calls = []
    for call in items[4]:
        if (
            not isinstance(call, list)
            or len(call) != 3
            or not all(isinstance(part, bytes) for part in call)
        ):
            raise ValueError("malformed call in the 0x78 envelope")
        to, value, data = call
        assert isinstance(to, bytes) and isinstance(data, bytes)
        calls.append(Call(to, number(value), data))
    sender, signature = items[11], items[13]
    assert isinstance(sender, bytes) and isinstance(signature, bytes)
    if len(sender) != 20:
        raise ValueError("the 0x78 envelope's sender is not an address")
    tx = TempoTransaction(
        chain_id=number(items[0]),
        calls=tuple(calls),
        gas_limit=number(items[3]),
        max_fee_per_gas=number(items[2]),
        max_priority_fee_per_gas=number(items[1]),
        nonce_key=number(items[6]),
        nonce=number(items[7]),
        valid_before=number(items[8]) or None,
        valid_after=number(items[9]) or None,
        fee_token=fee_token,
        sponsored=True,
    )
    return tx, sender, signature


def tx_hash(raw: bytes) -> str:
    """The transaction hash (``0x`` hex) of signed transaction bytes."""
    return "0x" + keccak256(raw).hex()
