"""TIP-20 tokens: the stablecoins Tempo charges are paid in, and the calls that move them.

Every TIP-20 token has 6 decimals: 1_000_000 base units are 1.00 of the token.
"""

from __future__ import annotations

from dataclasses import dataclass

from mpp_client.methods.tempo.transaction import address_bytes

__all__ = [
    "ALPHA_USD",
    "BETA_USD",
    "KNOWN_TOKENS",
    "PATH_USD",
    "THETA_USD",
    "TIP20_DECIMALS",
    "USDC",
    "TempoToken",
    "balance_of_data",
    "transfer_data",
]

TIP20_DECIMALS = 6

TRANSFER = bytes.fromhex("a9059cbb")  # transfer(address,uint256)
TRANSFER_WITH_MEMO = bytes.fromhex("95777d59")  # transferWithMemo(address,uint256,bytes32)
BALANCE_OF = bytes.fromhex("70a08231")  # balanceOf(address)
#: Transfer(address indexed from, address indexed to, uint256 amount)
TRANSFER_TOPIC = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
#: TransferWithMemo(address indexed from, address indexed to, uint256 amount, bytes32 indexed memo)
TRANSFER_WITH_MEMO_TOPIC = "0x57bc7354aa85aed339e000bccffabbc529466af35f0772c8f8ee1145927de7f0"


@dataclass(frozen=True, slots=True)
class TempoToken:
    """A TIP-20 token the payer accepts: ``address`` (lower case), display ``symbol``,
    ``decimals`` (always 6 for TIP-20) and whether one whole token is worth one US dollar."""

    address: str
    symbol: str
    decimals: int = TIP20_DECIMALS
    usd_pegged: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "address", self.address.lower())


PATH_USD = TempoToken("0x20c0000000000000000000000000000000000000", "pathUSD")
ALPHA_USD = TempoToken("0x20c0000000000000000000000000000000000001", "AlphaUSD")
BETA_USD = TempoToken("0x20c0000000000000000000000000000000000002", "BetaUSD")
THETA_USD = TempoToken("0x20c0000000000000000000000000000000000003", "ThetaUSD")
USDC = TempoToken("0x20c000000000000000000000b9537d11c60e8b50", "USDC")

_TEST_TOKENS = (PATH_USD, ALPHA_USD, BETA_USD, THETA_USD)
#: The USD stablecoins accepted by default on each known chain id.
KNOWN_TOKENS: dict[int, tuple[TempoToken, ...]] = {
    4217: (USDC, PATH_USD),  # mainnet
    42431: _TEST_TOKENS,  # Moderato testnet
    31318: _TEST_TOKENS,  # devnet
    1337: _TEST_TOKENS,  # local node (docker)
    31337: _TEST_TOKENS,  # anvil --network tempo
}


def _word(value: int) -> bytes:
    return value.to_bytes(32, "big")


def transfer_data(to: str, amount: int, memo: bytes | None = None) -> bytes:
    """Calldata for ``transfer`` (no memo) or ``transferWithMemo`` of ``amount`` base units."""
    head = b"\x00" * 12 + address_bytes(to) + _word(amount)
    if memo is None:
        return TRANSFER + head
    if len(memo) != 32:
        raise ValueError("a TIP-20 memo is 32 bytes")
    return TRANSFER_WITH_MEMO + head + memo


def balance_of_data(owner: str) -> bytes:
    """Calldata for ``balanceOf(owner)``."""
    return BALANCE_OF + b"\x00" * 12 + address_bytes(owner)
