"""The client's payment capability, advertised in MCP ``initialize`` (protocol README §18)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mpp_client.methods.base import PaymentMethod

__all__ = ["PAYMENT_CAPABILITY", "payment_capability"]

#: The key under ``capabilities.experimental``.
PAYMENT_CAPABILITY = "payment"


def payment_capability(methods: Iterable[PaymentMethod]) -> dict[str, Any]:
    """``{"methods": {name: {"intents": [...]}}}`` for the wallet's methods (mppx's shape)."""
    found: dict[str, set[str]] = {}
    for method in methods:
        found.setdefault(method.name, set()).update(method.intents)
    return {
        "methods": {name: {"intents": sorted(intents)} for name, intents in sorted(found.items())}
    }
