"""``mpp demo`` and ``mpp demo serve``: the newcomer's path from the README, on the real local
stack (anvil + mppx)."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
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
        # The other terminal, as the demo says: `export MPP_CONFIG=... MPP_JOURNAL=...`.
        demo = {**mpp.env, **info["env"]}

        paid = mpp("fetch", f"{url}/paid", env=demo)
        split_refused = mpp("fetch", "-v", f"{url}/split", env=demo)
        trusted = mpp(
            "budget", "trust", url, "--method", "tempo", "--payee", info["partner"], "--yes",
            env=demo,
        )  # fmt: skip
        split = mpp("fetch", "-v", f"{url}/split", env=demo)
        _, entries = mpp.json("journal", "list", "--today", env=demo)
        _, shown = mpp.json("wallet", "show", "demo", "--balance", env=demo)
        report = mpp("report", env=demo)
        _, own_entries = mpp.json("journal", "list")  # the user's own journal
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
    # The split's second payee is refused by pinning, with the command that accepts it...
    assert split_refused.returncode == 3
    partner = info["partner"].lower()  # pinned as the method quotes it
    assert f"mpp budget trust {url} --method tempo --payee {partner}" in split_refused.stderr
    # ... which the demo's hint also names; after it, the split is paid to both.
    assert trusted.returncode == 0, trusted.stderr
    assert split.returncode == 0, split.stderr
    settled = [e for e in entries if e["state"] == "settled"]
    assert [e["amount"] for e in settled] == [10_000, 10_000]
    assert {p["address"].lower() for p in settled[1]["payees"]} == {
        info["merchant"].lower(),
        info["partner"].lower(),
    }
    assert entries[0]["origin"] == url
    assert own_entries == []  # the demo kept its own journal
    balance = next(b for b in shown["balances"] if b["symbol"] == "pathUSD")
    assert balance["amount"] < 1_000_000 - 20_000  # the charges and the network fees
    assert report.returncode == 0 and "0.02 pathUSD spent" in report.stdout
    assert example.returncode == 0, example.stderr
    assert "paid 0.01 pathUSD" in example.stdout or "paid 0.010000 pathUSD" in example.stdout
    assert "receipt: success, transaction 0x" in example.stdout
    assert process.returncode == 0
    assert not mpp.config_file.exists()  # the owner's configuration was never written
    assert not Path(info["config"]).exists()  # the demo's directory is gone
