"""Payment methods built from configuration: a configured wallet's settings and secrets.

A configured wallet (a ``[wallets.NAME]`` table of the ``mpp`` configuration, or any mapping)
names its method and holds that method's public settings; its secrets stay in a key store and
are read through a ``SecretLoader`` only when the method needs them (a Tempo key at the first
signature). Every method class answers for itself:

- ``config_summary``: one line saying what the method pays with;
- ``config_secrets(settings)``: the secrets it needs (``SecretField``: name, prompt, key store
  kind), which may depend on the settings (a Lightning backend's secret);
- ``from_config(settings, secrets)``: the ready method. A missing or malformed setting is a
  ``MethodConfigError`` naming the setting, never echoing a secret.

``method_class(name)`` finds the class of a method name, importing only that method's package
(so a missing extra of another method does not matter).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from mpp_client.methods.base import PaymentMethod

__all__ = [
    "METHOD_CLASSES",
    "MethodConfigError",
    "SecretField",
    "SecretLoader",
    "SecretValue",
    "Settings",
    "method_class",
]

#: Method name -> (module, class) of every method that builds itself from configuration.
METHOD_CLASSES: dict[str, tuple[str, str]] = {
    "tempo": ("mpp_client.methods.tempo", "TempoCharge"),
    "lightning": ("mpp_client.methods.lightning", "LightningCharge"),
    "stripe": ("mpp_client.methods.stripe", "StripeCharge"),
    "handcash": ("mpp_client.methods.handcash", "HandCashCharge"),
}


class MethodConfigError(ValueError):
    """A setting or secret of a configured method is missing or not valid. The message names
    the setting (``"chain_id must be a positive integer"``), never a secret's value."""


class SecretValue(Protocol):
    """A secret read from a key store (``mpp_client.wallet.Secret``): shown only by
    ``reveal()``."""

    def reveal(self) -> str: ...


#: Reads one secret of the configured wallet by its field name (``"private-key"``); raises
#: ``KeyStoreError`` when the key store does not hold it.
SecretLoader = Callable[[str], SecretValue]


@dataclass(frozen=True)
class SecretField:
    """One secret a method needs: its ``name``, the ``prompt`` shown when asking for it, and
    the key store ``kind`` (``mpp_client.wallet.SecretKind``)."""

    name: str
    prompt: str
    kind: str


class Settings:
    """Typed reads of a configured wallet's settings; a value of the wrong type is a
    ``MethodConfigError`` naming its key."""

    def __init__(self, settings: Mapping[str, object]) -> None:
        self._settings = settings

    def text(self, name: str, default: str | None = None) -> str | None:
        """A string setting, or ``default`` when absent."""
        value = self._settings.get(name, default)
        if value is None or isinstance(value, str):
            return value
        raise MethodConfigError(f"{name} must be a string")

    def required_text(self, name: str, hint: str) -> str:
        """A string setting that must be present and non-empty; ``hint`` says what it is."""
        value = self.text(name)
        if not value:
            raise MethodConfigError(f"needs {hint}")
        return value

    def integer(self, name: str, default: int | None = None) -> int | None:
        """An integer setting (booleans are not integers), or ``default`` when absent."""
        value = self._settings.get(name, default)
        if value is None or (isinstance(value, int) and not isinstance(value, bool)):
            return value
        raise MethodConfigError(f"{name} must be an integer")

    def texts(self, name: str) -> list[str] | None:
        """A list-of-strings setting, or ``None`` when absent."""
        value = self._settings.get(name)
        if value is None:
            return None
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return list(value)
        raise MethodConfigError(f"{name} must be a list of strings")


def method_class(name: str) -> type[PaymentMethod]:
    """The class that builds method ``name`` from configuration (``KeyError`` for an unknown
    name). Imports only that method's package."""
    module, attribute = METHOD_CLASSES[name]
    found: type[PaymentMethod] = getattr(importlib.import_module(module), attribute)
    return found
