"""Fewer journal writes per payment, the same money rules.

The flow writes a ``signed`` checkpoint with the ``sent`` step when the method returns right
after it (one durable write before the credential leaves), and the ``settled`` mark is handed
to the journal's writer thread. Each shortcut is safe only because of what a crash leaves
behind; these tests kill or abandon a payment at those points and look.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sqlite3
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from mpp_client import PaymentTransport, payment_of
from mpp_client.effects import JournalWrite
from mpp_client.flow import FlowConfig, RequestFacts, payment_flow
from mpp_client.guard import PaymentOptions
from mpp_client.runner import run_sync
from mpp_client.testing import FakeMppServer, Offer, Route, TestMethod
from mpp_client.transport import _head
from mpp_client.wallet import Limit, SpendPolicy, SqliteJournal, Wallet, usd

from . import workers
from .conftest import context, quote

SPAWN = multiprocessing.get_context("spawn")
DEAD_OWNER = f"{os.uname().nodename}:999999999:1"  # a process that no longer runs


def _server() -> FakeMppServer:
    return FakeMppServer({"/paid": Route(offers=(Offer(amount="250000"),))})


def _first_402(server: FakeMppServer) -> Any:
    with httpx.Client(transport=server.mock_transport()) as client:
        response = client.get("https://fake.test/paid")
    response.read()
    return _head(response, response.content)


def _facts() -> RequestFacts:
    origin = "https://fake.test"
    return RequestFacts("GET", origin + "/paid", origin, origin, {}, b"", None, PaymentOptions())


def test_a_crash_before_the_sent_step_releases_what_was_only_signed(tmp_path: Path) -> None:
    # The method signed and returned; the flow's next write is the sent step, which it yields
    # before the credential leaves. A crash here leaves the entry reserved: nothing left the
    # process, so a restart releases it.
    journal = SqliteJournal(tmp_path / "j.sqlite3")
    wallet = Wallet([TestMethod()], journal=journal)
    config = FlowConfig.build(wallet.methods, wallet)
    flow = payment_flow(config, _facts(), _first_402(_server()))
    effect = flow.send(None)
    while not (isinstance(effect, JournalWrite) and "_attempt" in effect.function.__qualname__):
        effect = flow.send(effect.function())  # the hold
    [entry] = wallet.payments()
    assert (entry.state, entry.held) == ("reserved", True)
    with journal._write() as conn:
        conn.execute("UPDATE payments SET owner=?", (DEAD_OWNER,))
    assert journal.recover() == []
    released = journal.get(entry.id)
    assert released is not None and (released.state, released.held) == ("failed", False)
    flow.close()
    wallet.close()


def test_the_sent_step_names_what_was_signed_in_one_durable_write(tmp_path: Path) -> None:
    journal = SqliteJournal(tmp_path / "j.sqlite3")
    wallet = Wallet([TestMethod()], journal=journal)
    statements: list[str] = []
    with httpx.Client(transport=PaymentTransport(_server().mock_transport(), wallet=wallet)) as c:
        c.get("https://fake.test/paid")  # connections opened, first-use pin written
        # Every write goes through the journal's one write connection.
        journal._writer().set_trace_callback(statements.append)
        response = c.get("https://fake.test/paid")
    payment = payment_of(response)
    assert payment is not None and payment.status == "paid"
    entry = journal.get(payment.journal_id or "")  # after the settled mark (read your writes)
    journal._writer().set_trace_callback(None)
    assert entry is not None and entry.state == "settled"
    assert entry.reference and entry.reference.startswith("test-") and entry.fingerprint
    updates = [s for s in statements if s.startswith("UPDATE payments")]
    assert not any("state='signed'" in s for s in updates)  # folded into the sent step
    # Only the sent commit fsyncs: it alone runs at synchronous=FULL, on the one write
    # connection, which is back at NORMAL right after it.
    # (A trace repeats a statement for each trigger it fires.)
    sent = [i for i, s in enumerate(statements) if "SET state='sent'" in s]
    assert sent and sent == list(range(sent[0], sent[-1] + 1))
    assert statements[sent[0] - 1] == "PRAGMA synchronous=FULL"
    assert statements[sent[-1] + 1] == "PRAGMA synchronous=NORMAL"
    assert [s for s in statements if "synchronous" in s] == [
        "PRAGMA synchronous=FULL",
        "PRAGMA synchronous=NORMAL",
    ]
    assert any("SET state='settled'" in s for s in statements)  # same connection, from a thread
    assert journal._writer().execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    wallet.close()


def test_a_settled_mark_lost_in_a_crash_leaves_the_payment_held(tmp_path: Path) -> None:
    path = str(tmp_path / "crash.sqlite3")
    SqliteJournal(path).close()
    process = SPAWN.Process(target=workers.die_as_settled_is_handed_over, args=(path,))
    process.start()
    process.join(timeout=60)
    assert process.exitcode == -signal.SIGKILL
    # The server took the payment, but its settled mark died with the process: the entry is
    # still sent, so the restart makes it unknown and keeps its amount held until reconciled.
    wallet = Wallet([TestMethod()], journal=path)
    [entry] = wallet.unknown_payments()
    assert entry.held and entry.amount.amount == 250_000
    assert entry.reference and entry.fingerprint
    assert "ended after the payment was sent" in (entry.reason or "")
    wallet.policy = SpendPolicy(limits=(Limit(usd("1"), "day"),), pin_payees=False)
    with pytest.raises(Exception, match="cap"):
        wallet.check(quote(750_001), context(), PaymentOptions())
    wallet.close()


def test_a_settled_mark_is_read_back_at_once_and_written_by_close(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    journal = SqliteJournal(path)
    # The writer thread never runs in this test: the step waits until this journal is used.
    journal._hand_over = journal._later.append  # type: ignore[method-assign]
    wallet = Wallet(journal=journal)
    reservation = run_sync(wallet.reserve(quote(1), context(), PaymentOptions()))
    reservation.sent("fp", "0x1")
    reservation.settled(None, "0x1")
    other = sqlite3.connect(path)
    assert other.execute("SELECT state FROM payments").fetchall() == [("sent",)]
    # This process reads what it wrote: every read writes the steps handed over first.
    entry = journal.get(reservation.id)
    assert entry is not None and entry.state == "settled"
    reservation2 = run_sync(wallet.reserve(quote(2), context(), PaymentOptions()))
    reservation2.sent("fp", "0x2")
    reservation2.settled(None, "0x2")
    wallet.close()  # writes what is left
    states = other.execute("SELECT state FROM payments ORDER BY seq").fetchall()
    assert states == [("settled",), ("settled",)]
    other.close()


def test_only_settled_is_written_in_the_background(tmp_path: Path) -> None:
    journal = SqliteJournal(tmp_path / "j.sqlite3")
    with pytest.raises(ValueError):
        journal.advance_later("x", "sent")
    journal.close()


def test_the_writer_thread_writes_settled_marks(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    wallet = Wallet([TestMethod()], journal=path)
    before = set(threading.enumerate())
    with httpx.Client(transport=PaymentTransport(_server().mock_transport(), wallet=wallet)) as c:
        for _ in range(3):
            assert c.get("https://fake.test/paid").status_code == 200
    journal = wallet.journal
    assert isinstance(journal, SqliteJournal) and journal._wake is not None
    [writer] = [t for t in set(threading.enumerate()) - before if t.name == "mpp-journal-writer"]
    # Ask the writer to stop after what it has and wait for it: no sleeping, no polling.
    journal._wake.put(False)
    writer.join(timeout=30)
    assert not writer.is_alive() and not journal._later
    other = sqlite3.connect(path)
    assert other.execute("SELECT DISTINCT state FROM payments").fetchall() == [("settled",)]
    other.close()
    wallet.close()


def test_a_background_mark_that_no_longer_applies_is_logged_once(tmp_path: Path, caplog) -> None:
    journal = SqliteJournal(tmp_path / "j.sqlite3")
    journal._hand_over = journal._later.append  # type: ignore[method-assign]
    wallet = Wallet(journal=journal)
    reservation = run_sync(wallet.reserve(quote(1), context(), PaymentOptions()))
    reservation.failed("refused before signing", money_moved=False)
    reservation.settled(None, "0x1")  # too late: the entry is final
    entry = journal.get(reservation.id)  # writes the mark first: refused, logged, no loop
    assert entry is not None and (entry.state, entry.held) == ("failed", False)
    assert caplog.text.count("ignored a move to settled from failed") == 1
    assert not journal._later
    wallet.close()
