"""The paying MCP client against a real MCP server (the official SDK's low-level ``Server``),
over stdio (a subprocess) and Streamable HTTP (uvicorn on loopback): the same flow and wallet
as HTTP. Most cases run over HTTP only (in-process, fast); the transport-specific ones run
over both."""

from __future__ import annotations

import json

import pytest
from mcp.shared.exceptions import MCPError

from mpp_client import PaymentOptions
from mpp_client.errors import BudgetExceeded, PaymentOutcomeUnknown, PaymentRefused
from mpp_client.money import Money
from mpp_client.testing import TEST_CURRENCY, TestMethod
from mpp_client.wallet import SpendPolicy

BOTH = pytest.mark.parametrize("transport", ["stdio", "http"])


@BOTH
async def test_pays_once_journals_the_receipt_and_advertises_payment(connect, wallets):
    method = TestMethod()
    wallet = wallets(method)
    async with connect(wallet=wallet) as conn:
        caps = await conn.paying.call_tool("caps")
        paid = await conn.paying.call_tool("paid", {"q": 1})
    advertised = json.loads(caps.result.content[0].text)
    assert advertised["experimental"]["payment"] == {"methods": {"test": {"intents": ["charge"]}}}
    assert caps.payment is None
    assert paid.result is not None and not paid.result.is_error
    assert paid.result.content[0].text == 'paid {"q": 1}'
    payment = paid.payment
    assert payment is not None and payment.status == "paid"
    assert payment.receipt is not None and payment.receipt.challenge_id == method.paid[0]
    assert paid.receipt is payment.receipt
    assert len(method.paid) == 1
    [entry] = wallet.payments()
    assert entry.state == "settled" and entry.id == payment.journal_id
    assert entry.receipt["challenge_id"] == method.paid[0]
    assert entry.origin == conn.paying.origin
    assert entry.url.endswith("/tools/paid")
    if conn.transport == "stdio":
        assert entry.origin == "mcp-stdio://paid-test"
    else:
        assert conn.tools.accepted == method.paid
        [credential] = conn.tools.credentials
        # the challenge object is echoed unchanged: request and opaque stay JSON objects
        assert isinstance(credential["challenge"]["request"], dict)
        assert credential["challenge"]["opaque"]["tool"] == "paid"
        assert credential["payload"]["proof"]
        assert credential["source"] == "did:example:test-payer"


@BOTH
async def test_a_lost_answer_is_unknown_and_held(connect, wallets):
    method = TestMethod()
    wallet = wallets(method)
    async with connect(wallet=wallet) as conn:
        with pytest.raises(PaymentOutcomeUnknown) as caught:
            await conn.paying.call_tool("lose", read_timeout_seconds=10)
        if conn.tools is not None:
            assert conn.tools.accepted == method.paid  # the server took the payment
    assert len(method.paid) == 1  # the same credential at most resent, never a new one
    [entry] = wallet.payments()
    assert (entry.state, entry.held) == ("unknown", True)
    assert caught.value.journal_id == entry.id
    assert wallet.unknown_payments()[0].id == entry.id


@pytest.mark.parametrize("tool", ["paid_iserror", "paid_meta"])
async def test_a_requirement_in_the_result_meta_is_paid(connect, wallets, tool):
    method = TestMethod()
    wallet = wallets(method)
    async with connect(wallet=wallet) as conn:
        paid = await conn.paying.call_tool(tool)
    assert paid.payment.status == "paid" and not paid.result.is_error
    assert paid.result.content[0].text == f"{tool} {{}}"
    assert [e.state for e in wallet.payments()] == ["settled"]
    assert conn.tools.accepted == method.paid


async def test_free_tools_and_other_errors_pass_through(connect, wallets):
    method = TestMethod()
    async with connect(wallet=wallets(method)) as conn:
        free = await conn.paying.call_tool("free")
        with pytest.raises(MCPError) as caught:
            await conn.paying.call_tool("no-such-tool")
    assert free.payment is None and free.result.content[0].text == "free"
    assert caught.value.code == -32602
    assert method.quotes == [] and method.paid == []


async def test_the_policy_refuses_before_anything_is_signed(connect, wallets):
    method = TestMethod()
    wallet = wallets(method, policy=SpendPolicy(origins=frozenset({"https://elsewhere.test"})))
    async with connect(wallet=wallet) as conn:
        with pytest.raises(PaymentRefused):
            await conn.paying.call_tool("paid")
        with pytest.raises(BudgetExceeded):
            await conn.paying.call_tool(
                "paid", options=PaymentOptions(max_amount=Money(10, TEST_CURRENCY))
            )
        assert conn.tools.credentials == []
    assert method.paid == []
    assert all(e.state != "settled" for e in wallet.payments())


async def test_a_vetoing_hook_refuses(connect, wallets):
    from mpp_client import PaymentHooks

    method = TestMethod()
    hooks = PaymentHooks(before_payment=lambda quote, context: False)
    async with connect(wallet=wallets(method), hooks=hooks) as conn:
        with pytest.raises(PaymentRefused):
            await conn.paying.call_tool("paid")
    assert method.paid == []


async def test_a_dry_run_quotes_and_pays_nothing(connect, wallets):
    method = TestMethod()
    wallet = wallets(method)
    async with connect(wallet=wallet) as conn:
        quoted = await conn.paying.call_tool("paid", options=PaymentOptions(dry_run=True))
        assert conn.tools.credentials == []
    assert quoted.payment.status == "quoted" and quoted.payment.allowed
    assert quoted.payment.quote.amount == Money(1000, TEST_CURRENCY)
    assert quoted.result is None and quoted.error.code == -32042
    assert method.paid == [] and wallet.payments() == []


async def test_a_refused_credential_stays_held_and_is_not_paid_again(connect, wallets):
    method = TestMethod()  # a signed credential the server may still use: not provably void
    wallet = wallets(method)
    async with connect(wallet=wallet) as conn:
        answer = await conn.paying.call_tool("reject", options=PaymentOptions(max_payments=2))
    assert answer.payment.status == "rejected" and answer.payment.error.money_moved is None
    assert answer.error.code == -32043 and answer.result is None
    assert len(method.paid) == 1
    [entry] = wallet.payments()
    assert (entry.state, entry.held) == ("unknown", True)


async def test_a_void_credential_allows_one_more_only_with_max_payments(connect, wallets):
    method = TestMethod(revocable=True)
    wallet = wallets(method)
    async with connect(wallet=wallet) as conn:
        once = await conn.paying.call_tool("reject")
        twice = await conn.paying.call_tool("reject", options=PaymentOptions(max_payments=2))
        sent = [c["challenge"]["id"] for c in conn.tools.credentials]
    assert once.payment.payments == 1 and twice.payment.payments == 2
    assert twice.payment.status == "rejected" and twice.payment.error.money_moved is False
    assert len(method.paid) == 3 and len(set(method.paid)) == 3 and sent == method.paid
    assert [(e.state, e.held, e.proof) for e in wallet.payments()] == [
        ("failed", False, "credential-void")
    ] * 3


async def test_a_processor_failure_leaves_the_outcome_unknown(connect, wallets):
    method = TestMethod()
    wallet = wallets(method)
    async with connect(wallet=wallet) as conn:
        answer = await conn.paying.call_tool("internal")
    assert answer.payment.status == "unknown" and answer.error.code == -32603
    [entry] = wallet.payments()
    assert (entry.state, entry.held) == ("unknown", True)


async def test_a_malformed_credential_answer_is_a_refusal(connect, wallets):
    method = TestMethod(revocable=True)
    wallet = wallets(method)
    async with connect(wallet=wallet) as conn:
        answer = await conn.paying.call_tool("malformed", options=PaymentOptions(max_payments=3))
    assert answer.payment.status == "rejected" and answer.error.code == -32602
    assert len(method.paid) == 1  # a 400 is never paid again
    assert [e.state for e in wallet.payments()] == ["failed"]


async def test_a_notification_is_never_paid(connect, wallets):
    method = TestMethod()
    seen: list[dict] = []

    async def progress(value, total, message):
        seen.append(json.loads(message))

    async with connect(wallet=wallets(method)) as conn:
        answer = await conn.paying.call_tool("notify", progress_callback=progress)
    assert answer.payment is None and answer.result.content[0].text == "notified"
    assert len(seen) == 1 and seen[0]["code"] == -32042 and seen[0]["data"]["challenges"]
    assert method.quotes == [] and method.paid == []
