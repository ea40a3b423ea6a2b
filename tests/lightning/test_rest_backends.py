"""LND, Core Lightning, phoenixd and LNbits payers against fakes of their REST APIs."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from mpp_client.errors import MethodError, PaymentOutcomeUnknown, PaymentRefused
from mpp_client.methods.lightning import (
    ClnRestPayer,
    LightningCharge,
    LnbitsPayer,
    LndRestPayer,
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
    failed_mode: str  # the node proves nothing was paid
    pending_mode: str  # the node cannot say


def lnd() -> Backend:
    fake = FakeLnd()
    return Backend(
        "lnd", fake, LndRestPayer("https://lnd.test:8080", fake.macaroon), "no-route", "in-flight"
    )


def cln() -> Backend:
    fake = FakeCln()
    return Backend(
        "cln", fake, ClnRestPayer("https://cln.test:3010", fake.rune), "no-route", "pending"
    )


def phoenixd() -> Backend:
    fake = FakePhoenixd()
    return Backend(
        "phoenixd",
        fake,
        PhoenixdPayer("http://127.0.0.1:9740", fake.password),
        "no-route",
        "server-error",
    )


def lnbits() -> Backend:
    fake = FakeLnbits()
    return Backend(
        "lnbits",
        fake,
        LnbitsPayer("http://127.0.0.1:5000", fake.admin_key),
        "insufficient",
        "pending",
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


def test_definitive_failure_is_method_error_and_nothing_moved(backend):
    backend.fake.mode = backend.failed_mode
    with pytest.raises(MethodError) as info:
        pay_through_charge(backend, make_invoice(100_000))
    assert info.value.money_moved is False
    assert len(backend.fake.pay_calls) == 1


def test_undecided_payment_is_outcome_unknown_and_never_paid_twice(backend):
    backend.fake.mode = backend.pending_mode
    invoice = make_invoice(100_000)
    with pytest.raises(PaymentOutcomeUnknown) as info:
        pay_through_charge(backend, invoice)
    assert info.value.reference == invoice.payment_hash
    assert len(backend.fake.pay_calls) == 1


def test_read_timeout_after_sending_is_outcome_unknown(backend):
    backend.fake.mode = "read-timeout"
    with pytest.raises(PaymentOutcomeUnknown):
        pay_through_charge(backend, make_invoice(100_000))


def test_connect_failure_is_method_error_nothing_moved(backend):
    backend.fake.mode = "connect-error"
    with pytest.raises(MethodError) as info:
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


def test_wrong_credentials_are_a_failure_without_money_moved(backend):
    fake = backend.fake
    for attr in ("macaroon", "rune", "password", "admin_key"):
        if hasattr(fake, attr):
            setattr(fake, attr, "00ff" if attr == "macaroon" else "other-secret")
    fake.mode = "unauthenticated" if backend.name == "lnd" else fake.mode
    with pytest.raises(MethodError) as info:
        pay_through_charge(backend, make_invoice(100_000))
    assert info.value.money_moved is False


def test_lookup_reports_settled_after_payment_and_failed_when_unknown(backend):
    invoice = make_invoice(100_000)
    pay_through_charge(backend, invoice)
    settled = run(backend.payer.lookup(invoice.payment_hash), backend.fake)
    assert settled.status == "settled"
    assert settled.reference == invoice.payment_hash
    never = make_invoice(100_000)
    assert run(backend.payer.lookup(never.payment_hash), backend.fake).status == "failed"


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


def test_lnd_rejection_before_dispatch_is_failure_not_unknown():
    backend = lnd()
    backend.fake.mode = "invalid-argument"
    with pytest.raises(MethodError) as info:
        pay_through_charge(backend, make_invoice(100_000))
    assert info.value.money_moved is False
    assert "invoice expired" in info.value.reason


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


@pytest.mark.parametrize(
    "url", ["ftp://node", "node:8080", "https://user:pw@node", "https://node/?key=1"]
)
def test_backend_urls_are_validated(url):
    with pytest.raises(ValueError):
        LnbitsPayer(url, "key")
