"""Real, signed BOLT11 invoices made locally with a fixed test node key."""

from __future__ import annotations

import time
from dataclasses import dataclass

import coincurve

from mpp_client.testing.bolt11_invoices import sign_invoice

NODE_KEY = "6b" * 32
NODE_ID = coincurve.PrivateKey(bytes.fromhex(NODE_KEY)).public_key.format().hex()
PREFIX = {"mainnet": "bc", "testnet": "tb", "signet": "tbs", "regtest": "bcrt"}


@dataclass(frozen=True)
class TestInvoice:
    text: str
    preimage: str
    payment_hash: str


def make_invoice(
    amount_msat: int | None = 100_000,
    *,
    network: str = "mainnet",
    expiry: int = 600,
    created: int | None = None,
    description: str = "weather report",
    preimage: bytes | None = None,
    key: str = NODE_KEY,
) -> TestInvoice:
    text, secret, payment_hash = sign_invoice(
        key,
        currency=PREFIX[network],
        created=int(time.time()) if created is None else created,
        description=description,
        expiry=expiry,
        amount_msat=amount_msat,
        preimage=preimage,
    )
    return TestInvoice(text, secret.hex(), payment_hash)
