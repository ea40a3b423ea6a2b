"""A Tempo signer whose key stays in the key store until the first signature.

``TempoCharge.from_config`` signs with one: listing wallets, reading the journal or quoting a
price never asks for a key file passphrase.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mpp_client.errors import KeyStoreError
from mpp_client.methods.config import SecretValue

__all__ = ["KeyStoreSigner"]


class KeyStoreSigner:
    """A Tempo ``Signer`` whose private key stays in the key store until the first signature.

    ``load`` reads the key (a ``Secret``); ``address`` is the configured account (no unlock
    needed). The key read must derive that same account (or, with ``root_account``, act for it
    as an access key), else ``KeyStoreError``: a swapped key store entry never signs for the
    wrong account.
    """

    def __init__(
        self,
        load: Callable[[], SecretValue],
        address: str,
        *,
        root_account: str | None = None,
    ) -> None:
        self._load = load
        self._address = address
        self._root = root_account
        self._signer: Any = None

    @property
    def address(self) -> str:
        """The paying account (EIP-55)."""
        return self._address

    def _unlocked(self) -> Any:
        if self._signer is None:
            from mpp_client.methods.tempo.signer import AccessKeySigner, LocalKeySigner

            key = self._load().reveal()
            try:
                signer: Any = (
                    AccessKeySigner(key, self._root) if self._root else LocalKeySigner(key)
                )
            except ValueError:
                raise KeyStoreError("the key store entry is not a secp256k1 private key") from None
            if signer.address.lower() != self._address.lower():
                raise KeyStoreError(
                    f"the key in the key store is for {signer.address}, not {self._address}"
                )
            self._signer = signer
        return self._signer

    def sign_hash(self, digest: bytes) -> bytes:
        """A Tempo signature envelope over ``digest`` (see ``mpp_client.methods.tempo``)."""
        return bytes(self._unlocked().sign_hash(digest))

    def sign_raw_hash(self, digest: bytes) -> bytes:
        """A plain secp256k1 signature (not available for access keys)."""
        return bytes(self._unlocked().sign_raw_hash(digest))

    def __repr__(self) -> str:
        return f"KeyStoreSigner(address={self._address}, key=<in key store>)"
