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
- ``MPP_JOURNAL``: the payment journal (SQLite file);
- ``MPP_KEYSTORE`` (``file`` / ``keyring``), ``MPP_KEYSTORE_FILE``,
  ``MPP_KEYSTORE_PASSPHRASE`` / ``MPP_KEYSTORE_PASSPHRASE_FILE``: the key store;
- ``MPP_OUTPUT=json``: machine-readable output, like ``--json``;
- ``MPP_TEST_METHOD=1``: FOR TESTS AND DEMOS ONLY, also pay ``mpp_client.testing`` servers with
  ``TestMethod`` (it moves no money).
"""

from __future__ import annotations

import json
import os
import re
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "Config",
    "ConfigError",
    "WalletEntry",
    "config_dir",
    "config_path",
    "dump_toml",
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
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: {exc}") from None
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
        config = cls.from_mapping(path, data)
        config._apply_environment()
        return config

    @classmethod
    def from_mapping(cls, path: Path, data: Mapping[str, Any]) -> Config:
        data = dict(data)
        config = cls(path=path)
        wallets = data.pop("wallets", {})
        if not isinstance(wallets, dict):
            raise ConfigError(f"{path}: [wallets] must be a table")
        for name, table in wallets.items():
            if not isinstance(table, dict) or not isinstance(table.get("method"), str):
                raise ConfigError(f'{path}: [wallets.{name}] needs method = "..."')
            table = dict(table)
            method = table.pop("method")
            key = table.pop("key", None)
            if key is not None and not isinstance(key, str):
                raise ConfigError(f"{path}: [wallets.{name}] key must be a string")
            config.wallets[name] = WalletEntry(name, method, key, table)
        default = data.pop("default_wallet", None)
        if default is not None and not isinstance(default, str):
            raise ConfigError(f"{path}: default_wallet must be a string")
        config.default_wallet = default
        prefer = data.pop("prefer", [])
        if not isinstance(prefer, list) or not all(isinstance(p, str) for p in prefer):
            raise ConfigError(f"{path}: prefer must be a list of method names")
        config.prefer = tuple(prefer)
        for name in ("journal", "policy", "keystore", "keystore_file"):
            value = data.pop(name, None)
            if value is not None and not isinstance(value, str):
                raise ConfigError(f"{path}: {name} must be a path string")
            setattr(config, name, value)
        prices = data.pop("prices", {})
        if not isinstance(prices, dict):
            raise ConfigError(f'{path}: [prices] must be a table of currency = "USD per unit"')
        config.prices = {str(k): str(v) for k, v in prices.items()}
        testing = data.pop("testing", {})
        if not isinstance(testing, dict):
            raise ConfigError(f"{path}: [testing] must be a table")
        config.test_method = testing.get("test_method") is True
        config.extra = data
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
        """The journal file, or ``None`` for the wallet's default (``$MPP_JOURNAL`` wins)."""
        if os.environ.get("MPP_JOURNAL"):
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
        write_private(self.path, header + dump_toml(self.to_mapping()))


def write_private(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` atomically, readable by the owner only."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


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
