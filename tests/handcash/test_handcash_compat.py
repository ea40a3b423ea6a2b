"""The handcash-mpp compatibility mode at method level: what the connect-pay route is sent and
which answers leave the outcome unknown (a 400 from such a route may follow a debit)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import httpx
import pytest

from mpp_client.effects import Checkpoint, HttpCall
from mpp_client.errors import NothingSent, PaymentOutcomeUnknown
from mpp_client.methods.handcash import HandCashCompatSite
from mpp_client.money import Currency, Money
from tests.handcash.challenges import context, run
from tests.handcash.handcash_mpp_fake import FakeHandCashMppServer
from tests.loopback_server import serve

USD = Currency.fiat("usd")
MERCHANT_TOKEN = hashlib.sha256(b"token issued to the merchant's app").hexdigest()


@pytest.fixture
def compat_server() -> Iterator[tuple[FakeHandCashMppServer, str]]:
    server = FakeHandCashMppServer(merchant_token=MERCHANT_TOKEN)
    with serve(server.app()) as base:
        yield server, base


def pay_site(make_handcash, base: str, *, token: str = MERCHANT_TOKEN, **site_options):
    site = HandCashCompatSite(
        origin=base, max_price=Money(10, USD), merchant_auth_token=token, **site_options
    )
    method = make_handcash(compat_sites=[site])
    answer = httpx.get(f"{base}/paid")
    assert answer.status_code == 402
    [challenge] = method.synthesize_challenges(base, dict(answer.headers), answer.content)
    ctx = context(f"{base}/paid")
    quote = method.quote(challenge, ctx)
    return run(method.pay(quote, ctx))


def test_sends_the_merchant_token_after_the_broadcast_checkpoint(make_handcash, compat_server):
    server, base = compat_server
    proof, effects = pay_site(make_handcash, base)
    assert isinstance(effects[0], Checkpoint) and effects[0].stage == "broadcast"
    assert isinstance(effects[1], HttpCall) and effects[1].url == f"{base}/api/connect-pay"
    [call] = server.connect_calls
    assert call["authToken"] == MERCHANT_TOKEN
    assert proof.money_moved is True and "x-handcash-receipt" in (proof.retry_headers or {})
    assert MERCHANT_TOKEN not in repr(proof) and MERCHANT_TOKEN not in repr(effects[1])


def test_a_400_after_the_pull_is_unknown_not_nothing_paid(make_handcash, compat_server):
    server, base = compat_server
    server.fail_after_pull = True
    with pytest.raises(PaymentOutcomeUnknown, match="HTTP 400") as caught:
        pay_site(make_handcash, base)
    assert caught.value.money_moved is None
    assert caught.value.challenge_id.startswith("handcash-compat:")
    assert len(server.pulls) == 1  # the wallet WAS charged: the amount must stay held


def test_a_400_with_a_wrong_token_is_also_unknown(make_handcash, compat_server):
    # Indistinguishable on the wire from the 400 after a debit.
    server, base = compat_server
    with pytest.raises(PaymentOutcomeUnknown):
        pay_site(make_handcash, base, token=hashlib.sha256(b"other").hexdigest())
    assert server.pulls == []


def test_any_other_status_after_sending_the_token_is_unknown(make_handcash, compat_server):
    _, base = compat_server
    with pytest.raises(PaymentOutcomeUnknown, match="HTTP 404"):
        pay_site(make_handcash, base, connect_pay_path="/api/no-such-route")


def test_unreachable_route_is_nothing_sent(make_handcash):
    import json

    base = "http://127.0.0.1:9"  # nothing listens: the connect fails, nothing is sent
    site = HandCashCompatSite(
        origin=base, max_price=Money(10, USD), merchant_auth_token=MERCHANT_TOKEN
    )
    method = make_handcash(compat_sites=[site])
    body = {
        "type": "https://paymentauth.org/problems/payment-required",
        "challengeId": "abc123",
        "handcash": {"fulfillment": "connect"},
    }
    [challenge] = method.synthesize_challenges(base, {}, json.dumps(body).encode())
    ctx = context(f"{base}/paid")
    with pytest.raises(NothingSent, match="could not be reached") as caught:
        run(method.pay(method.quote(challenge, ctx), ctx))
    assert caught.value.money_moved is False
