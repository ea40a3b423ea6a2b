"""Our session server paid by mppx 0.11's own v1 client (``tempo.sessionLegacy``, node): the
server speaks the protocol as mppx does. And where mppx and we differ: mppx signs whatever a
server asks for; TempoSession refuses (test_session_e2e)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from tests.peers.fixtures import MPPX_MODULES, missing
from tests.tempo.session.conftest import REPO, Session
from tests.tempo.session.test_session_e2e import onchain

CLIENT = Path(__file__).with_name("mppx_legacy_client.mjs")


def run_mppx(s: Session, chunks: int) -> dict[str, object]:
    if shutil.which("node") is None or not (MPPX_MODULES / "mppx").exists():
        missing("mppx 0.11", "scripts/install-mppx.sh")
    env = {
        **os.environ, "NODE_PATH": str(MPPX_MODULES), "URL": f"{s.url}/stream?n={chunks}",
        "RPC_URL": s.chain.rpc_url, "CHAIN_ID": str(s.chain.chain_id), "ESCROW": s.escrow,
        "PAYER_KEY": s.payer.export_private_key(),
    }  # fmt: skip
    done = subprocess.run(
        ["node", str(CLIENT)],
        env=env, cwd=REPO, capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    return json.loads(done.stdout.decode().strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_mppx_v1_client_pays_our_server(session_server: Session) -> None:
    s = session_server
    payee_before = s.chain.balance_of(s.payee.address)
    result = run_mppx(s, 5)
    assert result["chunks"] == 5
    assert s.server.actions == ["open", "voucher", "voucher", "voucher", "voucher", "close"]
    receipt = result["receipt"]
    assert isinstance(receipt, dict) and receipt["acceptedCumulative"] == str(5 * s.server.price)
    channel = onchain(s, str(result["channelId"]))
    assert channel.finalized and channel.settled == 5 * s.server.price
    assert 0 <= payee_before + 5 * s.server.price - s.chain.balance_of(s.payee.address) < 5_000


def test_mppx_signs_what_an_overcharging_server_asks(session_server: Session) -> None:
    s = session_server
    s.server.overcharge = 2
    result = run_mppx(s, 5)
    # mppx paid twice the agreed price per chunk; TempoSession refuses the first such ask.
    assert result["chunks"] == 5
    state = s.server.channel(str(result["channelId"]))
    assert state is not None and state.accepted == 2 * 5 * s.server.price
