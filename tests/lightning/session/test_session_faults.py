"""End to end, what goes wrong: a short refund, an idle timeout, a stream that times out, a
refused top-up, a server that claims more spent than deposited, a deposit invoice that does not
match its challenge, a payer that cannot receive; against the session server and real LNbits.

Numbers: 1 sat per chunk, 300 sat deposit (and top-up). A 500-chunk stream runs out at chunk
301, is topped up once while it stays open, and ends with 500 spent: the refund is 100 sat and
the agent's LNbits balance moves by exactly deposit + top-up - refund = 500 sat.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest

import mpp_client
from mpp_client.errors import BudgetExceeded, PaymentRefused
from mpp_client.methods.lightning.payer import CannotReceive
from mpp_client.methods.lightning.session import RefundShort, SessionTopUpRefused
from mpp_client.session import session_of
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


def test_short_refund_is_reported_and_only_what_arrived_returns(lnbits, shop, agent):
    shop.server.refund_short_by = 40
    before = lnbits.balance_msat(agent.lnbits)
    with httpx.Client(transport=PaymentTransport(wallet=agent.wallet), timeout=60) as client:
        with client.stream("GET", f"{shop.url}/stream?chunks=100") as response:
            list(response.iter_lines())
        closed = agent.session.close(client, f"{shop.url}/data")
    assert isinstance(closed.problem, RefundShort)
    assert closed.expected == DEPOSIT - 100 and closed.claimed == closed.received == 160
    assert lnbits.balance_msat(agent.lnbits) == before - (DEPOSIT - 160) * 1000
    (deposit,) = [p for p in agent.wallet.journal.payments() if p.amount.amount > 0]
    assert deposit.exposure == DEPOSIT - 160  # only what arrived went back to the budget


def test_idle_timeout_server_closes_and_refund_is_found(lnbits, shop, agent):
    before = lnbits.balance_msat(agent.lnbits)
    with httpx.Client(transport=PaymentTransport(wallet=agent.wallet), timeout=60) as client:
        with client.stream("GET", f"{shop.url}/stream?chunks=10") as response:
            list(response.iter_lines())
        # The session then sits idle past its idleTimeout: the server closes it and refunds.
        shop.server.clock = _Later(shop.server.clock, shop.server.idle_timeout + 1)
        assert len(asyncio.run(shop.server.sweep())) == 1
        # A bearer request now gets 402 session-closed; nothing is paid for it.
        answer = client.get(f"{shop.url}/data")
        assert answer.status_code == 402
        assert mpp_client.payment_of(answer).status == "rejected"
        closed = agent.session.close(client, f"{shop.url}/data")
    assert closed.claimed is None  # the server had closed it: no close answer ...
    assert closed.received == DEPOSIT - 10 and closed.problem is None  # ... but the refund came
    assert lnbits.balance_msat(agent.lnbits) == before - 10 * 1000
    assert agent.session.store.get(closed.session_id).state == "closed"


def test_stream_ends_with_session_timeout_when_the_top_up_is_refused(lnbits, shop, agent):
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


def test_stream_session_timeout_event_is_handled_and_the_late_top_up_counts(lnbits, shop, agent):
    shop.server.topup_wait = 0.0  # the server gives up at once: the top-up arrives too late
    before = lnbits.balance_msat(agent.lnbits)
    with httpx.Client(transport=PaymentTransport(wallet=agent.wallet), timeout=60) as client:
        with client.stream("GET", f"{shop.url}/stream?chunks={DEPOSIT + 20}") as response:
            lines = list(response.iter_lines())
            stream = session_of(response)
        assert len(data_lines(lines)) == DEPOSIT  # then session-timeout; no [DONE]
        assert stream is not None and stream.receipt is None
        assert stream.details["session_timeout"] == {"balanceSpent": DEPOSIT}
        assert stream.details["topups"] == 1
        closed = agent.session.close(client, f"{shop.url}/data")
    # The late top-up still counts: 600 deposited, 300 spent, 300 refunded.
    assert (closed.deposited, closed.spent, closed.received) == (2 * DEPOSIT, DEPOSIT, DEPOSIT)
    assert closed.problem is None
    assert lnbits.balance_msat(agent.lnbits) == before - DEPOSIT * 1000


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


class _Later:
    """A clock ``seconds`` ahead of another."""

    def __init__(self, clock, seconds: float) -> None:
        self._clock, self._seconds = clock, seconds

    def time(self) -> float:
        return self._clock.time() + self._seconds
