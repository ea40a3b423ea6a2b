"""End to end, refusals: a top-up above the deposit cap, a server that claims more spent than
deposited, a deposit invoice that does not match its challenge, a payer that cannot receive;
nothing is paid for any of them (the LNbits balance shows it).

Numbers: 1 sat per chunk, 300 sat deposit (and top-up). A 500-chunk stream runs out at chunk
301, is topped up once while it stays open, and ends with 500 spent: the refund is 100 sat and
the agent's LNbits balance moves by exactly deposit + top-up - refund = 500 sat.
"""

from __future__ import annotations

import httpx
import pytest

from mpp_client.errors import BudgetExceeded, PaymentRefused
from mpp_client.methods.lightning.payer import CannotReceive
from mpp_client.methods.lightning.session import SessionTopUpRefused
from mpp_client.transport import PaymentTransport

pytestmark = pytest.mark.slow

CHUNKS = 500
DEPOSIT = 300


def data_lines(lines) -> list[str]:
    return [line[6:] for line in lines if line.startswith("data: ")]


def assert_session_money(lnbits, agent, shop, before: int, closed, *, topups: int) -> None:
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
