"""The config and policy files: where they are, and that what ``mpp`` writes reads back."""

from __future__ import annotations

import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mpp_client.cli.budget import policy_mapping
from mpp_client.cli.config import Config, WalletEntry, config_path, dump_toml
from mpp_client.cli.max_amount import parse_amount_limit
from mpp_client.money import SAT, Currency, Money
from mpp_client.wallet import DEFAULT_LIMITS, USD_PEGGED, Limit, SpendPolicy, usd

from .conftest import Mpp


def test_config_path_honours_mpp_config_then_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("MPP_CONFIG", raising=False)
    assert config_path() == tmp_path / "xdg" / "mpp-client" / "config.toml"

    monkeypatch.setenv("MPP_CONFIG", str(tmp_path / "elsewhere.toml"))
    assert config_path() == tmp_path / "elsewhere.toml"


def test_a_saved_config_loads_back_identically(monkeypatch, tmp_path):
    monkeypatch.delenv("MPP_TEST_METHOD", raising=False)
    monkeypatch.delenv("MPP_POLICY", raising=False)
    config = Config(tmp_path / "c" / "config.toml")
    config.wallets["main"] = WalletEntry(
        "main", "tempo", "tempo/main",
        {"chain_id": 4217, "tokens": ["0x20c0000000000000000000000000000000000000"],
         "address": "0xAbC", "fee_token": 'quote " and \\ backslash'},
    )  # fmt: skip
    config.default_wallet = "main"
    config.prefer = ("tempo",)
    config.prices = {"sat": "0.001"}
    config.test_method = True
    config.save()

    again = Config.load(config.path)

    assert again.wallets == config.wallets
    assert (again.default_wallet, again.prefer, again.prices, again.test_method) == (
        "main", ("tempo",), {"sat": "0.001"}, True
    )  # fmt: skip
    assert oct(config.path.stat().st_mode & 0o777) == "0o600"


def test_dump_toml_writes_what_tomllib_reads():
    data = {
        "a": 1,
        "b": "x\ny\u00e9",
        "c": [True, False],
        "t": {"k": "v", "nested": {"deep": 2}},
        "rows": [{"cap": {"amount": 5, "currency": "0xab"}, "per": "day"}, {"cap": "1 sat"}],
    }
    assert tomllib.loads(dump_toml(data)) == data


def test_the_default_policy_round_trips_through_the_policy_file():
    policy = SpendPolicy()
    text = dump_toml(policy_mapping(policy))
    assert SpendPolicy.from_mapping(tomllib.loads(text)) == policy


amounts = st.integers(min_value=0, max_value=10**15)
limits = st.one_of(
    st.builds(lambda a, per, origin: Limit(Money(a, usd("0").currency), per, origin=origin,
                                           currency=USD_PEGGED),
              amounts, st.sampled_from(["payment", "call", "hour", "day", "lifetime"]),
              st.one_of(st.none(), st.just("https://api.example.com"))),
    st.builds(lambda a, per: Limit(Money(a, SAT), per), amounts,
              st.sampled_from(["payment", "day"])),
    st.builds(lambda a: Limit(Money(a, Currency("0x20c0aa", 6, network="eip155:4217",
                                                usd_pegged=True)), "day"), amounts),
)  # fmt: skip


@given(
    st.lists(limits, max_size=5),
    st.one_of(st.none(), st.frozensets(st.sampled_from(["https://a.example", "http://b:8080"]))),
    st.one_of(st.none(), amounts.map(lambda a: Money(a, usd("0").currency))),
    st.booleans(),
)
def test_any_policy_the_cli_writes_reads_back_equal(limit_list, origins, approve, pin):
    policy = SpendPolicy(
        limits=tuple(limit_list), origins=origins, approve_above=approve, pin_payees=pin
    )
    text = dump_toml(policy_mapping(policy))
    assert SpendPolicy.from_mapping(tomllib.loads(text)) == policy


def test_default_limits_are_the_ones_documented():
    assert [limit.name for limit in DEFAULT_LIMITS] == [
        "default.usd.payment", "default.usd.day", "default.sat.payment", "default.sat.day"
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "currency", "base_units"),
    [
        ("0.05USD", Currency("0x20c0", 6, usd_pegged=True), 50_000),
        ("0.05 usd", Currency.fiat("usd"), 5),
        ("1.5 pathUSD", Currency("0x20c0", 6, symbol="pathUSD", usd_pegged=True), 1_500_000),
        ("100 sat", SAT, 100),
        ("$ 2", Currency("usd-test", 6, usd_pegged=True), 2_000_000),
    ],
)
def test_max_amount_converts_exactly_to_base_units(text, currency, base_units):
    limit = parse_amount_limit(text)
    assert limit.matches(currency)
    assert limit.in_base_units(currency) == Money(base_units, currency)


def test_max_amount_never_rounds():
    limit = parse_amount_limit("0.001 USD")
    with pytest.raises(ValueError, match="more decimals"):
        limit.in_base_units(Currency.fiat("usd"))


@pytest.mark.parametrize("text", ["", "USD", "1e3 USD", "-1 USD", "0.5", "1,5 USD", "nan USD"])
def test_unreadable_max_amounts(text):
    with pytest.raises(ValueError):
        parse_amount_limit(text)


def test_the_installed_console_script_runs(mpp: Mpp):
    script = Path(shutil.which("mpp") or Path(__import__("sys").executable).parent / "mpp")
    if not script.exists():
        pytest.fail("the `mpp` console script is not installed (pip install -e .)")
    result = subprocess.run([str(script), "--version"], capture_output=True, text=True,
                            env=mpp.env, check=False)  # fmt: skip
    assert result.returncode == 0 and result.stdout.startswith("mpp ")


def test_usage_errors_exit_2(mpp: Mpp):
    assert mpp().returncode == 2
    assert mpp("fetch").returncode == 2
    assert mpp("wallet", "frobnicate").returncode == 2
    assert "exit codes:" in mpp("--help").stdout
