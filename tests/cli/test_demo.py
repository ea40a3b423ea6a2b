"""``mpp demo`` and ``mpp demo serve``: the newcomer's path from the README, on the real local
stack (anvil + mppx)."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.peers.fixtures import MPPX_MODULES, missing

from .conftest import Mpp

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

pytestmark = [pytest.mark.chain, pytest.mark.peer, pytest.mark.slow]


@pytest.fixture
def tools() -> None:
    from mpp_client.testing.anvil import AnvilNotFound, find_anvil

    try:
        find_anvil()
    except AnvilNotFound:
        missing("anvil", "scripts/install-anvil.sh")
    if shutil.which("node") is None or not (MPPX_MODULES / "mppx" / "package.json").is_file():
        missing("node + mppx 0.11", "scripts/install-mppx.sh")


def test_mpp_demo_runs_the_readme_demo_and_stops_everything(mpp: Mpp, tools):
    result = mpp("demo")

    assert result.returncode == 0, result.stderr
    assert "receipt: success" in result.stdout
    assert "refused before signing" in result.stdout
    assert "Stopped the server and the chain." in result.stdout
    assert not mpp.config_file.exists()  # the scripted demo leaves the user's setup alone


def read_json_document(process: subprocess.Popen[str]) -> dict:
    assert process.stdout is not None
    text = ""
    while True:
        line = process.stdout.readline()
        assert line, (
            f"mpp demo serve ended early: {process.stderr.read() if process.stderr else ''}"
        )
        text += line
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            continue


def test_demo_serve_lets_a_newcomer_fetch_and_find_the_payment_in_the_journal(mpp: Mpp, tools):
    mpp.env["MPP_TEST_METHOD"] = "0"
    process = subprocess.Popen(
        mpp.argv("--json", "demo", "serve"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=mpp.env,
        cwd=mpp.home,
        start_new_session=True,
    )
    try:
        info = read_json_document(process)
        url = info["url"]

        paid = mpp("fetch", "--wallet", "demo", f"{url}/paid")
        _, entries = mpp.json("journal", "list")
        _, shown = mpp.json("wallet", "show", "demo", "--balance")
        example = subprocess.run(
            [sys.executable, str(EXAMPLES / "tempo_charge.py"), f"{url}/paid",
             "--rpc-url", info["rpc_url"]],
            capture_output=True, text=True, env=mpp.env, cwd=mpp.home, timeout=120,
            start_new_session=True, check=False,
        )  # fmt: skip
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
        if process.stdout:
            process.stdout.close()
        if process.stderr:
            process.stderr.close()

    assert paid.returncode == 0, paid.stderr
    assert "paid 0.01 pathUSD" in paid.stderr
    [entry] = entries
    assert entry["state"] == "settled" and entry["amount"] == 10_000
    assert entry["origin"] == url
    balance = next(b for b in shown["balances"] if b["symbol"] == "pathUSD")
    assert balance["amount"] < 1_000_000 - 10_000  # the charge and the network fee
    assert example.returncode == 0, example.stderr
    assert "paid 0.01 pathUSD" in example.stdout or "paid 0.010000 pathUSD" in example.stdout
    assert "receipt: success, transaction 0x" in example.stdout
    assert process.returncode == 0
    config = tomllib.loads(mpp.config_file.read_text())
    assert "demo" not in config.get("wallets", {})
