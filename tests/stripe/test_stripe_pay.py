"""StripeCharge.pay / abandon / lookup / payer against the fake Stripe API on 127.0.0.1, driven
by the library's effect runner: what is sent to Stripe, what is checkpointed, what comes back,
and when a token the seller did not accept is proven void (and when it is not)."""

from __future__ import annotations

import base64
import itertools
from collections.abc import Generator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from mpp_client.effects import Checkpoint, HttpCall
from mpp_client.errors import HumanActionRequired, MethodError, PaymentRefused
from mpp_client.methods.base import PaymentProof
from mpp_client.methods.stripe import StripeCharge, StripeRetryRefused
from mpp_client.runner import SyncRunner
from tests.stripe.challenges import FAKE_LIVE_KEY, SELLER_KEY, context, stripe_challenge
from tests.stripe.stripe_fake import PREVIEW_VERSION, FakeStripe

_SELLER_KEYS = itertools.count()


def run(gen: Generator[Any, Any, Any]) -> tuple[Any, list[Checkpoint]]:
    """Run an effect generator; return its value and the checkpoints it yielded, in order."""
    runner = SyncRunner()
    checkpoints: list[Checkpoint] = []
    reply: Any = None
    error: BaseException | None = None
    try:
        while True:
            try:
                effect = gen.throw(error) if error is not None else gen.send(reply)
            except StopIteration as stop:
                return stop.value, checkpoints
            reply, error = None, None
            if isinstance(effect, Checkpoint):
                checkpoints.append(effect)
                continue
            try:
                reply = runner.perform(effect)
            except Exception as exc:
                error = exc
    finally:
        runner.close()


def pay(
    method: Any, challenge: Any, now: datetime | None = None, call_id: str = "call-1"
) -> tuple[PaymentProof, Any]:
    ctx = context(now, call_id)
    quote = method.quote(challenge, ctx)
    proof, checkpoints = run(method.pay(quote, ctx))
    return proof, checkpoints


def paid(method: StripeCharge, challenge: Any, call_id: str = "call-1"):
    ctx = context(call_id=call_id)
    quote = method.quote(challenge, ctx)
    proof, _ = run(method.pay(quote, ctx))
    return quote, proof


def seller_charges(stripe_url: str, token_id: str, amount: int, currency: str = "usd"):
    """What a seller's server does with the credential: confirm a PaymentIntent with it."""
    return httpx.post(
        f"{stripe_url}/v1/payment_intents",
        data={
            "amount": str(amount),
            "currency": currency,
            "confirm": "true",
            "shared_payment_granted_token": token_id,
        },
        headers={
            "stripe-version": PREVIEW_VERSION,
            "idempotency-key": f"seller-{next(_SELLER_KEYS)}",
        },
        auth=(SELLER_KEY, ""),
    )


def calls_after(fake: FakeStripe, start: int) -> list[tuple[str, str]]:
    return [(c.method, c.path) for c in fake.calls[start:]]


# -- pay ----------------------------------------------------------------------------------------


def test_test_mode_mints_one_token_limited_to_the_charge(make_stripe, fake_stripe: FakeStripe):
    now = datetime.now(UTC).replace(microsecond=0)
    challenge = stripe_challenge(amount="2500", now=now, expires_in=120)
    proof, checkpoints = pay(make_stripe(), challenge, now)

    [call] = fake_stripe.calls
    assert call.path == "/v1/test_helpers/shared_payment/granted_tokens"
    assert call.form == [
        ("payment_method", "pm_card_visa"),
        ("usage_limits[currency]", "usd"),
        ("usage_limits[max_amount]", "2500"),
        ("usage_limits[expires_at]", str(int(now.timestamp()) + 120)),
    ]
    assert call.headers["stripe-version"] == PREVIEW_VERSION
    assert (
        call.headers["authorization"]
        == "Basic " + base64.b64encode(f"{SELLER_KEY}:".encode()).decode()
    )
    assert call.headers["idempotency-key"].startswith("mpp-client-spt-")
    token_id = proof.payload["spt"]
    assert dict(proof.payload) == {"spt": token_id}
    # The token can no longer be used past its expires_at: the checkpoint says so.
    assert checkpoints == [Checkpoint("signed", token_id, void_after=now + timedelta(seconds=120))]
    assert proof.reference == token_id and proof.money_moved is False
    token = fake_stripe.tokens[token_id]
    assert token["deactivated_reason"] is None and "status" not in token  # a granted token


def test_token_expiry_is_capped_by_the_token_lifetime(make_stripe, fake_stripe: FakeStripe):
    now = datetime.now(UTC).replace(microsecond=0)
    method = make_stripe(token_lifetime=timedelta(seconds=60))
    _, checkpoints = pay(method, stripe_challenge(now=now, expires_in=3000), now)
    assert fake_stripe.calls[0].field("usage_limits[expires_at]") == str(int(now.timestamp()) + 60)
    assert checkpoints[0].void_after == now + timedelta(seconds=60)


def test_live_mode_uses_issued_tokens_with_the_business_profile(
    make_stripe, fake_stripe: FakeStripe
):
    method = make_stripe(secret_key=FAKE_LIVE_KEY, payment_method="pm_1", customer="cus_1")
    proof, _ = pay(method, stripe_challenge(externalId="order-9"))
    [call] = fake_stripe.calls
    assert call.path == "/v1/shared_payment/issued_tokens" and call.status == 200
    # Issued tokens take no customer (stripe-python 16.1.0b1; mppx sends none).
    assert "customer" not in dict(call.form)
    assert call.field("seller_details[network_business_profile]") == "profile_seller_123"
    assert call.field("seller_details[external_id]") == "order-9"
    assert "seller_details[network_id]" not in dict(call.form)
    assert proof.payload == {"spt": proof.reference, "externalId": "order-9"}
    assert fake_stripe.tokens[proof.reference]["status"] == "active"


def test_test_helper_gets_the_customer(make_stripe, fake_stripe: FakeStripe):
    pay(make_stripe(customer="cus_1"), stripe_challenge())
    assert fake_stripe.calls[0].field("customer") == "cus_1"


def test_external_id_is_echoed_in_the_payload(make_stripe):
    proof, _ = pay(make_stripe(), stripe_challenge(externalId="server-order-123"))
    assert proof.payload["externalId"] == "server-order-123"


def test_paying_the_same_challenge_twice_replays_the_same_token(
    make_stripe, fake_stripe: FakeStripe
):
    challenge = stripe_challenge()
    now = datetime.now(UTC)
    method = make_stripe()
    first, _ = pay(method, challenge, now)
    second, _ = pay(method, challenge, now)
    assert first.reference == second.reference
    assert len(fake_stripe.tokens) == 1


def test_a_different_challenge_gets_a_different_idempotency_key(
    make_stripe, fake_stripe: FakeStripe
):
    method = make_stripe()
    pay(method, stripe_challenge(challenge_id="a"), call_id="call-a")
    pay(method, stripe_challenge(challenge_id="b"), call_id="call-b")
    keys = {c.headers["idempotency-key"] for c in fake_stripe.calls}
    assert len(keys) == 2 and len(fake_stripe.tokens) == 2


def test_token_needing_customer_action_raises_and_is_revoked(make_stripe, fake_stripe):
    method = make_stripe(secret_key=FAKE_LIVE_KEY, payment_method="pm_card_authenticationRequired")
    with pytest.raises(HumanActionRequired) as caught:
        pay(method, stripe_challenge())
    assert caught.value.action == "redirect_to_url: https://hooks.stripe.com/3d_secure/fake"
    [token] = fake_stripe.tokens.values()
    assert token["deactivated_reason"] == "revoked"
    assert fake_stripe.calls[-1].path.endswith(f"/{token['id']}/revoke")
    assert fake_stripe.calls[-1].headers["idempotency-key"].startswith("mpp-client-revoke-")


def test_test_helper_is_called_right_the_first_time(make_stripe, fake_stripe):
    # The published test helper has no seller_details: one call, accepted, nothing retried.
    proof, _ = pay(make_stripe(customer="cus_1"), stripe_challenge(externalId="order-9"))
    [call] = fake_stripe.calls
    assert call.status == 200
    assert not [name for name, _ in call.form if name.startswith("seller_details")]
    assert proof.payload == {"spt": proof.reference, "externalId": "order-9"}


def test_a_refused_token_creation_is_not_retried(make_stripe, fake_stripe):
    # Whatever Stripe refuses (here a parameter it does not know) is refused once: no second
    # call with other parameters, which would need another idempotency key.
    method = make_stripe(payment_method="pm_card_visa")
    method.payment_method = ""  # a missing required parameter
    with pytest.raises(MethodError, match="Missing required param: payment_method"):
        pay(method, stripe_challenge())
    assert len(fake_stripe.calls) == 1 and fake_stripe.tokens == {}


def test_stripe_error_is_a_method_error_without_the_key(make_stripe, fake_stripe):
    method = make_stripe(secret_key="sk_test_WRONGKEY123")
    with pytest.raises(MethodError) as caught:
        pay(method, stripe_challenge())
    assert "401" in str(caught.value) and "invalid_request_error" in str(caught.value)
    assert "WRONGKEY" not in str(caught.value)
    assert fake_stripe.tokens == {}


# -- abandon ------------------------------------------------------------------------------------


def test_abandon_revokes_reads_back_and_proves_an_unused_token_void(make_stripe, fake_stripe):
    method = make_stripe()
    quote, proof = paid(method, stripe_challenge())
    start = len(fake_stripe.calls)
    void, checkpoints = run(method.abandon(quote, proof))
    assert void is True and checkpoints == []
    token_id = proof.reference
    assert calls_after(fake_stripe, start) == [
        ("POST", f"/v1/test_helpers/shared_payment/granted_tokens/{token_id}/revoke"),
        ("GET", f"/v1/shared_payment/granted_tokens/{token_id}"),
    ]
    assert fake_stripe.tokens[token_id]["deactivated_reason"] == "revoked"


def test_abandon_in_live_mode_uses_the_issued_token_routes(make_stripe, fake_stripe):
    method = make_stripe(secret_key=FAKE_LIVE_KEY)
    quote, proof = paid(method, stripe_challenge())
    start = len(fake_stripe.calls)
    assert run(method.abandon(quote, proof))[0] is True
    assert calls_after(fake_stripe, start) == [
        ("POST", f"/v1/shared_payment/issued_tokens/{proof.reference}/revoke"),
        ("GET", f"/v1/shared_payment/issued_tokens/{proof.reference}"),
    ]
    assert fake_stripe.tokens[proof.reference]["status"] == "deactivated"


def test_seller_charged_then_answered_402_is_not_void(make_stripe, fake_stripe, stripe_url):
    # The seller confirmed a PaymentIntent with the token, then rejected the request anyway.
    method = make_stripe()
    quote, proof = paid(method, stripe_challenge(amount="2500"))
    charge = seller_charges(stripe_url, proof.reference, 2500)
    assert charge.status_code == 200 and charge.json()["status"] == "succeeded"

    void, _ = run(method.abandon(quote, proof))
    assert void is False  # money moved: the amount stays held
    assert fake_stripe.tokens[proof.reference]["deactivated_reason"] == "consumed"
    result, _ = run(method.lookup(proof.reference))
    assert (result.status, result.amount) == ("settled", 2500)


def test_abandon_is_false_when_the_revoke_fails(make_stripe, fake_stripe: FakeStripe):
    method = make_stripe()
    quote, proof = paid(method, stripe_challenge())
    fake_stripe.revoke_fails_with = 500
    start = len(fake_stripe.calls)
    assert run(method.abandon(quote, proof))[0] is False
    # Not confirmed revoked: no read-back can make it void; the token is still usable.
    assert calls_after(fake_stripe, start)[-1][0] == "POST"
    assert fake_stripe.tokens[proof.reference]["deactivated_reason"] is None


def test_abandon_is_false_when_the_read_back_fails(make_stripe, fake_stripe: FakeStripe):
    method = make_stripe()
    quote, proof = paid(method, stripe_challenge())
    fake_stripe.retrieve_fails_with = 503
    assert run(method.abandon(quote, proof))[0] is False


def test_abandon_tolerates_an_unreachable_stripe(make_stripe, fake_stripe: FakeStripe):
    method = make_stripe()
    quote, proof = paid(method, stripe_challenge())
    offline = StripeCharge(SELLER_KEY, payment_method="pm_1", api_base="http://127.0.0.1:9")
    assert run(offline.abandon(quote, proof))[0] is False
    assert fake_stripe.tokens[proof.reference]["deactivated_reason"] is None


def test_abandon_of_a_proof_without_a_token_is_false(make_stripe, fake_stripe: FakeStripe):
    method = make_stripe()
    quote, _ = paid(method, stripe_challenge())
    start = len(fake_stripe.calls)
    bogus = PaymentProof(payload={"spt": "x"}, reference="pi_123")
    assert run(method.abandon(quote, bogus))[0] is False
    assert fake_stripe.calls[start:] == []


def test_abandon_of_an_expired_unused_token_is_void(make_stripe, fake_stripe: FakeStripe):
    method = make_stripe()
    quote, proof = paid(method, stripe_challenge(expires_in=120))
    later = fake_stripe.clock() + 600
    fake_stripe.clock = lambda: later
    assert run(method.abandon(quote, proof))[0] is True
    assert fake_stripe.tokens[proof.reference]["deactivated_reason"] == "expired"


# -- a declined card is not charged twice ---------------------------------------------------------


def test_declined_card_is_void_and_never_gets_a_second_token(make_stripe, fake_stripe, stripe_url):
    method = make_stripe(payment_method="pm_card_chargeDeclined")
    quote, proof = paid(method, stripe_challenge(challenge_id="first"), call_id="call-1")
    declined = seller_charges(stripe_url, proof.reference, 2500)
    assert declined.status_code == 402
    assert declined.json()["error"]["code"] == "card_declined"
    # The seller answers 402 with a fresh challenge. The token was not used: it is void.
    assert run(method.abandon(quote, proof))[0] is True

    creations = len(fake_stripe.token_creations())
    with pytest.raises(StripeRetryRefused, match="declined") as caught:
        pay(method, stripe_challenge(challenge_id="second"), call_id="call-1")
    assert isinstance(caught.value, PaymentRefused) and caught.value.money_moved is False
    assert proof.reference not in str(caught.value)  # the token id is a bearer credential
    assert len(fake_stripe.token_creations()) == creations  # nothing minted


def test_second_challenge_of_one_request_is_refused_even_before_abandon(make_stripe, fake_stripe):
    method = make_stripe()
    paid(method, stripe_challenge(challenge_id="first"), call_id="call-1")
    with pytest.raises(StripeRetryRefused):
        pay(method, stripe_challenge(challenge_id="second"), call_id="call-1")
    assert len(fake_stripe.tokens) == 1


def test_another_logical_request_may_pay_again(make_stripe, fake_stripe: FakeStripe):
    method = make_stripe()
    quote, proof = paid(method, stripe_challenge(challenge_id="first"), call_id="call-1")
    run(method.abandon(quote, proof))
    other, _ = pay(method, stripe_challenge(challenge_id="second"), call_id="call-2")
    assert other.reference != proof.reference and len(fake_stripe.tokens) == 2


def test_without_a_call_id_the_request_url_keys_the_rule(make_stripe, fake_stripe: FakeStripe):
    method = make_stripe()
    paid(method, stripe_challenge(challenge_id="first"), call_id="")
    with pytest.raises(StripeRetryRefused):
        pay(method, stripe_challenge(challenge_id="second"), call_id="")


def test_a_token_that_was_never_handed_out_does_not_count(make_stripe, fake_stripe):
    method = make_stripe(secret_key=FAKE_LIVE_KEY, payment_method="pm_card_authenticationRequired")
    with pytest.raises(HumanActionRequired):
        pay(method, stripe_challenge(challenge_id="first"))
    method.payment_method = "pm_card_visa"
    proof, _ = pay(method, stripe_challenge(challenge_id="second"))
    assert proof.reference in fake_stripe.tokens


# -- lookup -------------------------------------------------------------------------------------


def test_lookup_reports_pending_then_failed_after_revoke(make_stripe, fake_stripe):
    method = make_stripe()
    quote, proof = paid(method, stripe_challenge())
    result, _ = run(method.lookup(proof.reference))
    assert result.status == "pending"
    assert fake_stripe.calls[-1].path == f"/v1/shared_payment/granted_tokens/{proof.reference}"
    run(method.abandon(quote, proof))
    result, _ = run(method.lookup(proof.reference))
    assert result.status == "failed" and "revoked" in (result.detail or "")


def test_lookup_reports_settled_once_captured(make_stripe, fake_stripe, stripe_url):
    method = make_stripe()
    proof, _ = pay(method, stripe_challenge(amount="700"))
    assert seller_charges(stripe_url, proof.reference, 700).status_code == 200
    captured = fake_stripe.tokens[proof.reference]["usage_details"]["amount_captured"]
    assert captured == {"currency": "usd", "value": 700}  # the documented shape
    result, _ = run(method.lookup(proof.reference))
    assert (result.status, result.amount) == ("settled", 700)


def test_lookup_of_an_expired_unused_token_is_failed(make_stripe, fake_stripe: FakeStripe):
    method = make_stripe(secret_key=FAKE_LIVE_KEY)
    proof, _ = pay(method, stripe_challenge(expires_in=120))
    later = fake_stripe.clock() + 600
    fake_stripe.clock = lambda: later
    result, _ = run(method.lookup(proof.reference))
    assert result.status == "failed" and "expired" in (result.detail or "")


@pytest.mark.parametrize(
    ("changes", "status"),
    [
        ({"deactivated_reason": "consumed"}, "settled"),  # used, amount not shown yet
        ({"deactivated_reason": "resolved"}, "pending"),  # meaning not documented: no proof
        ({"deactivated_reason": "revoked", "usage_details": {"amount_captured": "?"}}, "pending"),
        ({"deactivated_reason": "revoked", "id": "spt_other"}, "pending"),
        ({"deactivated_reason": "something_new"}, "pending"),
    ],
)
def test_lookup_only_proves_failure_from_a_clear_state(make_stripe, fake_stripe, changes, status):
    method = make_stripe()
    proof, _ = pay(method, stripe_challenge())
    fake_stripe.tokens[proof.reference].update(changes)
    assert run(method.lookup(proof.reference))[0].status == status


def test_lookup_of_an_unknown_token_is_pending(make_stripe, fake_stripe: FakeStripe):
    # "No such token" may be another account's or mode's token: it proves nothing.
    method = make_stripe()
    assert run(method.lookup("spt_unknown123"))[0].status == "pending"
    assert run(method.lookup("pi_123"))[0].status == "pending"


# -- payer --------------------------------------------------------------------------------------


def test_payer_names_the_account_and_mode():
    method = StripeCharge(SELLER_KEY, payment_method="pm_1", account="acct_1Abc")
    assert method.payer("stripe:test") == "stripe:test:acct_1Abc"
    live = StripeCharge(FAKE_LIVE_KEY, payment_method="pm_1", account="acct_1Abc")
    assert live.payer("stripe:live") == "stripe:live:acct_1Abc"


def test_payer_without_an_account_is_a_key_fingerprint_not_the_key():
    method = StripeCharge(SELLER_KEY, payment_method="pm_1")
    payer = method.payer("stripe:test")
    assert payer is not None and payer.startswith("stripe:test:key-")
    assert SELLER_KEY not in payer and SELLER_KEY[8:] not in payer
    assert payer == StripeCharge(SELLER_KEY, payment_method="pm_2").payer(None)
    assert payer != StripeCharge(SELLER_KEY + "x", payment_method="pm_1").payer(None)


def test_account_must_be_an_account_id():
    with pytest.raises(ValueError, match="acct_"):
        StripeCharge(SELLER_KEY, payment_method="pm_1", account="sk_test_oops")


def test_repr_and_calls_hide_the_key(make_stripe):
    method = make_stripe()
    assert SELLER_KEY not in repr(method)
    quote = method.quote(stripe_challenge(), context())
    effect = next(method.pay(quote, context()))
    assert isinstance(effect, HttpCall) and SELLER_KEY not in repr(effect)


def test_lookup_without_usage_details_proves_nothing(make_stripe, fake_stripe: FakeStripe):
    method = make_stripe()
    quote, proof = paid(method, stripe_challenge())
    assert run(method.abandon(quote, proof))[0] is True
    del fake_stripe.tokens[proof.reference]["usage_details"]
    assert run(method.lookup(proof.reference))[0].status == "pending"
    assert run(method.abandon(quote, proof))[0] is False
