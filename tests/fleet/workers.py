"""Code that runs in the child processes of the fleet tests (spawned: nothing is inherited but
arguments). Each pays through the real ``Wallet`` and ``PaymentTransport`` with ``TestMethod``
against its own ``FakeMppServer`` and reports, through a queue, what the server accepted and
what the method signed. The PostgreSQL database is the only thing the processes share."""

from __future__ import annotations

import os
import signal
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx

from mpp_client.errors import JournalError, PaymentRefused
from mpp_client.guard import PaymentOptions
from mpp_client.runner import run_sync
from mpp_client.testing import FakeMppServer, Offer, Route, TestMethod
from mpp_client.transport import PaymentTransport
from mpp_client.wallet import Limit, SpendPolicy, Wallet, usd
from mpp_client.wallet.postgres import PostgresJournal

#: $0.001 per request in the test currency (6 decimals).
PRICE = 1000


def policy(cap: str) -> SpendPolicy:
    return SpendPolicy(limits=(Limit(usd(cap), "day"),), pin_payees=False)


def pay_many(url: str, worker: int, total: int, cap: str, pool_size: int, start, queue) -> None:
    """``total`` paid requests from 4 threads; report outcomes, accepted and signed ids."""
    journal = PostgresJournal(url, pool_size=pool_size)
    method = TestMethod()
    wallet = Wallet([method], policy=policy(cap), journal=journal, max_unknown=None)
    server = FakeMppServer({"/paid": Route(offers=(Offer(amount=str(PRICE)),))})
    transport = PaymentTransport(server.mock_transport(), wallet=wallet)
    outcome: dict[str, int] = {"paid": 0, "refused": 0, "journal": 0, "other": 0}
    lock = threading.Lock()
    progress = [0]

    def count(kind: str) -> None:
        with lock:
            outcome[kind] += 1
            progress[0] += 1
            if progress[0] % 25 == 0:
                queue.put(("progress", worker, progress[0]))

    def lane(n: int, client: httpx.Client) -> None:
        for _ in range(n):
            try:
                response = client.get("https://fake.test/paid")
                count("paid" if response.status_code == 200 else "other")
            except PaymentRefused:
                count("refused")
            except JournalError:
                count("journal")  # the database went away: refused before signing

    queue.put(("ready", worker, 0))
    start.wait()
    with httpx.Client(transport=transport) as client, ThreadPoolExecutor(4) as pool:
        lanes = [total // 4 + (1 if i < total % 4 else 0) for i in range(4)]
        for future in [pool.submit(lane, n, client) for n in lanes]:
            future.result()
    queue.put(
        (
            "done",
            worker,
            {
                "outcome": outcome,
                "accepted": [c.challenge.id for c in server.accepted],
                "signed": list(method.paid),
            },
        )
    )
    wallet.close()


def hold_and_die(url: str, lease_seconds: float, queue, stop) -> None:
    """Leave one ``reserved`` and one ``sent`` entry, report them, wait to be SIGKILLed."""
    from ..wallet.conftest import context, quote

    journal = PostgresJournal(url, lease_seconds=lease_seconds)
    wallet = Wallet(journal=journal, policy=SpendPolicy(pin_payees=False))
    reserved = run_sync(wallet.reserve(quote(1_000), context(), PaymentOptions()))
    sent = run_sync(wallet.reserve(quote(2_000), context(), PaymentOptions()))
    sent.signed("0xsent")
    sent.sent("fp", "0xsent")
    queue.put((reserved.id, sent.id, journal._owner_id))
    stop.wait()
    os.kill(os.getpid(), signal.SIGKILL)


def claim(url: str, now: float, start, queue) -> None:
    """Claim expired leases as of ``now`` (a lease clock far ahead of the dead worker's)."""
    from mpp_client.testing.clock import ManualClock

    journal = PostgresJournal(url, lease_clock=ManualClock(now), heartbeat=False)
    start.wait()
    queue.put([record.id for record in journal.recover()])
    journal.close()


def settle_and_die(url: str, queue, stop) -> None:
    """Pay one entry to ``settled`` with its mark still queued (no background write in the
    test's time), report it, wait to be SIGKILLed: the mark dies with the process."""
    from mpp_client.wallet import postgres

    from ..wallet.conftest import context, quote

    postgres._LATER_DELAY = 3600.0
    journal = PostgresJournal(url, lease_seconds=30.0)
    wallet = Wallet([TestMethod()], journal=journal, policy=SpendPolicy(pin_payees=False))
    paid = quote(1_000, method="test")  # TestMethod's: a reconciler can look it up
    reservation = run_sync(wallet.reserve(paid, context(), PaymentOptions()))
    reservation.sent("fp", "0xsettled")
    reservation.settled({"status": "success"}, "0xsettled")
    queue.put((reservation.id, len(journal._later)))
    stop.wait()
    os.kill(os.getpid(), signal.SIGKILL)
