"""The payment flow's behaviour, specified once and checked for httpx sync, httpx async and
requests against a real loopback MPP server (or, where a non-loopback host is needed, the same
server behind an in-process transport)."""

from __future__ import annotations

import asyncio
import hashlib

import httpx
import pytest

from mpp_client import (
    BudgetExceeded,
    ChallengeExpired,
    Credential,
    CrossOriginPayment,
    InsecureOrigin,
    Money,
    NoPayableChallenge,
    PaymentOptions,
    PaymentOutcomeUnknown,
    PaymentVetoed,
    UnreplayableBody,
)
from mpp_client.flow import PaymentHooks
from mpp_client.protocol import parse_credential
from mpp_client.testing import TEST_CURRENCY, FakeMppServer, Offer, Route, TestMethod, test_proof
from tests.drivers.harness import Chunks, Driver, hooks_recorder, inner_for


def credentials(server: FakeMppServer, header: str = "authorization") -> list[Credential]:
    found = []
    for recorded in server.requests:
        credential = recorded.credential(header)
        if credential is not None:
            found.append(credential)
    return found


# --- the happy path ----------------------------------------------------------------------------


def test_free_endpoint_is_untouched_and_advertises_accepted_methods(driver, server, base_url):
    server.routes["/free"] = Route(offers=())
    result = driver.send("GET", base_url + "/free")
    assert result.status == 200
    assert result.payment is None
    assert server.requests[0].headers["accept-payment"] == "test/charge"
    assert driver.methods[0].paid == []


def test_caller_accept_payment_header_is_kept(driver, server, base_url):
    server.routes["/free"] = Route(offers=())
    driver.send("GET", base_url + "/free", headers={"Accept-Payment": "tempo/charge"})
    assert server.requests[0].headers["accept-payment"] == "tempo/charge"


def test_402_is_paid_once_and_the_receipt_is_attached(driver, server, base_url, guard):
    result = driver.send("GET", base_url + "/paid")
    assert result.status == 200
    assert result.content == b'{"ok":true}'
    payment = result.payment
    assert payment is not None and payment.status == "paid"
    assert payment.quote.amount == Money(1000, TEST_CURRENCY)
    assert payment.receipt is not None and payment.receipt.status == "success"
    assert payment.receipt.challenge_id == payment.quote.challenge.id
    # exactly one credential, for the challenge the server issued, carrying the method's proof
    sent = credentials(server)
    assert len(sent) == 1
    assert sent[0].challenge.id == payment.quote.challenge.id
    assert sent[0].payload == {"proof": test_proof(payment.quote.challenge.id)}
    assert driver.methods[0].paid == [payment.quote.challenge.id]
    assert [entry.state for entry in guard.entries] == ["settled"]
    assert guard.entries[0].receipt_reference == payment.receipt.reference


def test_credential_echoes_the_challenge_verbatim(driver, server, base_url):
    server.routes["/paid"] = Route(
        offers=(Offer(description="1 tUSD for a report", opaque="trace-1"),)
    )
    result = driver.send("GET", base_url + "/paid")
    sent = credentials(server)[0]
    issued = result.payment.quote.challenge
    assert sent.challenge.echo() == issued.echo()
    assert sent.challenge.request == issued.request  # the base64url text, byte for byte
    assert sent.challenge.description == "1 tUSD for a report"
    assert sent.challenge.opaque == "trace-1"


def test_the_response_request_never_carries_the_credential(driver, server, base_url):
    result = driver.send("GET", base_url + "/paid")
    assert result.payment.status == "paid"
    assert "authorization" not in result.request_headers


def test_events_are_reported_in_order(driver_name, method, guard, server, base_url):
    hooks, events = hooks_recorder()
    driver = Driver(driver_name, [method], guard, {"hooks": hooks})
    driver.send("GET", base_url + "/paid")
    assert events == ["challenges:1", "quote:1000", "paid", "receipt:success"]


# --- bodies ------------------------------------------------------------------------------------


def test_post_body_is_replayed_byte_identically_with_an_idempotency_key(driver, server, base_url):
    body = b'{"data":"test payload \xe2\x9c\x93"}'
    result = driver.send("POST", base_url + "/paid", content=body)
    assert result.payment.status == "paid"
    first, paid = server.requests
    assert first.body == body and paid.body == body
    assert "idempotency-key" not in first.headers
    assert len(paid.headers["idempotency-key"]) >= 16


def test_streamed_body_is_buffered_and_replayed(driver, server, base_url):
    result = driver.send("POST", base_url + "/paid", content=Chunks([b"part1-", b"part2"]))
    assert result.payment.status == "paid"
    assert [r.body for r in server.requests] == [b"part1-part2", b"part1-part2"]


def test_caller_idempotency_key_is_kept(driver, server, base_url):
    driver.send("POST", base_url + "/paid", content=b"x", headers={"Idempotency-Key": "mine-1"})
    assert server.requests[1].headers["idempotency-key"] == "mine-1"


def test_get_gets_no_idempotency_key(driver, server, base_url):
    driver.send("GET", base_url + "/paid")
    assert "idempotency-key" not in server.requests[1].headers


def test_body_too_large_to_replay_is_refused_before_signing(
    driver_name, method, guard, server, base_url
):
    driver = Driver(driver_name, [method], guard, {"body_cap": 8})
    with pytest.raises(UnreplayableBody) as caught:
        driver.send("POST", base_url + "/paid", content=Chunks([b"0123456789", b"abcdef"]))
    assert "replay" in str(caught.value)
    assert method.paid == [] and guard.entries == []
    # the body itself was still sent whole, once
    assert [r.body for r in server.requests] == [b"0123456789abcdef"]


def test_digest_bound_challenge_is_paid_with_the_same_body(driver, server, base_url):
    server.routes["/paid"] = Route(bind_digest=True)
    result = driver.send("POST", base_url + "/paid", content=b'{"data":"digest-bound"}')
    assert result.payment.status == "paid"
    assert credentials(server)[0].challenge.digest.startswith("sha-256=:")


# --- headers -----------------------------------------------------------------------------------


def test_credential_goes_in_the_header_the_challenge_names(driver, server, base_url):
    server.routes["/paid"] = Route(offers=(Offer(header="Payment-Authorization"),))
    result = driver.send("GET", base_url + "/paid", headers={"Authorization": "Bearer app-token"})
    assert result.payment.status == "paid"
    paid = server.requests[1]
    assert paid.headers["authorization"] == "Bearer app-token"
    credential = parse_credential(paid.headers["payment-authorization"])
    assert credential.challenge.header == "Payment-Authorization"


def test_stale_payment_authorization_is_replaced(driver, server, base_url):
    stale = "Payment eyJzdGFsZSI6dHJ1ZX0"
    result = driver.send("GET", base_url + "/paid", headers={"Authorization": stale})
    assert result.payment.status == "paid"
    assert server.requests[1].headers["authorization"] != stale


# --- redirects and origins ---------------------------------------------------------------------


def test_402_after_cross_origin_redirect_is_refused_and_nothing_signed(driver, method, guard):
    target = FakeMppServer()
    with target.serve() as target_url:
        origin = FakeMppServer({"/start": Route(redirect_to=target_url + "/paid")})
        with origin.serve() as origin_url, pytest.raises(CrossOriginPayment) as caught:
            driver.send("GET", origin_url + "/start")
    assert "redirect" in str(caught.value)
    assert method.paid == [] and guard.entries == []
    assert all("authorization" not in r.headers for r in target.requests)


def test_402_after_same_origin_redirect_is_paid(driver, server, base_url):
    server.routes["/start"] = Route(redirect_to=base_url + "/paid")
    result = driver.send("GET", base_url + "/start")
    assert result.status == 200 and result.payment.status == "paid"


def test_plain_http_to_a_remote_host_is_refused(driver, server, method, guard):
    with pytest.raises(InsecureOrigin):
        driver.send("GET", "http://api.example.com/paid", inner=inner_for(driver, server))
    assert method.paid == []


def test_https_remote_host_is_paid(driver, server):
    result = driver.send("GET", "https://api.example.com/paid", inner=inner_for(driver, server))
    assert result.payment.status == "paid"


# --- refusals before paying --------------------------------------------------------------------


def test_expired_challenge_is_refused_and_nothing_signed(driver, server, base_url, method, guard):
    server.routes["/paid"] = Route(offers=(Offer(expires="2020-01-01T00:00:00Z"),))
    with pytest.raises(ChallengeExpired):
        driver.send("GET", base_url + "/paid")
    assert method.paid == [] and guard.entries == []
    assert len(server.requests) == 1


def test_a_402_no_configured_method_recognises_comes_back_untouched(
    driver, server, base_url, method, guard
):
    server.routes["/paid"] = Route(offers=(Offer(method="bitcoin"), Offer(method="card")))
    result = driver.send("GET", base_url + "/paid")
    assert result.status == 402  # like a non-MPP 402: the caller decides
    payment = result.payment
    assert payment.status == "unpaid" and payment.quote is None and not payment.allowed
    assert isinstance(payment.error, NoPayableChallenge) and len(payment.error.refusals) == 2
    assert "bitcoin" in payment.refusal
    assert method.paid == [] and guard.entries == []


def test_a_challenge_naming_another_credential_header_is_never_paid(
    driver, server, base_url, method, guard
):
    # draft-httpauth-payment-01: only Payment-Authorization may be named.
    server.routes["/paid"] = Route(offers=(Offer(header="Cookie"),))
    result = driver.send("GET", base_url + "/paid")
    assert result.status == 402 and result.payment.status == "unpaid"
    assert "Payment-Authorization" in result.payment.refusal
    assert method.paid == [] and guard.entries == []
    assert all("payment " not in v.lower() for r in server.requests for v in r.headers.values())


def test_request_max_amount_refuses_a_dearer_payment(driver, server, base_url, method, guard):
    with pytest.raises(BudgetExceeded) as caught:
        driver.send(
            "GET", base_url + "/paid", mpp=PaymentOptions(max_amount=Money(999, TEST_CURRENCY))
        )
    assert caught.value.rule == "request.max_amount"
    assert method.paid == [] and guard.entries == []


def test_request_max_amount_allows_an_equal_price(driver, server, base_url):
    result = driver.send(
        "GET", base_url + "/paid", mpp=PaymentOptions(max_amount=Money(1000, TEST_CURRENCY))
    )
    assert result.payment.status == "paid"


def test_never_pay_returns_the_402_untouched(driver, server, base_url, method):
    result = driver.send("GET", base_url + "/paid", mpp=PaymentOptions(never_pay=True))
    assert result.status == 402 and result.payment is None
    assert method.paid == []


def test_dry_run_quotes_without_paying(driver, server, base_url, method, guard):
    result = driver.send("GET", base_url + "/paid", mpp=PaymentOptions(dry_run=True))
    assert result.status == 402
    assert result.payment.status == "quoted"
    assert result.payment.quote.amount.amount == 1000
    assert result.payment.quote.payees[0].address == "merchant"
    assert method.paid == [] and guard.entries == []


def test_non_mpp_402_is_returned_untouched(driver, server, base_url, method):
    server.routes["/x402"] = Route(offers=(), status=402, body=b'{"x402Version":1}')
    result = driver.send("GET", base_url + "/x402")
    assert result.status == 402 and result.content == b'{"x402Version":1}'
    assert result.payment is None and method.paid == []


@pytest.mark.parametrize("async_hook", [False, True])
def test_before_payment_hook_can_veto(driver_name, method, guard, server, base_url, async_hook):
    seen = []

    def veto(quote, context):
        seen.append(quote.amount.amount)
        return False

    async def async_veto(quote, context):
        await asyncio.sleep(0)
        return veto(quote, context)

    hooks = PaymentHooks(before_payment=async_veto if async_hook else veto)
    driver = Driver(driver_name, [method], guard, {"hooks": hooks})
    with pytest.raises(PaymentVetoed):
        driver.send("GET", base_url + "/paid")
    assert seen == [1000]
    assert method.paid == [] and guard.entries == []


def test_failing_before_payment_hook_refuses(driver_name, method, guard, server, base_url):
    def broken(quote, context):
        raise RuntimeError("hook bug")

    driver = Driver(driver_name, [method], guard, {"hooks": PaymentHooks(before_payment=broken)})
    with pytest.raises(PaymentVetoed):
        driver.send("GET", base_url + "/paid")
    assert method.paid == []


# --- choosing among challenges -----------------------------------------------------------------


def test_server_order_decides_without_preference(driver_name, guard, server, base_url):
    a, b = TestMethod("alpha"), TestMethod("beta")
    server.routes["/paid"] = Route(
        offers=(
            Offer(method="beta", verify=lambda c: True),
            Offer(method="alpha", verify=lambda c: True),
        )
    )
    Driver(driver_name, [a, b], guard).send("GET", base_url + "/paid")
    assert credentials(server)[0].challenge.method == "beta"


def test_preference_beats_server_order(driver_name, guard, server, base_url):
    a, b = TestMethod("alpha"), TestMethod("beta")
    server.routes["/paid"] = Route(
        offers=(
            Offer(method="beta", verify=lambda c: True),
            Offer(method="alpha", verify=lambda c: True),
        )
    )
    Driver(driver_name, [a, b], guard, {"prefer": ["alpha"]}).send("GET", base_url + "/paid")
    assert credentials(server)[0].challenge.method == "alpha"
    assert b.paid == []
    assert server.requests[0].headers["accept-payment"] == "alpha/charge, beta/charge;q=0.5"


def test_refused_challenge_falls_through_to_the_next(driver, server, base_url, method):
    server.routes["/paid"] = Route(
        offers=(Offer(expires="2020-01-01T00:00:00Z"), Offer(amount="5"))
    )
    result = driver.send("GET", base_url + "/paid")
    assert result.payment.quote.amount.amount == 5
    assert len(method.paid) == 1


def test_malformed_challenge_among_several_is_skipped(driver, method):
    good = FakeMppServer()

    # A server whose 402 carries one broken challenge before a good one.
    original = good.handle

    def handle(method_, target, headers, body):
        status, out, content = original(method_, target, headers, body)
        if status == 402:
            out.insert(0, ("www-authenticate", 'Payment id="", realm="x", method="test"'))
        return status, out, content

    good.handle = handle  # type: ignore[method-assign]
    with good.serve() as url:
        result = driver.send("GET", url + "/paid")
    assert result.payment.status == "paid"


# --- after the credential left -----------------------------------------------------------------


def test_rejected_paid_retry_returns_the_402_and_signs_only_once(
    driver, server, base_url, method, guard
):
    server.routes["/paid"] = Route(reject=True)
    result = driver.send("GET", base_url + "/paid")
    assert result.status == 402
    assert result.payment.status == "rejected"
    assert result.payment.problem.type.endswith("verification-failed")
    assert result.payment.error.challenge_id == result.payment.quote.challenge.id
    assert len(method.paid) == 1 and len(credentials(server)) == 1
    # The server holds a credential it may still settle: the amount stays held, unknown.
    assert result.payment.error.money_moved is None
    assert [e.state for e in guard.entries] == ["unknown"] and guard.entries[0].held
    assert method.abandoned == [guard.entries[0].reference]


def test_a_rejected_credential_proven_void_is_released(driver_name, server, base_url, guard):
    method = TestMethod(revocable=True)
    server.routes["/paid"] = Route(reject=True)
    result = Driver(driver_name, [method], guard).send("GET", base_url + "/paid")
    assert result.payment.status == "rejected" and result.payment.error.money_moved is False
    entry = guard.entries[0]
    assert (entry.state, entry.released, entry.proof) == ("failed", True, "credential-void")


def test_max_payments_pays_a_fresh_challenge_only_after_the_first_is_proven_void(
    driver_name, server, base_url, guard
):
    method = TestMethod(revocable=True)
    server.routes["/paid"] = Route(reject=True)
    driver = Driver(driver_name, [method], guard)
    result = driver.send("GET", base_url + "/paid", mpp=PaymentOptions(max_payments=2))
    assert result.payment.status == "rejected"
    assert result.payment.payments == 2
    assert len(method.paid) == 2 and len(set(method.paid)) == 2
    assert [e.state for e in guard.entries] == ["failed", "failed"]


def test_max_payments_never_signs_again_while_the_first_may_settle(
    driver, server, base_url, method, guard
):
    server.routes["/paid"] = Route(reject=True)
    result = driver.send("GET", base_url + "/paid", mpp=PaymentOptions(max_payments=3))
    assert result.payment.status == "rejected" and result.payment.payments == 1
    assert len(method.paid) == 1 and len(credentials(server)) == 1
    assert [e.state for e in guard.entries] == ["unknown"]


def test_no_second_payment_when_money_already_moved(driver_name, guard, server, base_url):
    method = TestMethod(money_moved=True)
    server.routes["/paid"] = Route(reject=True)
    driver = Driver(driver_name, [method], guard)
    result = driver.send("GET", base_url + "/paid", mpp=PaymentOptions(max_payments=3))
    assert result.payment.status == "rejected"
    assert result.payment.error.money_moved is True
    assert len(method.paid) == 1


def test_403_after_paying_is_final(driver, server, base_url, method, guard):
    server.routes["/paid"] = Route(paid_status=403)
    result = driver.send("GET", base_url + "/paid", mpp=PaymentOptions(max_payments=3))
    assert result.status == 403
    assert result.payment.status == "denied"
    assert len(method.paid) == 1
    assert guard.entries[0].state == "failed"


def test_server_error_after_paying_is_an_unknown_outcome(driver, server, base_url, method, guard):
    server.routes["/paid"] = Route(paid_status=500)
    result = driver.send("GET", base_url + "/paid")
    assert result.status == 500
    assert result.payment.status == "unknown"
    assert isinstance(result.payment.error, PaymentOutcomeUnknown)
    assert guard.entries[0].state == "unknown"
    assert len(method.paid) == 1


def test_dropped_paid_retry_resends_the_same_credential_once(
    driver, server, base_url, method, guard
):
    server.routes["/paid"] = Route(drop_paid=1)
    result = driver.send("GET", base_url + "/paid")
    assert result.payment.status == "paid"
    assert len(method.paid) == 1
    sent = [r.headers["authorization"] for r in server.requests if "authorization" in r.headers]
    assert len(sent) == 2 and sent[0] == sent[1]


def test_paid_retry_dropped_twice_is_outcome_unknown(driver, server, base_url, method, guard):
    server.routes["/paid"] = Route(drop_paid=5)
    with pytest.raises(PaymentOutcomeUnknown) as caught:
        driver.send("GET", base_url + "/paid")
    assert caught.value.challenge_id == method.paid[0]
    assert caught.value.reference.startswith("test-")
    assert len(method.paid) == 1
    assert guard.entries[0].state == "unknown"
    assert sum("authorization" in r.headers for r in server.requests) == 2


@pytest.mark.parametrize("verb", ["GET", "POST"])
def test_journal_fingerprint_is_a_hash_of_the_credential(driver, server, base_url, guard, verb):
    driver.send(verb, base_url + "/paid", content=b"x" if verb == "POST" else None)
    header = server.requests[1].headers["authorization"]
    assert guard.entries[0].fingerprint == hashlib.sha256(header.encode()).hexdigest()


def test_credential_never_appears_in_logs(driver, server, base_url, caplog):
    caplog.set_level("DEBUG")
    driver.send("GET", base_url + "/paid")
    token = server.requests[1].headers["authorization"].split()[1]
    assert token[:24] not in caplog.text


def test_402_is_closed_before_the_retry_no_pool_leak(server, base_url, method, guard):
    from mpp_client import AsyncPaymentTransport, PaymentTransport

    limits = httpx.Limits(max_connections=1, max_keepalive_connections=0)
    inner = httpx.HTTPTransport(limits=limits)
    with httpx.Client(
        transport=PaymentTransport(inner, methods=[method], guard=guard),
        timeout=httpx.Timeout(5, pool=2),
    ) as client:
        for _ in range(3):
            assert client.get(base_url + "/paid").status_code == 200

    async def run():
        inner = httpx.AsyncHTTPTransport(limits=limits)
        async with httpx.AsyncClient(
            transport=AsyncPaymentTransport(inner, methods=[method], guard=guard),
            timeout=httpx.Timeout(5, pool=2),
        ) as client:
            for _ in range(3):
                assert (await client.get(base_url + "/paid")).status_code == 200

    asyncio.run(run())


def test_dry_run_reports_a_policy_refusal_with_the_price(driver, server, base_url, method, guard):
    options = PaymentOptions(dry_run=True, max_amount=Money(10, TEST_CURRENCY))
    result = driver.send("GET", base_url + "/paid", mpp=options)
    assert result.status == 402
    assert result.payment.status == "quoted"
    assert result.payment.allowed is False
    assert "maximum" in result.payment.refusal
    assert result.payment.quote.amount.amount == 1000
    assert method.paid == [] and guard.entries == []


def test_every_challenge_refused_by_policy_raises_the_policy_error(
    driver, server, base_url, method
):
    server.routes["/paid"] = Route(offers=(Offer(amount="700"), Offer(amount="900")))
    with pytest.raises(BudgetExceeded) as caught:
        driver.send(
            "GET", base_url + "/paid", mpp=PaymentOptions(max_amount=Money(500, TEST_CURRENCY))
        )
    assert caught.value.rule == "request.max_amount"
    assert method.paid == []


# --- what the paid retry's status means for the money ------------------------------------------


def test_redirect_after_paying_is_paid_and_followed_without_the_credential(
    driver, server, base_url, method, guard
):
    server.routes["/result"] = Route(offers=(), body=b"the result")
    server.routes["/paid"] = Route(paid_redirect=base_url + "/result")
    result = driver.send("POST", base_url + "/paid", content=b"job")
    assert result.status == 200 and result.content == b"the result"
    assert result.payment.status == "paid"
    assert result.payment.receipt is not None
    assert [e.state for e in guard.entries] == ["settled"]
    assert len(method.paid) == 1
    landing = [r for r in server.requests if r.target == "/result"]
    assert len(landing) == 1 and "authorization" not in landing[0].headers


def test_paywall_behind_a_paid_redirect_is_not_paid_again(driver, server, base_url, method, guard):
    server.routes["/paid"] = Route(paid_redirect=base_url + "/second")
    server.routes["/second"] = Route()  # another 402
    result = driver.send("GET", base_url + "/paid", mpp=PaymentOptions(max_payments=3))
    assert result.status == 402
    assert result.payment.status == "paid"  # what was paid for this logical request
    assert len(method.paid) == 1 and len(guard.entries) == 1


def test_application_error_after_paying_keeps_the_amount_held(
    driver, server, base_url, method, guard
):
    server.routes["/paid"] = Route(paid_status=404)
    result = driver.send("GET", base_url + "/paid")
    assert result.status == 404
    assert result.payment.status == "unknown"
    assert guard.entries[0].state == "unknown"
    assert len(method.paid) == 1


def test_credential_refused_as_malformed_releases_the_amount(driver_name, guard, base_url, server):
    method = TestMethod()
    original = server.handle

    def handle(method_, target, headers, body):
        if any(k.lower() == "authorization" for k, _ in headers):
            problem = (
                b'{"type":"https://paymentauth.org/problems/malformed-credential","status":400}'
            )
            return 400, [("content-type", "application/problem+json")], problem
        return original(method_, target, headers, body)

    server.handle = handle
    result = Driver(driver_name, [method], guard).send("GET", base_url + "/paid")
    assert result.status == 400
    assert result.payment.status == "rejected"
    assert result.payment.problem.type.endswith("malformed-credential")
    # Whatever it answered, the server holds the credential: only the method's proof frees it.
    assert guard.entries[0].state == "unknown" and guard.entries[0].held
