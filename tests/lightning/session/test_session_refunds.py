"""End to end, the refund on close when things are not simple: a short refund (reported), a
session the server closed on an idle timeout, a stream that timed out, a restarted process
resuming the session from the journal; against the session server and real LNbits."""

from __future__ import annotations

import asyncio

import httpx
import pytest

import mpp_client
from mpp_client.methods.lightning.session import RefundShort
from mpp_client.session import session_of
from mpp_client.transport import PaymentTransport

from .conftest import DEPOSIT, data_lines, make_agent

pytestmark = pytest.mark.slow


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


def test_a_refund_that_never_arrives_is_reported_and_stays_out_of_the_budget(lnbits, shop, agent):
    shop.server.refund_fails = True
    before = lnbits.balance_msat(agent.lnbits)
    with httpx.Client(transport=PaymentTransport(wallet=agent.wallet), timeout=60) as client:
        assert client.get(f"{shop.url}/data").status_code == 200
        closed = agent.session.close(client, f"{shop.url}/data")
        assert closed.refund_status == "failed" and closed.claimed == DEPOSIT - 1
        assert isinstance(closed.problem, RefundShort) and closed.received is None
        record = agent.session.store.get(closed.session_id)
        assert record is not None and record.state == "closing"
        (deposit,) = [p for p in agent.wallet.journal.payments() if p.amount.amount > 0]
        assert deposit.exposure == DEPOSIT  # nothing returned to the budget
        # The server pays it later; a second close only checks the refund (no request, no
        # new session) and now releases it.
        requests_before = len(shop.server.requests)
        session = shop.server.sessions[closed.session_id]
        assert asyncio.run(shop.server.refunds.pay(session.return_invoice, DEPOSIT - 1))
        again = agent.session.close(client, f"{shop.url}/data")
    assert len(shop.server.requests) == requests_before
    assert again.received == DEPOSIT - 1 and again.problem is None
    assert lnbits.balance_msat(agent.lnbits) == before - 1000
    (deposit,) = [p for p in agent.wallet.journal.payments() if p.amount.amount > 0]
    assert deposit.exposure == 1
    assert agent.session.store.get(closed.session_id).state == "closed"


def test_restart_resumes_the_session_from_the_journal_and_closes_it(lnbits, bridge, shop, agent):
    before = lnbits.balance_msat(agent.lnbits)
    with httpx.Client(transport=PaymentTransport(wallet=agent.wallet), timeout=60) as client:
        assert client.get(f"{shop.url}/data").status_code == 200  # open (pays the deposit)
    journal = agent.wallet.journal.path
    agent.wallet.close()
    # A new process: a new wallet and method on the same journal file.
    again = make_agent(lnbits, bridge, agent.lnbits, journal)
    record = again.session.session(shop.url)
    assert record is not None and record.deposit == DEPOSIT
    with httpx.Client(transport=PaymentTransport(wallet=again.wallet), timeout=60) as client:
        answer = client.get(f"{shop.url}/data")  # bearer with the preimage from the journal
        assert answer.status_code == 200 and answer.json()["spent"] == 2
        closed = again.session.close(client, f"{shop.url}/data")
    assert [r["action"] for r in shop.server.requests] == ["open", "bearer", "close"]
    assert closed.received == DEPOSIT - 2 and closed.problem is None
    assert lnbits.balance_msat(agent.lnbits) == before - 2 * 1000


class _Later:
    """A clock ``seconds`` ahead of another."""

    def __init__(self, clock, seconds: float) -> None:
        self._clock, self._seconds = clock, seconds

    def time(self) -> float:
        return self._clock.time() + self._seconds
