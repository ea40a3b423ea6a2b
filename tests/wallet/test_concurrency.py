"""Budgets cannot be overrun by threads, asyncio tasks or processes sharing one journal file,
and a process killed mid-payment leaves an entry that is reported and reconciled."""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
from collections import Counter
from collections.abc import Generator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from mpp_client.errors import BudgetExceeded
from mpp_client.guard import PaymentOptions
from mpp_client.methods.base import LookupResult
from mpp_client.runner import run_sync
from mpp_client.testing import TestMethod
from mpp_client.wallet import Limit, SpendPolicy, SqliteJournal, Wallet, usd

from . import workers
from .conftest import context, quote

SPAWN = multiprocessing.get_context("spawn")


def _run(target, args_list, timeout=60):
    queue = SPAWN.Queue()
    processes = [SPAWN.Process(target=target, args=(*args, queue)) for args in args_list]
    for process in processes:
        process.start()
    results = [queue.get(timeout=timeout) for _ in processes]
    for process in processes:
        process.join(timeout=timeout)
        assert process.exitcode == 0
    return results


def test_threads_never_overrun_a_cap(make_wallet):
    wallet = make_wallet(SpendPolicy(limits=(Limit(usd("1"), "day"),), pin_payees=False))

    def attempt(_):
        try:
            run_sync(wallet.reserve(quote(30_000), context(), PaymentOptions()))
            return True
        except BudgetExceeded:
            return False

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(attempt, range(100)))
    assert results.count(True) == 33  # 33 * $0.03 = $0.99; a 34th would exceed $1
    held = wallet.payments(state="reserved")
    assert len(held) == 33 and sum(p.exposure for p in held) == 990_000


def test_processes_and_threads_never_overrun_a_shared_cap(tmp_path):
    path = str(tmp_path / "shared.sqlite3")
    SqliteJournal(path).close()  # create the file before the race
    results = _run(workers.reserve_many, [(path, w, 4, 40) for w in range(4)])
    granted = [entry for _, ids, _ in results for entry in ids]
    assert sum(attempted for _, _, attempted in results) == 160
    assert len(granted) == 100  # $1.00 / $0.01: exactly the cap, never more
    assert len(set(granted)) == 100
    journal = SqliteJournal(path)
    rows = journal.payments()
    assert len(rows) == 100 and {r.id for r in rows} == set(granted)
    assert {r.state for r in rows} == {"settled"}
    assert sum(r.exposure for r in rows) == 1_000_000
    journal.close()


class SettledLookup(TestMethod):
    """A TestMethod whose lookup finds the payment settled (like a chain receipt would)."""

    def lookup(
        self, reference: str, *, void_after: Any = None
    ) -> Generator[Any, Any, LookupResult]:
        return LookupResult("settled", reference, amount=250_000, detail="found on chain")
        yield


def test_sigkill_between_sending_and_answer_leaves_unknown_entry(tmp_path, caplog):
    path = str(tmp_path / "crash.sqlite3")
    SqliteJournal(path).close()
    process = SPAWN.Process(target=workers.die_after_sending, args=(path,))
    process.start()
    process.join(timeout=60)
    assert process.exitcode == -signal.SIGKILL

    with caplog.at_level(logging.WARNING, logger="mpp_client.wallet"):
        wallet = Wallet([SettledLookup()], journal=path)
    assert "unknown outcome" in caplog.text
    [entry] = wallet.unknown_payments()
    assert entry.amount.amount == 250_000
    assert entry.reference and entry.reference.startswith("test-")
    assert entry.fingerprint  # the credential's fingerprint was recorded before it left
    assert "ended after the payment was sent" in (entry.reason or "")
    assert wallet.already_paid(entry.reference)

    # The unknown amount stays reserved against the budget until reconciled.
    wallet.policy = SpendPolicy(limits=(Limit(usd("1"), "day"),), pin_payees=False)
    with pytest.raises(BudgetExceeded):
        wallet.check(quote(750_001), context(), PaymentOptions())

    [outcome] = wallet.reconcile()
    assert (outcome.entry_id, outcome.outcome) == (entry.id, "settled")
    assert wallet.unknown_payments() == []
    assert wallet.journal.get(entry.id).state == "settled"
    wallet.close()


def test_recovery_releases_reservations_of_dead_processes_that_signed_nothing(tmp_path):
    path = tmp_path / "j.sqlite3"
    journal = SqliteJournal(path)
    wallet = Wallet(journal=journal)
    reservation = run_sync(wallet.reserve(quote(1), context(), PaymentOptions()))
    signed = run_sync(wallet.reserve(quote(2), context(), PaymentOptions()))
    signed.signed("0xabc")
    # Pretend both belong to a process that has exited.
    with journal._write() as conn:
        conn.execute("UPDATE payments SET owner=?", (f"{os.uname().nodename}:999999999:1",))
    became_unknown = journal.recover()
    assert [r.id for r in became_unknown] == [signed.id]
    assert journal.get(reservation.id).state == "failed"
    assert journal.get(reservation.id).money_moved is False
    wallet.close()


def test_recovery_leaves_live_processes_alone(make_wallet):
    wallet = make_wallet()
    reservation = run_sync(wallet.reserve(quote(1), context(), PaymentOptions()))
    reservation.sent("fp", "0x1")
    assert wallet.journal.recover() == []
    assert wallet.journal.get(reservation.id).state == "sent"


@pytest.mark.slow
def test_thousand_paid_requests_from_four_processes_share_one_budget(tmp_path):
    path = str(tmp_path / "budget.sqlite3")
    SqliteJournal(path).close()
    results = _run(workers.paid_requests, [(path, w, 250) for w in range(4)], timeout=120)

    outcomes = Counter()
    accepted_ids: list[str] = []
    for _, outcome, _accepted, ids in results:
        outcomes.update(outcome)
        accepted_ids.extend(ids)
    assert outcomes["other"] == 0
    assert outcomes["paid"] + outcomes["refused"] == 1000
    cap = workers.SHARED_CAP.amount  # $0.75 in micro-dollars; each request costs 1000
    assert outcomes["paid"] == cap // 1000  # the budget is used up exactly, never overrun

    journal = SqliteJournal(path)
    rows = journal.payments()
    assert len(rows) == outcomes["paid"] == len(accepted_ids)  # no row lost or duplicated
    assert len({r.id for r in rows}) == len(rows)
    assert sorted(r.challenge_id for r in rows) == sorted(accepted_ids)
    assert {r.state for r in rows} == {"settled"}
    assert sum(r.exposure for r in rows) <= cap
    assert all(r.receipt and r.receipt.get("status") == "success" for r in rows)
    assert {r.label for r in rows} == {None}
    journal.close()
