"""From the configuration to a working ``Wallet``: the key store, and one payment method per
configured wallet.

A configured wallet names its payment method and the key store entry holding its secret. The
secrets are read from the key store only when a method is built for paying (and a Tempo key
only when the first signature is needed), so listing wallets, reading the journal or showing
budgets never asks for a passphrase.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mpp_client.cli.config import Config, ConfigError, WalletEntry
from mpp_client.cli.secret_input import read_new_passphrase
from mpp_client.errors import KeyStoreError
from mpp_client.methods.config import (
    METHOD_CLASSES,
    MethodConfigError,
    SecretField,
    method_class,
)
from mpp_client.wallet import (
    EncryptedFileKeyStore,
    KeyringKeyStore,
    KeyStore,
    Secret,
    SpendPolicy,
    StaticPrices,
    Wallet,
)
from mpp_client.wallet.keystore import default_keystore_path

if TYPE_CHECKING:
    from mpp_client.clock import Clock
    from mpp_client.methods.base import PaymentMethod
    from mpp_client.wallet import Approval

__all__ = [
    "METHODS",
    "MethodSpec",
    "SecretField",
    "build_methods",
    "load_policy",
    "open_store",
    "open_wallet",
    "secret_entry",
]


# --- the key store ------------------------------------------------------------------------------


def _passphrase_from_environment() -> bool:
    return any(
        os.environ.get(name)
        for name in (
            "MPP_KEYSTORE_PASSPHRASE",
            "MPP_KEYSTORE_PASSPHRASE_FILE",
            "CREDENTIALS_DIRECTORY",
        )
    )


def open_store(config: Config) -> KeyStore:
    """The OS keyring when a safe backend exists, else the encrypted key file.

    ``$MPP_KEYSTORE`` or ``keystore = "file" | "keyring"`` in the config forces one. The file's
    passphrase comes from the environment (see ``EncryptedFileKeyStore``) or a terminal prompt,
    asked twice when the file is new.
    """
    mode = (os.environ.get("MPP_KEYSTORE") or config.keystore or "").lower()
    if mode not in ("", "file", "keyring"):
        raise ConfigError("keystore must be 'file' or 'keyring'")
    if mode != "file":
        try:
            return KeyringKeyStore()
        except KeyStoreError:
            if mode == "keyring":
                raise
    path = (
        os.environ.get("MPP_KEYSTORE_FILE")
        or (os.path.expanduser(config.keystore_file) if config.keystore_file else None)
        or default_keystore_path()
    )
    if _passphrase_from_environment():
        return EncryptedFileKeyStore(path, prompt=False)

    def passphrase() -> str:
        from mpp_client.cli.secret_input import ask_passphrase, terminal_available

        if Path(path).exists():
            if not terminal_available():
                raise KeyStoreError(
                    "no terminal to ask for the key file passphrase: set "
                    "MPP_KEYSTORE_PASSPHRASE_FILE (or MPP_KEYSTORE_PASSPHRASE)"
                )
            return ask_passphrase(path)
        return read_new_passphrase(path)

    return EncryptedFileKeyStore(path, passphrase=passphrase)


def secret_entry(entry: WalletEntry, field_name: str) -> str:
    """The key store name of one secret of ``entry``."""
    spec = METHODS[entry.method]
    base = entry.key or f"{entry.method}/{entry.name}"
    return base if len(spec.secrets) == 1 else f"{base}/{field_name}"


def tempo_address(key: Secret, root_account: str | None) -> str:
    """The paying account of a Tempo private key (or the root account of an access key)."""
    from mpp_client.methods.tempo import AccessKeySigner, LocalKeySigner

    try:
        signer: Any = (
            AccessKeySigner(key.reveal(), root_account)
            if root_account
            else LocalKeySigner(key.reveal())
        )
    except ValueError:
        # The message of a failed parse could echo key material: say only what is wrong.
        raise ConfigError("that is not a secp256k1 private key (32 bytes of hex)") from None
    return str(signer.address)


# --- method specs -------------------------------------------------------------------------------
# Each payment method says what it needs and builds itself (mpp_client.methods.config): this
# module only reads the configured wallets and hands a method its settings and secrets.


@dataclass(frozen=True)
class MethodSpec:
    """What ``mpp wallet`` shows and asks for one payment method: a ``summary`` and the
    ``secrets`` a wallet of it stores (for Lightning, those of the default backend)."""

    method: str
    summary: str
    secrets: tuple[SecretField, ...]


class _MethodSpecs(Mapping[str, MethodSpec]):
    """Every configurable method by name; a method's package is imported only when its spec
    is read."""

    def __getitem__(self, name: str) -> MethodSpec:
        cls = method_class(name)
        return MethodSpec(name, cls.config_summary, cls.config_secrets({}))

    def __iter__(self) -> Iterator[str]:
        return iter(METHOD_CLASSES)

    def __len__(self) -> int:
        return len(METHOD_CLASSES)


METHODS: Mapping[str, MethodSpec] = _MethodSpecs()


def lightning_secret_field(backend: str) -> SecretField:
    """The secret field of a Lightning wallet, with the prompt for its backend."""
    return method_class("lightning").config_secrets({"backend": backend})[0]


# --- the wallet ---------------------------------------------------------------------------------


def load_policy(config: Config) -> SpendPolicy:
    """The spend policy file, or the safe defaults when there is none."""
    path = config.policy_path
    if not path.exists():
        return SpendPolicy()
    try:
        return SpendPolicy.from_toml(path)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None  # from_toml's messages start with the path
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None


def _prices(config: Config) -> StaticPrices | None:
    if not config.prices:
        return None
    try:
        for value in config.prices.values():
            Decimal(value)
        return StaticPrices(config.prices)
    except (ValueError, ArithmeticError):
        raise ConfigError(f"{config.path}: [prices] values are dollars per unit") from None


def build_methods(
    config: Config,
    entries: Sequence[WalletEntry],
    *,
    store: Callable[[], KeyStore],
) -> list[PaymentMethod]:
    """One payment method per entry, built by its own ``from_config`` (plus ``TestMethod``
    when the test option is on). The wallet gives each its journal (``use_history``)."""
    methods: list[PaymentMethod] = []
    for entry in entries:
        if entry.method not in METHOD_CLASSES:
            raise ConfigError(f"[wallets.{entry.name}] unknown method {entry.method!r}")

        def loader(field_name: str, entry: WalletEntry = entry) -> Secret:
            name = secret_entry(entry, field_name)
            try:
                return store().get(name)
            except KeyError:
                raise KeyStoreError(
                    f"wallet {entry.name!r}: no secret {name!r} in the key store"
                ) from None

        try:
            method = method_class(entry.method).from_config(entry.settings, loader)
            methods.append(method)
            # A method may pay more intents from the same settings and key (Tempo sessions).
            companions = getattr(method, "config_companions", None)
            if companions is not None:
                methods.extend(companions(entry.settings))
        except MethodConfigError as exc:
            raise ConfigError(f"[wallets.{entry.name}] {exc}") from None
    if config.test_method:
        # FOR TESTS AND DEMOS ONLY: pays mpp_client.testing servers; moves no money.
        from mpp_client.testing import TestMethod

        methods.append(TestMethod())
    return methods


def open_wallet(
    config: Config,
    *,
    wallet_names: list[str] | None = None,
    with_methods: bool = True,
    approve: Approval | None = None,
    clock: Clock | None = None,
) -> Wallet:
    """A ``Wallet`` with the configured policy, journal and prices; with the methods of the
    chosen wallets when ``with_methods`` (journal and budget commands need none). ``clock``:
    the wallet's and the journal's clock (default: the system clock)."""
    policy = load_policy(config)
    cached: list[KeyStore] = []

    def store() -> KeyStore:
        if not cached:
            cached.append(open_store(config))
        return cached[0]

    methods: list[PaymentMethod] = []
    if with_methods:
        entries = config.chosen_wallets(wallet_names)
        methods = build_methods(config, entries, store=store)
    path = config.journal_path
    if path is not None and "://" in path:
        pass  # a database URL (a fleet's PostgreSQL journal): nothing to create here
    elif path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    else:
        from mpp_client.wallet import default_journal_path

        Path(default_journal_path()).parent.mkdir(parents=True, exist_ok=True)
    wallet = Wallet(
        methods,
        policy=policy,
        journal=path,
        prefer=config.prefer,
        approve=approve,
        prices=_prices(config),
        clock=clock,
    )
    return wallet
