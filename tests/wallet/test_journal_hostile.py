"""Hostile journals: a damaged row is reported and skipped, never fatal to ``Wallet()`` or to a
read, and it keeps counting against budgets; a damaged or newer schema is refused, untouched."""

from __future__ import annotations

import logging
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from mpp_client.errors import BudgetExceeded, JournalError, UnresolvedPayments
from mpp_client.guard import PaymentOptions
from mpp_client.runner import run_sync
from mpp_client.wallet import Limit, SpendPolicy, SqliteJournal, Wallet, usd

from .conftest import PATH_USD, Clock, context, pay, quote

DAY_CAP = Limit(usd("0.50"), "day")
POLICY = SpendPolicy(limits=(DAY_CAP,), pin_payees=False)
VICTIM = 300_000  # base units of PATH_USD: $0.30
OTHER = 100_000


def _journal_with_two_payments(path: Path, clock: Clock, victim_state: str = "settled") -> str:
    """A journal holding $0.30 (the row the test damages) and $0.10; returns the first's id."""
    with Wallet(policy=POLICY, journal=SqliteJournal(path, clock=clock)) as wallet:
        reservation = pay(wallet, quote(VICTIM), settle=victim_state == "settled")
        if victim_state == "unknown":
            reservation.signed("0xtx")
            reservation.sent("fp", "0xtx")
            reservation.unknown("the server did not answer")
        pay(wallet, quote(OTHER))
        return reservation.id


def _corrupt(path: Path, sql: str, *args: object) -> None:
    conn = sqlite3.connect(path)
    with conn:
        assert conn.execute(sql, args).rowcount == 1
    conn.close()


# (what is damaged, SET clause of a raw UPDATE, the column the report names)
ROW_DAMAGE = [
    ("amount not an integer", "amount='abc'", "amount"),
    ("amount a float", "amount=1.5", "amount"),
    ("unknown state text", "state='exploded'", "state"),
    ("state a number", "state=7", "state"),
    ("payees not JSON", "payees='[{not json'", "payees"),
    ("payees a number list", "payees='[1, 2]'", "payees"),
    ("payees an object", "payees='{\"address\": 1}'", "payees"),
    ("payee amount text", 'payees=\'[{"address": "0xa", "amount": "1"}]\'', "payees"),
    ("negative decimals", "currency_decimals=-1", "currency_decimals"),
    ("decimals text", "currency_decimals='six'", "currency_decimals"),
    ("timestamp text", "created_at='yesterday'", "created_at"),
    ("timestamp out of range", "updated_at=1e300", "updated_at"),
    ("expiry not a time", "expires='soon'", "expires"),
    ("receipt not JSON", "receipt='{'", "receipt"),
    ("money_moved not a flag", "money_moved=7", "money_moved"),
    ("origin not UTF-8", "origin=CAST(X'ff' AS TEXT)", "origin"),
    ("id a blob", "id=X'00'", "id"),
    ("void_after text", "void_after='never'", "void_after"),
]


@pytest.mark.parametrize(("what", "damage", "column"), ROW_DAMAGE, ids=[c[0] for c in ROW_DAMAGE])
def test_a_damaged_row_is_skipped_reported_and_still_counted(
    tmp_path, clock, caplog, what, damage, column
):
    path = tmp_path / "journal.sqlite3"
    victim = _journal_with_two_payments(path, clock)
    _corrupt(path, f"UPDATE payments SET {damage} WHERE id=?", victim)

    caplog.set_level(logging.WARNING, logger="mpp_client.wallet")
    with Wallet(policy=POLICY, journal=SqliteJournal(path, clock=clock)) as wallet:
        journal = wallet.journal
        assert isinstance(journal, SqliteJournal)
        # Every read works and skips only the damaged row.
        listed = wallet.payments()
        assert [record.amount.amount for record in listed] == [OTHER]
        assert journal.get(victim) is None
        assert wallet.unknown_payments() == []
        assert wallet.export(tmp_path / "out.jsonl") == 1
        (damaged,) = journal.damaged()
        assert damaged.problem.startswith(column + ":")
        assert damaged.held and damaged.seq == 1
        if column != "id":
            assert damaged.id == victim
            assert victim in caplog.text
        assert "row 1" in caplog.text and "still counts against budgets" in caplog.text
        assert "Traceback" not in caplog.text

        # Money safety: the damaged row's $0.30 still counts, lifetime and in the day.
        ledger = journal.ledger()
        now = ledger.now()
        for since in (None, now - 86_400):
            assert ledger.held_totals(since=since) == [(PATH_USD, VICTIM + OTHER)]
        with pytest.raises(BudgetExceeded):
            pay(wallet, quote(150_000))  # 0.30 + 0.10 + 0.15 > 0.50
        pay(wallet, quote(50_000))  # within what is left: the wallet still works


def test_an_unreadable_state_counts_as_unknown_for_the_breaker(tmp_path, clock):
    path = tmp_path / "journal.sqlite3"
    victim = _journal_with_two_payments(path, clock)
    _corrupt(path, "UPDATE payments SET state='exploded' WHERE id=?", victim)
    journal = SqliteJournal(path, clock=clock)
    with Wallet(policy=POLICY, journal=journal, max_unknown=1) as wallet:
        assert journal.unresolved() == [victim]
        with pytest.raises(UnresolvedPayments) as refused:
            pay(wallet, quote(10_000))
        assert victim in str(refused.value)


def test_a_damaged_unknown_row_does_not_stop_the_wallet_opening(tmp_path, clock, caplog):
    # The reported crash: an unknown entry is read by Wallet() itself (its start-up warning).
    path = tmp_path / "journal.sqlite3"
    victim = _journal_with_two_payments(path, clock, victim_state="unknown")
    _corrupt(path, "UPDATE payments SET amount='lots' WHERE id=?", victim)
    caplog.set_level(logging.WARNING, logger="mpp_client.wallet")
    journal = SqliteJournal(path, clock=clock)
    with Wallet(policy=POLICY, journal=journal, max_unknown=1) as wallet:
        assert wallet.unknown_payments() == []  # skipped from the listing ...
        assert journal.unresolved() == [victim]  # ... but the breaker still counts it
        assert [d.id for d in journal.damaged()] == [victim]
        assert victim in caplog.text
        with pytest.raises(UnresolvedPayments):
            pay(wallet, quote(10_000))


def test_a_damaged_row_is_logged_once_per_journal(tmp_path, clock, caplog):
    path = tmp_path / "journal.sqlite3"
    victim = _journal_with_two_payments(path, clock)
    _corrupt(path, "UPDATE payments SET payees='x' WHERE id=?", victim)
    caplog.set_level(logging.WARNING, logger="mpp_client.wallet")
    journal = SqliteJournal(path, clock=clock)
    for _ in range(3):
        journal.payments()
    assert caplog.text.count(victim) == 1
    journal.close()


def test_a_damaged_pin_or_currency_refuses_instead_of_crashing(tmp_path, clock):
    path = tmp_path / "journal.sqlite3"
    pinned = SpendPolicy(limits=(DAY_CAP,))  # pins payees per origin
    with Wallet(policy=pinned, journal=SqliteJournal(path, clock=clock)) as wallet:
        pay(wallet, quote(OTHER))
    _corrupt(path, "UPDATE pins SET payees='{broken'")
    with (
        Wallet(policy=pinned, journal=SqliteJournal(path, clock=clock)) as wallet,
        pytest.raises(JournalError, match=r"payee pin for https://api\.example\.com"),
    ):
        pay(wallet, quote(OTHER))
    _corrupt(path, "UPDATE currencies SET decimals=-1")
    with (
        Wallet(policy=POLICY, journal=SqliteJournal(path, clock=clock)) as wallet,
        pytest.raises(JournalError, match="currency 1 is damaged"),
    ):
        wallet.check(quote(OTHER), context(), PaymentOptions())


def test_a_damaged_prune_watermark_is_rewritten(tmp_path, clock):
    path = tmp_path / "journal.sqlite3"
    _journal_with_two_payments(path, clock)
    _corrupt(path, "UPDATE meta SET value='soon' WHERE key='buckets_pruned_before'")
    with Wallet(policy=POLICY, journal=SqliteJournal(path, clock=clock)) as wallet:
        pay(wallet, quote(50_000))
    conn = sqlite3.connect(path)
    (value,) = conn.execute("SELECT value FROM meta WHERE key='buckets_pruned_before'").fetchone()
    conn.close()
    assert value.isdigit()


# --- the schema ---------------------------------------------------------------------------------


def _bytes_of(path: Path) -> bytes:
    return path.read_bytes()


def _set_schema(path: Path, value: object) -> None:
    _corrupt(path, "UPDATE meta SET value=? WHERE key='schema'", value)


SCHEMA_DAMAGE = [
    ("text", "abc", "schema version 'abc' is not a number"),
    ("empty", "", "schema version '' is not a number"),
    ("negative", "-1", "schema version '-1' is not a number"),
    ("decimal", "3.0", "schema version '3.0' is not a number"),
    ("newer", "4", "schema version 4, newer than this mpp-client knows (3): upgrade mpp-client"),
    ("much newer", 999, "schema version 999, newer than this mpp-client knows (3)"),
]


@pytest.mark.parametrize(
    ("what", "value", "message"), SCHEMA_DAMAGE, ids=[c[0] for c in SCHEMA_DAMAGE]
)
def test_a_damaged_or_newer_schema_is_refused_untouched(tmp_path, clock, what, value, message):
    path = tmp_path / "journal.sqlite3"
    _journal_with_two_payments(path, clock)
    _set_schema(path, value)
    before = _bytes_of(path)
    with pytest.raises(JournalError) as refused:
        Wallet(policy=POLICY, journal=str(path))
    assert message in str(refused.value)
    assert str(path) in str(refused.value)
    assert _bytes_of(path) == before


def test_a_newer_schema_is_reported_by_the_cli_without_a_traceback(tmp_path, clock):
    path = tmp_path / "journal.sqlite3"
    _journal_with_two_payments(path, clock)
    _set_schema(path, "abc")
    code = (
        "import sys\n"
        "from mpp_client.errors import JournalError\n"
        "from mpp_client.wallet import Wallet\n"
        "try:\n"
        f"    Wallet(journal={str(path)!r})\n"
        "except JournalError as exc:\n"
        "    print(exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0
    assert "is not a number" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr


def test_a_file_that_is_not_a_database_names_the_file(tmp_path):
    path = tmp_path / "journal.sqlite3"
    path.write_bytes(b"not sqlite at all " * 64)
    before = _bytes_of(path)
    with pytest.raises(JournalError, match=r"journal\.sqlite3"):
        SqliteJournal(path)
    assert _bytes_of(path) == before


def test_held_money_is_counted_with_the_currency_scale_intact(tmp_path, clock):
    # A damaged display column (decimals) does not change what the held amount is counted as:
    # budgets use the currency the payment was reserved in (its ``currency_id``).
    path = tmp_path / "journal.sqlite3"
    victim = _journal_with_two_payments(path, clock)
    _corrupt(path, "UPDATE payments SET currency_decimals=0 WHERE id=?", victim)
    with Wallet(policy=POLICY, journal=SqliteJournal(path, clock=clock)) as wallet:
        totals = wallet.journal.ledger().held_totals()
        assert totals == [(PATH_USD, VICTIM + OTHER)]
        with pytest.raises(BudgetExceeded):
            run_sync(wallet.reserve(quote(150_000), context(), PaymentOptions()))
