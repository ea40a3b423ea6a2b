"""Under ``AsyncPaymentTransport`` the wallet never touches its journal on the event loop.

Every read (the policy check: running totals, pins) and every write (the hold, each step after
it, with its fsync) runs in the runner's journal worker thread, one thread, in order, except
the ``settled`` mark, which the loop hands to the journal's own writer thread without waiting
(``advance_later``). Proven by a journal wrapper that records the thread of every call and by
SQLite's trace of every statement with the thread that ran it (not by timing).
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import httpx

from mpp_client import AsyncPaymentTransport, Money, PaymentTransport, payment_of
from mpp_client.testing import TestMethod
from mpp_client.testing.method import TEST_CURRENCY
from mpp_client.testing.server import FakeMppServer, Offer, Route
from mpp_client.wallet import Limit, SpendPolicy, Wallet
from mpp_client.wallet.journal import Journal, SqliteJournal, open_journal


class ThreadRecordingJournal:
    """Forwards to a real journal and records (method name, thread id) of every call made
    while ``recording`` is set."""

    def __init__(self, inner: Journal) -> None:
        self._inner = inner
        self.recording = False
        self.calls: list[tuple[str, int]] = []

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._inner, name)
        if not callable(value):
            return value

        def call(*args: Any, **kwargs: Any) -> Any:
            if self.recording:
                self.calls.append((name, threading.get_ident()))
            return value(*args, **kwargs)

        return cast(Callable[..., Any], call)


def _traced(journal: Journal, statements: list[tuple[int, str]]) -> Journal:
    """Record (thread id, SQL) of every statement any connection of ``journal`` runs."""
    assert isinstance(journal, SqliteJournal)
    open_connection = journal._open

    def traced_open(*args: Any) -> sqlite3.Connection:
        conn = open_connection(*args)
        conn.set_trace_callback(lambda sql: statements.append((threading.get_ident(), sql)))
        return conn

    journal._open = traced_open  # type: ignore[method-assign]
    # Every write goes through one connection, opened with the journal: trace it as well.
    journal._writer().set_trace_callback(
        lambda sql: statements.append((threading.get_ident(), sql))
    )
    return journal


def _wallet(
    path: Path, statements: list[tuple[int, str]] | None = None
) -> tuple[Wallet, ThreadRecordingJournal]:
    inner = open_journal(path)
    if statements is not None:
        inner = _traced(inner, statements)
    journal = ThreadRecordingJournal(inner)
    policy = SpendPolicy(limits=(Limit(Money(10**9, TEST_CURRENCY), "day"),), pin_payees=False)
    wallet = Wallet([TestMethod()], journal=cast(Journal, journal), policy=policy)
    return wallet, journal


def _server() -> FakeMppServer:
    return FakeMppServer({"/paid": Route(offers=(Offer(amount="1000"),))})


def test_async_payments_read_and_write_the_journal_off_the_event_loop(tmp_path: Path) -> None:
    statements: list[tuple[int, str]] = []
    wallet, journal = _wallet(tmp_path / "journal.sqlite3", statements)
    server = _server()

    async def pay_five() -> tuple[int, list[httpx.Response]]:
        transport = AsyncPaymentTransport(server.mock_transport(), wallet=wallet)
        async with httpx.AsyncClient(transport=transport) as client:
            statements.clear()  # opening the wallet wrote on this thread, before the loop
            journal.recording = True
            answers = await asyncio.gather(
                *(client.get("https://fake.test/paid") for _ in range(5))
            )
            journal.recording = False
        return threading.get_ident(), answers

    loop_thread, answers = asyncio.run(pay_five())
    during = list(statements)  # the reads below run on this (the loop's) thread, after it

    assert [a.status_code for a in answers] == [200] * 5
    payments = [payment_of(a) for a in answers]
    assert all(p is not None and p.status == "paid" for p in payments)
    names = {name for name, _ in journal.calls}
    # The hold checked the policy and wrote in one transaction, the sent step advanced the
    # entry, the settled mark was handed over: all of them happened ...
    assert {"atomic", "advance", "advance_later"} <= names
    # ... and only the hand-over, which runs no SQL, on the loop's thread.
    on_loop = {name for name, thread in journal.calls if thread == loop_thread}
    assert on_loop == {"advance_later"}
    threads = {thread for name, thread in journal.calls if name != "advance_later"}
    assert loop_thread not in threads
    assert len(threads) == 1  # one journal worker, so the steps keep their order
    settled = [r for r in wallet.payments() if r.state == "settled"]
    assert len(settled) == 5
    assert during and loop_thread not in {thread for thread, _ in during}
    wallet.close()


def test_sync_payments_use_the_journal_inline(tmp_path: Path) -> None:
    wallet, journal = _wallet(tmp_path / "journal.sqlite3")
    server = _server()
    with httpx.Client(transport=PaymentTransport(server.mock_transport(), wallet=wallet)) as c:
        journal.recording = True
        assert c.get("https://fake.test/paid").status_code == 200
        journal.recording = False
    assert {thread for _, thread in journal.calls} == {threading.get_ident()}
    wallet.close()
