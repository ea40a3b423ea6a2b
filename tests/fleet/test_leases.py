"""Liveness across hosts: a SIGKILLed worker's lease expires, and its entries are claimed once:
the one that signed nothing is released, the one whose credential left becomes unknown."""

from __future__ import annotations

import multiprocessing
import signal
import time

import pytest

from mpp_client.errors import JournalError
from mpp_client.guard import PaymentOptions
from mpp_client.runner import run_sync
from mpp_client.testing.clock import ManualClock
from mpp_client.wallet import Wallet
from mpp_client.wallet.postgres import PostgresJournal

from ..wallet.conftest import context, quote
from . import workers

SPAWN = multiprocessing.get_context("spawn")


def test_a_killed_workers_entries_are_reported_unknown_and_claimed_exactly_once(pg_url):
    queue, stop = SPAWN.Queue(), SPAWN.Event()
    worker = SPAWN.Process(target=workers.hold_and_die, args=(pg_url, 30.0, queue, stop))
    worker.start()
    reserved_id, sent_id, _owner = queue.get(timeout=60)
    stop.set()
    worker.join(timeout=60)
    assert worker.exitcode == -signal.SIGKILL

    # Its lease has not expired yet: nobody touches its entries.
    now = ManualClock(time.time())
    early = PostgresJournal(pg_url, lease_clock=now, heartbeat=False)
    assert early.recover() == []
    assert early.get(sent_id).state == "sent"

    # Past the expiry, three processes race to claim it: exactly one does.
    start, results = SPAWN.Event(), SPAWN.Queue()
    claimers = [
        SPAWN.Process(target=workers.claim, args=(pg_url, time.time() + 31, start, results))
        for _ in range(3)
    ]
    for claimer in claimers:
        claimer.start()
    start.set()
    claimed = sorted((results.get(timeout=60) for _ in claimers), key=len)
    for claimer in claimers:
        claimer.join(timeout=60)
    assert claimed == [[], [], [sent_id]]
    entry = early.get(sent_id)
    assert entry.state == "unknown" and entry.held and "lease expired" in entry.reason
    released = early.get(reserved_id)
    assert (released.state, released.held, released.money_moved) == ("failed", False, False)
    assert early.unresolved() == [sent_id]
    now.advance(3600)
    assert early.recover() == []  # never claimed twice
    early.close()


def test_a_process_whose_lease_was_claimed_stops_before_signing(pg_url, caplog):
    slow_clock = ManualClock(1_000.0)
    slow = PostgresJournal(pg_url, lease_clock=slow_clock, lease_seconds=10, heartbeat=False)
    wallet = Wallet(journal=slow)
    reservation = run_sync(wallet.reserve(quote(1_000), context(), PaymentOptions()))
    # Another process, whose clock says the lease ran out, claims it.
    other = PostgresJournal(pg_url, lease_clock=ManualClock(1_011.0), heartbeat=False)
    assert other.recover() == []  # it was only reserved: released, not unknown
    assert other.get(reservation.id).state == "failed"
    with pytest.raises(JournalError, match="cannot record it as signed"):
        reservation.signed("0xabc")
    # Its next hold takes a new lease, with a warning.
    later = run_sync(wallet.reserve(quote(1_000), context(), PaymentOptions()))
    assert "was claimed by another process" in caplog.text
    assert slow.get(later.id).owner != slow.get(reservation.id).owner
    other.close()
    wallet.close()
