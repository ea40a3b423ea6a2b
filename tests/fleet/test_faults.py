"""What the journal does when PostgreSQL goes away: before a hold commits the payment is refused
and nothing is signed; after the credential left the entry stays held and is written later or
reconciled, never paid twice; a lost commit acknowledgement is resolved by looking the row up."""

from __future__ import annotations

from collections import Counter
from collections.abc import Generator
from typing import Any

import httpx
import pytest

from mpp_client.errors import JournalUnavailable
from mpp_client.guard import PaymentOptions
from mpp_client.methods.base import LookupResult
from mpp_client.runner import run_sync
from mpp_client.testing import FakeMppServer, Offer, Route, TestMethod
from mpp_client.testing.clock import ManualClock
from mpp_client.transport import PaymentTransport
from mpp_client.wallet import Wallet, postgres
from mpp_client.wallet.postgres import PostgresJournal

from ..wallet.conftest import context, quote
from . import workers
from .fault_proxy import FaultProxy
from .test_fleet_budget import host_urls, run_fleet, tally


def paying(journal, *, server=None, handler=None):
    server = server or FakeMppServer({"/paid": Route(offers=(Offer(amount="1000"),))})
    method = TestMethod()
    wallet = Wallet([method], journal=journal, policy=workers.policy("100"))
    inner = server.mock_transport()
    mock = httpx.MockTransport(handler(inner) if handler else inner.handle_request)
    client = httpx.Client(transport=PaymentTransport(mock, wallet=wallet))
    return wallet, method, server, client


def test_a_database_that_is_down_refuses_the_payment_before_anything_is_signed(pg, pg_url):
    journal = PostgresJournal(pg_url, reconnect_timeout=0.5, heartbeat=False)
    wallet, method, server, client = paying(journal)
    assert client.get("https://fake.test/paid").status_code == 200
    pg.stop()
    try:
        with pytest.raises(JournalUnavailable, match="unreachable"):
            client.get("https://fake.test/paid")
        assert len(method.paid) == 1 and len(server.accepted) == 1  # nothing signed meanwhile
    finally:
        pg.start()
    assert client.get("https://fake.test/paid").status_code == 200
    assert [r.state for r in journal.payments()] == ["settled", "settled"]
    client.close()
    wallet.close()


class SettledLookup(TestMethod):
    def lookup(self, reference: str, *, void_after: Any = None) -> Generator[Any, Any, Any]:
        return LookupResult("settled", reference, amount=1000, detail="found")
        yield


@pytest.fixture
def marks_wait(monkeypatch):
    """``settled`` marks wait for the next read of the journal (no background write in the
    test's time), so when each is written is up to the test."""
    monkeypatch.setattr(postgres, "_LATER_DELAY", 3600.0)


def test_after_the_credential_left_the_entry_stays_held_and_is_never_paid_twice(
    pg, pg_url, marks_wait
):
    journal = PostgresJournal(pg_url, reconnect_timeout=0.3, lease_seconds=5, heartbeat=False)

    def handler(inner):
        def handle(request: httpx.Request) -> httpx.Response:
            if request.headers.get("authorization", "").lower().startswith("payment "):
                pg.stop()  # the database goes away while the credential is at the server
            return inner.handle_request(request)

        return handle

    wallet, method, server, client = paying(journal, handler=handler)
    try:
        # The credential left: the response is the server's (the settled mark waits).
        assert client.get("https://fake.test/paid").status_code == 200
        with pytest.raises(JournalUnavailable):
            journal.payments()  # this process reads what it wrote: it cannot now
    finally:
        pg.start()
    assert len(method.paid) == 1 and len(server.accepted) == 1
    [entry] = PostgresJournal(pg_url, heartbeat=False).payments()
    assert entry.state == "sent" and entry.held and entry.fingerprint  # held, not forgotten
    # The outcome the database missed is written once it answers again (the pool reconnects
    # with a back-off after the failed read above: give it the default time to).
    journal._reconnect_timeout = 10.0
    journal.heartbeat()
    assert journal.get(entry.id).state == "settled"
    client.close()
    wallet.close()


def test_a_process_that_ended_while_the_database_was_away_is_reconciled_once(
    pg, pg_url, marks_wait
):
    journal = PostgresJournal(pg_url, reconnect_timeout=0.3, lease_seconds=5, heartbeat=False)

    def handler(inner):
        def handle(request: httpx.Request) -> httpx.Response:
            if request.headers.get("authorization", "").lower().startswith("payment "):
                pg.stop()
            return inner.handle_request(request)

        return handle

    _wallet, method, server, client = paying(journal, handler=handler)
    assert client.get("https://fake.test/paid").status_code == 200
    pg.start()
    journal._later.clear()  # the process ends before it could write the outcome
    journal._stop.set()
    [entry] = PostgresJournal(pg_url, heartbeat=False).payments()
    later = ManualClock(journal_time() + 3600)
    other = Wallet([SettledLookup()], journal=PostgresJournal(pg_url, lease_clock=later,
                                                               heartbeat=False))  # fmt: skip
    [unknown] = other.unknown_payments()
    assert unknown.id == entry.id and "lease expired" in (unknown.reason or "")
    [outcome] = other.reconcile()
    assert (outcome.entry_id, outcome.outcome) == (entry.id, "settled")
    assert other.journal.recover() == []  # claimed once
    assert len(server.accepted) == 1 and len(method.paid) == 1  # paid once
    other.close()
    client.close()


def journal_time() -> float:
    import time

    return time.time()


@pytest.fixture
def proxy(pg):
    made = FaultProxy(pg.port)
    yield made
    made.close()


def test_a_lost_commit_acknowledgement_of_a_hold_is_found_not_repeated(pg, pg_url, proxy):
    journal = PostgresJournal(proxy.url(pg_url, pg.port), heartbeat=False)
    wallet, method, server, client = paying(journal)
    proxy.arm(b"COMMIT")
    response = client.get("https://fake.test/paid")
    assert proxy.dropped.is_set()
    assert response.status_code == 200
    assert [r.state for r in journal.payments()] == ["settled"]  # its settled mark first
    rows = PostgresJournal(pg_url, heartbeat=False).payments()
    assert [r.state for r in rows] == ["settled"]
    assert len(server.accepted) == 1 and len(method.paid) == 1
    client.close()
    wallet.close()


def test_a_lost_acknowledgement_of_a_step_is_found_by_its_write_token(pg, pg_url, proxy):
    journal = PostgresJournal(proxy.url(pg_url, pg.port), heartbeat=False)
    wallet = Wallet(journal=journal, policy=workers.policy("100"))
    reservation = run_sync(wallet.reserve(quote(1_000), context(), PaymentOptions()))
    reservation.signed("0xabc")
    proxy.arm(b"set_config('synchronous_commit'")  # ``sent``: one flushed statement
    reservation.sent("fp", "0xabc")
    assert proxy.dropped.is_set()
    proxy.arm(b"UPDATE mpp_payments")  # an autocommit step: the settled mark
    reservation.settled({"status": "success"}, "0xabc")
    journal.get(reservation.id)  # this process's next read writes the mark first
    assert proxy.dropped.is_set()
    entry = PostgresJournal(pg_url, heartbeat=False).get(reservation.id)
    assert (entry.state, entry.fingerprint) == ("settled", "fp")
    assert entry.receipt == {"status": "success"}
    wallet.close()


@pytest.mark.slow
def test_a_restart_in_the_middle_of_a_fleet_loses_and_repeats_nothing(pg, pg_url):
    restarted: list[int] = []
    done = Counter()

    def on_progress(worker: int, count: int) -> None:
        done[worker] = count
        if not restarted and sum(done.values()) >= 100:
            pg.restart("fast")  # in-flight statements get AdminShutdown; reconnects follow
            restarted.append(sum(done.values()))

    urls = host_urls(pg, pg_url)[2:6]  # two processes on each "host"
    results = run_fleet(urls, [100] * 4, "100", on_progress=on_progress)
    assert restarted
    outcomes, accepted, signed = tally(results)
    assert outcomes["other"] == 0 and outcomes["refused"] == 0
    assert outcomes["paid"] + outcomes["journal"] == 400
    assert len(set(signed)) == len(signed) and len(set(accepted)) == len(accepted)
    journal = PostgresJournal(pg_url, heartbeat=False)
    rows = journal.payments()
    by_challenge = Counter(r.challenge_id for r in rows)
    assert max(by_challenge.values()) == 1  # no entry written twice
    settled = sorted(r.challenge_id for r in rows if r.state == "settled")
    assert settled == sorted(accepted)  # every payment the servers took is in the journal
    assert outcomes["paid"] == len(accepted)
    for row in rows:
        if row.challenge_id not in accepted:
            assert not row.held or row.state in ("unknown", "sent")  # never silently dropped
    journal.close()
