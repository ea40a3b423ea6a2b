"""LND, Core Lightning, phoenixd and LNbits payers against fakes of their REST APIs."""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from mpp_client.errors import NothingSent, PaymentOutcomeUnknown, PaymentRefused
from mpp_client.methods.lightning import (
    ClnRestPayer,
    LightningCharge,
    LnbitsPayer,
    LndRestPayer,
    PaymentReportedFailed,
    PhoenixdPayer,
)
from mpp_client.runner import run_sync

from .challenges import charge_request, context, make_challenge
from .effects_driver import Recorder, run
from .fake_nodes import FakeCln, FakeLnbits, FakeLnd, FakeNode, FakePhoenixd
from .invoices import make_invoice


@dataclass
class Backend:
    name: str
    fake: FakeNode
    payer: Any
    failed_mode: str  # the node answers that it tried and failed
    pending_mode: str  # the node cannot say
    refused_mode: str  # the node refuses before any attempt (its own pre-checks)
    # whether the node's lookup can prove a failure or an absence ("failed"), else "pending"
    lookup_proves_failure: bool = True


def lnd() -> Backend:
    fake = FakeLnd()
    return Backend(
        "lnd",
        fake,
        LndRestPayer("https://lnd.test:8080", fake.macaroon),
        "no-route",
        "in-flight",
        "invalid-argument",
    )


def cln() -> Backend:
    fake = FakeCln()
    return Backend(
        "cln",
        fake,
        ClnRestPayer("https://cln.test:3010", fake.rune),
        "no-route",
        "pending",
        "bad-params",
    )


def phoenixd() -> Backend:
    fake = FakePhoenixd()
    return Backend(
        "phoenixd",
        fake,
        PhoenixdPayer("http://127.0.0.1:9740", fake.password),
        "no-route",
        "server-error",
        "bad-invoice",
        lookup_proves_failure=False,
    )


def lnbits() -> Backend:
    fake = FakeLnbits()
    return Backend(
        "lnbits",
        fake,
        LnbitsPayer("http://127.0.0.1:5000", fake.admin_key),
        "insufficient",
        "pending",
        "bad-invoice",
    )


BACKENDS = [lnd, cln, phoenixd, lnbits]


@pytest.fixture(params=BACKENDS, ids=lambda f: f.__name__)
def backend(request) -> Backend:
    return request.param()


def pay_through_charge(backend: Backend, invoice, request=None, recorder=None):
    backend.fake.preimages[invoice.payment_hash] = invoice.preimage
    charge = LightningCharge(backend.payer, max_fee_sats=10)
    challenge = make_challenge(request or charge_request(invoice.text))
    ctx = context()
    quote = charge.quote(challenge, ctx)
    return run(charge.pay(quote, ctx), backend.fake, recorder=recorder)


def test_pays_invoice_and_returns_preimage(backend):
    invoice = make_invoice(100_000)
    proof = pay_through_charge(backend, invoice)
    assert proof.payload == {"preimage": invoice.preimage}
    assert proof.reference == invoice.payment_hash
    assert len(backend.fake.pay_calls) == 1
    assert backend.fake.problems == []


def test_secret_is_not_in_repr(backend):
    secret = {
        "lnd": getattr(backend.fake, "macaroon", None),
        "cln": getattr(backend.fake, "rune", None),
        "phoenixd": getattr(backend.fake, "password", None),
        "lnbits": getattr(backend.fake, "admin_key", None),
    }[backend.name]
    assert secret and secret not in repr(backend.payer)
    assert "redacted" in repr(backend.payer)
    assert secret not in repr(LightningCharge(backend.payer))


def test_refusal_before_any_attempt_is_nothing_sent(backend):
    backend.fake.mode = backend.refused_mode
    invoice = make_invoice(100_000)
    with pytest.raises(NothingSent) as info:
        pay_through_charge(backend, invoice)
    assert info.value.money_moved is False
    assert info.value.reference == invoice.payment_hash
    assert len(backend.fake.pay_calls) == 1


def test_reported_failure_is_released_only_when_a_lookup_confirms_it(backend):
    backend.fake.mode = backend.failed_mode
    invoice = make_invoice(100_000)
    if backend.lookup_proves_failure:
        with pytest.raises(NothingSent, match="confirmed by a lookup") as info:
            pay_through_charge(backend, invoice)
        assert info.value.money_moved is False
    else:
        # phoenixd's lookup can never prove a failure: the amount stays held.
        with pytest.raises(PaymentOutcomeUnknown):
            pay_through_charge(backend, invoice)
    assert len(backend.fake.pay_calls) == 1
    assert len(backend.fake.other_calls) == 1  # the confirming lookup


def test_reported_failure_alone_is_not_nothing_sent(backend):
    # Straight from the payer (no charge to confirm it): the error says "not known".
    backend.fake.mode = backend.failed_mode
    invoice = make_invoice(100_000)
    backend.fake.preimages[invoice.payment_hash] = invoice.preimage
    with pytest.raises(PaymentReportedFailed) as info:
        run(backend.payer.pay(invoice.text, 10), backend.fake)
    assert info.value.money_moved is None


def test_undecided_payment_is_outcome_unknown_and_never_paid_twice(backend):
    backend.fake.mode = backend.pending_mode
    invoice = make_invoice(100_000)
    with pytest.raises(PaymentOutcomeUnknown) as info:
        pay_through_charge(backend, invoice)
    assert info.value.reference == invoice.payment_hash
    assert info.value.money_moved is None
    assert len(backend.fake.pay_calls) == 1


def test_read_timeout_after_sending_is_outcome_unknown(backend):
    backend.fake.mode = "read-timeout"
    with pytest.raises(PaymentOutcomeUnknown):
        pay_through_charge(backend, make_invoice(100_000))


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504])
def test_http_error_after_the_request_was_delivered_is_outcome_unknown(backend, status):
    # A proxy or the node failing after the request arrived proves nothing about the payment.
    backend.fake.mode = f"http-{status}"
    with pytest.raises(PaymentOutcomeUnknown):
        pay_through_charge(backend, make_invoice(100_000))
    assert backend.fake.other_calls == []  # an unknown outcome is not "confirmed" by lookup


def test_connect_failure_is_nothing_sent(backend):
    backend.fake.mode = "connect-error"
    with pytest.raises(NothingSent) as info:
        pay_through_charge(backend, make_invoice(100_000))
    assert info.value.money_moved is False


@pytest.mark.parametrize(
    "request_change",
    [
        {"amount": "50"},  # invoice asks 100 sat
        {"network": "regtest"},
        {"currency": "BTC"},
        {"payment_hash": "ab" * 32},
    ],
    ids=["amount", "network", "currency", "payment-hash"],
)
def test_refused_challenge_never_reaches_the_node(backend, request_change):
    invoice = make_invoice(100_000)
    with pytest.raises(PaymentRefused):
        pay_through_charge(backend, invoice, charge_request(invoice.text, **request_change))
    assert backend.fake.pay_calls == []
    assert backend.fake.other_calls == []


def test_expired_invoice_never_reaches_the_node(backend):
    invoice = make_invoice(100_000, expiry=5)
    with pytest.raises(PaymentRefused):
        pay_through_charge(backend, invoice)
    assert backend.fake.pay_calls == []


def test_wrong_credentials_are_nothing_sent(backend):
    fake = backend.fake
    for attr in ("macaroon", "rune", "password", "admin_key"):
        if hasattr(fake, attr):
            setattr(fake, attr, "00ff" if attr == "macaroon" else "other-secret")
    fake.mode = "unauthenticated" if backend.name == "lnd" else fake.mode
    with pytest.raises(NothingSent) as info:
        pay_through_charge(backend, make_invoice(100_000))
    assert info.value.money_moved is False


def test_lookup_reports_settled_after_payment_and_absence_only_where_provable(backend):
    invoice = make_invoice(100_000)
    pay_through_charge(backend, invoice)
    settled = run(backend.payer.lookup(invoice.payment_hash), backend.fake)
    assert settled.status == "settled"
    assert settled.reference == invoice.payment_hash
    never = make_invoice(100_000)
    expected = "failed" if backend.lookup_proves_failure else "pending"
    assert run(backend.payer.lookup(never.payment_hash), backend.fake).status == expected


def test_identity_names_the_account_and_never_its_secret(backend):
    attribute = {"lnd": "macaroon", "cln": "rune", "phoenixd": "password", "lnbits": "admin_key"}
    secret = getattr(backend.fake, attribute[backend.name])
    identity = backend.payer.identity
    assert identity.startswith(f"{backend.name}:")
    assert secret not in identity
    # stable across instances, and a different credential at the same URL is another account
    twin = type(backend.payer)(backend.payer._url, secret)
    assert twin.identity == identity
    other = type(backend.payer)(backend.payer._url, "00ff" if backend.name == "lnd" else "other")
    assert other.identity != identity
    charge = LightningCharge(backend.payer)
    assert charge.payer("mainnet") == f"lightning:{identity}"
    assert secret not in repr(charge)


def test_works_under_the_real_sync_runner(backend):
    invoice = make_invoice(100_000)
    backend.fake.preimages[invoice.payment_hash] = invoice.preimage
    with httpx.Client(transport=httpx.MockTransport(backend.fake)) as client:
        result = run_sync(backend.payer.pay(invoice.text, 10), client)
    assert result.preimage == invoice.preimage


# --- what each node receives ---------------------------------------------------------------------


def test_lnd_request_carries_fee_limit_timeout_and_macaroon():
    backend = lnd()
    invoice = make_invoice(100_000)
    recorder = Recorder()
    pay_through_charge(backend, invoice, recorder=recorder)
    (body,) = backend.fake.pay_calls
    assert body == {
        "payment_request": invoice.text,
        "timeout_seconds": 60,
        "fee_limit_sat": "10",
        "no_inflight_updates": True,
    }
    (call,) = recorder.http_calls
    assert call.url == "https://lnd.test:8080/v2/router/send"
    assert call.timeout > 60


def test_lnd_rejection_before_dispatch_is_nothing_sent():
    backend = lnd()
    backend.fake.mode = "invalid-argument"
    with pytest.raises(NothingSent) as info:
        pay_through_charge(backend, make_invoice(100_000))
    assert info.value.money_moved is False
    assert "invoice expired" in info.value.reason


def test_lnd_macaroon_refused_by_its_interceptor_is_nothing_sent():
    backend = lnd()
    backend.fake.mode = "bad-macaroon"
    with pytest.raises(NothingSent, match="verification failed"):
        pay_through_charge(backend, make_invoice(100_000))
    assert backend.fake.macaroon not in repr(backend.payer)


def test_lnd_failed_payment_not_confirmed_by_tracking_stays_unknown():
    backend = lnd()
    backend.fake.mode = "no-route"
    invoice = make_invoice(100_000)
    backend.fake.preimages[invoice.payment_hash] = invoice.preimage
    charge = LightningCharge(backend.payer, max_fee_sats=10)
    ctx = context()
    quote = charge.quote(make_challenge(charge_request(invoice.text)), ctx)
    paying = charge.pay(quote, ctx)

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/v2/router/track/"):
            backend.fake.mode = "track-in-flight"  # an HTLC is still out there
        return backend.fake(request)

    with pytest.raises(PaymentOutcomeUnknown, match="did not confirm"):
        run(paying, handler)


@pytest.mark.parametrize(
    ("mode", "status"),
    [("track-gateway-404", "pending"), ("track-in-flight", "pending"), ("read-timeout", "pending")],
)
def test_lnd_lookup_proves_nothing_from_a_gateway_404_or_in_flight(mode, status):
    backend = lnd()
    backend.fake.mode = mode
    assert run(backend.payer.lookup("ab" * 32), backend.fake).status == status


def test_lnd_lookup_of_a_failed_payment_is_failed():
    backend = lnd()
    backend.fake.failed.add("ab" * 32)
    result = run(backend.payer.lookup("ab" * 32), backend.fake)
    assert (result.status, result.detail) == ("failed", "FAILURE_REASON_NO_ROUTE")


def test_lnd_identity_prefers_the_node_id():
    node_id = "02" + "ab" * 32
    payer = LndRestPayer("https://lnd.test:8080", "0201036c6e64", node_id=node_id.upper())
    assert payer.identity == f"lnd:{node_id}"
    with pytest.raises(ValueError):
        LndRestPayer("https://lnd.test:8080", "0201036c6e64", node_id="abc")


def test_lnd_already_paid_is_outcome_unknown_not_failure():
    backend = lnd()
    backend.fake.mode = "already-exists"
    with pytest.raises(PaymentOutcomeUnknown):
        pay_through_charge(backend, make_invoice(100_000))


def test_lnd_lookup_tracks_by_base64url_hash_and_times_out_to_pending():
    backend = lnd()
    invoice = make_invoice(100_000)
    pay_through_charge(backend, invoice)
    run(backend.payer.lookup(invoice.payment_hash), backend.fake)
    (track,) = backend.fake.other_calls
    expected = base64.urlsafe_b64encode(bytes.fromhex(invoice.payment_hash)).decode()
    assert track.url.path == f"/v2/router/track/{expected}"
    backend.fake.mode = "read-timeout"
    assert run(backend.payer.lookup(invoice.payment_hash), backend.fake).status == "pending"


def test_cln_request_carries_maxfee_in_msat_and_rune():
    backend = cln()
    invoice = make_invoice(100_000)
    pay_through_charge(backend, invoice)
    (body,) = backend.fake.pay_calls
    assert body["bolt11"] == invoice.text
    assert body["maxfee"] == 10_000
    assert body["retry_for"] == 60
    assert body["label"].startswith("mpp-")


def test_cln_unknown_error_code_is_outcome_unknown():
    backend = cln()
    backend.fake.mode = "unknown-error"
    with pytest.raises(PaymentOutcomeUnknown):
        pay_through_charge(backend, make_invoice(100_000))


def test_cln_gave_up_with_all_attempts_failed_is_confirmed_nothing_sent():
    backend = cln()
    backend.fake.mode = "gave-up"
    backend.fake.pay_parts = [("failed", time.time() - 5), ("failed", time.time() - 1)]
    with pytest.raises(NothingSent, match="confirmed"):
        pay_through_charge(backend, make_invoice(100_000))


def test_cln_gave_up_with_an_attempt_still_pending_is_outcome_unknown():
    backend = cln()
    backend.fake.mode = "gave-up"
    backend.fake.pay_parts = [("failed", time.time() - 5), ("pending", time.time() - 1)]
    with pytest.raises(PaymentOutcomeUnknown, match="did not confirm"):
        pay_through_charge(backend, make_invoice(100_000))


def test_cln_lookup_of_recent_failed_attempts_is_pending_until_pay_cannot_retry():
    # A `pay` command may still be between two attempts (the HTTP call was cut short).
    backend = cln()
    backend.fake.attempts["ab" * 32] = [("failed", time.time() - 10)]
    assert run(backend.payer.lookup("ab" * 32), backend.fake).status == "pending"
    backend.fake.attempts["ab" * 32] = [("failed", time.time() - 3600)]
    assert run(backend.payer.lookup("ab" * 32), backend.fake).status == "failed"
    backend.fake.attempts["ab" * 32] = [("failed", time.time() - 3600), ("pending", 1.0)]
    assert run(backend.payer.lookup("ab" * 32), backend.fake).status == "pending"


def test_cln_identity_prefers_the_node_id():
    node_id = "03" + "cd" * 32
    assert ClnRestPayer("https://cln.test:3010", "rune", node_id=node_id).identity == (
        f"cln:{node_id}"
    )


def test_phoenixd_sends_form_with_basic_auth_empty_user():
    backend = phoenixd()
    invoice = make_invoice(100_000)
    recorder = Recorder()
    pay_through_charge(backend, invoice, recorder=recorder)
    assert backend.fake.pay_calls == [{"invoice": invoice.text}]
    (call,) = recorder.http_calls
    user, _, password = (
        base64.b64decode(call.headers["authorization"].split()[1]).decode().partition(":")
    )
    assert (user, password) == ("", backend.fake.password)


def test_lnbits_sends_out_true_with_admin_key():
    backend = lnbits()
    invoice = make_invoice(100_000)
    pay_through_charge(backend, invoice)
    assert backend.fake.pay_calls == [{"out": True, "bolt11": invoice.text}]


def test_lnbits_pending_error_is_outcome_unknown():
    backend = lnbits()
    backend.fake.mode = "pending-error"
    with pytest.raises(PaymentOutcomeUnknown):
        pay_through_charge(backend, make_invoice(100_000))


def test_lnbits_failed_answer_whose_record_is_still_pending_is_outcome_unknown():
    backend = lnbits()
    backend.fake.mode = "failed-but-pending"
    with pytest.raises(PaymentOutcomeUnknown, match="did not confirm"):
        pay_through_charge(backend, make_invoice(100_000))


def test_lnbits_lookup_trusts_only_its_own_no_such_payment():
    backend = lnbits()
    backend.fake.mode = "lookup-route-404"  # e.g. a proxy or an old LNbits without the route
    assert run(backend.payer.lookup("ab" * 32), backend.fake).status == "pending"


def test_lnbits_identity_uses_the_wallet_id_when_given():
    payer = LnbitsPayer("http://127.0.0.1:5000/", "secret-key", wallet_id="w1a2")
    assert payer.identity == "lnbits:127.0.0.1:5000/w1a2"
    with pytest.raises(ValueError):
        LnbitsPayer("http://127.0.0.1:5000", "secret-key", wallet_id="secret-key")


def test_phoenixd_lookup_is_never_failed():
    backend = phoenixd()
    assert run(backend.payer.lookup("ab" * 32), backend.fake).status == "pending"


@pytest.mark.parametrize(
    "url", ["ftp://node", "node:8080", "https://user:pw@node", "https://node/?key=1"]
)
def test_backend_urls_are_validated(url):
    with pytest.raises(ValueError):
        LnbitsPayer(url, "key")
