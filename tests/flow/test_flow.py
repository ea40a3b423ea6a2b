"""The payment flow driven directly, with canned responses and no network: the sans-I/O core
that all three drivers run."""

from __future__ import annotations

from collections.abc import Generator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from mpp_client import trampoline
from mpp_client.effects import Await, Checkpoint, HttpCall, HttpReply, JournalWrite, Sleep
from mpp_client.errors import (
    EffectFailed,
    MethodError,
    NothingSent,
    PaymentOutcomeUnknown,
    PaymentRefused,
)
from mpp_client.flow import FlowConfig, RequestFacts, ResponseHead, Send, SendFailed, payment_flow
from mpp_client.guard import OpenGuard, PaymentOptions
from mpp_client.methods.base import PaymentContext, PaymentMethod, PaymentProof, Quote
from mpp_client.runner import SyncRunner, run_async, run_sync
from mpp_client.testing import FakeMppServer, Offer, Route, TestMethod

URL = "https://api.example.com/paid"


def facts(body: bytes | None = b"", **options: Any) -> RequestFacts:
    return RequestFacts(
        method="POST",
        url=URL,
        origin="https://api.example.com",
        first_origin="https://api.example.com",
        headers={},
        body=body,
        body_problem=None if body is not None else "streamed",
        options=PaymentOptions(**options),
    )


def first_402(server: FakeMppServer, body: bytes = b"") -> ResponseHead:
    status, headers, content = server.handle("POST", "/paid", [], body)
    assert status == 402
    return ResponseHead(402, tuple(headers), content)


def answer(server: FakeMppServer, send: Send, body: bytes = b"") -> ResponseHead:
    headers = [(k, v) for k, v in send.set_headers.items()]
    status, out, content = server.handle("POST", "/paid", headers, body)
    return ResponseHead(status, tuple(out), content if status != 200 else b"")


def drive(
    gen: Generator[Any, Any, Any], server: FakeMppServer, body: bytes = b""
) -> tuple[Any, list[Any]]:
    """Run the flow answering Send from the fake server; other effects recorded and answered
    with None."""
    seen: list[Any] = []

    def perform(effect: Any) -> Any:
        if isinstance(effect, JournalWrite):
            return effect.function()  # the journal's own steps are not the flow's I/O
        seen.append(effect)
        return None

    def send(effect: Send) -> ResponseHead:
        seen.append(effect)
        return answer(server, effect, body)

    return trampoline.drive(gen, perform, send), seen


def test_flow_pays_with_canned_responses_only():
    server = FakeMppServer()
    method, guard = TestMethod(), OpenGuard()
    config = FlowConfig.build([method], guard)
    payment, effects = drive(payment_flow(config, facts(), first_402(server)), server)
    assert payment.status == "paid"
    assert [type(e) for e in effects] == [Send]
    assert effects[0].set_headers["idempotency-key"]
    assert guard.entries[0].state == "settled"


def test_digest_mismatch_is_refused_before_signing():
    server = FakeMppServer({"/paid": Route(bind_digest=True)})
    method = TestMethod()
    config = FlowConfig.build([method], OpenGuard())
    head = first_402(server, body=b"what the server saw")
    with pytest.raises(PaymentRefused, match="digest"):
        drive(payment_flow(config, facts(b"what we would replay"), head), server)
    assert method.paid == []


def test_retry_after_is_honoured_before_paying_a_fresh_challenge():
    server = FakeMppServer({"/paid": Route(reject=True, retry_after="2")})
    method = TestMethod(revocable=True)
    config = FlowConfig.build([method], OpenGuard())
    gen = payment_flow(config, facts(max_payments=2), first_402(server))
    payment, effects = drive(gen, server)
    assert [type(e).__name__ for e in effects] == ["Send", "Sleep", "Send"]
    assert effects[1] == Sleep(2.0)
    assert payment.payments == 2


def test_retry_after_longer_than_the_flow_waits_stops_paying():
    server = FakeMppServer({"/paid": Route(reject=True, retry_after="3600")})
    method = TestMethod()
    config = FlowConfig.build([method], OpenGuard())
    payment, effects = drive(payment_flow(config, facts(max_payments=3), first_402(server)), server)
    assert payment.status == "rejected"
    assert len(method.paid) == 1
    assert not any(isinstance(e, Sleep) for e in effects)


class _Scripted(PaymentMethod):
    """A method whose pay() runs a given script of effects and then fails or succeeds."""

    name = "test"
    intents = frozenset({"charge"})

    def __init__(self, script: Any) -> None:
        self._quoter = TestMethod()
        self._script = script

    def quote(self, challenge: Any, context: PaymentContext) -> Quote:
        return self._quoter.quote(challenge, context)

    def pay(self, quote: Quote, context: PaymentContext) -> Generator[Any, Any, PaymentProof]:
        return (yield from self._script(quote))


def _run_with_script(script: Any) -> tuple[OpenGuard, Any]:
    server = FakeMppServer()
    guard = OpenGuard()
    config = FlowConfig.build([_Scripted(script)], guard)
    gen = payment_flow(config, facts(), first_402(server))
    outcome: Any = None
    try:
        outcome = drive(gen, server)
    except Exception as exc:
        outcome = exc
    return guard, outcome


def test_unexpected_failure_after_broadcast_is_outcome_unknown():
    def script(quote):
        yield Checkpoint("signed", "0xabc")
        yield Checkpoint("broadcast", "0xabc")
        raise RuntimeError("node client crashed")

    guard, outcome = _run_with_script(script)
    assert isinstance(outcome, PaymentOutcomeUnknown)
    assert guard.entries[0].state == "unknown"


def test_call_that_may_have_arrived_after_broadcast_is_outcome_unknown():
    def script(quote):
        yield Checkpoint("broadcast", "0xabc")
        raise EffectFailed("read timeout", delivered=True)

    guard, outcome = _run_with_script(script)
    assert isinstance(outcome, PaymentOutcomeUnknown)
    assert guard.entries[0].state == "unknown"


def test_only_the_methods_proof_releases_after_broadcast():
    def script(quote):
        yield Checkpoint("broadcast", "0xabc")
        raise NothingSent("the node refused the payment before routing it")

    guard, outcome = _run_with_script(script)
    assert type(outcome) is NothingSent and outcome.money_moved is False
    entry = guard.entries[0]
    assert entry.state == "failed" and entry.released and entry.proof == "nothing-sent"


@pytest.mark.parametrize(
    "error",
    [
        MethodError("route not found", money_moved=False),  # a claim, not NothingSent's proof
        EffectFailed("connect refused", delivered=False),
        PaymentRefused("insufficient balance"),
        MethodError("backend answered 502"),
    ],
    ids=["claimed-not-moved", "connect-failure", "refusal", "unknown-error"],
)
def test_any_other_failure_after_broadcast_keeps_the_amount_held(error):
    def script(quote):
        yield Checkpoint("broadcast", "0xabc")
        raise error

    guard, outcome = _run_with_script(script)
    assert isinstance(outcome, PaymentOutcomeUnknown) and outcome.money_moved is None
    assert outcome.__cause__ is error
    entry = guard.entries[0]
    assert entry.state == "unknown" and entry.held


def test_unexpected_error_before_broadcast_releases_the_reservation():
    def script(quote):
        yield Checkpoint("signed", "0xabc")
        raise KeyError("bug")

    guard, outcome = _run_with_script(script)
    assert isinstance(outcome, MethodError) and outcome.money_moved is False
    assert guard.entries[0].state == "failed" and guard.entries[0].released


def test_refusal_inside_pay_releases_the_reservation():
    def script(quote):
        raise PaymentRefused("insufficient balance")
        yield

    guard, outcome = _run_with_script(script)
    assert isinstance(outcome, PaymentRefused)
    assert guard.entries[0].state == "failed"


def test_signed_checkpoint_reaches_the_reservation_before_the_credential_leaves():
    void_after = datetime(2030, 1, 1, tzinfo=UTC)
    at_send: list[tuple[str, str | None, datetime | None]] = []

    def script(quote):
        yield Checkpoint("signed", "0xfeed", void_after=void_after)
        return PaymentProof({"proof": "x"}, reference="0xfeed")

    server = FakeMppServer({"/paid": Route(offers=(Offer(verify=lambda c: True),))})
    guard = OpenGuard()
    config = FlowConfig.build([_Scripted(script)], guard)
    gen = payment_flow(config, facts(), first_402(server))
    effect = _step(gen)
    assert isinstance(effect, Send)
    entry = guard.entries[0]
    at_send.append((entry.state, entry.reference, entry.void_after))
    # A method that returns right after signing: its signature is written with the sent step,
    # one write, before the credential is handed to the driver.
    assert at_send == [("sent", "0xfeed", void_after)]
    assert entry.history == ["sent"]
    with pytest.raises(StopIteration) as stop:
        _step(gen, answer(server, effect))
    payment = stop.value.value
    assert payment.status == "paid"
    # What was signed stays the reference; the server's own reference is kept beside it.
    assert entry.reference == "0xfeed" and entry.receipt_reference.startswith("ref-")


def test_a_signature_is_written_before_the_method_does_anything_more():
    at_call: list[tuple[str, str | None]] = []

    def script(quote):
        yield Checkpoint("signed", "0xfeed")
        yield HttpCall("POST", "https://backend.example/hand-over")
        return PaymentProof({"proof": "x"}, reference="0xfeed")

    server = FakeMppServer({"/paid": Route(offers=(Offer(verify=lambda c: True),))})
    guard = OpenGuard()
    config = FlowConfig.build([_Scripted(script)], guard)

    def perform(effect: Any) -> Any:
        if isinstance(effect, HttpCall):
            at_call.append((guard.entries[0].state, guard.entries[0].reference))
            return HttpReply(200, {}, b"{}")
        return effect.function()

    gen = payment_flow(config, facts(), first_402(server))
    payment = trampoline.drive(gen, perform, lambda send: answer(server, send))
    assert payment.status == "paid"
    assert at_call == [("signed", "0xfeed")]
    assert guard.entries[0].history == ["signed", "sent", "settled"]


def _step(gen: Generator[Any, Any, Any], value: Any = None, *, throw: Any = None) -> Any:
    """Resume ``gen`` and perform journal writes until it yields anything else."""
    effect = gen.throw(throw) if throw is not None else gen.send(value)
    while isinstance(effect, JournalWrite):
        effect.function()
        effect = gen.send(None)
    return effect


def test_send_failure_on_first_try_resends_identical_headers():
    server = FakeMppServer()
    guard = OpenGuard()
    config = FlowConfig.build([TestMethod()], guard)
    gen = payment_flow(config, facts(), first_402(server))
    first = _step(gen)
    second = _step(gen, throw=SendFailed(httpx.ReadError("reset")))
    assert isinstance(second, Send) and second.set_headers == first.set_headers
    with pytest.raises(PaymentOutcomeUnknown):
        _step(gen, throw=SendFailed(httpx.ReadError("reset")))
    assert guard.entries[0].state == "unknown" and guard.entries[0].held


# --- the effect runners ------------------------------------------------------------------------


def _rpc_method() -> Generator[Any, Any, Any]:
    reply = yield HttpCall.json_post("https://rpc.example/", {"method": "eth_chainId"})
    return reply.json()


def test_runner_retries_connect_failures_before_the_request_left():
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) == 1:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(200, json={"result": "0xa5bf"})

    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        assert run_sync(_rpc_method(), client) == {"result": "0xa5bf"}
    assert len(calls) == 2


def test_runner_does_not_retry_a_call_that_may_have_arrived():
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        raise httpx.ReadTimeout("slow", request=request)

    def broadcast() -> Generator[Any, Any, Any]:
        try:
            yield HttpCall.json_post("https://rpc.example/", {"method": "eth_sendRawTransaction"})
        except EffectFailed as failed:
            return failed.delivered
        return None

    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        assert run_sync(broadcast(), client) is True
    assert len(calls) == 1


def test_runner_retries_reads_marked_retry_safe():
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) < 3:
            raise httpx.ReadTimeout("slow", request=request)
        return httpx.Response(200, json={"ok": True})

    def read() -> Generator[Any, Any, Any]:
        reply = yield HttpCall("GET", "https://rpc.example/x", retry_safe=True)
        return reply.status

    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        assert run_sync(read(), client) == 200
    assert len(calls) == 3


async def _async_backend() -> str:
    return "from-async"


def _awaits() -> Generator[Any, Any, Any]:
    first = yield Await(_async_backend)
    second = yield Await(lambda: "plain", blocking=True)
    return first, second


def test_sync_runner_reaches_async_backends_through_one_loop_thread():
    assert SyncRunner().run(_awaits()) == ("from-async", "plain")


async def test_async_runner_awaits_backends():
    assert await run_async(_awaits()) == ("from-async", "plain")


def test_http_reply_and_call_reprs_hide_bodies():
    call = HttpCall.json_post("https://node.example/pay?key=secret", {"macaroon": "abc"})
    assert "secret" not in repr(call) and "abc" not in repr(call)
    assert "abc" not in repr(HttpReply(200, {}, b'{"macaroon":"abc"}'))


def test_a_402_repeating_the_paid_challenge_is_not_paid_again():
    server = FakeMppServer()
    method = TestMethod()
    config = FlowConfig.build([method], OpenGuard())
    head = first_402(server)
    gen = payment_flow(config, facts(max_payments=3), head)
    send = _step(gen)
    assert isinstance(send, Send)
    rejected = ResponseHead(402, head.headers, b"")  # the very challenge we just paid
    with pytest.raises(StopIteration) as done:
        _step(gen, rejected)
    assert done.value.value.status == "rejected"
    assert len(method.paid) == 1


# --- amounts, clocks and the event loop ---------------------------------------------------------


def test_a_dollar_maximum_applies_to_any_usd_pegged_currency():
    from mpp_client.wallet import usd

    server = FakeMppServer()  # 1000 base units of a 6-decimal USD token: $0.001
    config = FlowConfig.build([TestMethod()], OpenGuard())
    payment, _ = drive(
        payment_flow(config, facts(max_amount=usd("0.001")), first_402(server)), server
    )
    assert payment.status == "paid"
    method = TestMethod()
    config = FlowConfig.build([method], OpenGuard())
    with pytest.raises(PaymentRefused, match="above this request's maximum"):
        drive(payment_flow(config, facts(max_amount=usd("0.000999")), first_402(server)), server)
    assert method.paid == []


def test_a_maximum_in_another_currency_refuses_before_signing():
    from mpp_client.money import SAT, Money

    server = FakeMppServer()
    method = TestMethod()
    config = FlowConfig.build([method], OpenGuard())
    with pytest.raises(PaymentRefused) as refused:
        drive(payment_flow(config, facts(max_amount=Money(10, SAT)), first_402(server)), server)
    assert refused.value.rule == "request.max_amount"  # type: ignore[attr-defined]
    assert method.paid == []


def test_expiry_is_judged_by_the_injected_clock_not_todays_date():
    from datetime import UTC, datetime

    from mpp_client.testing import ManualClock

    then = datetime(2030, 1, 1, tzinfo=UTC)
    server = FakeMppServer(clock=lambda: then)  # challenges expire at 2030-01-01 00:05
    method = TestMethod()
    config = FlowConfig.build([method], OpenGuard(), clock=ManualClock(then))
    payment, _ = drive(payment_flow(config, facts(), first_402(server)), server)
    assert payment.status == "paid"
    late = FlowConfig.build([method], OpenGuard(), clock=ManualClock(then.timestamp() + 600))
    with pytest.raises(PaymentRefused, match="too soon"):
        drive(payment_flow(late, facts(), first_402(server)), server)


async def test_the_async_driver_writes_the_journal_off_the_event_loop(tmp_path):
    import threading

    from mpp_client import AsyncPaymentTransport
    from mpp_client.wallet import SpendPolicy, SqliteJournal, Wallet

    loop_thread = threading.get_ident()
    writers: set[int] = set()

    class Watched(SqliteJournal):
        def advance(self, *args: Any, **kwargs: Any) -> bool:
            writers.add(threading.get_ident())
            return super().advance(*args, **kwargs)

        def atomic(self):  # type: ignore[no-untyped-def]
            writers.add(threading.get_ident())
            return super().atomic()

    wallet = Wallet(
        [TestMethod()],
        policy=SpendPolicy(pin_payees=False),
        journal=Watched(tmp_path / "j.sqlite3"),
    )
    server = FakeMppServer()
    transport = AsyncPaymentTransport(server.mock_transport(), wallet=wallet)
    async with httpx.AsyncClient(transport=transport) as client:
        response = await client.get("https://api.example.com/paid")
    assert response.status_code == 200
    assert writers and loop_thread not in writers
    assert [p.state for p in wallet.payments()] == ["settled"]
