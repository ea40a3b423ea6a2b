"""``LightningSession`` on its own (no server, no network): every check before a deposit is
paid, the order of the open (return invoice first, record before paying, preimage recorded
before it can leave), bearer and close credentials, the server's reported spend, and that the
preimage shows in no repr or listing. Invoices are real, signed locally; time is a
``ManualClock``."""

from __future__ import annotations

import os
from collections.abc import Generator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mpp_client.effects import Checkpoint, Effect
from mpp_client.errors import BudgetExceeded, ChallengeExpired, NothingSent, PaymentRefused
from mpp_client.methods.base import PaymentContext
from mpp_client.methods.lightning.payer import CannotReceive, CreatedInvoice, PayResult, Received
from mpp_client.methods.lightning.session import LightningSession
from mpp_client.protocol import Challenge, Receipt
from mpp_client.wallet.channels import ChannelStore

from ..effects_driver import Recorder, run
from ..fake_payer import RecordingPayer
from ..invoices import make_invoice

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
ORIGIN = "https://api.example.com"


class Receiver(RecordingPayer):
    """Pays like ``RecordingPayer`` and issues the amountless invoice it is given."""

    receives_amountless = True

    def __init__(self, outcome, *, invoice_amount_msat: int | None = None, **kwargs: Any):
        super().__init__(outcome, **kwargs)
        self.issued: list[CreatedInvoice] = []
        self.amount_msat = invoice_amount_msat

    def create_amountless_invoice(
        self, memo: str, expiry_seconds: int
    ) -> Generator[Effect, Any, CreatedInvoice]:
        made = make_invoice(self.amount_msat, expiry=expiry_seconds, created=int(NOW.timestamp()))
        created = CreatedInvoice(made.text, made.payment_hash)
        self.issued.append(created)
        return created
        yield

    def lookup_received(self, payment_hash: str) -> Generator[Effect, Any, Received]:
        return Received("unknown", payment_hash)
        yield


def preimage_payer(deposit) -> Receiver:
    return Receiver(lambda invoice, fee: PayResult(deposit.preimage, deposit.payment_hash, 0))


def session_challenge(deposit, **overrides: Any) -> Challenge:
    request = {
        "amount": "1",
        "currency": "sat",
        "depositInvoice": deposit.text,
        "paymentHash": deposit.payment_hash,
        "depositAmount": "300",
        "idleTimeout": "300",
    }
    request.update(overrides)
    request = {k: v for k, v in request.items() if v is not None}
    return Challenge.create(
        id=os.urandom(8).hex(),
        realm="api.example.com",
        method="lightning",
        intent="session",
        request=request,
        expires=NOW + timedelta(minutes=5),
    )


def context() -> PaymentContext:
    return PaymentContext(origin=ORIGIN, url=f"{ORIGIN}/stream", http_method="GET", now=NOW)


def new_deposit(sats: int = 300, **kwargs: Any):
    return make_invoice(sats * 1000, created=int(NOW.timestamp()), **kwargs)


def method(payer, **kwargs: Any) -> LightningSession:
    return LightningSession(payer, store=ChannelStore(":memory:"), max_fee_sats=0, **kwargs)


def drive_with_journal(gen) -> tuple[Any, Recorder]:
    """Run ``gen``; JournalWrite (an Await) is performed inline by the driver."""
    recorder = Recorder()
    return run(gen, recorder=recorder), recorder


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"depositAmount": "250"}, "challenge depositAmount is 250"),
        ({"paymentHash": "ab" * 32}, "paymentHash differs"),
        ({"paymentHash": None}, "paymentHash is not 64 hex"),
        ({"depositInvoice": None}, "no depositInvoice"),
        ({"currency": "BTC"}, "currency must be 'sat'"),
        ({"amount": "1.5"}, "positive whole number"),
        ({"network": "regtest"}, "challenge says regtest"),
        ({"idleTimeout": "-1"}, "idleTimeout"),
    ],
)
def test_a_deposit_that_does_not_match_its_challenge_is_refused_before_paying(overrides, reason):
    deposit = new_deposit()
    payer = preimage_payer(deposit)
    session = method(payer)
    with pytest.raises(PaymentRefused, match=reason):
        session.quote(session_challenge(deposit, **overrides), context())
    assert payer.calls == [] and payer.issued == []


def test_default_deposit_is_twenty_units_and_is_checked_too():
    deposit = new_deposit(20)
    session = method(preimage_payer(deposit))
    quote = session.quote(session_challenge(deposit, depositAmount=None, amount="1"), context())
    assert quote.amount.amount == 20
    with pytest.raises(PaymentRefused, match="default deposit is 40"):
        session.quote(session_challenge(deposit, depositAmount=None, amount="2"), context())


def test_expired_or_paid_before_or_above_the_cap_is_refused():
    deposit = make_invoice(300_000, created=int(NOW.timestamp()) - 3590, expiry=3600)
    with pytest.raises(ChallengeExpired):
        method(preimage_payer(deposit)).quote(session_challenge(deposit), context())
    fresh = new_deposit()
    paid = method(preimage_payer(fresh), already_paid=lambda h: h == fresh.payment_hash)
    with pytest.raises(PaymentRefused, match="already paid"):
        paid.quote(session_challenge(fresh), context())
    with pytest.raises(BudgetExceeded):
        method(preimage_payer(fresh), max_deposit_sats=299).quote(
            session_challenge(fresh), context()
        )


def test_a_payer_that_cannot_receive_is_refused_at_the_quote():
    deposit = new_deposit()
    payer = RecordingPayer(lambda i, f: PayResult(deposit.preimage, deposit.payment_hash, 0))
    with pytest.raises(CannotReceive):
        method(payer).quote(session_challenge(deposit), context())
    assert payer.calls == []


def test_open_issues_the_return_invoice_first_records_then_pays_and_keeps_the_preimage_secret():
    deposit = new_deposit()
    payer = preimage_payer(deposit)
    session = method(payer)
    quote = session.quote(session_challenge(deposit), context())
    assert (quote.amount.amount, quote.reference) == (300, deposit.payment_hash)
    proof, recorder = drive_with_journal(session.pay(quote, context()))
    kinds = [type(e).__name__ for e in recorder.effects]
    # record the session (JournalWrite) -> broadcast checkpoint -> pay -> preimage (JournalWrite)
    assert kinds == ["JournalWrite", "Checkpoint", "JournalWrite"]
    assert isinstance(recorder.effects[1], Checkpoint)
    assert len(payer.issued) == 1 and len(payer.calls) == 1
    returned = payer.issued[0]
    assert proof.payload == {
        "action": "open",
        "preimage": deposit.preimage,
        "returnInvoice": returned.invoice,
    }
    assert proof.money_moved is True
    record = session.store.get(deposit.payment_hash)
    assert record is not None and record.state == "opening" and record.deposit == 300
    assert record.details["returnHash"] == returned.payment_hash
    shown = " ".join([repr(record), str(record.to_dict()), repr(proof), repr(session)])
    assert deposit.preimage not in shown
    assert session.store.secret(deposit.payment_hash).reveal() == deposit.preimage
    assert deposit.preimage not in repr(session.store.secret(deposit.payment_hash))


def test_a_return_invoice_with_an_amount_stops_the_open_with_nothing_paid():
    deposit = new_deposit()
    payer = Receiver(
        lambda i, f: PayResult(deposit.preimage, deposit.payment_hash, 0),
        invoice_amount_msat=1000,
    )
    session = method(payer)
    quote = session.quote(session_challenge(deposit), context())
    with pytest.raises(NothingSent, match="has an amount"):
        drive_with_journal(session.pay(quote, context()))
    assert payer.calls == []
    assert session.store.channels() == []


def test_bearer_and_close_cost_nothing_and_carry_the_recorded_preimage():
    deposit = new_deposit()
    session = method(preimage_payer(deposit))
    quote = session.quote(session_challenge(deposit), context())
    proof, _ = drive_with_journal(session.pay(quote, context()))
    session.on_receipt(quote, proof, _receipt(deposit.payment_hash))
    bearer = session.quote(session_challenge(new_deposit()), context())
    assert bearer.amount.amount == 0 and bearer.details["action"] == "bearer"
    payload = drive_with_journal(session.pay(bearer, context()))[0].payload
    assert payload == {
        "action": "bearer",
        "sessionId": deposit.payment_hash,
        "preimage": deposit.preimage,
    }
    with session._expecting(ORIGIN, "close"):
        close = session.quote(session_challenge(new_deposit()), context())
    closing = drive_with_journal(session.pay(close, context()))[0]
    assert closing.payload["action"] == "close" and closing.money_moved is False
    assert session.store.get(deposit.payment_hash).state == "closing"


def test_a_server_reporting_more_spent_than_deposited_gets_no_top_up():
    deposit = new_deposit()
    session = method(preimage_payer(deposit))
    quote = session.quote(session_challenge(deposit), context())
    proof, _ = drive_with_journal(session.pay(quote, context()))
    session.on_receipt(quote, proof, _receipt(deposit.payment_hash, spent=301))
    with (
        session._expecting(ORIGIN, "topUp"),
        pytest.raises(PaymentRefused, match="more spent than was deposited"),
    ):
        session.quote(session_challenge(new_deposit()), context())


def _receipt(session_id: str, **extra: Any) -> Receipt:
    return Receipt("success", "lightning", "2026-06-01T12:00:00Z", session_id, "ch", extra)


def test_the_no_more_top_ups_verdict_survives_a_restart(tmp_path) -> None:
    deposit = new_deposit()
    path = str(tmp_path / "journal.sqlite3")
    session = LightningSession(preimage_payer(deposit), store=ChannelStore(path), max_fee_sats=0)
    quote = session.quote(session_challenge(deposit), context())
    proof, _ = drive_with_journal(session.pay(quote, context()))
    session.on_receipt(quote, proof, _receipt(deposit.payment_hash, spent=301))
    # A new process: a fresh method on the same journal file.
    restarted = LightningSession(preimage_payer(deposit), store=ChannelStore(path), max_fee_sats=0)
    record = restarted.store.get(deposit.payment_hash)
    assert record is not None and record.details["overclaimed"] is True
    with (
        restarted._expecting(ORIGIN, "topUp"),
        pytest.raises(PaymentRefused, match="more spent than was deposited"),
    ):
        restarted.quote(session_challenge(new_deposit()), context())
