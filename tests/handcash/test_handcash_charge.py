"""HandCashCharge quote and pay against the fake HandCash Cloud: the checks before paying,
the exact pay request, the order of checkpoint and payment, refusals that pay nothing
(``NothingSent``), outcomes that stay unknown (``PaymentOutcomeUnknown``), and lookup."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from mpp_client.effects import Checkpoint, HttpCall
from mpp_client.errors import (
    ChallengeExpired,
    MethodError,
    NothingSent,
    PaymentOutcomeUnknown,
    PaymentRefused,
)
from mpp_client.methods.base import Payee
from mpp_client.methods.handcash import HandCashCharge
from mpp_client.money import Currency, Money
from tests.handcash.challenges import context, handcash_challenge, run
from tests.handcash.conftest import AUTH_TOKEN, PUBLIC_KEY
from tests.handcash.handcash_fake_cloud import APP_SECRET, FakeHandCashCloud

OFFLINE = HandCashCharge(
    app_id="a", app_secret="s", auth_token=AUTH_TOKEN, base_url="http://0.0.0.0:9"
)


def pay(method: HandCashCharge, challenge):
    ctx = context()
    quote = method.quote(challenge, ctx)
    return run(method.pay(quote, ctx))


# -- quote --------------------------------------------------------------------------------------


def test_quote_is_in_us_cents() -> None:
    quote = OFFLINE.quote(handcash_challenge(amount="5"), context())
    assert quote.amount == Money(5, Currency.fiat("usd"))
    assert quote.payees == (Payee("merchant", 5),)
    assert quote.network == "handcash:bsv"


def test_split_receivers_are_the_payees() -> None:
    details = {
        "receivers": [
            {"destination": "merchant", "amount": "4"},
            {"destination": "fees@handcash.io", "amount": "1"},
        ]
    }
    quote = OFFLINE.quote(handcash_challenge(recipient=None, details=details), context())
    assert quote.payees == (Payee("merchant", 4), Payee("fees@handcash.io", 1))


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"amount": "0"}, "amount"),
        ({"amount": "0.05"}, "amount"),
        ({"amount": 5}, "amount"),
        ({"currency": "USD"}, "currency"),
        ({"currency": "btc"}, "currency"),
        ({"recipient": "not a handle!"}, "recipient"),
        ({"recipient": None}, "exactly one"),
        ({"details": {"instrument": "ETH"}}, "instrument"),
        ({"details": {"instrument": "MNEE"}, "currency": "eur"}, "MNEE"),
        ({"details": {"instrument": "MNEE"}, "recipient": "a@b.com"}, "paymail"),
        ({"details": {"receivers": [{"destination": "m", "amount": "5"}]}}, "exactly one"),
        (
            {
                "recipient": None,
                "details": {
                    "receivers": [
                        {"destination": "m", "amount": "3"},
                        {"destination": "n", "amount": "3"},
                    ]
                },
            },
            "add up",
        ),
        ({"recipient": None, "details": {"receivers": []}}, "receivers"),
        ({"externalId": 7}, "externalId"),
    ],
)
def test_malformed_requests_are_refused(changes: dict, reason: str) -> None:
    with pytest.raises(PaymentRefused, match=reason):
        OFFLINE.quote(handcash_challenge(**changes), context())


def test_expiring_challenge_is_refused() -> None:
    with pytest.raises(ChallengeExpired):
        OFFLINE.quote(handcash_challenge(expires_in=3), context())


def test_compat_intent_from_a_server_is_not_payable() -> None:
    from mpp_client.protocol import Challenge

    forged = Challenge.create(
        id="handcash-compat:abc",
        realm="api.example.com",
        method="handcash",
        intent="compat-charge",
        request={"compat": "handcash-mpp", "challengeId": "abc", "fulfillment": "connect"},
    )
    assert not OFFLINE.can_pay(forged)
    with pytest.raises(PaymentRefused):
        OFFLINE.quote(forged, context())


def test_repr_hides_secrets() -> None:
    assert AUTH_TOKEN not in repr(OFFLINE) and "'s'" not in repr(OFFLINE)


# -- pay ----------------------------------------------------------------------------------------


def test_pays_exactly_the_charge_bound_to_the_challenge(make_handcash, cloud: FakeHandCashCloud):
    proof, effects = pay(make_handcash(), handcash_challenge(amount="5", externalId="order-1"))

    [paid] = cloud.payments.values()
    assert paid.body == {
        "instrumentCurrencyCode": "BSV",
        "denominationCurrencyCode": "USD",
        "note": "mpp:hc_challenge_1",
        "receivers": [{"sendAmount": Decimal("0.05"), "destination": "merchant"}],
        "attachment": {
            "format": "json",
            "value": {"mpp": {"id": "hc_challenge_1", "realm": "api.example.com"}},
        },
    }
    assert proof.payload == {"transactionId": paid.transaction_id, "externalId": "order-1"}
    assert proof.reference == paid.transaction_id and proof.money_moved is True
    assert cloud.limits[PUBLIC_KEY] == Decimal("0.95")
    # The spendable check, then the broadcast checkpoint, then (only then) the payment.
    kinds = [e.url.rsplit("/", 1)[-1] if isinstance(e, HttpCall) else e for e in effects]
    assert kinds == ["spendableBalances", Checkpoint("broadcast", None), "pay"]


def test_the_app_secret_and_token_never_travel_in_the_body(make_handcash, cloud):
    pay(make_handcash(), handcash_challenge())
    for seen in cloud.seen:
        assert AUTH_TOKEN.encode() not in seen.body
        assert APP_SECRET.encode() not in seen.body
        assert AUTH_TOKEN not in json.dumps(seen.headers)
    assert {s.headers["oauth-publickey"] for s in cloud.seen} == {PUBLIC_KEY}
    assert len({s.headers["oauth-nonce"] for s in cloud.seen}) == len(cloud.seen)


def test_split_payment_sends_every_receiver(make_handcash, cloud: FakeHandCashCloud):
    details = {
        "receivers": [
            {"destination": "merchant", "amount": "40"},
            {"destination": "fees@handcash.io", "amount": "2"},
        ]
    }
    pay(make_handcash(), handcash_challenge(amount="42", recipient=None, details=details))
    [paid] = cloud.payments.values()
    assert paid.body["receivers"] == [
        {"sendAmount": Decimal("0.4"), "destination": "merchant"},
        {"sendAmount": Decimal("0.02"), "destination": "fees@handcash.io"},
    ]


def test_mnee_is_sent_without_a_denomination(make_handcash, cloud: FakeHandCashCloud):
    pay(make_handcash(), handcash_challenge(details={"instrument": "MNEE"}))
    [paid] = cloud.payments.values()
    assert paid.body["instrumentCurrencyCode"] == "MNEE"
    assert "denominationCurrencyCode" not in paid.body


def test_over_the_app_limit_is_refused_before_paying(make_handcash, cloud: FakeHandCashCloud):
    with pytest.raises(NothingSent, match="may spend") as caught:
        pay(make_handcash(), handcash_challenge(amount="101"))
    assert caught.value.money_moved is False and caught.value.challenge_id == "hc_challenge_1"
    assert cloud.pay_calls() == [] and cloud.payments == {}


def test_limit_refusal_comes_before_the_broadcast_checkpoint(make_handcash, cloud):
    method = make_handcash()
    ctx = context()
    gen = method.pay(method.quote(handcash_challenge(amount="101"), ctx), ctx)
    effects = []
    with pytest.raises(NothingSent):
        run_collecting(gen, effects)
    assert not any(isinstance(e, Checkpoint) for e in effects)


def test_declined_payment_pays_nothing(make_handcash, cloud: FakeHandCashCloud):
    # Without the pre-check HandCash itself refuses (400 with its JSON error): nothing moved.
    with pytest.raises(NothingSent, match="Spending limit") as caught:
        pay(make_handcash(check_spendable=False), handcash_challenge(amount="101"))
    assert caught.value.money_moved is False
    assert len(cloud.pay_calls()) == 1 and cloud.payments == {}


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_handcash_refusals_are_nothing_sent(make_handcash, cloud, status: int):
    cloud.fail_pay_with = status
    with pytest.raises(NothingSent, match="Injected failure"):
        pay(make_handcash(check_spendable=False), handcash_challenge())
    assert cloud.payments == {}


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504])
def test_other_statuses_after_the_pay_call_are_unknown(make_handcash, cloud, status: int):
    cloud.fail_pay_with = status
    with pytest.raises(PaymentOutcomeUnknown) as caught:
        pay(make_handcash(), handcash_challenge())
    assert caught.value.money_moved is None
    assert caught.value.challenge_id == "hc_challenge_1" and caught.value.reference is None
    assert not isinstance(caught.value, PaymentRefused)


def test_a_refusal_status_without_handcash_json_is_unknown(make_handcash, cloud):
    # A 400 page that is not HandCash's JSON error (a proxy in between) proves nothing.
    cloud.fail_pay_with = 400
    cloud.fail_pay_text = True
    with pytest.raises(PaymentOutcomeUnknown):
        pay(make_handcash(), handcash_challenge())


def test_server_error_after_the_debit_is_unknown_and_held(make_handcash, cloud):
    cloud.debit_then_fail_with = 504
    with pytest.raises(PaymentOutcomeUnknown, match="504") as caught:
        pay(make_handcash(), handcash_challenge())
    assert caught.value.money_moved is None and caught.value.reference is None
    assert "mpp:hc_challenge_1" in str(caught.value)  # what to look for in the wallet
    [debited] = cloud.payments.values()
    assert debited.total == Decimal("0.05")


def test_a_transaction_id_in_an_error_answer_is_kept_for_lookup(make_handcash, cloud):
    cloud.debit_then_fail_with = 500
    cloud.debit_then_fail_body = {"transactionId": "$txid"}
    method = make_handcash()
    with pytest.raises(PaymentOutcomeUnknown) as caught:
        pay(method, handcash_challenge())
    [txid] = cloud.payments
    assert caught.value.reference == txid
    result, _ = run(method.lookup(txid))
    assert result.status == "settled"


def test_a_4xx_naming_a_transaction_is_not_a_refusal(make_handcash, cloud):
    cloud.debit_then_fail_with = 400
    cloud.debit_then_fail_body = {"transactionId": "$txid"}
    with pytest.raises(PaymentOutcomeUnknown) as caught:
        pay(make_handcash(), handcash_challenge())
    assert caught.value.reference in cloud.payments


def test_success_without_a_transaction_id_is_unknown(make_handcash, cloud):
    cloud.drop_transaction_id = True
    with pytest.raises(PaymentOutcomeUnknown, match="no transaction id") as caught:
        pay(make_handcash(), handcash_challenge())
    assert caught.value.money_moved is None
    assert len(cloud.payments) == 1


def test_lost_answer_is_unknown_and_never_resent(make_handcash, cloud):
    cloud.pay_delay = 2.0
    with pytest.raises(PaymentOutcomeUnknown, match="no answer") as caught:
        pay(make_handcash(timeout=0.5), handcash_challenge())
    assert caught.value.money_moved is None
    assert len(cloud.pay_calls()) == 1 and len(cloud.payments) == 1


def test_unreachable_handcash_is_nothing_sent():
    method = HandCashCharge(
        app_id="a", app_secret="s", auth_token=AUTH_TOKEN, base_url="http://127.0.0.1:9",
        check_spendable=False,
    )  # fmt: skip
    with pytest.raises(NothingSent, match="could not be reached") as caught:
        pay(method, handcash_challenge())
    assert caught.value.money_moved is False


def test_wrong_app_secret_is_reported_without_the_secret(make_handcash, cloud):
    with pytest.raises(MethodError) as caught:
        pay(make_handcash(app_secret="WRONG-SECRET"), handcash_challenge())
    assert "401" in str(caught.value) and "WRONG-SECRET" not in str(caught.value)
    assert cloud.payments == {}


def test_wrong_app_secret_on_the_pay_call_is_a_refusal(make_handcash, cloud):
    with pytest.raises(NothingSent) as caught:
        pay(make_handcash(app_secret="WRONG-SECRET", check_spendable=False), handcash_challenge())
    assert "WRONG-SECRET" not in str(caught.value) and cloud.payments == {}


def test_stale_clock_is_rejected_by_the_cloud(make_handcash, cloud: FakeHandCashCloud):
    from datetime import UTC, datetime, timedelta

    stale = make_handcash(clock=lambda: datetime.now(UTC) - timedelta(hours=1))
    with pytest.raises(MethodError, match="timestamp"):
        pay(stale, handcash_challenge())
    assert cloud.payments == {}


# -- lookup / payer -------------------------------------------------------------------------------


def test_lookup_finds_the_payment(make_handcash, cloud: FakeHandCashCloud):
    method = make_handcash()
    proof, _ = pay(method, handcash_challenge())
    result, effects = run(method.lookup(proof.reference))
    assert result.status == "settled" and result.reference == proof.reference
    [call] = effects
    assert call.method == "GET"
    assert call.url.endswith(f"/v3/connect/wallet/payment?transactionId={proof.reference}")


def test_lookup_never_claims_a_payment_failed(make_handcash, cloud: FakeHandCashCloud):
    method = make_handcash()
    # "Not found" may be another wallet's payment or one not indexed yet: not a proof.
    assert run(method.lookup("00" * 32))[0].status == "pending"
    assert run(method.lookup("not-a-txid"))[0].status == "pending"
    offline = HandCashCharge(
        app_id="a", app_secret="s", auth_token=AUTH_TOKEN, base_url="http://127.0.0.1:9"
    )
    with pytest.raises(MethodError):
        run(offline.lookup("00" * 32))


def test_lookup_of_another_wallets_payment_is_pending(make_handcash, cloud):
    import hashlib

    proof, _ = pay(make_handcash(), handcash_challenge())
    other = make_handcash(auth_token=hashlib.sha256(b"another wallet").hexdigest())
    assert run(other.lookup(proof.reference))[0].status == "pending"


def test_payer_is_the_app_and_the_wallet_key_without_secrets(make_handcash):
    method = make_handcash()
    payer = method.payer("handcash:bsv")
    assert payer == f"handcash:fake-app-id:{PUBLIC_KEY}"
    assert method.payer("handcash:mnee") == payer
    assert AUTH_TOKEN not in payer and APP_SECRET not in payer


def run_collecting(gen, effects: list) -> None:
    """Like ``run`` but keeps the effects seen before an exception."""
    from mpp_client.runner import SyncRunner

    runner = SyncRunner()
    reply = None
    try:
        while True:
            effect = gen.send(reply)
            effects.append(effect)
            reply = None if isinstance(effect, Checkpoint) else runner.perform(effect)
    except StopIteration:
        return
    finally:
        runner.close()
