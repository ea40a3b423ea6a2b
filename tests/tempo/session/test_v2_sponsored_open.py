"""A sponsored session (challenge ``feePayer: true``) on anvil: the client hands its open and
top-up over as ``0x78`` fee-payer envelopes without a fee token; our session server decodes
them, checks the sender signature, co-signs as fee payer and broadcasts; the payer pays no fee.
(In the v2 helper's files: the encoding is shared by v1 and v2 opens.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from mpp_client import PaymentTransport, Wallet
from mpp_client.methods.tempo import LocalKeySigner
from mpp_client.methods.tempo.tip20 import PATH_USD
from mpp_client.session import session_of
from mpp_client.testing.tempo_session_server import TempoSessionServer
from tests.tempo.session.conftest import Session
from tests.tempo.session.test_session_e2e import method_for, onchain


def test_sponsored_open_and_top_up_land_on_chain(session_server: Session, tmp_path: Path) -> None:
    base = session_server
    sponsor = LocalKeySigner.generate()
    base.chain.fund(sponsor.address, 5_000_000)
    price = base.server.price
    server = TempoSessionServer(
        chain=base.chain, escrow=base.escrow, token=PATH_USD.address, payee=base.payee,
        fee_payer=sponsor, suggested_deposit=3 * price, state_path=str(tmp_path / "s.json"),
    )  # fmt: skip
    handed: list[str] = []
    co_sign = server._co_sign

    def spy(raw: str) -> Any:
        handed.append(raw[:4])
        return co_sign(raw)

    server._co_sign = spy  # type: ignore[method-assign]
    payer_before = base.chain.balance_of(base.payer.address)
    sponsor_before = base.chain.balance_of(sponsor.address)
    method = method_for(base, top_up=3 * price)
    wallet = Wallet([method], journal=tmp_path / "journal.sqlite3")
    with (
        server.serve() as url,
        httpx.Client(transport=PaymentTransport(wallet=wallet)) as client,
    ):
        with client.stream("GET", url + "/stream?n=5") as response:
            assert response.status_code == 200
            lines = [line for line in response.iter_lines() if line.startswith("data:")]
            state = session_of(response)
        assert lines == [f"data: chunk {i}" for i in range(5)]
        assert state is not None
        channel_id = state.details["channelId"]
        # The open and the top-up both went as fee-payer hand-offs, and both landed.
        assert handed == ["0x78", "0x78"]
        assert server.actions[0] == "open" and "topUp" in server.actions
        chain_state = onchain(base, channel_id)
        assert chain_state.exists and chain_state.deposit == 6 * price
        # Not a base unit of fee came from the payer: only the deposit moved.
        assert payer_before - base.chain.balance_of(base.payer.address) == 6 * price
        assert base.chain.balance_of(sponsor.address) < sponsor_before
        closed = method.close(url + "/stream", channel_id)
    assert closed.state == "closed" and closed.refund == 6 * price - 5 * price
    assert payer_before - base.chain.balance_of(base.payer.address) == 5 * price


def test_a_server_that_does_not_sponsor_refuses_a_hand_off(session_server: Session) -> None:
    s = session_server
    assert s.server.fee_payer is None
    assert s.server._broadcast("0x78c0") is None
