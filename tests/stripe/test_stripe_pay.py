"""StripeCharge.pay / abandon / lookup against the fake Stripe API on 127.0.0.1, driven by the
library's effect runner: what is sent to Stripe, what is checkpointed, what comes back."""

from __future__ import annotations

import base64
from collections.abc import Generator
from datetime import UTC, datetime
from typing import Any

import pytest

from mpp_client.effects import Checkpoint
from mpp_client.errors import HumanActionRequired, MethodError
from mpp_client.methods.base import PaymentProof
from mpp_client.runner import SyncRunner
from tests.stripe.challenges import FAKE_LIVE_KEY, SELLER_KEY, context, stripe_challenge
from tests.stripe.stripe_fake import PREVIEW_VERSION, FakeStripe


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


def pay(method: Any, challenge: Any, now: datetime | None = None) -> tuple[PaymentProof, Any]:
    ctx = context(now)
    quote = method.quote(challenge, ctx)
    proof, checkpoints = run(method.pay(quote, ctx))
    return proof, checkpoints


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
        ("seller_details[network_id]", "profile_seller_123"),
    ]
    assert call.headers["stripe-version"] == PREVIEW_VERSION
    assert (
        call.headers["authorization"]
        == "Basic " + base64.b64encode(f"{SELLER_KEY}:".encode()).decode()
    )
    assert call.headers["idempotency-key"].startswith("mpp-client-spt-")
    token_id = proof.payload["spt"]
    assert dict(proof.payload) == {"spt": token_id}
    assert checkpoints == [Checkpoint("signed", token_id)]
    assert proof.reference == token_id and proof.money_moved is False
    assert fake_stripe.tokens[token_id]["status"] == "active"


def test_token_expiry_is_capped_by_the_token_lifetime(make_stripe, fake_stripe: FakeStripe):
    from datetime import timedelta

    now = datetime.now(UTC).replace(microsecond=0)
    method = make_stripe(token_lifetime=timedelta(seconds=60))
    pay(method, stripe_challenge(now=now, expires_in=3000), now)
    assert fake_stripe.calls[0].field("usage_limits[expires_at]") == str(int(now.timestamp()) + 60)


def test_live_mode_uses_issued_tokens_with_the_business_profile(
    make_stripe, fake_stripe: FakeStripe
):
    method = make_stripe(secret_key=FAKE_LIVE_KEY, payment_method="pm_1", customer="cus_1")
    proof, _ = pay(method, stripe_challenge(externalId="order-9"))
    [call] = fake_stripe.calls
    assert call.path == "/v1/shared_payment/issued_tokens"
    assert call.field("customer") == "cus_1"
    assert call.field("seller_details[network_business_profile]") == "profile_seller_123"
    assert call.field("seller_details[external_id]") == "order-9"
    assert "seller_details[network_id]" not in dict(call.form)
    assert proof.payload == {"spt": proof.reference, "externalId": "order-9"}


def test_external_id_is_echoed_in_the_payload(make_stripe):
    proof, _ = pay(make_stripe(), stripe_challenge(externalId="server-order-123"))
    assert proof.payload["externalId"] == "server-order-123"


def test_paying_the_same_challenge_twice_replays_the_same_token(
    make_stripe, fake_stripe: FakeStripe
):
    challenge = stripe_challenge()
    now = datetime.now(UTC)
    first, _ = pay(make_stripe(), challenge, now)
    second, _ = pay(make_stripe(), challenge, now)
    assert first.reference == second.reference
    assert len(fake_stripe.tokens) == 1


def test_a_different_challenge_gets_a_different_idempotency_key(
    make_stripe, fake_stripe: FakeStripe
):
    pay(make_stripe(), stripe_challenge(challenge_id="a"))
    pay(make_stripe(), stripe_challenge(challenge_id="b"))
    keys = {c.headers["idempotency-key"] for c in fake_stripe.calls}
    assert len(keys) == 2 and len(fake_stripe.tokens) == 2


def test_token_needing_customer_action_raises_and_is_revoked(make_stripe, fake_stripe):
    method = make_stripe(payment_method="pm_card_authenticationRequired")
    with pytest.raises(HumanActionRequired) as caught:
        pay(method, stripe_challenge())
    assert caught.value.action == "redirect_to_url: https://hooks.stripe.com/3d_secure/fake"
    [token] = fake_stripe.tokens.values()
    assert token["deactivated_reason"] == "revoked"
    assert fake_stripe.calls[-1].path.endswith(f"/{token['id']}/revoke")
    assert fake_stripe.calls[-1].headers["idempotency-key"].startswith("mpp-client-revoke-")


def test_old_test_helper_without_seller_details_gets_a_plain_retry(make_stripe, fake_stripe):
    fake_stripe.grant_rejects_seller_details = True
    proof, _ = pay(make_stripe(), stripe_challenge())
    first, second = fake_stripe.calls
    assert first.status == 400 and second.status == 200
    assert "seller_details[network_id]" not in dict(second.form)
    assert first.headers["idempotency-key"] != second.headers["idempotency-key"]
    assert proof.payload["spt"] in fake_stripe.tokens


def test_stripe_error_is_a_method_error_without_the_key(make_stripe, fake_stripe):
    method = make_stripe(secret_key="sk_test_WRONGKEY123")
    with pytest.raises(MethodError) as caught:
        pay(method, stripe_challenge())
    assert "401" in str(caught.value) and "invalid_request_error" in str(caught.value)
    assert "WRONGKEY" not in str(caught.value)
    assert fake_stripe.tokens == {}


def test_abandon_revokes_the_unused_token(make_stripe, fake_stripe: FakeStripe):
    method = make_stripe()
    ctx = context()
    quote = method.quote(stripe_challenge(), ctx)
    proof, _ = run(method.pay(quote, ctx))
    run(method.abandon(quote, proof))
    assert fake_stripe.tokens[proof.reference]["deactivated_reason"] == "revoked"


def test_abandon_tolerates_an_unreachable_stripe(make_stripe, fake_stripe: FakeStripe):
    from mpp_client.methods.stripe import StripeCharge

    method = make_stripe()
    ctx = context()
    quote = method.quote(stripe_challenge(), ctx)
    proof, _ = run(method.pay(quote, ctx))
    offline = StripeCharge(SELLER_KEY, payment_method="pm_1", api_base="http://127.0.0.1:9")
    assert run(offline.abandon(quote, proof))[0] is None


def test_lookup_reports_pending_then_failed_after_revoke(make_stripe, fake_stripe):
    method = make_stripe()
    ctx = context()
    quote = method.quote(stripe_challenge(), ctx)
    proof, _ = run(method.pay(quote, ctx))
    assert run(method.lookup(proof.reference))[0].status == "pending"
    run(method.abandon(quote, proof))
    assert run(method.lookup(proof.reference))[0].status == "failed"


def test_lookup_reports_settled_once_captured(make_stripe, fake_stripe: FakeStripe):
    method = make_stripe()
    proof, _ = pay(method, stripe_challenge(amount="700"))
    fake_stripe.tokens[proof.reference]["deactivated_reason"] = "consumed"
    fake_stripe.tokens[proof.reference]["usage_details"]["amount_captured"] = 700
    result, _ = run(method.lookup(proof.reference))
    assert (result.status, result.amount) == ("settled", 700)
