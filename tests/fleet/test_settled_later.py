"""The ``settled`` marks the journal writes after the payment (``advance_later``): a check
carries them in its own statement, ``close()`` writes what is still queued, a mark the server
refuses stops nothing, and a mark lost with a killed process leaves the entry ``sent``, held,
found ``unknown`` once the lease expires and reconciled once."""

from __future__ import annotations

import logging
import multiprocessing
import signal
import time

import pytest

from mpp_client.guard import PaymentOptions
from mpp_client.runner import run_sync
from mpp_client.testing.clock import ManualClock
from mpp_client.wallet import Wallet, postgres
from mpp_client.wallet.postgres import PostgresJournal

from ..wallet.conftest import context, quote
from . import workers
from .test_faults import SettledLookup

SPAWN = multiprocessing.get_context("spawn")


@pytest.fixture
def marks_wait(monkeypatch):
    """Marks wait for the next read of the journal (no background write in the test's time)."""
    monkeypatch.setattr(postgres, "_LATER_DELAY", 3600.0)


def sent_and_settled(wallet: Wallet, settled_reference: str = "0xtx") -> str:
    reservation = run_sync(wallet.reserve(quote(1_000), context(), PaymentOptions()))
    reservation.sent("fp", "0xtx")
    reservation.settled({"status": "success"}, settled_reference)
    return reservation.id


def test_a_mark_still_queued_when_the_wallet_closes_is_written(pg_url, marks_wait):
    journal = PostgresJournal(pg_url, heartbeat=False)
    wallet = Wallet(journal=journal, policy=workers.policy("100"))
    entry_id = sent_and_settled(wallet)
    other = PostgresJournal(pg_url, heartbeat=False)
    assert other.get(entry_id).state == "sent"  # queued: only this process knows yet
    wallet.close()
    entry = other.get(entry_id)
    assert (entry.state, entry.receipt, entry.held) == ("settled", {"status": "success"}, True)
    other.close()


def test_a_check_carries_the_queued_marks_in_its_own_statement(pg_url, marks_wait, monkeypatch):
    journal = PostgresJournal(pg_url, heartbeat=False)
    wallet = Wallet(journal=journal, policy=workers.policy("100"))
    ids = [sent_and_settled(wallet) for _ in range(2)]
    statements: list[str] = []
    write_later = journal._write_later
    monkeypatch.setattr(journal, "_write_later", lambda conn: statements.append("marks")
                        or write_later(conn))  # fmt: skip
    wallet.check(quote(1_000), context(), PaymentOptions())
    assert statements == [] and journal._later == []  # no statement of their own
    other = PostgresJournal(pg_url, heartbeat=False)
    assert [other.get(i).state for i in ids] == ["settled", "settled"]
    other.close()
    wallet.close()


def test_a_mark_the_server_refuses_stops_no_check_and_the_entry_stays_held(
    pg_url, marks_wait, caplog
):
    journal = PostgresJournal(pg_url, heartbeat=False)
    wallet = Wallet(journal=journal, policy=workers.policy("100"))
    entry_id = sent_and_settled(wallet, settled_reference="0x\x00")  # no text column takes a NUL
    with caplog.at_level(logging.WARNING, logger="mpp_client.wallet"):
        wallet.check(quote(1_000), context(), PaymentOptions())
    assert "could not record that 1 payment(s) settled" in caplog.text
    assert journal._later == []
    entry = journal.get(entry_id)
    assert (entry.state, entry.held) == ("sent", True)  # reconciled like any unwritten outcome
    wallet.close()


def test_a_mark_lost_with_a_killed_process_is_reconciled_from_sent_once(pg_url):
    queue, stop = SPAWN.Queue(), SPAWN.Event()
    worker = SPAWN.Process(target=workers.settle_and_die, args=(pg_url, queue, stop))
    worker.start()
    entry_id, queued = queue.get(timeout=60)
    stop.set()
    worker.join(timeout=60)
    assert worker.exitcode == -signal.SIGKILL and queued == 1
    assert PostgresJournal(pg_url, heartbeat=False).get(entry_id).state == "sent"

    later = ManualClock(time.time() + 3600)  # past the dead worker's lease
    other = Wallet([SettledLookup()], journal=PostgresJournal(pg_url, lease_clock=later,
                                                               heartbeat=False))  # fmt: skip
    [unknown] = other.unknown_payments()
    assert unknown.id == entry_id and unknown.held and "lease expired" in (unknown.reason or "")
    [outcome] = other.reconcile()
    assert (outcome.entry_id, outcome.outcome) == (entry_id, "settled")
    assert other.journal.recover() == []  # claimed once
    assert other.journal.get(entry_id).state == "settled"
    other.close()
