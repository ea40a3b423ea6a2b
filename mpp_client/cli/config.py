"""The ``mpp`` configuration: one TOML file in the user's config directory plus environment
variables.

Where the file is: ``$MPP_CONFIG`` if set, else ``config.toml`` in the platform's config
directory: ``$XDG_CONFIG_HOME/mpp-client`` (default ``~/.config/mpp-client``) on Linux and
other Unixes, ``~/Library/Application Support/mpp-client`` on macOS, ``%APPDATA%\\mpp-client``
on Windows. The spend policy lives next to it in ``policy.toml`` (the format of
``SpendPolicy.from_toml``), unless ``policy`` or ``$MPP_POLICY`` names another file.

The file never holds a secret: wallets name the key store entry that holds theirs. ``mpp wallet``
and ``mpp budget set`` rewrite the files they change (comments are not kept).

Environment variables (they win over the file):

- ``MPP_CONFIG``: the config file; ``MPP_POLICY``: the policy file;
- ``MPP_WALLET``: comma-separated wallet names ``mpp fetch`` pays with;
- ``MPP_JOURNAL``: the payment journal (SQLite file); ``MPP_JOURNAL_URL``: a fleet's
  PostgreSQL journal (``postgresql://...``), which wins over both ``MPP_JOURNAL`` and the
  ``journal`` key (itself a file path or such a URL);
- ``MPP_KEYSTORE`` (``file`` / ``keyring``), ``MPP_KEYSTORE_FILE``,
  ``MPP_KEYSTORE_PASSPHRASE`` / ``MPP_KEYSTORE_PASSPHRASE_FILE``: the key store;
- ``MPP_OUTPUT=json``: machine-readable output, like ``--json``;
- ``MPP_TEST_METHOD=1``: FOR TESTS AND DEMOS ONLY, also pay ``mpp_client.testing`` servers with
  ``TestMethod`` (it moves no money).
"""

from __future__ import annotations

import difflib
import json
import os
import re
import sys
import tomllib
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mpp_client.cli.files import replace_file

__all__ = [
    "Config",
    "ConfigError",
    "WalletEntry",
    "config_dir",
    "config_path",
    "dump_toml",
    "http_url_problem",
    "suggestion",
]

APP_DIR = "mpp-client"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class ConfigError(Exception):
    """The configuration file or an environment variable is invalid (a usage problem)."""


def config_dir() -> Path:
    """The platform's per-user config directory for mpp (it may not exist yet)."""
    home = Path(os.path.expanduser("~"))
    if os.name == "nt":
        base = os.environ.get("APPDATA") or str(home / "AppData" / "Roaming")
        return Path(base) / APP_DIR
    if sys.platform == "darwin":
        return home / "Library" / "Application Support" / APP_DIR
    base = os.environ.get("XDG_CONFIG_HOME") or str(home / ".config")
    return Path(base) / APP_DIR


def config_path() -> Path:
    """``$MPP_CONFIG``, else ``config.toml`` in ``config_dir()``."""
    explicit = os.environ.get("MPP_CONFIG")
    return Path(explicit) if explicit else config_dir() / "config.toml"


def valid_name(name: str) -> bool:
    """Wallet names: 1-64 letters, digits, ``_ . -``, starting with a letter or digit."""
    return bool(_NAME.match(name))


# --- the file's format ----------------------------------------------------------------------------

_TOP_KEYS = {
    "default_wallet", "prefer", "journal", "policy", "keystore", "keystore_file",
    "prices", "testing", "wallets",
}  # fmt: skip

# The settings each method's wallet table may hold (besides method and key), with their kind:
# "str", "url" (an http(s) URL), "chain" (a chain id), "count" (an integer >= 0), "strs" (a list
# of strings), or a tuple of the allowed strings (a list of them for "modes").
_WALLET_KEYS: dict[str, dict[str, Any]] = {
    "tempo": {
        "address": "str", "chain_id": "chain", "rpc_url": "url", "tokens": "strs",
        "modes": ("pull", "push"), "fee_token": "str", "root_account": "str",
        # Sessions (TempoSession beside the charge method, from the same key): opted into by
        # session_max_deposit, in the token's base units.
        "session_max_deposit": "count", "session_max_prepaid_units": "count",
        "session_escrows": "strs",
    },
    "lightning": {
        "backend": ("nwc", "lnd", "cln", "phoenixd", "lnbits"), "url": "url",
        "network": ("mainnet", "testnet", "signet", "regtest"), "max_fee_sats": "count",
    },
    "stripe": {"payment_method": "str", "customer": "str", "api_base": "url"},
    "handcash": {"app_id": "str", "base_url": "url"},
}  # fmt: skip
_LIST_SETTINGS = {"modes"}
# Integers a payment method turns into native integers or sums; above this they are typos.
_MAX_INT = 2**62
_PRICE = re.compile(r"^[0-9]{1,20}(?:\.[0-9]{1,20})?$")


def suggestion(word: str, choices: Any) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices``, else an empty string."""
    close = difflib.get_close_matches(word, [str(c) for c in choices], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _shown(value: Any) -> str:
    """A value as the owner wrote it, for messages: its TOML type and a short repr."""
    kind = {bool: "a boolean", int: "an integer", float: "a float", str: "a string"}.get(
        type(value), f"a {type(value).__name__}"
    )
    text = repr(value)
    return f"{kind} {text if len(text) <= 40 else text[:37] + '...'}"


def _no_unknown_keys(path: Path, where: str, table: Mapping[str, Any], known: Any) -> None:
    for key in table:
        if key not in known:
            raise ConfigError(f"{path}: {where}unknown key {key!r}{suggestion(key, sorted(known))}")


def http_url_problem(text: str) -> str | None:
    """Why ``text`` is not an absolute http(s) URL, or ``None`` when it is one."""
    if not text or text != text.strip() or any(c.isspace() or ord(c) < 32 for c in text):
        return "a URL cannot be empty or contain spaces or control characters"
    try:
        parts = urllib.parse.urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        return f"not a valid URL ({exc})"
    if parts.scheme.lower() not in ("http", "https"):
        return "write an http:// or https:// URL"
    if not parts.hostname:
        return "the URL has no host"
    return None


def _price(path: Path, code: str, value: Any) -> str:
    where = f"{path}: [prices] {code}"
    if isinstance(value, (bool, float)):
        # A TOML float is binary: 0.1 is not 0.1. Prices are exact decimal strings.
        raise ConfigError(f'{where} must be a decimal string such as "0.001", not {_shown(value)}')
    if isinstance(value, int):
        value = str(value)
    if not isinstance(value, str) or not _PRICE.match(value.strip()):
        raise ConfigError(
            f'{where} must be dollars per whole unit as a decimal string such as "0.001" '
            f"(at most 20 digits on each side of the point), not {_shown(value)}"
        )
    return value.strip()


def _setting(path: Path, where: str, key: str, kind: Any, value: Any) -> None:
    problem: str | None = None
    if kind == "str":
        if not isinstance(value, str) or not value.strip():
            problem = "a non-empty string"
    elif kind == "url":
        if not isinstance(value, str) or http_url_problem(value):
            problem = "an http:// or https:// URL"
    elif kind in ("chain", "count"):
        low = 1 if kind == "chain" else 0
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value < _MAX_INT:
            # chain_id = 0 used to fall back to mainnet (4217): a chain id is never guessed.
            problem = (
                "a chain id (a positive integer, 4217 is Tempo mainnet)"
                if low
                else ("a whole number >= 0")
            )
    elif kind == "strs":
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            problem = "a list of strings"
    elif key in _LIST_SETTINGS:
        if not isinstance(value, list) or not value or any(v not in kind for v in value):
            problem = f"a list of {', '.join(map(repr, kind))}"
    elif value not in kind:
        problem = f"one of {', '.join(map(repr, kind))}"
        if isinstance(value, str):
            problem += suggestion(value, kind)
    if problem:
        raise ConfigError(f"{path}: {where}{key} must be {problem}, not {_shown(value)}")


def _wallet_entry(path: Path, name: Any, table: Any) -> WalletEntry:
    where = f"[wallets.{name}] "
    if not valid_name(str(name)):
        raise ConfigError(
            f"{path}: {where}invalid wallet name: use 1-64 letters, digits, '_', '.', '-'"
        )
    if not isinstance(table, dict) or not isinstance(table.get("method"), str):
        raise ConfigError(f'{path}: {where}needs method = "..." ({", ".join(_WALLET_KEYS)})')
    table = dict(table)
    method = table.pop("method")
    if method not in _WALLET_KEYS:
        raise ConfigError(
            f"{path}: {where}unknown method {method!r}{suggestion(method, _WALLET_KEYS)}"
        )
    key = table.pop("key", None)
    if key is not None and (not isinstance(key, str) or not key):
        raise ConfigError(f"{path}: {where}key must be a key store entry name (a string)")
    known = _WALLET_KEYS[method]
    _no_unknown_keys(path, where, table, {*known, "method", "key"})
    for setting, value in table.items():
        _setting(path, where, setting, known[setting], value)
    if method == "tempo" and "rpc_url" in table and "chain_id" not in table:
        # An endpoint without its chain would be paid as mainnet (4217): say which chain.
        raise ConfigError(
            f"{path}: {where}has rpc_url but no chain_id: add the chain id that endpoint "
            "serves (4217 is Tempo mainnet)"
        )
    return WalletEntry(str(name), method, key, table)


@dataclass
class WalletEntry:
    """One configured wallet: a payment ``method`` (``tempo``, ``lightning``, ``stripe``), the
    key store entry holding its secret (``key``), and the method's public settings."""

    name: str
    method: str
    key: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    def to_table(self) -> dict[str, Any]:
        table: dict[str, Any] = {"method": self.method}
        if self.key is not None:
            table["key"] = self.key
        table.update(self.settings)
        return table


@dataclass
class Config:
    """The parsed configuration. ``path`` is the file it came from (or would be written to)."""

    path: Path
    wallets: dict[str, WalletEntry] = field(default_factory=dict)
    default_wallet: str | None = None
    prefer: tuple[str, ...] = ()
    journal: str | None = None
    policy: str | None = None
    keystore: str | None = None
    keystore_file: str | None = None
    prices: dict[str, str] = field(default_factory=dict)
    test_method: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    # --- loading ---------------------------------------------------------------------------

    @classmethod
    def load(cls, path: Path | None = None) -> Config:
        """Read the file (a missing file is an empty configuration) and apply the environment."""
        path = path or config_path()
        data: dict[str, Any] = {}
        try:
            with open(path, "rb") as handle:
                data = tomllib.load(handle)
        except FileNotFoundError:
            pass
        except UnicodeDecodeError as exc:
            raise ConfigError(
                f"{path}: not UTF-8 text (byte {exc.start}); TOML files are UTF-8"
            ) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: {exc}") from None
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
        config = cls.from_mapping(path, data)
        config._apply_environment()
        return config

    @classmethod
    def from_mapping(cls, path: Path, data: Mapping[str, Any]) -> Config:
        """Check ``data`` against the file's format and build the configuration.

        Every mistake is a ``ConfigError`` naming the file and the key: an unknown key (a typo
        such as ``chian_id`` would otherwise be ignored and the wallet would pay on mainnet),
        a value of the wrong type, a float where an exact number belongs.
        """
        data = dict(data)
        _no_unknown_keys(path, "", data, _TOP_KEYS)
        config = cls(path=path)
        wallets = data.pop("wallets", {})
        if not isinstance(wallets, dict):
            raise ConfigError(f"{path}: [wallets] must be a table of [wallets.NAME] tables")
        for name, table in wallets.items():
            config.wallets[name] = _wallet_entry(path, name, table)
        default = data.pop("default_wallet", None)
        if default is not None and not isinstance(default, str):
            raise ConfigError(f"{path}: default_wallet must be a string (a wallet name)")
        if default is not None and default not in config.wallets:
            raise ConfigError(
                f"{path}: default_wallet = {default!r} names no [wallets.{default}] table"
                + suggestion(default, config.wallets)
            )
        config.default_wallet = default
        prefer = data.pop("prefer", [])
        if not isinstance(prefer, list) or not all(isinstance(p, str) for p in prefer):
            raise ConfigError(f'{path}: prefer must be a list of method names, e.g. ["tempo"]')
        config.prefer = tuple(prefer)
        for name in ("journal", "policy", "keystore", "keystore_file"):
            value = data.pop(name, None)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                what = '"file" or "keyring"' if name == "keystore" else "a path string"
                raise ConfigError(f"{path}: {name} must be {what}, not {_shown(value)}")
            setattr(config, name, value)
        if config.keystore is not None and config.keystore.lower() not in ("file", "keyring"):
            raise ConfigError(
                f'{path}: keystore must be "file" or "keyring", not {config.keystore!r}'
            )
        prices = data.pop("prices", {})
        if not isinstance(prices, dict):
            raise ConfigError(f'{path}: [prices] must be a table of currency = "USD per unit"')
        config.prices = {str(k): _price(path, str(k), v) for k, v in prices.items()}
        testing = data.pop("testing", {})
        if not isinstance(testing, dict):
            raise ConfigError(f"{path}: [testing] must be a table")
        _no_unknown_keys(path, "[testing] ", testing, {"test_method"})
        test_method = testing.get("test_method", False)
        if not isinstance(test_method, bool):
            raise ConfigError(
                f"{path}: [testing] test_method must be true or false, not {_shown(test_method)}"
            )
        config.test_method = test_method
        config.extra = data  # empty: unknown keys were refused above
        return config

    def _apply_environment(self) -> None:
        if os.environ.get("MPP_TEST_METHOD") == "1":
            self.test_method = True
        if policy := os.environ.get("MPP_POLICY"):
            self.policy = policy

    # --- derived paths ---------------------------------------------------------------------

    @property
    def policy_path(self) -> Path:
        """The spend policy file (``policy.toml`` next to the config unless configured)."""
        if self.policy:
            return Path(os.path.expanduser(self.policy))
        return self.path.parent / "policy.toml"

    @property
    def journal_path(self) -> str | None:
        """The journal file or database URL, or ``None`` for the wallet's default
        (``$MPP_JOURNAL_URL``, then ``$MPP_JOURNAL``, win)."""
        if os.environ.get("MPP_JOURNAL_URL") or os.environ.get("MPP_JOURNAL"):
            return None
        return os.path.expanduser(self.journal) if self.journal else None

    def chosen_wallets(self, names: list[str] | None = None) -> list[WalletEntry]:
        """The wallets to pay with: ``names`` (or ``$MPP_WALLET``), else every configured
        wallet with the default first."""
        if not names and (env := os.environ.get("MPP_WALLET")):
            names = [n.strip() for n in env.split(",") if n.strip()]
        if names:
            missing = [n for n in names if n not in self.wallets]
            if missing:
                raise ConfigError(f"no wallet named {', '.join(missing)} (see `mpp wallet list`)")
            return [self.wallets[n] for n in names]
        entries = list(self.wallets.values())
        entries.sort(key=lambda e: e.name != self.default_wallet)
        return entries

    # --- writing ---------------------------------------------------------------------------

    def to_mapping(self) -> dict[str, Any]:
        data: dict[str, Any] = dict(self.extra)
        if self.default_wallet is not None:
            data["default_wallet"] = self.default_wallet
        if self.prefer:
            data["prefer"] = list(self.prefer)
        if self.journal is not None:
            data["journal"] = self.journal
        if self.policy is not None and not os.environ.get("MPP_POLICY"):
            data["policy"] = self.policy
        if self.keystore is not None:
            data["keystore"] = self.keystore
        if self.keystore_file is not None:
            data["keystore_file"] = self.keystore_file
        if self.prices:
            data["prices"] = dict(self.prices)
        if self.test_method and os.environ.get("MPP_TEST_METHOD") != "1":
            data["testing"] = {"test_method": True}
        if self.wallets:
            data["wallets"] = {name: entry.to_table() for name, entry in self.wallets.items()}
        return data

    def save(self) -> None:
        """Write the file atomically (mode 0600; the directory is created 0700)."""
        header = (
            "# mpp configuration (see `mpp --help` and docs/cli.md).\n"
            "# `mpp wallet` rewrites this file: comments are not kept. No secrets here:\n"
            "# wallets name their entry in the key store.\n"
        )
        mapping = self.to_mapping()

        def check(written: Path) -> None:
            # What is on disk must load, and load as what was meant, before it replaces the
            # working file: a value TOML cannot hold must not cost the owner their config.
            try:
                with open(written, "rb") as handle:
                    again = tomllib.load(handle)
                Config.from_mapping(self.path, again)
            except (ValueError, ConfigError) as exc:
                reason = str(exc).removeprefix(f"{self.path}: ")
                raise ConfigError(
                    f"{self.path} not written (it would not load): {reason}"
                ) from None
            if again != mapping:
                raise ConfigError(f"{self.path} not written: it would not read back identically")

        write_private(self.path, header + dump_toml(mapping), check=check)


def write_private(path: Path, text: str, *, check: Callable[[Path], None]) -> None:
    """Replace ``path`` with ``text`` atomically, readable by the owner only, once ``check``
    accepts the written file (see ``mpp_client.cli.files``)."""
    try:
        replace_file(path, text, check=check)
    except UnicodeEncodeError:
        raise ConfigError(f"{path} not written: a value is not valid text (UTF-8)") from None
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from None


# --- a small TOML writer (tomllib only reads) ---------------------------------------------------

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _key(name: str) -> str:
    return name if _BARE_KEY.match(name) else json.dumps(name)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        # JSON string escapes (\" \\ \n \uXXXX) are valid TOML basic-string escapes.
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write a {type(value).__name__} to TOML")


def _is_table_array(value: Any) -> bool:
    return (
        isinstance(value, (list, tuple))
        and bool(value)
        and all(isinstance(v, Mapping) for v in value)
    )


def dump_toml(data: Mapping[str, Any], prefix: str = "") -> str:
    """``data`` as TOML: scalars and arrays first, then sub-tables and arrays of tables.
    Supports str, int, bool, lists and nested mappings (no floats: amounts are never floats)."""
    lines: list[str] = []
    tables: list[tuple[str, Any]] = []
    for name, value in data.items():
        if isinstance(value, Mapping) or _is_table_array(value):
            tables.append((name, value))
        else:
            lines.append(f"{_key(name)} = {_value(value)}")
    out = "\n".join(lines) + ("\n" if lines else "")
    for name, value in tables:
        full = f"{prefix}.{_key(name)}" if prefix else _key(name)
        if isinstance(value, Mapping):
            scalars = {k: v for k, v in value.items() if not isinstance(v, Mapping)}
            nested = {k: v for k, v in value.items() if isinstance(v, Mapping)}
            if scalars or not nested:
                out += f"\n[{full}]\n" + dump_toml(scalars, full)
            if nested:
                out += dump_toml(nested, full)
        else:
            for item in value:
                out += f"\n[[{full}]]\n"
                out += "\n".join(f"{_key(k)} = {_value(v)}" for k, v in item.items()) + "\n"
    return out
