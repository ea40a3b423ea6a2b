"""`mpp fetch` on a metered session endpoint: the body streams to stdout as it comes, and what
the stream cost is printed at the end (stderr, or the `session` object of the --json document,
valid against the CLI's one schema)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from mpp_client import Wallet
from mpp_client.cli import main
from mpp_client.cli.schema import document_schema
from tests.tempo.session.conftest import Session
from tests.tempo.session.test_session_e2e import method_for


@pytest.fixture
def cli_wallet(session_server: Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Wallet:
    # The CLI's configuration cannot describe a session method yet: hand fetch the wallet.
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
