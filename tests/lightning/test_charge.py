"""lightning/charge: every check before paying, and what pay() proves or reports."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mpp_client.effects import Checkpoint
from mpp_client.errors import (
    BudgetExceeded,
    ChallengeExpired,
    EffectFailed,
    NothingSent,
    PaymentOutcomeUnknown,
    PaymentRefused,
)
from mpp_client.methods.base import Payee
from mpp_client.methods.lightning import (
    LightningCharge,
    PaymentPending,
    PaymentReportedFailed,
    PayResult,
)
from mpp_client.money import SAT, Money

from .challenges import charge_request, context, make_challenge
from .effects_driver import Recorder, run
from .fake_payer import RecordingPayer
from .invoices import NODE_ID, make_invoice


def paying(preimage: str):
    def outcome(invoice: str, max_fee: int) -> PayResult:
        return PayResult(preimage, "", 1000)

    return outcome


def setup(
    invoice,
    *,
    network="mainnet",
    already_paid=None,
    max_amount_sats=None,
    outcome=None,
    lookup_status="settled",
    lookup_error=None,
):
    payer = RecordingPayer(
        outcome or paying(invoice.preimage), lookup_status=lookup_status, lookup_error=lookup_error
    )
    charge = LightningCharge(
        payer,
        network=network,
        max_fee_sats=10,
        expiry_margin=30,
        already_paid=already_paid,
        max_amount_sats=max_amount_sats,
    )
    return charge, payer


def attempt(charge, challenge, recorder=None):
    ctx = context()
    quote = charge.quote(challenge, ctx)
    return run(charge.pay(quote, ctx), recorder=recorder)


# --- the happy path ------------------------------------------------------------------------------


def test_quote_prices_invoice_in_sats_with_fee_payee_network_and_earliest_expiry():
    invoice = make_invoice(100_000, expiry=600)
    challenge_expires = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=120)
    challenge = make_challenge(
        charge_request(invoice.text, payment_hash=invoice.payment_hash),
        expires=challenge_expires,
    )
    charge, payer = setup(invoice)
    quote = charge.quote(challenge, context())
    assert quote.amount == Money(100, SAT)
    assert quote.max_fee == Money(10, SAT)
    assert quote.exposure == Money(110, SAT)
    assert quote.payees == (Payee(NODE_ID, 100),)
    assert quote.network == "mainnet"
    assert quote.expires == challenge_expires  # earlier than the invoice's 600 s
    assert (quote.method, quote.intent) == ("lightning", "charge")
    assert quote.reference == invoice.payment_hash  # the wallet keeps one live entry per hash
    assert payer.calls == []


def test_payer_is_the_backend_identity():
    invoice = make_invoice(100_000)
    charge, _ = setup(invoice)
    assert charge.payer("mainnet") == "lightning:recording:node-1"
    assert charge.payer(None) == "lightning:recording:node-1"


def test_quote_expiry_is_invoice_expiry_when_it_is_earlier():
    created = int(datetime.now(UTC).timestamp())
    invoice = make_invoice(100_000, expiry=90, created=created)
    challenge = make_challenge(
        charge_request(invoice.text), expires=datetime.now(UTC) + timedelta(hours=1)
    )
    charge, _ = setup(invoice)
    quote = charge.quote(challenge, context())
    assert quote.expires == datetime.fromtimestamp(created + 90, UTC)


def test_pay_checkpoints_payment_hash_before_paying_and_returns_preimage():
    invoice = make_invoice(100_000)
    recorder = Recorder()
    seen_before_paying: list[list[Checkpoint]] = []

    def outcome(text: str, max_fee: int) -> PayResult:
        seen_before_paying.append(list(recorder.checkpoints))
        return PayResult(invoice.preimage.upper(), invoice.payment_hash)

    charge, payer = setup(invoice, outcome=outcome)
    challenge = make_challenge(charge_request(invoice.text, payment_hash=invoice.payment_hash))
    proof = attempt(charge, challenge, recorder)
    assert seen_before_paying == [[Checkpoint("broadcast", invoice.payment_hash)]]
    assert payer.calls == [(invoice.text, 10)]
    assert proof.payload == {"preimage": invoice.preimage}  # lower-case hex
    assert proof.reference == invoice.payment_hash
    assert proof.money_moved is True
    assert invoice.preimage not in repr(proof)


def test_regtest_wallet_pays_regtest_invoice():
    invoice = make_invoice(5_000, network="regtest")
    charge, payer = setup(invoice, network="regtest")
    challenge = make_challenge(charge_request(invoice.text, amount="5", network="regtest"))
    assert attempt(charge, challenge).payload == {"preimage": invoice.preimage}
    assert len(payer.calls) == 1


def test_missing_network_means_mainnet():
    invoice = make_invoice(100_000)
    charge, payer = setup(invoice)
    attempt(charge, make_challenge(charge_request(invoice.text, network=None)))
    assert len(payer.calls) == 1


def test_uppercase_invoice_is_accepted():
    invoice = make_invoice(100_000)
    charge, payer = setup(invoice)
    attempt(charge, make_challenge(charge_request(invoice.text.upper())))
    assert len(payer.calls) == 1


# --- every refusal: nothing is paid --------------------------------------------------------------


def refused(charge, payer, challenge, error=PaymentRefused, match=None):
    with pytest.raises(error, match=match) as info:
        attempt(charge, challenge)
    assert payer.calls == [], "a refused challenge must never reach the payer"
    assert info.value.money_moved is False
    return info.value


@pytest.mark.parametrize("currency", ["BTC", "usd", "msat", None, 100])
def test_refuses_currency_other_than_sat(currency):
    invoice = make_invoice(100_000)
    charge, payer = setup(invoice)
    refused(
        charge,
        payer,
        make_challenge(charge_request(invoice.text, currency=currency)),
        match="currency",
    )


@pytest.mark.parametrize("amount", ["0", "-100", "01", "1.5", "1e2", 100, None, "", " 100"])
def test_refuses_malformed_amount(amount):
    invoice = make_invoice(100_000)
    charge, payer = setup(invoice)
    refused(
        charge, payer, make_challenge(charge_request(invoice.text, amount=amount)), match="amount"
    )


def test_refuses_amountless_invoice():
    invoice = make_invoice(None)
    charge, payer = setup(invoice)
    refused(charge, payer, make_challenge(charge_request(invoice.text)), match="no amount")


def test_refuses_fractional_sat_invoice():
    invoice = make_invoice(100_500)
    charge, payer = setup(invoice)
    refused(charge, payer, make_challenge(charge_request(invoice.text)), match="not whole sats")


def test_refuses_sub_millisatoshi_invoice_amount():
    # lnbc...1p: 0.1 msat, which the bolt11 package would silently round to 0.
    invoice = make_invoice(100_000)
    assert invoice.text.startswith("lnbc1u")
    tampered = "lnbc1p" + invoice.text[len("lnbc1u") :]
    charge, payer = setup(invoice)
    refused(charge, payer, make_challenge(charge_request(tampered)), match="millisatoshi")


def test_refuses_invoice_amount_above_request_amount():
    invoice = make_invoice(200_000)  # 2x the 100 sat the challenge states
    charge, payer = setup(invoice)
    refused(
        charge,
        payer,
        make_challenge(charge_request(invoice.text, amount="100")),
        match="asks 200 sat",
    )


def test_refuses_invoice_amount_below_request_amount():
    invoice = make_invoice(50_000)
    charge, payer = setup(invoice)
    refused(
        charge,
        payer,
        make_challenge(charge_request(invoice.text, amount="100")),
        match="asks 50 sat",
    )


@pytest.mark.parametrize(
    ("invoice_network", "declared", "wallet"),
    [
        ("regtest", "mainnet", "mainnet"),  # invoice vs challenge
        ("mainnet", "regtest", "mainnet"),  # challenge vs invoice
        ("regtest", "regtest", "mainnet"),  # both agree but the wallet is on mainnet
        ("testnet", "mainnet", "mainnet"),
        ("signet", "signet", "regtest"),
        ("testnet", "testnet", "signet"),  # tb vs tbs are different networks
    ],
)
def test_refuses_network_mismatch(invoice_network, declared, wallet):
    invoice = make_invoice(100_000, network=invoice_network)
    charge, payer = setup(invoice, network=wallet)
    refused(
        charge,
        payer,
        make_challenge(charge_request(invoice.text, network=declared)),
        match="invoice is for",
    )


@pytest.mark.parametrize("declared", ["bitcoin", "Mainnet", "", 1])
def test_refuses_unknown_declared_network(declared):
    invoice = make_invoice(100_000)
    charge, payer = setup(invoice)
    refused(
        charge,
        payer,
        make_challenge(charge_request(invoice.text, network=declared)),
        match="network",
    )


def test_refuses_payment_hash_that_differs_from_invoice():
    invoice = make_invoice(100_000)
    other = make_invoice(100_000)
    charge, payer = setup(invoice)
    refused(
        charge,
        payer,
        make_challenge(charge_request(invoice.text, payment_hash=other.payment_hash)),
        match="paymentHash differs",
    )


def test_payment_hash_comparison_ignores_case():
    invoice = make_invoice(100_000)
    charge, payer = setup(invoice)
    attempt(
        charge,
        make_challenge(charge_request(invoice.text, payment_hash=invoice.payment_hash.upper())),
    )
    assert len(payer.calls) == 1


@pytest.mark.parametrize("declared", ["00" * 31, "zz" * 32, 5])
def test_refuses_malformed_payment_hash(declared):
    invoice = make_invoice(100_000)
    charge, payer = setup(invoice)
    refused(
        charge,
        payer,
        make_challenge(charge_request(invoice.text, payment_hash=declared)),
        match="paymentHash",
    )


def test_refuses_expired_invoice():
    created = int((datetime.now(UTC) - timedelta(hours=2)).timestamp())
    invoice = make_invoice(100_000, expiry=3600, created=created)
    charge, payer = setup(invoice)
    refused(
        charge,
        payer,
        make_challenge(charge_request(invoice.text)),
        ChallengeExpired,
        match="invoice expires",
    )


def test_refuses_invoice_expiring_within_margin():
    invoice = make_invoice(100_000, expiry=20)  # margin is 30 s
    charge, payer = setup(invoice)
    refused(
        charge,
        payer,
        make_challenge(charge_request(invoice.text)),
        ChallengeExpired,
        match="invoice expires",
    )


def test_refuses_challenge_expiring_within_margin():
    invoice = make_invoice(100_000, expiry=3600)
    charge, payer = setup(invoice)
    challenge = make_challenge(
        charge_request(invoice.text), expires=datetime.now(UTC) + timedelta(seconds=10)
    )
    refused(charge, payer, challenge, ChallengeExpired, match="challenge expires")


def test_refuses_challenge_with_unreadable_expiry():
    invoice = make_invoice(100_000)
    charge, payer = setup(invoice)
    refused(
        charge,
        payer,
        make_challenge(charge_request(invoice.text), expires="next tuesday"),
        ChallengeExpired,
    )


def test_refuses_payment_hash_already_paid_per_journal():
    invoice = make_invoice(100_000)
    asked: list[str] = []

    def already_paid(payment_hash: str) -> bool:
        asked.append(payment_hash)
        return True

    charge, payer = setup(invoice, already_paid=already_paid)
    refused(charge, payer, make_challenge(charge_request(invoice.text)), match="already paid")
    assert asked == [invoice.payment_hash]


def test_refuses_when_journal_records_payment_between_quote_and_pay():
    invoice = make_invoice(100_000)
    paid: set[str] = set()
    charge, payer = setup(invoice, already_paid=paid.__contains__)
    ctx = context()
    quote = charge.quote(make_challenge(charge_request(invoice.text)), ctx)
    paid.add(invoice.payment_hash)  # another request paid it meanwhile
    recorder = Recorder()
    with pytest.raises(PaymentRefused, match="already paid"):
        run(charge.pay(quote, ctx), recorder=recorder)
    assert payer.calls == []
    assert recorder.checkpoints == []


def test_refuses_amount_above_per_invoice_cap():
    invoice = make_invoice(100_000)
    charge, payer = setup(invoice, max_amount_sats=99)
    error = refused(charge, payer, make_challenge(charge_request(invoice.text)), BudgetExceeded)
    assert error.rule == "lightning.max_amount_sats"


@pytest.mark.parametrize(
    "mangle",
    [
        lambda s: s[:-1] + ("q" if s[-1] != "q" else "p"),  # checksum broken
        lambda s: s.replace("lnbc", "lnxy", 1),  # unknown network prefix
        lambda s: s[:20] + s[20:].upper(),  # mixed case
        lambda s: "lightning:" + s,
        lambda s: "",
    ],
)
def test_refuses_invoice_that_does_not_decode(mangle):
    invoice = make_invoice(100_000)
    charge, payer = setup(invoice)
    refused(
        charge, payer, make_challenge(charge_request(mangle(invoice.text))), match="lightning: "
    )


def test_refuses_missing_invoice_and_method_details():
    invoice = make_invoice(100_000)
    charge, payer = setup(invoice)
    request = charge_request(invoice.text)
    del request["methodDetails"]["invoice"]
    refused(charge, payer, make_challenge(request), match="invoice is missing")
    refused(
        charge,
        payer,
        make_challenge(charge_request(invoice.text, drop=("methodDetails",))),
        match="methodDetails",
    )


def test_refusal_messages_name_no_secret_and_no_invoice():
    invoice = make_invoice(200_000)
    charge, payer = setup(invoice)
    error = refused(charge, payer, make_challenge(charge_request(invoice.text)))
    assert invoice.text not in str(error)
    assert invoice.preimage not in str(error)


# --- after asking the backend to pay -------------------------------------------------------------


def fails_with(error: Exception):
    def outcome(text: str, fee: int) -> PayResult:
        raise error

    return outcome


def test_backend_refusal_before_paying_is_nothing_sent():
    invoice = make_invoice(100_000)
    charge, payer = setup(invoice, outcome=fails_with(NothingSent("macaroon refused")))
    with pytest.raises(NothingSent) as info:
        attempt(charge, make_challenge(charge_request(invoice.text)))
    assert info.value.money_moved is False
    assert info.value.reference == invoice.payment_hash
    assert info.value.challenge_id == "ch_test_1"
    assert "macaroon refused" in info.value.reason
    assert len(payer.calls) == 1
    assert payer.lookups == []  # a refusal needs no confirmation


def test_reported_failure_confirmed_by_a_lookup_is_nothing_sent():
    invoice = make_invoice(100_000)
    charge, payer = setup(
        invoice, outcome=fails_with(PaymentReportedFailed("no route")), lookup_status="failed"
    )
    with pytest.raises(NothingSent, match="confirmed by a lookup") as info:
        attempt(charge, make_challenge(charge_request(invoice.text)))
    assert info.value.money_moved is False
    assert payer.lookups == [invoice.payment_hash]
    assert len(payer.calls) == 1


@pytest.mark.parametrize("status", ["pending", "settled"])
def test_reported_failure_not_confirmed_by_the_lookup_is_outcome_unknown(status):
    invoice = make_invoice(100_000)
    charge, payer = setup(
        invoice, outcome=fails_with(PaymentReportedFailed("no route")), lookup_status=status
    )
    with pytest.raises(PaymentOutcomeUnknown, match="did not confirm") as info:
        attempt(charge, make_challenge(charge_request(invoice.text)))
    assert info.value.money_moved is None
    assert info.value.reference == invoice.payment_hash
    assert len(payer.calls) == 1


def test_reported_failure_whose_lookup_fails_is_outcome_unknown():
    invoice = make_invoice(100_000)
    charge, payer = setup(
        invoice,
        outcome=fails_with(PaymentReportedFailed("no route")),
        lookup_error=EffectFailed("read timeout", delivered=True),
    )
    with pytest.raises(PaymentOutcomeUnknown):
        attempt(charge, make_challenge(charge_request(invoice.text)))
    assert len(payer.calls) == 1


def test_backend_errors_never_claim_money_did_not_move():
    assert PaymentPending("in flight").money_moved is None
    assert PaymentReportedFailed("no route").money_moved is None


def test_backend_pending_becomes_outcome_unknown_with_challenge_and_hash():
    invoice = make_invoice(100_000)

    def outcome(text: str, fee: int) -> PayResult:
        raise PaymentPending("IN_FLIGHT")

    charge, payer = setup(invoice, outcome=outcome)
    with pytest.raises(PaymentOutcomeUnknown) as info:
        attempt(charge, make_challenge(charge_request(invoice.text)))
    assert info.value.reference == invoice.payment_hash
    assert info.value.challenge_id == "ch_test_1"
    assert len(payer.calls) == 1


def test_timeout_after_request_delivered_is_outcome_unknown():
    invoice = make_invoice(100_000)

    def outcome(text: str, fee: int) -> PayResult:
        raise EffectFailed("read timeout", delivered=True)

    charge, payer = setup(invoice, outcome=outcome)
    with pytest.raises(PaymentOutcomeUnknown):
        attempt(charge, make_challenge(charge_request(invoice.text)))
    assert len(payer.calls) == 1


def test_connect_failure_is_nothing_sent():
    invoice = make_invoice(100_000)

    def outcome(text: str, fee: int) -> PayResult:
        raise EffectFailed("connection refused", delivered=False)

    charge, _ = setup(invoice, outcome=outcome)
    with pytest.raises(NothingSent) as info:
        attempt(charge, make_challenge(charge_request(invoice.text)))
    assert info.value.money_moved is False


@pytest.mark.parametrize(
    "error", [RuntimeError("boom"), TimeoutError(), EffectFailed("reset", delivered=True)]
)
def test_any_other_error_after_asking_to_pay_is_outcome_unknown(error):
    invoice = make_invoice(100_000)
    charge, payer = setup(invoice, outcome=fails_with(error))
    with pytest.raises(PaymentOutcomeUnknown) as info:
        attempt(charge, make_challenge(charge_request(invoice.text)))
    assert info.value.money_moved is None
    assert payer.lookups == []


def test_preimage_that_does_not_hash_to_payment_hash_is_outcome_unknown():
    invoice = make_invoice(100_000)
    charge, _ = setup(invoice, outcome=paying("11" * 32))
    with pytest.raises(PaymentOutcomeUnknown, match="does not hash") as info:
        attempt(charge, make_challenge(charge_request(invoice.text)))
    assert "11" * 32 not in str(info.value)


@pytest.mark.parametrize("preimage", ["", "xyz", "00" * 31, "00" * 33])
def test_malformed_preimage_is_outcome_unknown(preimage):
    invoice = make_invoice(100_000)
    charge, _ = setup(invoice, outcome=paying(preimage))
    with pytest.raises(PaymentOutcomeUnknown):
        attempt(charge, make_challenge(charge_request(invoice.text)))


def test_lookup_asks_the_backend_by_payment_hash():
    invoice = make_invoice(100_000)
    charge, payer = setup(invoice)
    result = run(charge.lookup(invoice.payment_hash.upper()))
    assert payer.lookups == [invoice.payment_hash]
    assert result.status == "settled"
    # the flow may pass a deadline; it does not make a Lightning payment void by itself
    later = datetime.now(UTC) - timedelta(days=1)
    assert run(charge.lookup(invoice.payment_hash, void_after=later)).status == "settled"
    with pytest.raises(ValueError):
        run(charge.lookup("not-a-hash"))


def test_constructor_validates_configuration():
    invoice = make_invoice(100_000)
    payer = RecordingPayer(paying(invoice.preimage))
    with pytest.raises(ValueError):
        LightningCharge(payer, network="bitcoin")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        LightningCharge(payer, max_fee_sats=-1)
    assert LightningCharge(payer).can_pay(make_challenge(charge_request(invoice.text)))


def test_a_wallet_gives_the_method_its_journal_as_the_paid_record(tmp_path):
    from mpp_client import PaymentOptions
    from mpp_client.wallet import Wallet

    invoice = make_invoice(100_000)
    charge, payer = setup(invoice)  # no already_paid given: the wallet supplies its journal
    wallet = Wallet([charge], journal=tmp_path / "j.sqlite3")
    quote = charge.quote(make_challenge(charge_request(invoice.text)), context())
    reservation = run(wallet.reserve(quote, context(), PaymentOptions()))
    # what the flow writes when the method reports it is about to pay this hash
    reservation.sent("", invoice.payment_hash)
    with pytest.raises(PaymentRefused, match="already paid"):
        charge.quote(make_challenge(charge_request(invoice.text)), context())
    assert payer.calls == []
    wallet.close()


def test_a_wallet_holds_one_live_entry_per_invoice(tmp_path):
    # Two requests quoting the same invoice before either paid: the second reservation is
    # refused inside the wallet's reservation, keyed by the quote's reference (payment hash).
    from mpp_client import PaymentOptions
    from mpp_client.errors import MppError
    from mpp_client.wallet import Wallet

    invoice = make_invoice(100_000)
    charge, _ = setup(invoice)
    wallet = Wallet([charge], journal=tmp_path / "j.sqlite3")
    first = charge.quote(make_challenge(charge_request(invoice.text)), context())
    second = charge.quote(make_challenge(charge_request(invoice.text)), context())
    assert first.reference == second.reference == invoice.payment_hash
    run(wallet.reserve(first, context(), PaymentOptions()))
    with pytest.raises(MppError) as info:
        run(wallet.reserve(second, context(), PaymentOptions()))
    assert info.value.money_moved is False
    wallet.close()
