"""Fixtures: one real LNbits (FakeWallet) for the whole directory (each test makes its own
wallets), a merchant wallet, and a Lightning session server on 127.0.0.1 selling metered
streams from it (the ``shop``), and what the end-to-end tests share.

Numbers: 1 sat per chunk, 300 sat deposit (and top-up). A 500-chunk stream runs out at chunk
301, is topped up once while it stays open, and ends with 500 spent: the refund is 100 sat and
the agent's LNbits balance moves by exactly deposit + top-up - refund = 500 sat.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from mpp_client.methods.lightning import LnbitsPayer
from mpp_client.methods.lightning.session import LightningSession
from mpp_client.testing.lightning_session_server import AmountlessBridge, LightningSessionServer
from mpp_client.wallet import SqliteJournal, Wallet

from ..lnbits_server import LnbitsServer, free_port, running_lnbits
from ..lnbits_server import Wallet as LnbitsWallet
from ..mpp_server import ServerThread

#: Chunks one stream sells at 1 sat each, and the server's deposit (and top-up), sats.
CHUNKS = 500
DEPOSIT = 300


def data_lines(lines) -> list[str]:
    """The payloads of a stream's SSE ``data:`` lines."""
    return [line[6:] for line in lines if line.startswith("data: ")]


def assert_session_money(lnbits, agent, shop, before: int, closed, *, topups: int) -> None:
    """A ``CHUNKS`` stream closed after ``topups`` top-ups moved exactly what was spent: in
    the LNbits balance, the server's session, the journal and the session record."""
    paid_in = DEPOSIT * (1 + topups)
    assert closed.problem is None
    assert closed.deposited == paid_in
    assert closed.spent == CHUNKS
    assert closed.claimed == closed.received == paid_in - CHUNKS
    assert lnbits.balance_msat(agent.lnbits) == before - (paid_in - closed.received) * 1000
    session = shop.server.sessions[closed.session_id]
    assert session.status == "closed" and session.spent == CHUNKS
    assert session.refund_status == "succeeded"
    # The journal: the deposit and each top-up are settled payments; the refund lowered their
    # exposure, so what counts against the budgets is exactly what was spent.
    paid = [p for p in agent.wallet.journal.payments() if p.amount.amount > 0]
    assert sorted(p.state for p in paid) == ["settled"] * (1 + topups)
    assert sum(p.exposure for p in paid) == CHUNKS
    record = agent.session.store.get(closed.session_id)
    assert record is not None and record.state == "closed" and record.refund == closed.received
    assert record.deposit == paid_in


@pytest.fixture(scope="session")
def lnbits() -> Iterator[LnbitsServer]:
    with running_lnbits() as server:
        yield server


@pytest.fixture(scope="session")
def bridge(lnbits) -> AmountlessBridge:
    return AmountlessBridge(lnbits.url)


@dataclass
class Shop:
    server: LightningSessionServer
    url: str
    merchant: LnbitsWallet


@pytest.fixture
def shop(lnbits, bridge) -> Iterator[Shop]:
    merchant = lnbits.create_wallet("merchant")
    server = LightningSessionServer(
        lnbits.url, merchant.inkey, bridge.refunds(merchant.adminkey), amount=1, deposit=DEPOSIT
    )
    with ServerThread(server, free_port()) as thread:  # type: ignore[arg-type]
        yield Shop(server, thread.url, merchant)


@dataclass
class Agent:
    wallet: Wallet
    session: LightningSession
    lnbits: LnbitsWallet


@pytest.fixture
def agent(lnbits, bridge, tmp_path) -> Agent:
    account = lnbits.create_wallet("agent")
    lnbits.fund(account, 2_000)
    return make_agent(lnbits, bridge, account, str(tmp_path / "journal.sqlite3"))


def make_agent(
    lnbits: LnbitsServer, bridge: AmountlessBridge, account: LnbitsWallet, journal: str
) -> Agent:
    """A wallet paying from the LNbits ``account``, refunds received into it (through the
    bridge: LNbits issues no amountless invoices), its journal in the file ``journal``."""
    session = LightningSession(
        LnbitsPayer(lnbits.url, account.adminkey),
        receiver=bridge.receiver(account.inkey),
        max_fee_sats=0,
    )
    wallet = Wallet([session], journal=SqliteJournal(journal))
    return Agent(wallet, session, account)
