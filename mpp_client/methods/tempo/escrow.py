"""The session v1 escrow contract (``TempoStreamChannel``): its addresses, calldata and reads.

Calls the payer makes (batched with a TIP-20 ``approve`` of the escrow in ONE ``0x76``
transaction): ``open(address payee, address token, uint128 deposit, bytes32 salt, address
authorizedSigner)`` and ``topUp(bytes32 channelId, uint256 additionalDeposit)`` (the deployed
ABI takes uint256 although the spec table says uint128); for a forced close ``requestClose``,
then after the 15-minute grace period ``withdraw``. The payee calls ``settle`` and ``close``
with a voucher. ``getChannel`` reads a channel's state.

v2 (the TIP-20 channel reserve precompile, TIP-1034, at ``V2_PRECOMPILE``): the precompile pulls
the deposit itself, so a v2 open is ONE call and no ``approve``: ``open(address payee, address
operator, address token, uint96 deposit, bytes32 salt, address authorizedSigner)``; every later
call names the channel by its descriptor tuple ``(payer, payee, operator, token, salt,
authorizedSigner, expiringNonceHash)``: ``topUp(descriptor, uint96)``, ``requestClose`` and
``withdraw(descriptor)``. Selectors and ABI as mppx 0.11's ``escrow.abi`` (tests check the
calldata with mppx's own decoder).
"""

from __future__ import annotations

from dataclasses import dataclass

from mpp_client.methods.tempo.transaction import address_bytes
from mpp_client.methods.tempo.voucher import MAX_UINT96, ChannelDescriptor

__all__ = [
    "CANONICAL_ESCROWS",
    "CLOSE_GRACE_SECONDS",
    "OnChainChannel",
    "V2_PRECOMPILE",
    "approve_data",
    "close_data",
    "decode_channel",
    "get_channel_data",
    "get_voucher_digest_data",
    "open_data",
    "open_v2_data",
    "request_close_data",
    "request_close_v2_data",
    "settle_data",
    "top_up_data",
    "top_up_v2_data",
    "withdraw_data",
    "withdraw_v2_data",
]

#: The v1 escrow deployed by Tempo on each chain (lower case). Any other address is refused
#: unless the payer allows it explicitly (``TempoSession(escrows=...)``).
CANONICAL_ESCROWS: dict[int, frozenset[str]] = {
    4217: frozenset({"0x33b901018174ddabe4841042ab76ba85d4e24f25"}),
    42431: frozenset({"0xe1c4d3dce17bc111181ddf716f75bae49e61a336"}),
}
#: The v2 TIP-20 channel reserve precompile (every chain).
V2_PRECOMPILE = "0x4d50500000000000000000000000000000000000"
#: Seconds between ``requestClose`` and the earliest ``withdraw``.
CLOSE_GRACE_SECONDS = 900

_APPROVE = bytes.fromhex("095ea7b3")  # approve(address,uint256)
_OPEN = bytes.fromhex("c79ea485")  # open(address,address,uint128,bytes32,address)
_TOP_UP = bytes.fromhex("b67644b9")  # topUp(bytes32,uint256)
_SETTLE = bytes.fromhex("516d3b88")  # settle(bytes32,uint128,bytes)
_CLOSE = bytes.fromhex("0d65c51d")  # close(bytes32,uint128,bytes)
_REQUEST_CLOSE = bytes.fromhex("6bf5fe6f")  # requestClose(bytes32)
_WITHDRAW = bytes.fromhex("8e19899e")  # withdraw(bytes32)
_GET_CHANNEL = bytes.fromhex("831c2b82")  # getChannel(bytes32)
_GET_VOUCHER_DIGEST = bytes.fromhex("862bb199")  # getVoucherDigest(bytes32,uint128)
# v2, the precompile; D = the descriptor tuple (address,address,address,address,bytes32,address,
# bytes32).
_OPEN_V2 = bytes.fromhex("edc53b00")  # open(address,address,address,uint96,bytes32,address)
_TOP_UP_V2 = bytes.fromhex("dc48471e")  # topUp(D,uint96)
_REQUEST_CLOSE_V2 = bytes.fromhex("675402e5")  # requestClose(D)
_WITHDRAW_V2 = bytes.fromhex("41e2c664")  # withdraw(D)


def _word(value: int) -> bytes:
    return value.to_bytes(32, "big")


def _address(value: str) -> bytes:
    return b"\x00" * 12 + address_bytes(value)


def _b32(value: str) -> bytes:
    raw = bytes.fromhex(value.removeprefix("0x"))
    if len(raw) != 32:
        raise ValueError("a bytes32 value has 32 bytes")
    return raw


def _with_bytes(head: bytes, data: bytes) -> bytes:
    """ABI tail for one dynamic ``bytes`` argument placed after ``head`` (static words)."""
    offset = _word(len(head) + 32)
    padded = data + b"\x00" * (-len(data) % 32)
    return head + offset + _word(len(data)) + padded


def approve_data(spender: str, amount: int) -> bytes:
    """TIP-20 ``approve(spender, amount)``."""
    return _APPROVE + _address(spender) + _word(amount)


def open_data(payee: str, token: str, deposit: int, salt: str, authorized_signer: str) -> bytes:
    """``open(payee, token, uint128 deposit, salt, authorizedSigner)``."""
    return (
        _OPEN + _address(payee) + _address(token) + _word(deposit) + _b32(salt)
        + _address(authorized_signer)
    )  # fmt: skip


def top_up_data(channel_id: str, amount: int) -> bytes:
    """``topUp(channelId, uint256 additionalDeposit)``."""
    return _TOP_UP + _b32(channel_id) + _word(amount)


def settle_data(channel_id: str, cumulative: int, signature: bytes) -> bytes:
    """``settle(channelId, uint128 cumulativeAmount, bytes signature)`` (payee only)."""
    return _SETTLE + _with_bytes(_b32(channel_id) + _word(cumulative), signature)


def close_data(channel_id: str, cumulative: int, signature: bytes) -> bytes:
    """``close(channelId, uint128 cumulativeAmount, bytes signature)`` (payee only)."""
    return _CLOSE + _with_bytes(_b32(channel_id) + _word(cumulative), signature)


def request_close_data(channel_id: str) -> bytes:
    """``requestClose(channelId)`` (payer only): starts the grace period."""
    return _REQUEST_CLOSE + _b32(channel_id)


def withdraw_data(channel_id: str) -> bytes:
    """``withdraw(channelId)`` (payer only, after the grace period)."""
    return _WITHDRAW + _b32(channel_id)


def get_channel_data(channel_id: str) -> bytes:
    """``getChannel(channelId)`` (a read)."""
    return _GET_CHANNEL + _b32(channel_id)


def get_voucher_digest_data(channel_id: str, cumulative: int) -> bytes:
    """``getVoucherDigest(channelId, uint128 cumulativeAmount)`` (a read)."""
    return _GET_VOUCHER_DIGEST + _b32(channel_id) + _word(cumulative)


def _uint96(value: int) -> bytes:
    if not 0 <= value <= MAX_UINT96:
        raise ValueError("a v2 amount must fit uint96")
    return _word(value)


def _descriptor(descriptor: ChannelDescriptor) -> bytes:
    """The descriptor tuple, ABI-encoded in place (all its members are static)."""
    return (
        _address(descriptor.payer) + _address(descriptor.payee) + _address(descriptor.operator)
        + _address(descriptor.token) + _b32(descriptor.salt)
        + _address(descriptor.authorized_signer) + _b32(descriptor.expiring_nonce_hash)
    )  # fmt: skip


def open_v2_data(
    payee: str, operator: str, token: str, deposit: int, salt: str, authorized_signer: str
) -> bytes:
    """v2 ``open(payee, operator, token, uint96 deposit, salt, authorizedSigner)``."""
    return (
        _OPEN_V2 + _address(payee) + _address(operator) + _address(token) + _uint96(deposit)
        + _b32(salt) + _address(authorized_signer)
    )  # fmt: skip


def top_up_v2_data(descriptor: ChannelDescriptor, amount: int) -> bytes:
    """v2 ``topUp(descriptor, uint96 additionalDeposit)``."""
    return _TOP_UP_V2 + _descriptor(descriptor) + _uint96(amount)


def request_close_v2_data(descriptor: ChannelDescriptor) -> bytes:
    """v2 ``requestClose(descriptor)`` (payer only)."""
    return _REQUEST_CLOSE_V2 + _descriptor(descriptor)


def withdraw_v2_data(descriptor: ChannelDescriptor) -> bytes:
    """v2 ``withdraw(descriptor)`` (payer only, after the grace period)."""
    return _WITHDRAW_V2 + _descriptor(descriptor)


@dataclass(frozen=True, slots=True)
class OnChainChannel:
    """A channel as the escrow stores it (amounts in base units; ``close_requested_at`` Unix
    seconds, 0 when no forced close is pending). A missing channel has the zero payer."""

    payer: str
    payee: str
    token: str
    authorized_signer: str
    deposit: int
    settled: int
    close_requested_at: int
    finalized: bool

    @property
    def exists(self) -> bool:
        """Whether the escrow knows the channel."""
        return self.payer != "0x" + "0" * 40


def decode_channel(result: str) -> OnChainChannel:
    """Decode the ``eth_call`` result of ``getChannel`` (eight static words)."""
    raw = bytes.fromhex(result.removeprefix("0x"))
    if len(raw) < 8 * 32:
        raise ValueError("getChannel answered fewer than eight words")
    words = [raw[i * 32 : (i + 1) * 32] for i in range(8)]

    def address(word: bytes) -> str:
        return "0x" + word[12:].hex()

    return OnChainChannel(
        payer=address(words[0]),
        payee=address(words[1]),
        token=address(words[2]),
        authorized_signer=address(words[3]),
        deposit=int.from_bytes(words[4], "big"),
        settled=int.from_bytes(words[5], "big"),
        close_requested_at=int.from_bytes(words[6], "big"),
        finalized=int.from_bytes(words[7], "big") != 0,
    )
