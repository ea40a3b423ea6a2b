"""A Lightning session end to end on a wallet whose journal is PostgreSQL: open, a top-up
while the stream stays open, close with a refund; the channel record, the journal and the
running totals agree (a real LNbits, as in tests/lightning/session)."""

from __future__ import annotations

import httpx

from mpp_client.methods.lightning import LnbitsPayer
from mpp_client.methods.lightning.session import LightningSession
from mpp_client.session import session_of
from mpp_client.testing.lightning_session_server import AmountlessBridge
from mpp_client.transport import PaymentTransport
from mpp_client.wallet import Wallet
from mpp_client.wallet.postgres import PostgresChannelStore, PostgresJournal
from tests.lightning.lnbits_server import LnbitsServer
from tests.lightning.session.conftest import (
    CHUNKS,
    Agent,
    Shop,
    assert_session_money,
    bridge,  # noqa: F401  (fixtures the shop needs)
    lnbits,  # noqa: F401
    shop,  # noqa: F401
)


def test_a_lightning_session_on_a_postgresql_wallet(
    lnbits: LnbitsServer,  # noqa: F811
    bridge: AmountlessBridge,  # noqa: F811
    shop: Shop,  # noqa: F811
    pg_url: str,
) -> None:
    account = lnbits.create_wallet("agent")
    lnbits.fund(account, 2_000)
    session = LightningSession(
        LnbitsPayer(lnbits.url, account.adminkey),
        receiver=bridge.receiver(account.inkey),
        max_fee_sats=0,
    )
    journal = PostgresJournal(pg_url, heartbeat=False)
    wallet = Wallet([session], journal=journal)
    agent = Agent(wallet, session, account)
    assert isinstance(session.store, PostgresChannelStore)
    before = lnbits.balance_msat(account)
    try:
        with httpx.Client(transport=PaymentTransport(wallet=wallet), timeout=60) as client:
            with client.stream("GET", f"{shop.url}/stream?chunks={CHUNKS}") as response:
                assert response.status_code == 200
                list(response.iter_lines())
                stream = session_of(response)
            assert stream is not None and stream.details["topups"] == 1
            closed = session.close(client, f"{shop.url}/data")
        assert_session_money(lnbits, agent, shop, before, closed, topups=1)
        # The refund left the running totals with the entries' exposure.
        assert [amount for _, amount in journal.ledger().held_totals()] == [CHUNKS]
        # Another process (another pool) resumes the same record.
        other = PostgresJournal(pg_url, heartbeat=False)
        record = other.channel_store().get(closed.session_id)
        assert record is not None and record.state == "closed"
        other.close()
    finally:
        wallet.close()
