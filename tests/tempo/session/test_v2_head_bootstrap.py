"""The spec's bootstrap preflight on anvil: a payer that lost its channel records ``HEAD``s the
resource, proves its identity with a zero-amount ``tempo``/``charge`` proof, and gets the
server's ``Payment-Session-Snapshot``; the snapshot is checked (derivation, our own highest
voucher, the escrow on chain) before the channel is reused, and a voucher is never signed below
the one the server holds."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from mpp_client import PaymentTransport, Wallet, usd
from mpp_client.errors import BudgetExceeded, MethodError
from mpp_client.methods.tempo.session import TempoSession
from mpp_client.methods.tempo.tip20 import PATH_USD
from mpp_client.testing.tempo_session_server import TempoSessionServer
from mpp_client.wallet.channels import ChannelRecord
from mpp_client.wallet.policy import USD_PEGGED, Limit, SpendPolicy
from tests.tempo.session.conftest import Session
from tests.tempo.session.test_session_e2e import method_for


def bootstrapping(s: Session, tmp_path: Path) -> TempoSessionServer:
    return TempoSessionServer(
        chain=s.chain, escrow=s.escrow, token=PATH_USD.address, payee=s.payee, bootstrap=True,
        state_path=str(tmp_path / "server.json"),
    )  # fmt: skip


def pay(method: TempoSession, journal: Path, url: str, times: int) -> None:
    wallet = Wallet([method], journal=journal)
    with httpx.Client(transport=PaymentTransport(wallet=wallet)) as client:
        for _ in range(times):
            assert client.get(url).status_code == 200


def opened_elsewhere(
    s: Session, server: TempoSessionServer, url: str, tmp_path: Path
) -> ChannelRecord:
    """The channel another payer process (its own journal) opened and paid 2 units on."""
    first = method_for(s, proof_realms=[server.realm])
    pay(first, tmp_path / "a.sqlite3", url + "/paid", 2)
    [opened] = first.channels.channels()
    assert opened.highest_signed == 2 * server.price
    return opened


def test_a_lost_channel_is_recovered_and_resumed(session_server: Session, tmp_path: Path) -> None:
    s = session_server
    server = bootstrapping(s, tmp_path)
    price = server.price
    with server.serve() as url:
        opened = opened_elsewhere(s, server, url, tmp_path)
        # Another process with an empty journal: it knows nothing of the channel.
        second = method_for(s, proof_realms=[server.realm])
        pay_wallet = Wallet([second], journal=tmp_path / "b.sqlite3")
        record = second.bootstrap(url + "/paid")
        assert record is not None and record.id == opened.id
        assert record.highest_signed == record.highest_accepted == 2 * price
        assert record.deposit == opened.deposit and record.state == "open"
        actions = len(server.actions)
        with httpx.Client(transport=PaymentTransport(wallet=pay_wallet)) as client:
            assert client.get(url + "/paid").status_code == 200
        # Reused with the next voucher, above the one the server held: no second open.
        assert server.actions[actions:] == ["voucher"]
        after = second.channels.get(opened.id)
        assert after is not None and after.highest_signed == 3 * price
        # The bootstrap server still answers a plain HEAD with a session challenge: close works.
        closed = second.close(url + "/paid", opened.id)
        assert closed.state == "closed" and closed.refund == opened.deposit - 3 * price


def test_a_snapshot_that_does_not_check_out_is_refused(
    session_server: Session, tmp_path: Path
) -> None:
    s = session_server
    server = bootstrapping(s, tmp_path)
    with server.serve() as url:
        first = method_for(s, proof_realms=[server.realm])
        pay(first, tmp_path / "a.sqlite3", url + "/paid", 2)
        [opened] = first.channels.channels()
        state = server.channel(opened.id)
        assert state is not None
        # The server claims more was accepted than the voucher it shows was signed for.
        state.accepted += server.price
        second = method_for(s, proof_realms=[server.realm])
        Wallet([second], journal=tmp_path / "b.sqlite3")
        with pytest.raises(MethodError, match="highest voucher"):
            second.bootstrap(url + "/paid")
        assert second.channels.channels() == []
        # Another payer proving itself gets no snapshot of this channel.
        state.accepted -= server.price
        stranger = TempoSession(
            s.payee, max_deposit=1_000_000, chain_id=s.chain.chain_id, rpc_url=s.chain.rpc_url,
            escrows={s.chain.chain_id: [s.escrow]}, proof_realms=[server.realm],
            channels=str(tmp_path / "c.sqlite3"),
        )  # fmt: skip
        assert stranger.bootstrap(url + "/paid") is None


def test_without_bootstrap_or_realm_nothing_is_signed(
    session_server: Session, tmp_path: Path
) -> None:
    s = session_server
    method = method_for(s, channels=str(tmp_path / "a.sqlite3"))
    # The fixture's server does not bootstrap: its HEAD offers only the session challenge.
    assert method.bootstrap(s.url + "/paid") is None
    server = bootstrapping(s, tmp_path)
    # The realm is not the host we talk to and not allowed: no proof is signed.
    with server.serve() as url, pytest.raises(Exception, match="proof_realms"):
        method.bootstrap(url + "/paid")


def test_close_finds_the_session_challenge_when_head_offers_only_the_proof(
    session_server: Session, tmp_path: Path
) -> None:
    # mppx's preflight answers a credential-less HEAD with the zero-amount charge challenge
    # alone: the close asks again with a credential-less GET (no money can move) and closes.
    s = session_server
    server = TempoSessionServer(
        chain=s.chain, escrow=s.escrow, token=PATH_USD.address, payee=s.payee, bootstrap=True,
        bootstrap_only=True,
    )  # fmt: skip
    price = server.price
    with server.serve() as url:
        method = method_for(s, proof_realms=[server.realm])
        pay(method, tmp_path / "a.sqlite3", url + "/paid", 2)
        [opened] = method.channels.channels()
        seen = len(server.requests)
        closed = method.close(url + "/paid", opened.id)
        assert closed.state == "closed" and closed.refund == opened.deposit - 2 * price
        asked = [(r.method, r.streamed) for r in server.requests[seen:]]
        assert asked[:2] == [("HEAD", False), ("GET", False)]
        assert server.actions[-1] == "close"


def held_exposure(wallet: Wallet) -> int:
    return sum(entry.exposure for entry in wallet.payments() if entry.held)


def test_an_adopted_channel_reserves_what_it_can_still_spend(
    session_server: Session, tmp_path: Path
) -> None:
    # The journal that adopts a channel never reserved its deposit: the first voucher on it
    # reserves the remainder against the caps (as an open reserves its deposit), later ones
    # add nothing, and the close's refund is taken off that entry.
    s = session_server
    server = bootstrapping(s, tmp_path)
    price = server.price
    with server.serve() as url:
        opened = opened_elsewhere(s, server, url, tmp_path)
        remainder = opened.deposit - 2 * price
        second = method_for(s, proof_realms=[server.realm])
        wallet = Wallet([second], journal=tmp_path / "b.sqlite3")
        assert second.bootstrap(url + "/paid") is not None
        # A day's cap below the remainder refuses the adopted channel before anything is signed.
        strict = SpendPolicy(limits=(Limit(usd("0.01"), "day", currency=USD_PEGGED),))
        wallet.policy, relaxed = strict, wallet.policy
        with (
            httpx.Client(transport=PaymentTransport(wallet=wallet)) as client,
            pytest.raises(BudgetExceeded, match="day cap"),
        ):
            client.get(url + "/paid")
        record = second.channels.get(opened.id)
        assert record is not None and record.highest_signed == 2 * price
        assert held_exposure(wallet) == 0
        wallet.policy = relaxed
        actions = len(server.actions)
        with httpx.Client(transport=PaymentTransport(wallet=wallet)) as client:
            assert client.get(url + "/paid").status_code == 200
            assert held_exposure(wallet) == remainder
            assert client.get(url + "/paid").status_code == 200
        assert server.actions[actions:] == ["voucher", "voucher"]
        assert held_exposure(wallet) == remainder  # the second voucher added nothing
        closed = second.close(url + "/paid", opened.id)
        assert closed.refund == opened.deposit - 4 * price
        # What stays counted is what this wallet's vouchers spent on the channel.
        assert held_exposure(wallet) == 2 * price
