"""Tempo payments: TIP-20 stablecoin charges signed locally (extra ``mpp-client[tempo]``).

``TempoSession`` pays ``tempo``/``session`` challenges through a payment channel (v1 escrow).
``TempoCharge`` pays ``tempo``/``charge`` challenges in pull (default), sponsored and push mode;
``LocalKeySigner`` and ``AccessKeySigner`` sign for it. Transactions are encoded here (type
``0x76`` and the ``0x78`` fee-payer envelope); coincurve and pycryptodome are loaded on first use.
"""

from mpp_client.methods.tempo.charge import (
    DEFAULT_RPC_URLS,
    SIGNING_HASH_PREFIX,
    InvalidChargeRequest,
    NothingSigned,
    TempoCharge,
)
from mpp_client.methods.tempo.rpc import RpcError
from mpp_client.methods.tempo.session import TempoSession
from mpp_client.methods.tempo.signer import AccessKeySigner, LocalKeySigner, Signer
from mpp_client.methods.tempo.tip20 import (
    ALPHA_USD,
    BETA_USD,
    KNOWN_TOKENS,
    PATH_USD,
    THETA_USD,
    USDC,
    TempoToken,
)

__all__ = [
    "ALPHA_USD",
    "BETA_USD",
    "DEFAULT_RPC_URLS",
    "KNOWN_TOKENS",
    "PATH_USD",
    "SIGNING_HASH_PREFIX",
    "THETA_USD",
    "USDC",
    "AccessKeySigner",
    "InvalidChargeRequest",
    "LocalKeySigner",
    "NothingSigned",
    "RpcError",
    "Signer",
    "TempoCharge",
    "TempoSession",
    "TempoToken",
]
