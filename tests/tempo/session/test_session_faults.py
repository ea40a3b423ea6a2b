"""Tempo sessions when things break: a server restart mid-stream, a client killed after it
signed a voucher, a server that forgot the channel (410)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mpp_client import PaymentTransport, Wallet, payment_of
from mpp_client.methods.tempo import LocalKeySigner
from mpp_client.methods.tempo.tip20 import PATH_USD
from mpp_client.testing.anvil import AnvilChain, AnvilNotFound, find_anvil
from mpp_client.testing.tempo_session_server import TempoSessionServer, deploy
from mpp_client.wallet.channels import ChannelStore
from tests.peers.fixtures import missing
from tests.tempo.session.conftest import REPO, Session, compile_escrow
from tests.tempo.session.test_session_e2e import method_for, onchain


def restarted(s: Session, state_path: str) -> TempoSessionServer:
    return TempoSessionServer(
        chain=s.chain, escrow=s.escrow, token=s.server.token, payee=s.payee,
        state_path=state_path, secret=s.server.secret,
    )  # fmt: skip


def test_a_server_restart_mid_stream(session_server: Session, tmp_path: Path) -> None:
    s = session_server
    port = int(s.url.rsplit(":", 1)[1])
    method = method_for(s)
    wallet = Wallet([method], journal=tmp_path / "journal.sqlite3")
    seen = 0
    with httpx.Client(transport=PaymentTransport(wallet=wallet)) as client:
        with (
            pytest.raises(httpx.HTTPError),
            client.stream("GET", s.url + "/stream?n=20") as response,
        ):
            for line in response.iter_lines():
                if line.startswith("data:"):
                    seen += 1
                    if seen == 5:
                        s.server.stop()  # the server dies with the stream open
        [record] = method.channels.channels()
        before = record.highest_signed
        assert before >= 5 * s.server.price
        again = restarted(s, str(tmp_path / "server.json"))
        with again.serve(port=port):
            with client.stream("GET", s.url + "/stream?n=5") as response:
                lines = [line for line in response.iter_lines() if line.startswith("data:")]
            assert len(lines) == 5
            [record] = method.channels.channels()  # the same channel, resumed
            assert record.highest_signed > before
            assert again.actions[0] == "voucher" and "open" not in again.actions
            closed = method.close(s.url + "/stream")
    assert onchain(s, record.id).settled == closed.highest_accepted == record.highest_signed


def test_a_client_killed_after_signing_resumes_higher(
    session_server: Session, tmp_path: Path
) -> None:
    s = session_server
    journal = str(tmp_path / "journal.sqlite3")
    argv = [
        sys.executable, str(Path(__file__).with_name("client_process.py")), s.chain.rpc_url,
        str(s.chain.chain_id), s.escrow, s.payer.export_private_key(), journal,
        s.url + "/stream?n=50",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen(argv, stdout=subprocess.PIPE, env=env, cwd=REPO)
    assert child.stdout is not None
    for line in child.stdout:
        if line.strip() == b"data: chunk 5":
            # Chunk 5 was sent only after the voucher covering it was recorded and sent.
            child.send_signal(signal.SIGKILL)
            break
    child.wait(30)
    child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    [record] = ChannelStore(journal).channels()
    assert record.highest_signed >= 6 * s.server.price
    server_state = s.server.channel(record.id)
    assert server_state is not None and server_state.accepted <= record.highest_signed
    # A new process on the same journal resumes the channel with a higher voucher.
    method = method_for(s)
    wallet = Wallet([method], journal=journal)
    with httpx.Client(transport=PaymentTransport(wallet=wallet)) as client:
        response = client.get(s.url + "/paid")
    assert response.status_code == 200
    [after] = method.channels.channels()
    assert after.id == record.id and after.highest_signed == record.highest_signed + s.server.price
    assert s.server.channel(record.id).accepted == after.highest_signed  # type: ignore[union-attr]


def test_a_channel_the_server_forgot_is_evicted(session_server: Session, tmp_path: Path) -> None:
    s = session_server
    port = int(s.url.rsplit(":", 1)[1])
    method = method_for(s)
    wallet = Wallet([method], journal=tmp_path / "journal.sqlite3")
    with httpx.Client(transport=PaymentTransport(wallet=wallet)) as client:
        assert client.get(s.url + "/paid").status_code == 200
        s.server.stop()
        forgetful = restarted(s, str(tmp_path / "empty.json"))
        with forgetful.serve(port=port):
            gone = client.get(s.url + "/paid")
            assert gone.status_code == 410
            payment = payment_of(gone)
            assert payment is not None and payment.status == "unknown"
            [first] = method.channels.channels()
            assert first.state == "evicted"
            # The next request opens a new channel instead of reusing the stale one.
            assert client.get(s.url + "/paid").status_code == 200
    first_after, second = method.channels.channels()
    assert first_after.state == "evicted" and second.state == "open" and second.id != first.id
    assert forgetful.actions == ["voucher", "open"]


@pytest.fixture
def own_chain_server(tmp_path: Path) -> Iterator[Session]:
    """A session server on a chain of its own: this test moves the chain's clock by 15
    minutes, which would expire every other test's challenges on the shared chain."""
    try:
        find_anvil()
    except AnvilNotFound:
        missing("anvil", "scripts/install-anvil.sh")
    with AnvilChain.start() as chain:
        escrow = deploy(chain, str(compile_escrow()["bytecode"]))
        payer, payee = LocalKeySigner.generate(), LocalKeySigner.generate()
        chain.fund(payer.address, 5_000_000)
        server = TempoSessionServer(chain=chain, escrow=escrow, token=PATH_USD.address,
                                    payee=payee)  # fmt: skip
        with server.serve() as url:
            yield Session(chain, escrow, payer, payee, server, url)


def test_a_forced_close_when_the_server_is_gone(own_chain_server: Session, tmp_path: Path) -> None:
    s = own_chain_server
    method = method_for(s)
    wallet = Wallet([method], journal=tmp_path / "journal.sqlite3")
    with httpx.Client(transport=PaymentTransport(wallet=wallet)) as client:
        assert client.get(s.url + "/paid").status_code == 200
    s.server.stop()  # the server is gone for good, without settling anything
    [record] = method.channels.channels()
    payer_before = s.chain.balance_of(s.payer.address)
    earliest = method.request_close(record.id)
    assert earliest >= s.chain.chain_time() + 899
    with pytest.raises(Exception, match="escrow call"):
        method.withdraw(record.id)  # the grace period is still running
    s.chain.rpc("evm_increaseTime", 901)
    s.chain.mine()
    closed = method.withdraw(record.id)
    assert closed.state == "closed" and closed.refund == record.deposit
    assert onchain(s, record.id).finalized
    gained = s.chain.balance_of(s.payer.address) - payer_before
    assert record.deposit - 5_000 < gained <= record.deposit  # less the two calls' fees
    [entry] = wallet.payments()
    fee = entry.max_fee.amount if entry.max_fee else 0
    assert entry.exposure == fee  # the whole deposit went back to the budget
