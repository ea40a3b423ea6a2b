"""`mpp fetch` on a metered session endpoint: the body streams to stdout as it comes, and what
the stream cost is printed at the end (stderr, or the `session` object of the --json document,
valid against the CLI's one schema)."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from mpp_client import Wallet
from mpp_client.cli import main
from mpp_client.cli.schema import document_schema
from mpp_client.methods.tempo import LocalKeySigner
from mpp_client.wallet import EncryptedFileKeyStore
from mpp_client.wallet.channels import ChannelStore
from mpp_client.wallet.keystore import SecretKind
from tests.tempo.session.conftest import Session
from tests.tempo.session.test_session_e2e import method_for


@pytest.fixture
def cli_wallet(session_server: Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Wallet:
    # Hand fetch a wallet built in the test (the configured way is tested below).
    wallet = Wallet([method_for(session_server)], journal=tmp_path / "journal.sqlite3")
    monkeypatch.setenv("MPP_CONFIG", str(tmp_path / "config.toml"))
    monkeypatch.setattr("mpp_client.cli.fetch.open_wallet", lambda *a, **k: wallet)
    return wallet


def test_fetch_streams_the_body_and_prints_what_the_stream_cost(
    session_server: Session, cli_wallet: Wallet, capsys: Any
) -> None:
    s = session_server
    code = main(["fetch", s.url + "/stream?n=3"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert [line for line in out.splitlines() if line.startswith("data:")] == [
        f"data: chunk {i}" for i in range(3)
    ]
    assert "payment-need-voucher" not in out  # control events are the library's
    assert "session stream cost 0.003 pathUSD" in err


def test_fetch_json_has_the_session_total_in_the_cli_schema(
    session_server: Session, cli_wallet: Wallet, capsys: Any
) -> None:
    s = session_server
    code = main(["--json", "fetch", s.url + "/stream?n=3"])
    out, err = capsys.readouterr()
    assert code == 0, err
    document = json.loads(out)
    Draft202012Validator(document_schema("fetch")).validate(document)
    session = document["session"]
    assert session["spent"]["amount"] == 3 * s.server.price
    assert session["spent"]["amount_display"] == "0.003 pathUSD"
    assert session["complete"] is True
    assert session["reference"] == cli_wallet.methods[0].channels.channels()[0].id
    assert document["body"].count("data: chunk") == 3


def test_a_configured_tempo_wallet_pays_a_session_stream(
    session_server: Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    # What an owner writes: one [wallets] table opts into sessions with session_max_deposit;
    # the session method shares the charge method's key, read from the key store.
    s = session_server
    key = "0x" + secrets.token_hex(32)
    payer = LocalKeySigner(key)
    s.chain.fund(payer.address, 50_000_000)
    store = EncryptedFileKeyStore(tmp_path / "keys.enc", passphrase="pw")
    store.set("tempo/main", key, kind=SecretKind.TEMPO_PRIVATE_KEY)
    journal = tmp_path / "journal.sqlite3"
    config = tmp_path / "config.toml"
    config.write_text(
        f'journal = "{journal}"\n[wallets.main]\nmethod = "tempo"\nkey = "tempo/main"\n'
        f'address = "{payer.address}"\nchain_id = {s.chain.chain_id}\n'
        f'rpc_url = "{s.chain.rpc_url}"\nsession_max_deposit = 1000000\n'
        f'session_escrows = ["{s.escrow}"]\n'
    )
    for name, value in {
        "MPP_CONFIG": str(config), "MPP_POLICY": str(tmp_path / "policy.toml"),
        "MPP_KEYSTORE": "file", "MPP_KEYSTORE_FILE": str(tmp_path / "keys.enc"),
        "MPP_KEYSTORE_PASSPHRASE": "pw",
    }.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("MPP_JOURNAL", raising=False)  # the suite's own: the config's is tested
    code = main(["--json", "fetch", s.url + "/stream?n=3"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert json.loads(out)["session"]["spent"]["amount"] == 3 * s.server.price
    assert key[2:] not in out + err
    # The vouchers behind the stream are in the configured journal (and the server, which
    # checks each against the channel's payer, took them from the configured key).
    [channel] = ChannelStore(str(journal)).channels()
    assert channel.highest_signed == channel.highest_accepted == 3 * s.server.price


def test_sessions_refuse_an_access_key_wallet(tmp_path: Path) -> None:
    from mpp_client.cli.accounts import build_methods
    from mpp_client.cli.config import Config, ConfigError

    config = tmp_path / "config.toml"
    config.write_text(
        '[wallets.main]\nmethod = "tempo"\naddress = "0x' + "11" * 20 + '"\n'
        'root_account = "0x' + "22" * 20 + '"\nsession_max_deposit = 5\n'
    )
    loaded = Config.load(config)
    with pytest.raises(ConfigError, match="sessions need the account's own key"):
        build_methods(loaded, loaded.chosen_wallets(None), store=lambda: None)  # type: ignore[arg-type,return-value]
