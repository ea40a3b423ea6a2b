"""What the wallet does with outcomes that are not proven: the circuit breaker, resolving by
hand, reconciling only with the account that paid, and the lazy look at expired credentials."""

from __future__ import annotations

from collections.abc import Generator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mpp_client import PaymentOptions, UnresolvedPayments
from mpp_client.methods.base import LookupResult, PaymentContext, PaymentMethod, PaymentProof, Quote
from mpp_client.runner import run_sync
from mpp_client.testing import ManualClock
from mpp_client.wallet import SpendPolicy, SqliteJournal, Wallet

from .conftest import context, quote

START = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


class Chain(PaymentMethod):
    """A tempo-named method whose lookup answers from a dict, and pays as ``account``."""

    name = "tempo"
    intents = frozenset({"charge"})

    def __init__(self, account: str = "0xme", answers: dict[str, str] | None = None) -> None:
        self.account = account
        self.answers = answers or {}
        self.lookups: list[tuple[str, datetime | None]] = []

    def payer(self, network: str | None) -> str | None:
        return f"tempo:{network}:{self.account}"

    def quote(self, challenge: Any, context: PaymentContext) -> Quote:  # pragma: no cover
        raise NotImplementedError

    def pay(self, quote: Quote, context: PaymentContext) -> Generator[Any, Any, PaymentProof]:
        raise NotImplementedError  # pragma: no cover
        yield

    def lookup(
        self, reference: str, *, void_after: datetime | None = None
    ) -> Generator[Any, Any, LookupResult]:
        self.lookups.append((reference, void_after))
        return LookupResult(self.answers.get(reference, "pending"), reference)  # type: ignore[arg-type]
        yield


def wallet_with(tmp_path, method: PaymentMethod, clock: ManualClock, **kwargs) -> Wallet:
    journal = SqliteJournal(tmp_path / "j.sqlite3", clock=clock)
    return Wallet([method], policy=SpendPolicy(pin_payees=False), journal=journal, clock=clock,
                  **kwargs)  # fmt: skip


def unknown_payment(wallet: Wallet, reference: str, *, void_after: datetime | None = None) -> str:
    reservation = run_sync(wallet.reserve(quote(1_000), context(), PaymentOptions()))
    reservation.signed(reference, void_after=void_after)
    reservation.sent("fp", reference)
    reservation.unknown("no answer")
    return reservation.id


def test_the_breaker_refuses_new_payments_while_too_many_are_unknown(tmp_path):
    clock = ManualClock(START)
    wallet = wallet_with(tmp_path, Chain(), clock, max_unknown=2)
    ids = [unknown_payment(wallet, f"0x{n}") for n in range(2)]
    with pytest.raises(UnresolvedPayments) as refused:
        run_sync(wallet.reserve(quote(1_000), context(), PaymentOptions()))
    assert refused.value.entry_ids == tuple(ids)
    assert "mpp journal reconcile" in str(refused.value) and "mpp journal resolve" in str(
        refused.value
    )
    assert len(wallet.payments()) == 2  # nothing was reserved
    wallet.resolve(ids[0], "settled", "the merchant confirmed it")
    run_sync(wallet.reserve(quote(1_000), context(), PaymentOptions()))  # one below the limit


def test_the_breaker_first_looks_up_credentials_that_expired(tmp_path):
    clock = ManualClock(START)
    chain = Chain(answers={"0xold": "failed"})
    wallet = wallet_with(tmp_path, chain, clock, max_unknown=1)
    expiry = START + timedelta(seconds=25)
    entry = unknown_payment(wallet, "0xold", void_after=expiry)
    with pytest.raises(UnresolvedPayments):
        run_sync(wallet.reserve(quote(1_000), context(), PaymentOptions()))
    assert chain.lookups == []  # not expired yet: nothing can prove it void
    clock.advance(60)
    run_sync(wallet.reserve(quote(1_000), context(), PaymentOptions()))
    assert chain.lookups == [("0xold", expiry)]
    record = wallet.journal.get(entry)
    assert (record.state, record.held, record.proof) == ("failed", False, "lookup")


def test_resolve_records_the_owner_and_refuses_what_is_not_unknown(tmp_path):
    clock = ManualClock(START)
    wallet = wallet_with(tmp_path, Chain(), clock)
    entry = unknown_payment(wallet, "0x1")
    with pytest.raises(ValueError, match="note"):
        wallet.resolve(entry, "failed", " ")
    record = wallet.resolve(entry, "failed", "refunded by the merchant")
    assert (record.state, record.held, record.proof) == ("failed", False, "owner")
    assert "refunded by the merchant" in record.reason
    with pytest.raises(ValueError, match="only unknown"):
        wallet.resolve(entry, "settled", "again")
    with pytest.raises(ValueError, match="no journal entry"):
        wallet.resolve("missing", "settled", "x")


def test_reconcile_trusts_a_lookup_only_from_the_account_that_paid(tmp_path):
    clock = ManualClock(START)
    wallet = wallet_with(tmp_path, Chain(account="0xme"), clock)
    entry = unknown_payment(wallet, "0xtx")
    assert wallet.journal.get(entry).payer == "tempo:eip155:4217:0xme"
    wallet.close()
    # The owner switched keys: "no such transaction" from the new account proves nothing.
    other = Chain(account="0xnew", answers={"0xtx": "failed"})
    wallet = wallet_with(tmp_path, other, clock)
    [result] = wallet.reconcile()
    assert result.outcome == "skipped" and "tempo:eip155:4217:0xme" in (result.detail or "")
    assert other.lookups == []
    assert wallet.journal.get(entry).held


def test_reconcile_looks_up_the_receipts_reference_too(tmp_path):
    clock = ManualClock(START)
    chain = Chain(answers={"0xreceipt": "settled"})
    wallet = wallet_with(tmp_path, chain, clock)
    reservation = run_sync(wallet.reserve(quote(1_000), context(), PaymentOptions()))
    reservation.sent("fp", "0xsigned")
    wallet.journal.advance(reservation.id, "unknown", receipt_reference="0xreceipt")
    [result] = wallet.reconcile()
    assert result.outcome == "settled"
    assert [ref for ref, _ in chain.lookups] == ["0xsigned", "0xreceipt"]


def test_reconcile_asks_the_method_of_the_entrys_intent_when_two_share_a_name(tmp_path):
    # LightningCharge and LightningSession are both "lightning": only the one that paid the
    # entry's intent can prove anything about it, whichever is listed first.
    clock = ManualClock(START)
    session = Chain(answers={"0xtx": "failed"})
    session.intents = frozenset({"session"})
    charge = Chain(answers={"0xtx": "settled"})
    journal = SqliteJournal(tmp_path / "j.sqlite3", clock=clock)
    wallet = Wallet([charge, session], policy=SpendPolicy(pin_payees=False), journal=journal,
                    clock=clock)  # fmt: skip
    entry = unknown_payment(wallet, "0xtx")
    assert wallet.journal.get(entry).intent == "charge"
    [result] = wallet.reconcile()
    assert result.outcome == "settled"
    assert session.lookups == [] and [ref for ref, _ in charge.lookups] == ["0xtx"]
    assert wallet.journal.get(entry).state == "settled"
