"""Tempo session vouchers and channel ids, for both session protocols (README §14).

A voucher is an EIP-712 signature over ``Voucher(bytes32 channelId, uint<N> cumulativeAmount)``
with the domain ``{name, version "1", chainId, verifyingContract: escrow}``:

======  ============================  =========  ===========================================
proto   domain name                   amounts    channel id = keccak256(abi.encode(...))
======  ============================  =========  ===========================================
v1      ``Tempo Stream Channel``      uint128    payer, payee, token, salt, authorizedSigner,
                                                 escrow, chainId
v2      ``TIP20 Channel Reserve``     uint96     payer, payee, operator, token, salt,
                                                 authorizedSigner, expiringNonceHash, escrow,
                                                 chainId
======  ============================  =========  ===========================================

Signatures are 65 bytes ``r || s || v`` (v 27/28) with a low ``s`` (``LocalKeySigner`` signs
with libsecp256k1, which only makes low-s signatures); ``check_low_s`` refuses others.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mpp_client.methods.tempo.keccak import keccak256
from mpp_client.methods.tempo.transaction import address_bytes

__all__ = [
    "MAX_UINT96",
    "MAX_UINT128",
    "ChannelDescriptor",
    "SessionProtocol",
    "SessionSnapshot",
    "channel_id_v1",
    "channel_id_v2",
    "check_low_s",
    "expiring_nonce_hash",
    "verify_snapshot",
    "voucher_digest",
]

SessionProtocol = Literal["v1", "v2"]

MAX_UINT96 = 2**96 - 1
MAX_UINT128 = 2**128 - 1
_HALF_N = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0

# keccak256 of the EIP-712 type strings and names, written out so that importing this module
# needs no keccak backend (the `tempo` extra); tests/tempo/session checks them against keccak256.
_DOMAIN_TYPE = bytes.fromhex(  # EIP712Domain(string name,string version,uint256 chainId,...)
    "8b73c3c69bb8fe3d512ecc4cf759cc79239f7b179b0ffacaa9a75d522b39400f"
)
_VOUCHER_TYPE = {
    # Voucher(bytes32 channelId,uint128 cumulativeAmount)
    "v1": bytes.fromhex("e97c93f01d3ef8eaba1586553df13308f236815bf4ea49c7b696895d8f5ea68a"),
    # Voucher(bytes32 channelId,uint96 cumulativeAmount)
    "v2": bytes.fromhex("4730b4b2fe8de522475e80e010877c5b58ad10eb07fd0436615ee123f743bbe8"),
}
_DOMAIN_NAME = {
    # "Tempo Stream Channel"
    "v1": bytes.fromhex("1a08d077184f6afbbddcf8277afb64043c299aa8f68e13b9e1be1800a5237bd1"),
    # "TIP20 Channel Reserve"
    "v2": bytes.fromhex("131992c67b15deae2fea2ee6e0448ff6217787c4722ce1b46fba946132054433"),
}
_VERSION_1 = bytes.fromhex("c89efdaa54c0f20c7adf612882df0950f5a951637e0307cdcb4c672f298b8bc6")
_MAX = {"v1": MAX_UINT128, "v2": MAX_UINT96}
_domains: dict[tuple[str, int, str], bytes] = {}


def _word(value: int) -> bytes:
    return value.to_bytes(32, "big")


def _address_word(address: str) -> bytes:
    return b"\x00" * 12 + address_bytes(address)


def _bytes32(value: str | bytes) -> bytes:
    raw = bytes.fromhex(value.removeprefix("0x")) if isinstance(value, str) else value
    if len(raw) != 32:
        raise ValueError("a bytes32 value has 32 bytes")
    return raw


def domain_separator(protocol: SessionProtocol, chain_id: int, escrow: str) -> bytes:
    """The EIP-712 domain separator of the escrow (cached per protocol, chain and escrow)."""
    key = (protocol, chain_id, escrow.lower())
    found = _domains.get(key)
    if found is None:
        found = keccak256(
            _DOMAIN_TYPE
            + _DOMAIN_NAME[protocol]
            + _VERSION_1
            + _word(chain_id)
            + _address_word(escrow)
        )
        _domains[key] = found
    return found


def voucher_digest(
    protocol: SessionProtocol, chain_id: int, escrow: str, channel_id: str | bytes, cumulative: int
) -> bytes:
    """The 32-byte EIP-712 digest a voucher signs (``cumulative`` in base units). Raises
    ``ValueError`` when the amount does not fit the protocol's integer type."""
    if not 0 <= cumulative <= _MAX[protocol]:
        raise ValueError(f"a {protocol} voucher amount must fit its uint type")
    struct = keccak256(_VOUCHER_TYPE[protocol] + _bytes32(channel_id) + _word(cumulative))
    return keccak256(b"\x19\x01" + domain_separator(protocol, chain_id, escrow) + struct)


def channel_id_v1(
    *,
    payer: str,
    payee: str,
    token: str,
    salt: str | bytes,
    authorized_signer: str,
    escrow: str,
    chain_id: int,
) -> str:
    """The v1 channel id (``0x`` + 64 lower-case hex), as the escrow's ``computeChannelId``."""
    encoded = (
        _address_word(payer)
        + _address_word(payee)
        + _address_word(token)
        + _bytes32(salt)
        + _address_word(authorized_signer)
        + _address_word(escrow)
        + _word(chain_id)
    )
    return "0x" + keccak256(encoded).hex()


@dataclass(frozen=True, slots=True)
class ChannelDescriptor:
    """The v2 channel descriptor sent in every v2 payload (addresses ``0x`` hex, ``salt`` and
    ``expiring_nonce_hash`` ``0x`` + 64 hex; ``authorized_signer`` zero means the payer)."""

    payer: str
    payee: str
    operator: str
    token: str
    salt: str
    authorized_signer: str
    expiring_nonce_hash: str

    def to_json(self) -> dict[str, str]:
        """The descriptor object as it goes on the wire (lower-case hex)."""
        return {
            "payer": self.payer.lower(),
            "payee": self.payee.lower(),
            "operator": self.operator.lower(),
            "token": self.token.lower(),
            "salt": self.salt.lower(),
            "authorizedSigner": self.authorized_signer.lower(),
            "expiringNonceHash": self.expiring_nonce_hash.lower(),
        }


def channel_id_v2(descriptor: ChannelDescriptor, *, escrow: str, chain_id: int) -> str:
    """The v2 channel id of ``descriptor`` at ``escrow`` (the precompile) on ``chain_id``."""
    encoded = (
        _address_word(descriptor.payer)
        + _address_word(descriptor.payee)
        + _address_word(descriptor.operator)
        + _address_word(descriptor.token)
        + _bytes32(descriptor.salt)
        + _address_word(descriptor.authorized_signer)
        + _bytes32(descriptor.expiring_nonce_hash)
        + _address_word(escrow)
        + _word(chain_id)
    )
    return "0x" + keccak256(encoded).hex()


def expiring_nonce_hash(signing_payload: bytes, sender: str) -> str:
    """v2: ``keccak256(encodeForSigning(openTx) || sender)``: the open transaction's sender
    signing payload (``TempoTransaction.signing_payload()``) and the sender's address."""
    return "0x" + keccak256(signing_payload + address_bytes(sender)).hex()


def check_low_s(signature: bytes) -> None:
    """Refuse a 65-byte signature whose ``s`` is in the upper half (a malleable copy) or whose
    ``v`` is not 27/28."""
    if len(signature) != 65:
        raise ValueError("a voucher signature has 65 bytes")
    if int.from_bytes(signature[32:64], "big") > _HALF_N or signature[64] not in (27, 28):
        raise ValueError("the voucher signature is not low-s with v 27/28")


@dataclass(frozen=True, slots=True)
class SessionSnapshot:
    """A v2 server's view of a channel (``methodDetails.sessionSnapshot`` or the base64url
    JSON of ``Payment-Session-Snapshot``). Amounts are base units; trust it only after
    ``verify_snapshot``."""

    channel_id: str
    chain_id: int
    escrow: str
    descriptor: ChannelDescriptor
    deposit: int
    settled: int
    accepted: int
    spent: int
    required: int

    @classmethod
    def from_json(cls, data: object) -> SessionSnapshot:
        """Parse the snapshot object; ``ValueError`` for any missing or mistyped field."""
        if not isinstance(data, dict):
            raise ValueError("a session snapshot is a JSON object")
        descriptor = data.get("descriptor")
        if not isinstance(descriptor, dict):
            raise ValueError("the snapshot has no descriptor")

        def text(source: dict[str, object], name: str) -> str:
            value = source.get(name)
            if not isinstance(value, str) or not value.startswith("0x"):
                raise ValueError(f"snapshot field {name} is not 0x hex")
            return value.lower()

        def amount(name: str) -> int:
            value = data.get(name)
            if not isinstance(value, str) or not value.isdigit() or int(value) > MAX_UINT96:
                raise ValueError(f"snapshot field {name} is not a uint96 decimal string")
            return int(value)

        chain_id = data.get("chainId")
        if isinstance(chain_id, bool) or not isinstance(chain_id, int):
            raise ValueError("snapshot field chainId is not a number")
        return cls(
            channel_id=text(data, "channelId"),
            chain_id=chain_id,
            escrow=text(data, "escrow"),
            descriptor=ChannelDescriptor(
                payer=text(descriptor, "payer"),
                payee=text(descriptor, "payee"),
                operator=text(descriptor, "operator"),
                token=text(descriptor, "token"),
                salt=text(descriptor, "salt"),
                authorized_signer=text(descriptor, "authorizedSigner"),
                expiring_nonce_hash=text(descriptor, "expiringNonceHash"),
            ),
            deposit=amount("deposit"),
            settled=amount("settled"),
            accepted=amount("acceptedCumulative"),
            spent=amount("spent"),
            required=amount("requiredCumulative"),
        )


def verify_snapshot(
    snapshot: SessionSnapshot,
    *,
    payer: str,
    chain_id: int,
    escrow: str,
    highest_signed: int | None,
) -> None:
    """Refuse (``ValueError``) a snapshot that is not this payer's channel or whose amounts
    cannot be true: the channel id must derive from its descriptor (at ``escrow`` on
    ``chain_id``), the descriptor's payer must be ``payer``, ``settled <= accepted <=
    deposit``, ``spent <= accepted``, and ``accepted`` may not exceed the highest voucher this
    payer signed (``highest_signed``; ``None`` when unknown, e.g. a lost journal: then only
    what the chain shows may be trusted, never the server's word)."""
    if snapshot.chain_id != chain_id or snapshot.escrow != escrow.lower():
        raise ValueError("the snapshot is for another chain or escrow")
    if snapshot.descriptor.payer != payer.lower():
        raise ValueError("the snapshot's channel belongs to another payer")
    derived = channel_id_v2(snapshot.descriptor, escrow=escrow, chain_id=chain_id)
    if derived != snapshot.channel_id:
        raise ValueError("the snapshot's channel id does not derive from its descriptor")
    if not snapshot.settled <= snapshot.accepted <= snapshot.deposit:
        raise ValueError("the snapshot's settled/accepted/deposit amounts are inconsistent")
    if snapshot.spent > snapshot.accepted:
        raise ValueError("the snapshot spends more than was accepted")
    if highest_signed is None or snapshot.accepted > highest_signed:
        raise ValueError(
            "the snapshot claims more accepted than this payer's highest signed voucher"
        )
