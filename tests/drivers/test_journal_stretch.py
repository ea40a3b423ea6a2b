"""The async driver runs the hold, the signing after it and the ``sent`` step in one hand-off
to its journal worker (``JournalAccess.resume_in_worker``), and stays correct doing so.

A stretch runs flow code in the worker thread. What must not change: every step of it is
written before the caller hears of a cancellation; hooks still run on the event loop; a driver
that goes away mid-stretch leaves the flow to record its outcome in the worker.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest

from mpp_client import AsyncPaymentTransport, Money, payment_of
from mpp_client.effects import Effect, JournalWrite
from mpp_client.errors import MppError, PaymentFailed
from mpp_client.flow import PaymentHooks
from mpp_client.guard import OpenGuard, PaymentOptions, Reservation, _OpenReservation
from mpp_client.methods.base import PaymentContext, PaymentProof, Quote
from mpp_client.runner import AsyncRunner, _JournalWorker
from mpp_client.testing import TestMethod
from mpp_client.testing.method import TEST_CURRENCY
from mpp_client.testing.server import FakeMppServer, Offer, Route
from mpp_client.trampoline import drive_async
from mpp_client.wallet import Limit, SpendPolicy, Wallet

PATIENCE = 10.0
URL = "https://fake.test/paid"


def _wallet(path: Path, method: TestMethod) -> Wallet:
    policy = SpendPolicy(limits=(Limit(Money(10**9, TEST_CURRENCY), "day"),), pin_payees=False)
    return Wallet([method], journal=path, policy=policy)


def _server() -> FakeMppServer:
    return FakeMppServer({"/paid": Route(offers=(Offer(amount="1000"),))})


class _SlowSigner(TestMethod):
    """Blocks in ``pay`` (in the journal worker, inside the stretch) until released."""

    def __init__(self) -> None:
        super().__init__()
        self.started = threading.Event()
        self.release = threading.Event()
        self.threads: list[int] = []

    def pay(self, quote: Quote, context: PaymentContext) -> Generator[Effect, Any, PaymentProof]:
        self.threads.append(threading.get_ident())
        self.started.set()
        assert self.release.wait(PATIENCE)
        return (yield from super().pay(quote, context))


def test_one_hand_off_for_the_hold_the_signing_and_the_sent_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    submitted: list[str] = []
    submit = _JournalWorker.submit

    def counting(self: _JournalWorker, function: Any) -> asyncio.Future[Any]:
        submitted.append(getattr(function, "__qualname__", repr(function)))
        return submit(self, function)

    monkeypatch.setattr(_JournalWorker, "submit", counting)
    method = TestMethod()
    wallet = _wallet(tmp_path / "journal.sqlite3", method)
    server = _server()
    paid_on: list[int] = []
    hooks = PaymentHooks(on_paid=lambda quote, proof: paid_on.append(threading.get_ident()))

    async def main() -> tuple[int, httpx.Response]:
        transport = AsyncPaymentTransport(server.mock_transport(), wallet=wallet, hooks=hooks)
        async with httpx.AsyncClient(transport=transport) as client:
            return threading.get_ident(), await client.get(URL)

    loop_thread, response = asyncio.run(main())
    payment = payment_of(response)
    assert response.status_code == 200 and payment is not None and payment.status == "paid"
    assert len(submitted) == 1, submitted  # the settled mark goes to the journal's own writer
    assert paid_on == [loop_thread]  # the hook after the sent step ran on the loop
    (entry,) = wallet.payments()
    assert entry.state == "settled" and entry.fingerprint is not None
    wallet.close()


@dataclass
class _InMemoryReservation(_OpenReservation):
    steps_block: ClassVar[bool] = False  # kept in memory: no I/O to take off the loop


@dataclass
class _InMemoryGuard(OpenGuard):
    def reserve(
        self, quote: Quote, context: PaymentContext, options: PaymentOptions
    ) -> Generator[Effect, Any, Reservation]:
        entry = _InMemoryReservation(f"memory-{len(self.entries)}", quote)
        self.entries.append(entry)
        return entry
        yield  # pragma: no cover - a generator like every guard's reserve


def test_a_reservation_without_io_is_written_without_a_hand_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    submitted: list[Any] = []
    submit = _JournalWorker.submit

    def counting(self: _JournalWorker, function: Any) -> asyncio.Future[Any]:
        submitted.append(function)
        return submit(self, function)

    monkeypatch.setattr(_JournalWorker, "submit", counting)
    guard = _InMemoryGuard()
    server = _server()

    async def main() -> httpx.Response:
        transport = AsyncPaymentTransport(
            server.mock_transport(), methods=[TestMethod()], guard=guard
        )
        async with httpx.AsyncClient(transport=transport) as client:
            return await client.get(URL)

    response = asyncio.run(main())
    assert response.status_code == 200
    assert submitted == []
    (entry,) = guard.entries
    assert entry.history == ["sent", "settled"]  # signed is written with sent


def test_cancelled_mid_stretch_the_steps_it_began_are_written_first(tmp_path: Path) -> None:
    method = _SlowSigner()
    wallet = _wallet(tmp_path / "journal.sqlite3", method)
    server = _server()

    async def main() -> int:
        transport = AsyncPaymentTransport(server.mock_transport(), wallet=wallet)
        async with httpx.AsyncClient(transport=transport) as client:
            task = asyncio.ensure_future(client.get(URL))
            assert await asyncio.to_thread(method.started.wait, PATIENCE)
            task.cancel()  # while the worker signs: the flow is not the loop's to throw into
            method.release.set()
            with pytest.raises(asyncio.CancelledError):
                await task
            return threading.get_ident()

    loop_thread = asyncio.run(main())
    assert method.threads and loop_thread not in method.threads  # signed in the worker
    # By the time the caller saw the cancellation, the stretch had written the sent step and
    # the flow had recorded what the cancellation means: the credential may be out, so held.
    (entry,) = wallet.payments()
    assert (entry.state, entry.held) == ("unknown", True), entry.reason
    assert entry.fingerprint is not None
    assert server.accepted == []  # never sent: the cancellation came first
    wallet.close()


class _Counting(TestMethod):
    def __init__(self) -> None:
        super().__init__()
        self.signed = 0

    def pay(self, quote: Quote, context: PaymentContext) -> Generator[Effect, Any, PaymentProof]:
        self.signed += 1
        return (yield from super().pay(quote, context))


@pytest.mark.parametrize("stretch", [True, False], ids=["stretch", "step-by-step"])
@pytest.mark.parametrize("commit", ["after", "before"], ids=["committed", "committing"])
def test_cancelled_while_the_hold_runs_nothing_is_signed_and_the_hold_is_released(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, commit: str, stretch: bool
) -> None:
    """The cancellation arrives while the hold runs in the worker, before (``committing``) or
    after (``committed``) its commit: the method never signs, nothing is sent, and the entry
    is released, not left ``reserved`` and held with nobody to release it."""
    if not stretch:  # every step its own hand-off, as under an await_timeout
        monkeypatch.setattr(AsyncRunner, "offload", property(lambda self: None))
    method = _Counting()
    wallet = _wallet(tmp_path / "journal.sqlite3", method)
    started, release = threading.Event(), threading.Event()
    real_hold = wallet._hold

    def slow_hold(*args: Any) -> Any:
        if commit == "before":
            started.set()
            assert release.wait(PATIENCE)
        held = real_hold(*args)
        if commit == "after":
            started.set()
            assert release.wait(PATIENCE)
        return held

    monkeypatch.setattr(wallet, "_hold", slow_hold)
    server = _server()

    async def main() -> httpx.Response:
        transport = AsyncPaymentTransport(server.mock_transport(), wallet=wallet)
        async with httpx.AsyncClient(transport=transport) as client:
            task = asyncio.ensure_future(client.get(URL))
            assert await asyncio.to_thread(started.wait, PATIENCE)
            task.cancel()
            release.set()
            with pytest.raises(asyncio.CancelledError):
                await task
            # The same worker runs the next payment's hold after the first one ended.
            started.clear()
            release.set()
            return await client.get(URL)

    response = asyncio.run(main())
    assert response.status_code == 200
    entries = {entry.state: entry for entry in wallet.payments()}
    assert sorted(entries) == ["failed", "settled"]
    first = entries["failed"]
    assert (first.held, first.money_moved) == (False, False), first.reason
    assert first.fingerprint is None  # no credential was made for it
    assert method.signed == 1 and len(server.accepted) == 1  # only the second payment
    wallet.close()


def test_a_hook_the_flow_reaches_in_the_worker_runs_on_the_loop(tmp_path: Path) -> None:
    method = TestMethod(fail=lambda: PaymentFailed("declined by the backend", money_moved=False))
    wallet = _wallet(tmp_path / "journal.sqlite3", method)
    server = _server()
    failures: list[tuple[int, str]] = []
    hooks = PaymentHooks(
        on_failure=lambda quote, error: failures.append((threading.get_ident(), str(error)))
    )

    async def main() -> int:
        transport = AsyncPaymentTransport(server.mock_transport(), wallet=wallet, hooks=hooks)
        async with httpx.AsyncClient(transport=transport) as client:
            with pytest.raises(MppError, match="declined"):
                await client.get(URL)
        return threading.get_ident()

    loop_thread = asyncio.run(main())
    assert [thread for thread, _ in failures] == [loop_thread]
    (entry,) = wallet.payments()
    assert (entry.state, entry.held) == ("failed", False)  # nothing left: released
    wallet.close()


def test_a_driver_closed_mid_stretch_leaves_the_flow_to_the_worker() -> None:
    release = threading.Event()
    ended = threading.Event()
    seen: list[tuple[str, int]] = []

    def hold() -> str:
        assert release.wait(PATIENCE)
        return "held"

    def sent() -> None:
        seen.append(("sent", threading.get_ident()))

    def flow() -> Generator[Any, Any, None]:
        try:
            assert (yield JournalWrite(hold, resume_in_worker=True)) == "held"
            yield JournalWrite(sent)
            yield JournalWrite(lambda: None)
        except GeneratorExit:
            seen.append(("ended", threading.get_ident()))
            ended.set()
            raise

    async def main() -> int:
        runner = AsyncRunner()
        driving = drive_async(flow(), runner.perform, offload=runner.offload)
        driving.send(None)  # now waiting for the stretch
        driving.close()  # the driver goes away: it cannot wait
        release.set()
        assert await asyncio.to_thread(ended.wait, PATIENCE)
        await runner.aclose()
        return threading.get_ident()

    loop_thread = asyncio.run(main())
    # The hold was performed, but its result never reached the flow: it was ended where it
    # stood, in the worker (the loop was no longer driving it), before its next step.
    assert [name for name, _ in seen] == ["ended"]
    assert loop_thread not in {thread for _, thread in seen}
