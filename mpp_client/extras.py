"""Which install extra provides which optional module, and the one check that says so.

Every optional dependency sits behind an extra of ``pyproject.toml``. Code that needs one calls
``require_extra(extra, feature)`` where the object that needs it is built (a payment method, a
payer, a key store) or where its module is imported (``PaymentSession`` subclasses
``requests.Session``), so a missing extra is a ``MissingExtra`` naming the extra to install
before anything is signed, never a bare ``ModuleNotFoundError`` from the middle of a payment.

The check looks the modules up without importing them: building a ``TempoCharge`` does not load
coincurve, which stays a first-use import.
"""

from __future__ import annotations

import importlib.util
import sys

from mpp_client.errors import MissingExtra

__all__ = ["EXTRAS", "require_extra"]

#: extra -> the top-level modules it provides that mpp_client imports. A tuple inside a tuple
#: means "any one of these" (Tempo hashes with tiny-keccak or, failing that, pycryptodome).
EXTRAS: dict[str, tuple[str | tuple[str, ...], ...]] = {
    "requests": ("requests",),
    "tempo": ("coincurve", ("tiny_keccak", "Crypto")),
    "lightning": ("bolt11",),
    "nwc": ("coincurve", "cryptography", "websockets"),
    "spark": ("breez_sdk_spark",),
    "handcash": ("coincurve",),
    "keyring": ("keyring", "cryptography"),
    "mcp": ("mcp",),
    "postgres": ("psycopg", "psycopg_pool"),
}


def _installed(module: str) -> bool:
    if module in sys.modules:
        # ``sys.modules[name] = None`` is how Python (and the tests) block an import.
        return sys.modules[module] is not None
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def require_extra(extra: str, feature: str, *, modules: tuple[str, ...] | None = None) -> None:
    """Raise ``MissingExtra`` unless the modules of ``extra`` are importable.

    ``feature`` names what needs them in the message (``"TempoCharge"``). ``modules`` narrows
    the check to the ones this feature uses (the encrypted key file needs only cryptography of
    the ``keyring`` extra).
    """
    wanted = EXTRAS[extra] if modules is None else modules
    for entry in wanted:
        alternatives = (entry,) if isinstance(entry, str) else entry
        if not any(_installed(module) for module in alternatives):
            raise MissingExtra(extra, alternatives[0], feature)
