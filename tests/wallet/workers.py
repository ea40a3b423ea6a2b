"""Code that runs in child processes of the wallet concurrency and crash tests.

Each function is a process target (spawned, so nothing is inherited but arguments) and reports
through a multiprocessing queue. The journal file is the only thing the processes share.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import httpx

from mpp_client.errors import BudgetExceeded, PaymentRefused
from mpp_client.guard import PaymentOptions
from mpp_client.methods.base import Payee, PaymentContext, Quote
from mpp_client.money import Currency, Money
from mpp_client.protocol import Challenge
from mpp_client.runner import run_sync
from mpp_client.testing import FakeMppServer, Offer, Route, TestMethod
from mpp_client.transport import AsyncPaymentTransport, PaymentTransport
from mpp_client.wallet import Limit, SpendPolicy, Wallet, usd

STABLE = Currency("0x20c0", 6, network="eip155:4217", symbol="pathUSD", usd_pegged=True)
#: Every process uses the same policy: $0.75 per rolling day, $0.001 per request below.
SHARED_CAP = usd("0.75")
POLICY = SpendPolicy(limits=(Limit(SHARED_CAP, "day"),))


def reserve_many(path: str, worker: int, threads: int, attempts: int, queue) -> None:
    """Reserve ``attempts`` payments of $0.01 from ``threads`` threads; report ids obtained."""
    wallet = Wallet(policy=SpendPolicy(limits=(Limit(usd("1"), "day"),)), journal=path)
    start = threading.Barrier(threads)

    def one(n: int) -> str | None:
        challenge = Challenge(f"w{worker}-{n}", "r", "tempo", "charge", "e30", {})
        quote = Quote(challenge, "tempo", "charge", Money(10_000, STABLE),
                      (Payee("0xm", 10_000),), None, network="eip155:4217")  # fmt: skip
        ctx = PaymentContext("https://a.example", "https://a.example/x", "GET",
                             datetime.now(UTC), f"w{worker}-{n}")  # fmt: skip
        try:
            reservation = run_sync(wallet.reserve(quote, ctx, PaymentOptions()))
        except BudgetExceeded:
            return None
        reservation.signed("0x" + challenge.id)
        reservation.sent("fp", None)
        reservation.settled(None, None)
        return reservation.id

    def lane(lane_no: int) -> list[str | None]:
        start.wait()
        return [one(lane_no * attempts + i) for i in range(attempts // threads)]

    with ThreadPoolExecutor(threads) as pool:
        results = [r for rs in pool.map(lane, range(threads)) for r in rs]
    queue.put((worker, [r for r in results if r is not None], len(results)))
    wallet.close()


def die_after_sending(path: str) -> None:
    """Pay through the real transport; the process is SIGKILLed as the credential arrives."""
    server = FakeMppServer({"/paid": Route(offers=(Offer(amount="250000"),))})
    inner = server.mock_transport()

    def handler(request: httpx.Request) -> httpx.Response:
        if request.headers.get("authorization", "").lower().startswith("payment "):
            os.kill(os.getpid(), signal.SIGKILL)  # between sending and the response
        return inner.handle_request(request)

    wallet = Wallet([TestMethod()], journal=path)
    transport = PaymentTransport(httpx.MockTransport(handler), wallet=wallet)
    with httpx.Client(transport=transport) as client:
        client.get("https://fake.test/paid")
    raise AssertionError("the process should have been killed")


def die_as_settled_is_handed_over(path: str) -> None:
    """Pay through the real transport; the process is SIGKILLed the moment the ``settled`` mark
    is handed to the journal's writer thread, before anything writes it."""
    from mpp_client.wallet import SqliteJournal

    def crash(journal: SqliteJournal, step: object) -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    SqliteJournal._hand_over = crash  # type: ignore[method-assign]
    server = FakeMppServer({"/paid": Route(offers=(Offer(amount="250000"),))})
    wallet = Wallet([TestMethod()], journal=path)
    transport = PaymentTransport(server.mock_transport(), wallet=wallet)
    with httpx.Client(transport=transport) as client:
        client.get("https://fake.test/paid")
    raise AssertionError("the process should have been killed")


def _amount() -> Offer:
    return Offer(amount="1000")  # $0.001 in the 6-decimal test currency


def paid_requests(path: str, worker: int, total: int, queue) -> None:
    """``total`` paid requests against one shared budget: half from 8 threads with sync httpx,
    half as concurrent asyncio tasks with async httpx; a few through requests."""
    import requests  # noqa: F401  (the requests driver is exercised below)

    from mpp_client.requests_session import PaymentSession

    server = FakeMppServer({"/paid": Route(offers=(_amount(),))})
    wallet = Wallet([TestMethod()], policy=POLICY, journal=path)
    outcome = {"paid": 0, "refused": 0, "other": 0}
    lock = threading.Lock()

    def count(kind: str) -> None:
        with lock:
            outcome[kind] += 1

    def sync_lane(n: int, client: httpx.Client) -> None:
        for _ in range(n):
            try:
                response = client.get("https://fake.test/paid")
                count("paid" if response.status_code == 200 else "other")
            except PaymentRefused:
                count("refused")

    n_requests = 10
    n_async = (total - n_requests) // 2
    n_sync = total - n_requests - n_async
    transport = PaymentTransport(server.mock_transport(), wallet=wallet)
    with httpx.Client(transport=transport) as client, ThreadPoolExecutor(8) as pool:
        lanes = [n_sync // 8 + (1 if i < n_sync % 8 else 0) for i in range(8)]
        futures = [pool.submit(sync_lane, n, client) for n in lanes]

        async def async_part() -> None:
            atransport = AsyncPaymentTransport(server.mock_transport(), wallet=wallet)
            async with httpx.AsyncClient(transport=atransport) as aclient:
                gate = asyncio.Semaphore(32)

                async def one() -> None:
                    async with gate:
                        try:
                            response = await aclient.get("https://fake.test/paid")
                            count("paid" if response.status_code == 200 else "other")
                        except PaymentRefused:
                            count("refused")

                await asyncio.gather(*(one() for _ in range(n_async)))

        asyncio.run(async_part())
        with server.serve() as base_url, PaymentSession(wallet=wallet) as session:
            for _ in range(n_requests):
                try:
                    response = session.get(base_url + "/paid", mpp=PaymentOptions())
                    count("paid" if response.status_code == 200 else "other")
                except PaymentRefused:
                    count("refused")
        for future in futures:
            future.result()
    queue.put((worker, outcome, len(server.accepted), [c.challenge.id for c in server.accepted]))
    wallet.close()
