"""From the configuration to a working ``Wallet``: the key store, and one payment method per
configured wallet.

A configured wallet names its payment method and the key store entry holding its secret. The
secrets are read from the key store only when a method is built for paying (and a Tempo key
only when the first signature is needed), so listing wallets, reading the journal or showing
budgets never asks for a passphrase.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mpp_client.cli.config import Config, ConfigError, WalletEntry
from mpp_client.cli.secret_input import read_new_passphrase
from mpp_client.errors import KeyStoreError
from mpp_client.wallet import (
    EncryptedFileKeyStore,
    KeyringKeyStore,
    KeyStore,
    Secret,
    SecretKind,
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
    "KeyStoreSigner",
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


# --- Tempo: a signer that unlocks its key on first use --------------------------------------------


class KeyStoreSigner:
    """A Tempo ``Signer`` whose private key stays in the key store until the first signature.

    ``address`` is the configured account (no unlock needed); the key read from the store must
    derive that same account (or, with ``root_account``, act for it as an access key), else
    ``KeyStoreError``: a swapped key store entry never signs for the wrong account.
    """

    def __init__(
        self,
        load: Callable[[], Secret],
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
            from mpp_client.methods.tempo import AccessKeySigner, LocalKeySigner

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


@dataclass(frozen=True)
class SecretField:
    """One secret a method needs: its ``name``, the ``prompt`` shown, the key store ``kind``."""

    name: str
    prompt: str
    kind: str


SecretLoader = Callable[[str], Secret]


@dataclass(frozen=True)
class MethodSpec:
    """How the CLI builds one payment method from a configured wallet."""

    method: str
    summary: str
    secrets: tuple[SecretField, ...]
    build: Callable[[WalletEntry, SecretLoader, Callable[[str], bool]], PaymentMethod]


def _int(entry: WalletEntry, name: str, default: int | None = None) -> int | None:
    value = entry.settings.get(name, default)
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise ConfigError(f"[wallets.{entry.name}] {name} must be an integer")


def _chain_id(entry: WalletEntry) -> int:
    chain_id = _int(entry, "chain_id", 4217)
    if chain_id is None or chain_id <= 0:
        raise ConfigError(f"[wallets.{entry.name}] chain_id must be a positive integer")
    return chain_id


def _str(entry: WalletEntry, name: str, default: str | None = None) -> str | None:
    value = entry.settings.get(name, default)
    if value is None or isinstance(value, str):
        return value
    raise ConfigError(f"[wallets.{entry.name}] {name} must be a string")


def _strings(entry: WalletEntry, name: str) -> list[str] | None:
    value = entry.settings.get(name)
    if value is None:
        return None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ConfigError(f"[wallets.{entry.name}] {name} must be a list of strings")


def _build_tempo(
    entry: WalletEntry, secret: SecretLoader, already_paid: Callable[[str], bool]
) -> PaymentMethod:
    from mpp_client.methods.tempo import TempoCharge

    address = _str(entry, "address")
    if not address:
        raise ConfigError(f"[wallets.{entry.name}] needs the account address")
    signer = KeyStoreSigner(
        lambda: secret("private-key"), address, root_account=_str(entry, "root_account")
    )
    modes = _strings(entry, "modes") or ["pull"]
    try:
        return TempoCharge(
            signer,
            # Not `or 4217`: chain_id = 0 must never become mainnet (the config loader
            # refuses it; this keeps a hand-built entry from being guessed either).
            chain_id=_chain_id(entry),
            rpc_url=_str(entry, "rpc_url"),
            tokens=_strings(entry, "tokens"),
            modes=modes,  # type: ignore[arg-type]  # checked by TempoCharge
            fee_token=_str(entry, "fee_token"),
        )
    except ValueError as exc:
        raise ConfigError(f"[wallets.{entry.name}] {exc}") from None


_LIGHTNING_SECRETS = {
    "nwc": ("NWC connection URI (nostr+walletconnect://...)", SecretKind.LIGHTNING_NWC_URI),
    "lnd": ("LND admin macaroon (hex)", SecretKind.LIGHTNING_MACAROON),
    "cln": ("Core Lightning rune", SecretKind.LIGHTNING_RUNE),
    "phoenixd": ("phoenixd HTTP password", SecretKind.LIGHTNING_API_KEY),
    "lnbits": ("LNbits admin key", SecretKind.LIGHTNING_API_KEY),
}


def _build_lightning(
    entry: WalletEntry, secret: SecretLoader, already_paid: Callable[[str], bool]
) -> PaymentMethod:
    from mpp_client.methods import lightning

    backend = _str(entry, "backend", "nwc")
    url = _str(entry, "url")
    value = secret("secret").reveal()
    payer: Any
    try:
        if backend == "nwc":
            payer = lightning.NwcPayer(value)
        elif url is None:
            raise ConfigError(f"[wallets.{entry.name}] the {backend} backend needs url")
        elif backend == "lnd":
            payer = lightning.LndRestPayer(url, value)
        elif backend == "cln":
            payer = lightning.ClnRestPayer(url, value)
        elif backend == "phoenixd":
            payer = lightning.PhoenixdPayer(url, value)
        elif backend == "lnbits":
            payer = lightning.LnbitsPayer(url, value)
        else:
            raise ConfigError(f"[wallets.{entry.name}] unknown lightning backend {backend!r}")
        return lightning.LightningCharge(
            payer,
            network=_str(entry, "network", "mainnet"),  # type: ignore[arg-type]
            max_fee_sats=_int(entry, "max_fee_sats", 100) or 0,
            already_paid=already_paid,
        )
    except ValueError:
        # Backend constructors validate the secret; their messages are not repeated here.
        raise ConfigError(
            f"[wallets.{entry.name}] the {backend} settings or secret are not valid"
        ) from None


def _build_stripe(
    entry: WalletEntry, secret: SecretLoader, already_paid: Callable[[str], bool]
) -> PaymentMethod:
    from mpp_client.methods.stripe import StripeCharge

    payment_method = _str(entry, "payment_method")
    if not payment_method:
        raise ConfigError(f'[wallets.{entry.name}] needs payment_method = "pm_..."')
    extra: dict[str, Any] = {}
    if api_base := _str(entry, "api_base"):
        extra["api_base"] = api_base
    try:
        return StripeCharge(
            secret("secret-key").reveal(),
            payment_method=payment_method,
            customer=_str(entry, "customer"),
            **extra,
        )
    except ValueError:
        raise ConfigError(f"[wallets.{entry.name}] the Stripe settings are not valid") from None


def _build_handcash(
    entry: WalletEntry, secret: SecretLoader, already_paid: Callable[[str], bool]
) -> PaymentMethod:
    from mpp_client.methods.handcash import HandCashCharge

    app_id = _str(entry, "app_id")
    if not app_id:
        raise ConfigError(f"[wallets.{entry.name}] needs app_id")
    extra: dict[str, Any] = {}
    if base_url := _str(entry, "base_url"):
        extra["base_url"] = base_url
    try:
        return HandCashCharge(
            app_id=app_id,
            app_secret=secret("app-secret").reveal(),
            auth_token=secret("auth-token").reveal(),
            **extra,
        )
    except ValueError:
        raise ConfigError(f"[wallets.{entry.name}] the HandCash settings are not valid") from None


METHODS: dict[str, MethodSpec] = {
    "tempo": MethodSpec(
        "tempo",
        "TIP-20 stablecoins on Tempo (a secp256k1 key)",
        (SecretField("private-key", "Tempo private key (hex)", SecretKind.TEMPO_PRIVATE_KEY),),
        _build_tempo,
    ),
    "lightning": MethodSpec(
        "lightning",
        "Bitcoin over Lightning through NWC, LND, CLN, phoenixd or LNbits",
        (SecretField("secret", "Lightning backend secret", SecretKind.OTHER),),
        _build_lightning,
    ),
    "stripe": MethodSpec(
        "stripe",
        "cards through Stripe shared payment tokens",
        (SecretField("secret-key", "Stripe secret key (sk_...)", SecretKind.STRIPE_KEY),),
        _build_stripe,
    ),
    "handcash": MethodSpec(
        "handcash",
        "HandCash Connect",
        (
            SecretField("app-secret", "HandCash app secret", SecretKind.HANDCASH_TOKEN),
            SecretField("auth-token", "HandCash auth token", SecretKind.HANDCASH_TOKEN),
        ),
        _build_handcash,
    ),
}


def lightning_secret_field(backend: str) -> SecretField:
    """The secret field of a Lightning wallet, with the prompt for its backend."""
    prompt, kind = _LIGHTNING_SECRETS.get(backend, ("Lightning backend secret", SecretKind.OTHER))
    return SecretField("secret", prompt, kind)


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
    already_paid: Callable[[str], bool],
) -> list[PaymentMethod]:
    """One payment method per entry (plus ``TestMethod`` when the test option is on)."""
    methods: list[PaymentMethod] = []
    for entry in entries:
        spec = METHODS.get(entry.method)
        if spec is None:
            raise ConfigError(f"[wallets.{entry.name}] unknown method {entry.method!r}")

        def loader(field_name: str, entry: WalletEntry = entry) -> Secret:
            name = secret_entry(entry, field_name)
            try:
                return store().get(name)
            except KeyError:
                raise KeyStoreError(
                    f"wallet {entry.name!r}: no secret {name!r} in the key store"
                ) from None

        methods.append(spec.build(entry, loader, already_paid))
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

    holder: list[Wallet] = []

    def already_paid(reference: str) -> bool:
        return holder[0].already_paid(reference) if holder else False

    methods: list[PaymentMethod] = []
    if with_methods:
        entries = config.chosen_wallets(wallet_names)
        methods = build_methods(config, entries, store=store, already_paid=already_paid)
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
    holder.append(wallet)
    return wallet
