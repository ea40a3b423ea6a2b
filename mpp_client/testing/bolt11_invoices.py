"""Signing BOLT11 invoices locally, for test peers and tests (needs the ``lightning`` extra):
real invoices any decoder accepts, from a node key held in the process."""

from __future__ import annotations

import hashlib
import os

__all__ = ["sign_invoice"]


def sign_invoice(
    node_key: str,
    *,
    currency: str,
    created: int,
    description: str,
    expiry: int,
    amount_msat: int | None = None,
    preimage: bytes | None = None,
) -> tuple[str, bytes, str]:
    """A signed invoice for ``amount_msat`` (``None``: amountless) with a fresh payment secret,
    created at ``created`` (Unix seconds) and valid for ``expiry`` seconds; ``currency`` is the
    bech32 prefix (``"bc"``, ``"tb"``...), ``node_key`` the signing key (64 hex digits).
    Returns (invoice text, preimage, payment hash in hex); the preimage is random unless given.
    """
    import bolt11
    from bolt11 import Bolt11, Feature, Features, FeatureState, MilliSatoshi, TagChar, Tags

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
        currency=currency,
        date=created,
        tags=tags,
        amount_msat=MilliSatoshi(amount_msat) if amount_msat is not None else None,
    )
    return bolt11.encode(invoice, node_key), preimage, payment_hash
