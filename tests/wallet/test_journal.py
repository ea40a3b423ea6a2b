"""The journal records every step of every payment, queries and exports them, and never holds
a credential."""

from __future__ import annotations

import csv
import io
import json
import os
import stat

import pytest

from mpp_client.errors import JournalError
from mpp_client.guard import PaymentOptions
from mpp_client.methods.base import Payee
from mpp_client.protocol import Receipt
from mpp_client.runner import run_sync
from mpp_client.wallet import SpendPolicy, SqliteJournal, Wallet

from .conftest import ORIGIN, context, pay, quote


def test_every_step_is_recorded_with_what_the_flow_knows(make_wallet):
    wallet = make_wallet()
    q = quote(123_456, payees=(Payee("0xa", 100_000), Payee("0xb", 23_456)))
    ctx = context(call_id="call-1")
    reservation = run_sync(wallet.reserve(q, ctx, PaymentOptions(label="lookup")))
    entry = wallet.journal.get(reservation.id)
    assert entry.state == "reserved"
    assert (entry.challenge_id, entry.realm, entry.origin) == (
        q.challenge.id,
        q.challenge.realm,
        ORIGIN,
    )
    assert (entry.method, entry.intent, entry.call_id, entry.label) == (
        "tempo",
        "charge",
        "call-1",
        "lookup",
    )
    assert entry.amount == q.amount and entry.exposure == 123_456
    assert entry.payees == q.payees and entry.network == "eip155:4217"

    reservation.signed("0xtxhash")
    assert wallet.journal.get(reservation.id).state == "signed"
    reservation.sent("sha256:abcd", None)
    entry = wallet.journal.get(reservation.id)
    assert (entry.state, entry.reference, entry.fingerprint) == ("sent", "0xtxhash", "sha256:abcd")
    receipt = Receipt(status="success", method="tempo", timestamp="2026-09-01T12:04:31Z",
                      reference="0xtxhash", challenge_id=q.challenge.id)  # fmt: skip
    reservation.settled(receipt, "0xtxhash")
    entry = wallet.journal.get(reservation.id)
    assert entry.state == "settled"
    assert entry.receipt["reference"] == "0xtxhash" and entry.receipt["status"] == "success"
    assert entry.updated_at >= entry.created_at


def test_final_states_do_not_move_back(make_wallet, caplog):
    wallet = make_wallet()
    reservation = pay(wallet, quote(1))
    reservation.failed("late failure", money_moved=False)
    assert wallet.journal.get(reservation.id).state == "settled"
    assert "ignored a move to failed from settled" in caplog.text


def test_unknown_is_released_only_with_a_proof(make_wallet):
    wallet = make_wallet()
    reservation = pay(wallet, quote(1), settle=False)
    reservation.sent("fp", "0x1")
    reservation.unknown("timeout")
    # An error is not a proof: asked to release without one, the journal keeps it held.
    assert wallet.journal.advance(reservation.id, "failed", reason="guess", money_moved=False)
    entry = wallet.journal.get(reservation.id)
    assert (entry.state, entry.held) == ("unknown", True)
    assert wallet.journal.advance(
        reservation.id, "failed", reason="not on chain", money_moved=False, proof="lookup"
    )
    entry = wallet.journal.get(reservation.id)
    assert (entry.state, entry.money_moved, entry.held) == ("failed", False, False)
    assert entry.proof == "lookup"


def test_a_failure_after_the_credential_left_is_never_released_without_proof(make_wallet):
    wallet = make_wallet()
    reservation = pay(wallet, quote(1), settle=False)
    reservation.sent("fp", "0x1")
    reservation.failed("server said no", money_moved=False)
    entry = wallet.journal.get(reservation.id)
    assert (entry.state, entry.held) == ("unknown", True)
    reservation.failed("unclear", money_moved=None)
    assert wallet.journal.get(reservation.id).state == "unknown"


def test_a_payment_that_never_left_is_released_without_proof(make_wallet):
    wallet = make_wallet()
    reservation = pay(wallet, quote(1), settle=False)
    reservation.signed("0x1")
    reservation.failed("the node refused to sign", money_moved=False)
    entry = wallet.journal.get(reservation.id)
    assert (entry.state, entry.held, entry.proof) == ("failed", False, None)


def test_already_paid_sees_sent_settled_and_unknown(make_wallet):
    wallet = make_wallet(SpendPolicy(pin_payees=False))
    assert not wallet.already_paid("0xhash")
    reservation = pay(wallet, quote(1), settle=False)
    reservation.signed("0xhash")
    assert not wallet.already_paid("0xhash")  # signed only: nothing left the process
    reservation.sent("fp", "0xhash")
    assert wallet.already_paid("0xhash")
    released = pay(wallet, quote(1), settle=False)
    released.signed("0xother")
    released.failed("refused", money_moved=False)
    assert not wallet.already_paid("0xother")


def test_query_filters(make_wallet):
    wallet = make_wallet(SpendPolicy(pin_payees=False))
    pay(wallet, quote(1), context("https://a.example"))
    pay(wallet, quote(2, method="tempo"), context("https://b.example"))
    failed = pay(wallet, quote(3), settle=False)
    failed.failed("no", money_moved=False)
    assert [p.amount.amount for p in wallet.payments(origin="https://a.example")] == [1]
    assert [p.amount.amount for p in wallet.payments(state="failed")] == [3]
    assert [p.amount.amount for p in wallet.payments(state=["settled", "failed"], limit=2)] == [
        1,
        2,
    ]
    assert [p.amount.amount for p in wallet.payments(reference="0xtx")] == [1, 2]
    with pytest.raises(ValueError):
        wallet.payments(state="paid")  # type: ignore[arg-type]


def test_export_jsonl_and_csv(make_wallet, tmp_path):
    wallet = make_wallet()
    pay(wallet, quote(1_500))
    pay(wallet, quote(2_500))
    assert wallet.export(tmp_path / "out.jsonl") == 2
    lines = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [line["amount"] for line in lines] == [1_500, 2_500]
    assert lines[0]["amount_display"] == "0.001500 pathUSD"
    assert lines[0]["decimals"] == 6 and lines[0]["state"] == "settled"

    buffer = io.StringIO()
    assert wallet.export(buffer, format="csv") == 2
    rows = list(csv.DictReader(io.StringIO(buffer.getvalue())))
    assert [r["amount"] for r in rows] == ["1500", "2500"]
    assert json.loads(rows[0]["payees"]) == [{"address": "0xmerchant", "amount": 1500}]
    with pytest.raises(ValueError):
        wallet.export(buffer, format="xml")  # type: ignore[arg-type]


def test_journal_file_is_private_and_in_wal_mode(make_wallet, journal_path):
    make_wallet()
    assert stat.S_IMODE(os.stat(journal_path).st_mode) == 0o600
    assert os.path.exists(str(journal_path) + "-wal")


def test_memory_journal_for_throwaway_use():
    wallet = Wallet(journal=":memory:")
    pay(wallet, quote(1))
    assert len(wallet.payments()) == 1
    wallet.close()
    with pytest.raises(JournalError):
        wallet.payments()


def test_default_journal_location(monkeypatch, tmp_path):
    from mpp_client.wallet import default_journal_path

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    monkeypatch.delenv("MPP_JOURNAL", raising=False)
    if os.name == "posix" and os.uname().sysname == "Linux":
        assert default_journal_path() == str(tmp_path / "mpp-client" / "journal.sqlite3")
    monkeypatch.setenv("MPP_JOURNAL", str(tmp_path / "x.sqlite3"))
    wallet = Wallet()
    assert wallet.journal.path == str(tmp_path / "x.sqlite3")
    wallet.close()


def test_unreadable_journal_is_a_journal_error(tmp_path):
    path = tmp_path / "not-a-db.sqlite3"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(JournalError):
        SqliteJournal(path)
