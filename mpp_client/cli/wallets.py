"""``mpp wallet``: create, import, list, show (address, balance) and remove wallets.

A wallet is a named payment account: a payment method, its public settings in the config file,
and its secret in the key store (the OS keyring, or the encrypted key file). Secrets are read
from a hidden prompt or standard input, never from the command line unless the user passes
``--insecure-secret-arg``.
"""

from __future__ import annotations

import argparse
import re
from typing import TYPE_CHECKING, Any

import httpx

from mpp_client.cli.accounts import (
    METHODS,
    SecretField,
    lightning_secret_field,
    open_store,
    secret_entry,
    tempo_address,
)
from mpp_client.cli.config import ConfigError, WalletEntry, http_url_problem, valid_name
from mpp_client.cli.exit_codes import ExitCode
from mpp_client.cli.output import money_json, table
from mpp_client.cli.secret_input import ask_on_terminal, read_secret, terminal_available
from mpp_client.money import Currency, Money
from mpp_client.wallet import Secret, SecretKind

if TYPE_CHECKING:
    from mpp_client.cli.invocation import Invocation

__all__ = ["register"]


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "wallet",
        help="create, import, list, show and remove wallets",
        description="Wallets are named payment accounts; their secrets live in the key store.",
    )
    sub = parser.add_subparsers(dest="wallet_command", metavar="COMMAND", required=True)

    create = sub.add_parser("create", help="create a Tempo wallet with a new key")
    create.add_argument("name")
    _tempo_options(create)
    create.add_argument("--default", action="store_true", help="make it the default wallet")
    create.set_defaults(run=run_create)

    imp = sub.add_parser(
        "import",
        help="import a wallet whose secret you have (key, NWC URI, API key)",
        description="The secret is read from a hidden prompt, or from standard input when it "
        "is not a terminal (one line per secret). Never pass it as an argument unless you "
        "accept that other users of this machine can see it (--insecure-secret-arg).",
    )
    imp.add_argument("name")
    imp.add_argument("--method", required=True, choices=sorted(METHODS))
    imp.add_argument(
        "--insecure-secret-arg",
        action="append",
        metavar="SECRET",
        help="take the secret from this argument (visible in `ps` and shell history!)",
    )
    _tempo_options(imp)
    light = imp.add_argument_group("lightning")
    light.add_argument("--backend", choices=["nwc", "lnd", "cln", "phoenixd", "lnbits"])
    light.add_argument("--url", type=_url, help="the backend's REST URL (not for nwc)")
    light.add_argument("--network", choices=["mainnet", "testnet", "signet", "regtest"])
    light.add_argument("--max-fee-sats", type=_count)
    stripe = imp.add_argument_group("stripe")
    stripe.add_argument("--payment-method", help="the Stripe payment method (pm_...)")
    stripe.add_argument("--customer", help="the Stripe customer (cus_...)")
    stripe.add_argument("--api-base", type=_url, help="Stripe API base URL (tests)")
    handcash = imp.add_argument_group("handcash")
    handcash.add_argument("--app-id")
    handcash.add_argument("--base-url", type=_url, help="HandCash Connect base URL (tests)")
    imp.add_argument("--default", action="store_true", help="make it the default wallet")
    imp.set_defaults(run=run_import)

    lst = sub.add_parser("list", help="list wallets (no secrets, no passphrase needed)")
    lst.set_defaults(run=run_list)

    show = sub.add_parser("show", help="show a wallet's address and settings")
    show.add_argument("name", nargs="?", help="default: the default wallet")
    show.add_argument("--balance", action="store_true", help="ask the chain for the balance")
    show.set_defaults(run=run_show)

    remove = sub.add_parser("remove", help="remove a wallet and delete its secret")
    remove.add_argument("name")
    remove.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    remove.add_argument(
        "--keep-secret", action="store_true", help="leave the secret in the key store"
    )
    remove.set_defaults(run=run_remove)

    default = sub.add_parser("default", help="set the default wallet")
    default.add_argument("name")
    default.set_defaults(run=run_default)


# argparse types: a bad value is a usage error (exit 2) before a key is made or stored.

_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_BALANCE_TIMEOUT = 15.0  # seconds per RPC call of `wallet show --balance`
_MAX_INT = 2**62


def _integer(text: str, low: int, what: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
    if not low <= value < _MAX_INT:
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
    return value


def _chain_id(text: str) -> int:
    # 0 used to fall back to mainnet (4217): a chain id is never guessed.
    return _integer(text, 1, "a chain id (a positive integer; 4217 is Tempo mainnet)")


def _count(text: str) -> int:
    return _integer(text, 0, "a whole number >= 0")


def _url(text: str) -> str:
    if problem := http_url_problem(text):
        raise argparse.ArgumentTypeError(f"{text!r}: {problem}")
    return text


def _address(text: str) -> str:
    if not _ADDRESS.match(text.strip()):
        raise argparse.ArgumentTypeError(f"{text!r} is not an address (0x and 40 hex digits)")
    return text.strip()


def _tempo_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("tempo")
    group.add_argument("--chain-id", type=_chain_id, help="chain id (default 4217, Tempo mainnet)")
    group.add_argument(
        "--rpc-url",
        type=_url,
        help="JSON-RPC endpoint (default: the chain's public one; needs --chain-id)",
    )
    group.add_argument(
        "--token",
        action="append",
        type=_address,
        metavar="ADDRESS",
        help="accept this TIP-20 token (repeatable; default: the chain's USD stablecoins)",
    )
    group.add_argument(
        "--mode",
        action="append",
        choices=["pull", "push"],
        help="payment modes in order of preference (default pull)",
    )
    group.add_argument(
        "--fee-token", type=_address, metavar="ADDRESS", help="token that pays network fees"
    )
    group.add_argument(
        "--root-account",
        type=_address,
        metavar="ADDRESS",
        help="the key is a Tempo access key acting for this account",
    )


def _tempo_settings(args: argparse.Namespace) -> dict[str, Any]:
    if args.rpc_url and args.chain_id is None:
        # The endpoint would otherwise be recorded as mainnet (4217) whatever chain it serves.
        raise ConfigError("--rpc-url needs --chain-id: the chain id that endpoint serves")
    settings: dict[str, Any] = {"chain_id": 4217 if args.chain_id is None else args.chain_id}
    for option, key in (
        ("rpc_url", "rpc_url"),
        ("fee_token", "fee_token"),
        ("root_account", "root_account"),
    ):
        if getattr(args, option, None):
            settings[key] = getattr(args, option)
    if args.token:
        settings["tokens"] = list(args.token)
    if args.mode:
        settings["modes"] = list(args.mode)
    return settings


def _check_new_name(inv: Invocation, name: str) -> None:
    if not valid_name(name):
        raise ConfigError(
            f"invalid wallet name {name!r}: use letters, digits, '_', '.', '-' (max 64)"
        )
    if name in inv.config.wallets:
        raise ConfigError(f"a wallet named {name!r} exists (remove it first)")


def _entry_data(entry: WalletEntry, default: str | None) -> dict[str, Any]:
    return {
        "name": entry.name,
        "method": entry.method,
        "default": entry.name == default,
        "address": entry.settings.get("address"),
        "key": entry.key,
        "settings": {k: v for k, v in entry.settings.items() if k != "address"},
    }


def _save(inv: Invocation, entry: WalletEntry, make_default: bool) -> None:
    config = inv.config
    config.wallets[entry.name] = entry
    if make_default or config.default_wallet not in config.wallets:
        config.default_wallet = entry.name
    config.save()


def run_create(inv: Invocation) -> int:
    from mpp_client.methods.tempo import LocalKeySigner

    args, out = inv.args, inv.output
    _check_new_name(inv, args.name)
    if args.root_account:
        raise ConfigError("an access key is authorized on chain: use `mpp wallet import`")
    signer = LocalKeySigner.generate()
    entry = WalletEntry(args.name, "tempo", f"tempo/{args.name}", _tempo_settings(args))
    entry.settings["address"] = signer.address
    store = open_store(inv.config)
    store.set(
        secret_entry(entry, "private-key"),
        Secret(signer.export_private_key(), SecretKind.TEMPO_PRIVATE_KEY),
    )
    _save(inv, entry, args.default)
    data = _entry_data(entry, inv.config.default_wallet)
    out.result(
        data,
        f"created wallet {entry.name}: tempo account {signer.address}\n"
        f"its key is in the key store as {entry.key!r} ({store!r})",
    )
    return ExitCode.OK


def run_import(inv: Invocation) -> int:
    args, out = inv.args, inv.output
    _check_new_name(inv, args.name)
    method = args.method
    settings: dict[str, Any] = {}
    fields: tuple[SecretField, ...] = METHODS[method].secrets
    if method == "tempo":
        settings = _tempo_settings(args)
    elif method == "lightning":
        backend = args.backend or "nwc"
        settings["backend"] = backend
        if backend != "nwc":
            if not args.url:
                raise ConfigError(f"the {backend} backend needs --url")
            settings["url"] = args.url
        if args.network:
            settings["network"] = args.network
        if args.max_fee_sats is not None:
            settings["max_fee_sats"] = args.max_fee_sats
        fields = (lightning_secret_field(backend),)
    elif method == "stripe":
        if not args.payment_method:
            raise ConfigError("a Stripe wallet needs --payment-method pm_...")
        settings["payment_method"] = args.payment_method
        for name in ("customer", "api_base"):
            if getattr(args, name):
                settings[name] = getattr(args, name)
    elif method == "handcash":
        if not args.app_id:
            raise ConfigError("a HandCash wallet needs --app-id")
        settings["app_id"] = args.app_id
        if args.base_url:
            settings["base_url"] = args.base_url
    given = list(args.insecure_secret_arg or [])
    if given and len(given) != len(fields):
        raise ConfigError(f"{method} needs {len(fields)} secret(s), got {len(given)}")
    if given:
        out.warn("the secret was passed on the command line: other users can see it in `ps`")
    elif not terminal_available() and _stdin_is_terminal():
        raise ConfigError("no terminal to prompt for the secret and nothing on standard input")
    secrets_read = [
        read_secret(f"{field.prompt}: ", argv_value=given[i] if given else None, kind=field.kind)
        for i, field in enumerate(fields)
    ]
    entry = WalletEntry(args.name, method, f"{method}/{args.name}", settings)
    if method == "tempo":
        entry.settings["address"] = tempo_address(secrets_read[0], args.root_account)
    store = open_store(inv.config)
    for field, secret in zip(fields, secrets_read, strict=True):
        store.set(secret_entry(entry, field.name), secret)
    _save(inv, entry, args.default)
    data = _entry_data(entry, inv.config.default_wallet)
    where = f" ({entry.settings['address']})" if "address" in entry.settings else ""
    out.result(
        data, f"imported wallet {entry.name}: {method}{where}; secret stored in the key store"
    )
    return ExitCode.OK


def _stdin_is_terminal() -> bool:
    import sys

    return sys.stdin is not None and sys.stdin.isatty()


def run_list(inv: Invocation) -> int:
    config = inv.config
    entries = list(config.wallets.values())
    data = [_entry_data(e, config.default_wallet) for e in entries]
    if not entries:
        inv.output.result([], "no wallets yet: `mpp wallet create NAME` or `mpp wallet import`")
        return ExitCode.OK
    rows = [
        {
            "name": ("* " if e.name == config.default_wallet else "  ") + e.name,
            "method": e.method,
            "account": str(e.settings.get("address") or e.settings.get("backend") or "-"),
            "network": _network_of(e),
        }
        for e in entries
    ]
    inv.output.result(data, table(rows, ["name", "method", "account", "network"]))
    return ExitCode.OK


def _network_of(entry: WalletEntry) -> str:
    if entry.method == "tempo":
        return f"chain {entry.settings.get('chain_id', 4217)}"
    return str(entry.settings.get("network") or "-")


def _entry(inv: Invocation, name: str | None) -> WalletEntry:
    config = inv.config
    name = name or config.default_wallet
    if name is None or name not in config.wallets:
        raise ConfigError(
            f"no wallet named {name!r} (see `mpp wallet list`)"
            if name
            else "no default wallet: `mpp wallet create NAME`"
        )
    return config.wallets[name]


def run_show(inv: Invocation) -> int:
    args = inv.args
    entry = _entry(inv, args.name)
    data = _entry_data(entry, inv.config.default_wallet)
    lines = [
        f"wallet   {entry.name}" + (" (default)" if data["default"] else ""),
        f"method   {entry.method}",
    ]
    if data["address"]:
        lines.append(f"address  {data['address']}")
    for key, value in data["settings"].items():
        lines.append(f"{key:<8} {value}")
    lines.append(f"secret   key store entry {entry.key!r}")
    if args.balance:
        balances = _balances(entry)
        data["balances"] = balances
        for item in balances:
            lines.append(f"balance  {item['amount_display']}")
    inv.output.result(data, "\n".join(lines))
    return ExitCode.OK


def _balances(entry: WalletEntry) -> list[dict[str, Any]]:
    if entry.method != "tempo":
        raise ConfigError(f"balance lookups are available for tempo wallets, not {entry.method}")
    from mpp_client.methods.tempo import DEFAULT_RPC_URLS, KNOWN_TOKENS, TempoToken
    from mpp_client.methods.tempo.tip20 import balance_of_data

    chain_id = int(entry.settings.get("chain_id", 4217))
    url = entry.settings.get("rpc_url") or DEFAULT_RPC_URLS.get(chain_id)
    if not url:
        raise ConfigError(f"wallet {entry.name} has no rpc_url")
    known = {t.address: t for group in KNOWN_TOKENS.values() for t in group}
    configured = entry.settings.get("tokens")
    tokens: list[TempoToken] = (
        [known.get(a.lower(), TempoToken(a, a[:10])) for a in configured]
        if configured
        else list(KNOWN_TOKENS.get(chain_id, ()))
    )
    address = entry.settings.get("address")
    if not isinstance(address, str):
        raise ConfigError(f"[wallets.{entry.name}] needs the account address")
    out: list[dict[str, Any]] = []
    with httpx.Client(timeout=_BALANCE_TIMEOUT) as client:
        for index, token in enumerate(tokens):
            call = {"to": token.address, "data": "0x" + balance_of_data(address).hex()}
            body = {"jsonrpc": "2.0", "id": index, "method": "eth_call", "params": [call, "latest"]}
            try:
                answer = client.post(str(url), json=body).json()
                amount = int(answer["result"], 16)
            except httpx.TimeoutException:
                raise ConfigError(
                    f"cannot read the balance from {url}: no answer within {_BALANCE_TIMEOUT:g} s"
                ) from None
            except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
                raise ConfigError(
                    f"cannot read the balance from {url}: {type(exc).__name__}"
                ) from None
            currency = Currency(token.address, token.decimals, symbol=token.symbol)
            out.append(
                {
                    "token": token.address,
                    "symbol": token.symbol,
                    **money_json(Money(amount, currency)),
                }
            )
    return out


def run_remove(inv: Invocation) -> int:
    args, out = inv.args, inv.output
    entry = _entry(inv, args.name)
    if not args.yes:
        if not terminal_available():
            raise ConfigError("removing a wallet needs --yes when there is no terminal")
        what = "" if args.keep_secret else " and DELETE its secret (keep a backup!)"
        if not ask_on_terminal(f"Remove wallet {entry.name}{what}?"):
            out.error("not removed")
            return ExitCode.ERROR
    deleted: list[str] = []
    if not args.keep_secret:
        spec = METHODS.get(entry.method)
        fields = spec.secrets if spec else ()
        store = open_store(inv.config)
        for field in fields:
            name = secret_entry(entry, field.name)
            try:
                store.delete(name)
                deleted.append(name)
            except KeyError:
                out.warn(f"no secret {name!r} in the key store")
    config = inv.config
    del config.wallets[entry.name]
    if config.default_wallet == entry.name:
        config.default_wallet = next(iter(config.wallets), None)
    config.save()
    out.result(
        {"removed": entry.name, "deleted_secrets": deleted},
        f"removed wallet {entry.name}" + (f" (deleted {', '.join(deleted)})" if deleted else ""),
    )
    return ExitCode.OK


def run_default(inv: Invocation) -> int:
    entry = _entry(inv, inv.args.name)
    inv.config.default_wallet = entry.name
    inv.config.save()
    inv.output.result({"default": entry.name}, f"default wallet: {entry.name}")
    return ExitCode.OK
