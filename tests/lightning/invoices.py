"""Real, signed BOLT11 invoices made locally with a fixed test node key."""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass

import bolt11
import coincurve
from bolt11 import Bolt11, Feature, Features, FeatureState, MilliSatoshi, TagChar, Tags

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
    preimage = preimage if preimage is not None else os.urandom(32)
    payment_hash = hashlib.sha256(preimage).hexdigest()
    tags = Tags()
    tags.add(TagChar.payment_hash, payment_hash)
    tags.add(TagChar.payment_secret, os.urandom(32).hex())
    tags.add(TagChar.description, description)
    tags.add(TagChar.expire_time, expiry)
    tags.add(
        TagChar.features,
        Features.from_feature_list(
            {
                Feature.var_onion_optin: FeatureState.required,
                Feature.payment_secret: FeatureState.required,
            }
        ),
    )
    invoice = Bolt11(
        currency=PREFIX[network],
        date=int(time.time()) if created is None else created,
        tags=tags,
        amount_msat=MilliSatoshi(amount_msat) if amount_msat is not None else None,
    )
    return TestInvoice(bolt11.encode(invoice, key), preimage.hex(), payment_hash)
