"""The zero-amount proof: an EIP-712 signature that proves control of an account for free.

A challenge with ``amount: "0"`` asks the payer to sign typed data instead of a transfer.
We sign the version the current reference servers verify (mppx >= 0.11, mpp-rs 0.11):
domain ``{name: "MPP", version: "3", chainId}``, type
``Proof(address account, string challengeId, string realm)``. Older drafts used version 1
(``challengeId`` only) and 2 (``challengeId``, ``realm``); binding ``account`` stops a proof made
for one account from being replayed for another (e.g. through a shared access key).
"""

from __future__ import annotations

from mpp_client.methods.tempo.keccak import keccak256
from mpp_client.methods.tempo.transaction import address_bytes

__all__ = ["proof_digest"]

_DOMAIN_TYPE = b"EIP712Domain(string name,string version,uint256 chainId)"
_PROOF_TYPE = b"Proof(address account,string challengeId,string realm)"


def proof_digest(chain_id: int, account: str, challenge_id: str, realm: str) -> bytes:
    """The 32-byte EIP-712 digest of a v3 proof for ``challenge_id`` of ``realm``."""
    domain = keccak256(
        keccak256(_DOMAIN_TYPE) + keccak256(b"MPP") + keccak256(b"3") + chain_id.to_bytes(32, "big")
    )
    struct = keccak256(
        keccak256(_PROOF_TYPE)
        + b"\x00" * 12
        + address_bytes(account)
        + keccak256(challenge_id.encode())
        + keccak256(realm.encode())
    )
    return keccak256(b"\x19\x01" + domain + struct)
