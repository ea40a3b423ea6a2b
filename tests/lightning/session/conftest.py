"""Fixtures: one real LNbits (FakeWallet) for the whole directory (each test makes its own
wallets), a merchant wallet, and a Lightning session server on 127.0.0.1 selling metered
streams from it."""

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
        lnbits.url, merchant.inkey, bridge.refunds(merchant.adminkey), amount=1, deposit=300
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
