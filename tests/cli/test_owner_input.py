"""Hostile or mistaken input from the owner: every case is a usage error (exit 2) with a
one-line message naming the file and key (or the argument), never a traceback, and the files on
disk are byte for byte what they were.

The table ``CASES`` holds 75 cases: 25 in the config file, 24 in the policy file, 26 on the
command line (``mpp fetch``, ``mpp budget set``, ``mpp wallet``). Below it, two tests of the
atomic writer: a write that does not read back leaves the old file, and a file written by
``mpp budget set`` after a refused one still loads.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from mpp_client.cli.config import ConfigError
from mpp_client.cli.files import replace_file

from .conftest import Mpp

ADDRESS = "0x" + "ab" * 20
URL = "http://127.0.0.1:9/paid"  # never contacted: every case is refused before any request
WORKING_POLICY = b'[policy]\ndefault_limits = false\n\n[[limit]]\ncap = "0.10 USD"\nper = "day"\n'
HUGE = "9" * 5000


@dataclass(frozen=True)
class Case:
    """``argv`` run with ``config`` / ``policy`` (bytes) on disk; ``says`` must all appear in
    standard error."""

    argv: tuple[str, ...]
    says: tuple[str, ...]
    config: bytes | None = None
    policy: bytes | None = None
    env: dict[str, str] = field(default_factory=dict)


def wallet_config(body: str, method: str = "tempo") -> bytes:
    return f'[wallets.main]\nmethod = "{method}"\nkey = "{method}/main"\n{body}\n'.encode()


def cfg(text: str, *says: str) -> Case:
    """A bad config file, seen by ``mpp wallet list`` (which reads nothing else)."""
    return Case(("wallet", "list"), ("config.toml", *says), config=text.encode())


def wcfg(body: str, *says: str, method: str = "tempo") -> Case:
    return Case(("wallet", "list"), ("config.toml", *says), config=wallet_config(body, method))


def pol(text: str | bytes, *says: str) -> Case:
    """A bad policy file, seen by ``mpp budget show``."""
    data = text.encode() if isinstance(text, str) else text
    return Case(("budget", "show"), ("policy.toml", *says), policy=data)


def arg(*argv: str, says: tuple[str, ...], policy: bytes | None = WORKING_POLICY) -> Case:
    """A bad argument, next to a working policy file that must stay as it is."""
    return Case(tuple(argv), says, policy=policy)


CASES: dict[str, Case] = {
    # --- the config file ----------------------------------------------------------------------
    "config not UTF-8": Case(
        ("wallet", "list"), ("config.toml", "not UTF-8"), config=b'default_wallet = "\xff"\n'
    ),
    "config TOML syntax": cfg("default_wallet = \n", "config.toml"),
    "config policy = 5": cfg("policy = 5\n", "policy must be a path string"),
    "config unknown top-level key": cfg(
        'defualt_wallet = "main"\n', "unknown key 'defualt_wallet'", "did you mean 'default_wallet'"
    ),
    "config default_wallet names nothing": cfg('default_wallet = "main"\n', "default_wallet"),
    "config prefer is a string": cfg('prefer = "tempo"\n', "prefer must be a list"),
    "config keystore typo": cfg('keystore = "fiel"\n', "keystore must be"),
    "config price is a float": cfg("[prices]\nsat = 0.001\n", "[prices] sat", "decimal string"),
    "config price exponent": cfg('[prices]\nsat = "1e9999"\n', "[prices] sat"),
    "config test_method string": cfg('[testing]\ntest_method = "yes"\n', "test_method"),
    "config testing unknown key": cfg(
        "[testing]\ntest_methods = true\n", "did you mean 'test_method'"
    ),
    "config wallets not a table": cfg("wallets = 5\n", "[wallets] must be a table"),
    "config wallet name": cfg(
        '[wallets."bad name"]\nmethod = "tempo"\n', "[wallets.bad name]", "invalid wallet name"
    ),
    "config wallet method typo": cfg(
        '[wallets.main]\nmethod = "tempoo"\n', "unknown method 'tempoo'", "did you mean 'tempo'"
    ),
    "config chain_id typo": wcfg(
        f'address = "{ADDRESS}"\nchian_id = 42431',
        "[wallets.main]",
        "unknown key 'chian_id'",
        "did you mean 'chain_id'",
    ),
    "config chain_id 0": wcfg("chain_id = 0", "[wallets.main] chain_id", "positive integer"),
    "config chain_id string": wcfg('chain_id = "4217"', "[wallets.main] chain_id"),
    "config chain_id float": wcfg("chain_id = 4217.0", "[wallets.main] chain_id"),
    "config chain_id huge": wcfg(f"chain_id = {'9' * 40}", "[wallets.main] chain_id"),
    "config rpc_url without chain_id": wcfg(
        'rpc_url = "http://127.0.0.1:8545"', "[wallets.main]", "no chain_id"
    ),
    "config rpc_url not http": wcfg(
        'chain_id = 31337\nrpc_url = "ftp://example.com"', "[wallets.main] rpc_url"
    ),
    "config modes typo": wcfg('modes = ["pul"]', "[wallets.main] modes"),
    "config tokens string": wcfg(f'tokens = "{ADDRESS}"', "[wallets.main] tokens"),
    "config lightning backend typo": wcfg(
        'backend = "lndd"', "[wallets.main] backend", "did you mean 'lnd'", method="lightning"
    ),
    "config lightning negative fee": wcfg(
        "max_fee_sats = -1", "[wallets.main] max_fee_sats", method="lightning"
    ),
    # --- the policy file ----------------------------------------------------------------------
    "policy not UTF-8": pol(b'[policy]\norigins = ["https://\xe9.example"]\n', "not UTF-8"),
    "policy TOML syntax": pol("[policy\n", "policy.toml"),
    "policy = 5": pol("policy = 5\n", "policy must be a [policy] table"),
    "policy unknown section": pol(
        '[[limits]]\ncap = "1 USD"\n', "unknown section 'limits'", "did you mean 'limit'"
    ),
    "policy limit not tables": pol('limit = "1 USD"\n', "limit must be [[limit]] tables"),
    "policy default_limits string": pol(
        '[policy]\ndefault_limits = "false"\n', "[policy] default_limits", "true or false"
    ),
    "policy require_limit integer": pol("[policy]\nrequire_limit = 1\n", "require_limit"),
    "policy unknown key": pol(
        '[policy]\norgins = ["https://a.example"]\n', "unknown key 'orgins'", "did you mean"
    ),
    "policy origin without scheme": pol(
        '[policy]\norigins = ["api.example.com"]\n', "[policy] origins", "https://api.example.com"
    ),
    "policy origin with a path": pol(
        '[[limit]]\ncap = "1 USD"\norigin = "https://a.example/api"\n', "#1 origin"
    ),
    "policy on_payee_change": pol('[policy]\non_payee_change = "ask"\n', "on_payee_change"),
    "policy approve_above exponent": pol(
        '[policy]\napprove_above = "1e3 USD"\n', "[policy] approve_above"
    ),
    "policy cap 5000 digits": pol(f'[[limit]]\ncap = "{HUGE} USD"\n', "[[limit]] #1 cap"),
    "policy cap float": pol("[[limit]]\ncap = 0.5\n", "[[limit]] #1 cap", "a float"),
    "policy cap integer": pol("[[limit]]\ncap = 5\n", "[[limit]] #1 cap", "an integer"),
    "policy cap negative": pol('[[limit]]\ncap = "-1 USD"\n', "[[limit]] #1 cap"),
    "policy cap missing": pol('[[limit]]\nper = "day"\n', "[[limit]] #1 needs a cap"),
    "policy per typo": pol(
        '[[limit]]\ncap = "1 USD"\nper = "daily"\n', "#1 per", "did you mean 'day'"
    ),
    "policy limit key typo": pol(
        '[[limit]]\ncap = "1 USD"\norign = "https://a.example"\n', "did you mean 'origin'"
    ),
    "policy usd_pegged string": pol(
        '[[limit]]\n[limit.cap]\namount = 5\ncurrency = "0xab"\ndecimals = 6\nusd_pegged = "no"\n',
        "usd_pegged",
        "true or false",
    ),
    "policy cap table huge amount": pol(
        f'[[limit]]\n[limit.cap]\namount = {2**63}\ncurrency = "0xab"\ndecimals = 6\n',
        "out of range",
    ),
    "policy cap table huge decimals": pol(
        '[[limit]]\n[limit.cap]\namount = 5\ncurrency = "0xab"\ndecimals = 1000000000\n',
        "decimals",
    ),
    "policy cap table float amount": pol(
        '[[limit]]\n[limit.cap]\namount = 1.5\ncurrency = "0xab"\ndecimals = 6\n', "amount"
    ),
    "policy cap table unknown key": pol(
        '[[limit]]\n[limit.cap]\namount = 5\ncurrency = "0xab"\ndecimal = 6\n',
        "did you mean 'decimals'",
    ),
    # --- the command line ---------------------------------------------------------------------
    "fetch --max-time nan": arg("fetch", "--max-time", "nan", URL, says=("--max-time",)),
    "fetch --max-time -1": arg("fetch", "--max-time=-1", URL, says=("--max-time",)),
    "fetch --max-time 1e309": arg("fetch", "--max-time", "1e309", URL, says=("--max-time",)),
    "fetch --max-time 0": arg("fetch", "--max-time", "0", URL, says=("--max-time",)),
    "fetch --max-time words": arg("fetch", "--max-time", "soon", URL, says=("--max-time",)),
    "fetch url [::1": arg("fetch", "http://[::1", says=("url", "not a valid URL")),
    "fetch url ftp": arg("fetch", "ftp://example.com/x", says=("url", "http")),
    "fetch url without scheme": arg("fetch", "example.com/x", says=("url", "http")),
    "fetch url with a space": arg("fetch", "http://a.example/x y", says=("url",)),
    "fetch header non-ASCII": arg("fetch", "-H", "X-Name: caf\u00e9", URL, says=("--header",)),
    "fetch header CRLF": arg("fetch", "-H", "X-A: 1\r\nX-B: 2", URL, says=("--header",)),
    "fetch header without colon": arg("fetch", "-H", "X-A 1", URL, says=("--header",)),
    "fetch method with a space": arg("fetch", "-X", "GE T", URL, says=("--request",)),
    "fetch --max-amount 1e3": arg(
        "fetch", "--max-amount", "1e3", URL, says=("--max-amount", "1000, not 1e3")
    ),
    "fetch --max-amount no unit": arg("fetch", "--max-amount", "0.05", URL, says=("--max-amount",)),
    "fetch --max-amount huge": arg("fetch", "--max-amount", HUGE + "USD", URL, says=("digits",)),
    "budget --allow-origin without scheme": arg(
        "budget", "set", "--allow-origin", "api.example.com", says=("https://api.example.com",)
    ),
    "budget --allow-origin with a path": arg(
        "budget", "set", "--allow-origin", "https://a.example/x", says=("--allow-origin",)
    ),
    "budget --day 1e3USD": arg("budget", "set", "--day", "1e3USD", says=("--day",)),
    "budget --day 5000 digits": arg("budget", "set", "--day", HUGE + " USD", says=("--day",)),
    "budget empty --payee": arg(
        "budget", "set", "--payee", " ", "--day", "1USD", says=("--payee", "empty")
    ),
    "budget undecodable argument": arg(
        "budget",
        "set",
        "--allow-origin",
        os.fsdecode(b"https://\xff.example"),
        says=("not valid UTF-8",),
    ),
    "wallet --chain-id 0": arg("wallet", "create", "w", "--chain-id", "0", says=("--chain-id",)),
    "wallet --chain-id words": arg(
        "wallet", "create", "w", "--chain-id", "x", says=("--chain-id",)
    ),
    "wallet --rpc-url without --chain-id": arg(
        "wallet", "create", "w", "--rpc-url", "http://127.0.0.1:8545", says=("--chain-id",)
    ),
    "wallet --token not an address": arg(
        "wallet", "create", "w", "--token", "pathUSD", says=("--token", "40 hex")
    ),
}


def _snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_the_case_count_in_the_docstring_is_right():
    assert f"holds {len(CASES)} cases" in (__doc__ or "")


@pytest.mark.parametrize("case", CASES.values(), ids=list(CASES))
def test_bad_owner_input_is_a_usage_error_and_changes_nothing(mpp: Mpp, case: Case):
    directory = mpp.config_file.parent
    directory.mkdir(parents=True, exist_ok=True)
    if case.config is not None:
        mpp.config_file.write_bytes(case.config)
    if case.policy is not None:
        mpp.policy_file.write_bytes(case.policy)
    before = _snapshot(directory)

    result = mpp(*case.argv, env=case.env)

    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    for text in case.says:
        assert text in result.stderr, (text, result.stderr)
    assert _snapshot(directory) == before


def test_a_write_that_does_not_read_back_leaves_the_old_file(tmp_path: Path):
    path = tmp_path / "policy.toml"
    path.write_bytes(WORKING_POLICY)

    def refuse(written: Path) -> None:
        assert written.parent == path.parent and written.read_text() == "broken ="
        raise ConfigError("does not load")

    with pytest.raises(ConfigError):
        replace_file(path, "broken =", check=refuse)
    with pytest.raises(UnicodeEncodeError):  # a lone surrogate (undecodable argument)
        replace_file(path, "origin = '\udcff'", check=lambda _: None)

    assert path.read_bytes() == WORKING_POLICY
    assert [p.name for p in tmp_path.iterdir()] == ["policy.toml"]  # no temporary file left


def test_budget_set_normalises_origins_and_writes_a_file_that_loads(mpp: Mpp):
    result = mpp("budget", "set", "--allow-origin", "HTTPS://API.Example.com/", "--day", "2USD")
    assert result.returncode == 0, result.stderr

    code, shown = mpp.json("budget", "show")
    assert code == 0
    assert shown["origins"] == ["https://api.example.com"]  # type: ignore[index]
