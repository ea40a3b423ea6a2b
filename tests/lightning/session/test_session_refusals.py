"""End to end, refusals: a top-up above the deposit cap, a server that claims more spent than
deposited, a deposit invoice that does not match its challenge, a payer that cannot receive;
nothing is paid for any of them (the LNbits balance shows it)."""

from __future__ import annotations

import httpx
import pytest

from mpp_client.errors import BudgetExceeded, PaymentRefused
from mpp_client.methods.lightning.payer import CannotReceive
from mpp_client.methods.lightning.session import SessionTopUpRefused
from mpp_client.transport import PaymentTransport

from .conftest import DEPOSIT

pytestmark = pytest.mark.slow


def test_top_up_above_the_deposit_cap_is_refused_mid_stream_and_nothing_paid(lnbits, shop, agent):
    shop.server.topup_wait = 1.0  # how long the server holds the stream for a top-up
    agent.session.max_deposit_sats = DEPOSIT
    before = lnbits.balance_msat(agent.lnbits)
    with httpx.Client(transport=PaymentTransport(wallet=agent.wallet), timeout=60) as client:
        with client.stream("GET", f"{shop.url}/stream?chunks=10") as response:
            list(response.iter_lines())
        shop.server.deposit = 2 * DEPOSIT  # the top-up would exceed the agent's deposit cap
        with (
            client.stream("GET", f"{shop.url}/stream?chunks={DEPOSIT}") as response,
            pytest.raises(BudgetExceeded),
        ):
            list(response.iter_lines())
    # Only the first deposit was paid; the refused top-up moved nothing.
    assert lnbits.balance_msat(agent.lnbits) == before - DEPOSIT * 1000
    assert [p["action"] for p in shop.server.requests] == ["open", "bearer"]


def test_server_claiming_more_spent_than_deposited_gets_no_top_up(lnbits, shop, agent):
    shop.server.claim_extra_spent = 50
    before = lnbits.balance_msat(agent.lnbits)
    with (
        httpx.Client(transport=PaymentTransport(wallet=agent.wallet), timeout=60) as client,
        client.stream("GET", f"{shop.url}/stream?chunks={DEPOSIT + 5}") as response,
        pytest.raises(SessionTopUpRefused, match="more than was deposited"),
    ):
        list(response.iter_lines())
    assert lnbits.balance_msat(agent.lnbits) == before - DEPOSIT * 1000
    assert [p["action"] for p in shop.server.requests] == ["open"]


@pytest.mark.parametrize("fault", ["invoice_sats_delta", "wrong_hash"])
def test_deposit_invoice_not_matching_the_challenge_is_refused_unpaid(lnbits, shop, agent, fault):
    setattr(shop.server, fault, 50 if fault == "invoice_sats_delta" else True)
    before = lnbits.balance_msat(agent.lnbits)
    with (
        httpx.Client(transport=PaymentTransport(wallet=agent.wallet), timeout=60) as client,
        pytest.raises(PaymentRefused, match=r"depositAmount|paymentHash"),
    ):
        client.get(f"{shop.url}/data")
    assert lnbits.balance_msat(agent.lnbits) == before
    assert lnbits.outgoing_payments(agent.lnbits) == []
    assert agent.session.store.channels() == []
    assert shop.server.requests == []


def test_payer_that_cannot_receive_is_refused_before_any_deposit(lnbits, shop, tmp_path):
    from mpp_client.methods.lightning import LnbitsPayer
    from mpp_client.methods.lightning.session import LightningSession
    from mpp_client.wallet import SqliteJournal, Wallet

    account = lnbits.create_wallet("no-receiver")
    lnbits.fund(account, 1_000)
    session = LightningSession(LnbitsPayer(lnbits.url, account.adminkey), max_fee_sats=0)
    wallet = Wallet([session], journal=SqliteJournal(str(tmp_path / "j.sqlite3")))
    with (
        httpx.Client(transport=PaymentTransport(wallet=wallet), timeout=60) as client,
        pytest.raises(CannotReceive),
    ):
        client.get(f"{shop.url}/data")
    assert lnbits.balance_msat(account) == 1_000_000
    assert lnbits.outgoing_payments(account) == []
