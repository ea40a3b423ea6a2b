"""Receiving for sessions: each backend's "create an amountless invoice" and "was it paid to me,
how much", against handlers speaking the backends' documented request and response shapes."""

from __future__ import annotations

import base64
import json
from urllib.parse import parse_qs

import httpx
import pytest

from mpp_client.errors import NothingSent
from mpp_client.methods.lightning import (
    ClnRestPayer,
    LnbitsPayer,
    LndRestPayer,
    PhoenixdPayer,
)
from mpp_client.methods.lightning.payer import CannotReceive

from ..effects_driver import run
from ..invoices import make_invoice

AMOUNTLESS = make_invoice(None, expiry=40 * 24 * 3600)


def test_lnd_creates_an_amountless_invoice_and_reads_what_arrived():
    seen: list[httpx.Request] = []

    def lnd(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        assert request.headers["grpc-metadata-macaroon"] == "0201036c6e64"
        if request.method == "POST" and request.url.path == "/v1/invoices":
            r_hash = base64.b64encode(bytes.fromhex(AMOUNTLESS.payment_hash)).decode()
            return httpx.Response(
                200, json={"r_hash": r_hash, "payment_request": AMOUNTLESS.text, "add_index": "3"}
            )
        assert request.url.path == f"/v1/invoice/{AMOUNTLESS.payment_hash}"
        return httpx.Response(200, json={"state": "SETTLED", "amt_paid_msat": "123000"})

    payer = LndRestPayer("https://lnd.test", "0201036c6e64")
    assert payer.receives_amountless
    created = run(payer.create_amountless_invoice("refund", 3_000_000), lnd)
    assert created.invoice == AMOUNTLESS.text
    assert created.payment_hash == AMOUNTLESS.payment_hash
    assert json.loads(seen[0].content) == {"memo": "refund", "value": "0", "expiry": "3000000"}
    received = run(payer.lookup_received(AMOUNTLESS.payment_hash), lnd)
    assert (received.status, received.amount_sat) == ("received", 123)


@pytest.mark.parametrize(("state", "expected"), [("OPEN", "unpaid"), ("ACCEPTED", "unknown")])
def test_lnd_open_invoice_is_unpaid_and_held_one_unknown(state, expected):
    def lnd(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"state": state, "amt_paid_msat": "0"})

    payer = LndRestPayer("https://lnd.test", "0201036c6e64")
    assert run(payer.lookup_received(AMOUNTLESS.payment_hash), lnd).status == expected


def test_lnd_refusing_to_create_is_nothing_sent():
    def lnd(request: httpx.Request) -> httpx.Response:
        return httpx.Response(403, json={"code": 2, "message": "permission denied"})

    payer = LndRestPayer("https://lnd.test", "0201036c6e64")
    with pytest.raises(NothingSent):
        run(payer.create_amountless_invoice("refund", 3_000_000), lnd)


def test_cln_invoice_any_amount_and_listinvoices():
    bodies: list[dict] = []

    def cln(request: httpx.Request) -> httpx.Response:
        assert request.headers["rune"] == "rune-secret"
        body = json.loads(request.content)
        bodies.append(body)
        if request.url.path == "/v1/invoice":
            return httpx.Response(
                201,
                json={"bolt11": AMOUNTLESS.text, "payment_hash": AMOUNTLESS.payment_hash},
            )
        assert request.url.path == "/v1/listinvoices"
        return httpx.Response(
            200, json={"invoices": [{"status": "paid", "amount_received_msat": 77_000}]}
        )

    payer = ClnRestPayer("https://cln.test", "rune-secret")
    created = run(payer.create_amountless_invoice("refund", 3_000_000), cln)
    assert created.payment_hash == AMOUNTLESS.payment_hash
    assert bodies[0]["amount_msat"] == "any" and bodies[0]["expiry"] == 3_000_000
    assert bodies[0]["label"].startswith("mpp-refund-")
    received = run(payer.lookup_received(AMOUNTLESS.payment_hash), cln)
    assert (received.status, received.amount_sat) == ("received", 77)
    assert bodies[1] == {"payment_hash": AMOUNTLESS.payment_hash}


def test_phoenixd_createinvoice_without_amount_and_incoming_lookup():
    forms: list[dict] = []

    def phoenixd(request: httpx.Request) -> httpx.Response:
        token = base64.b64encode(b":pw").decode()
        assert request.headers["authorization"] == f"Basic {token}"
        if request.method == "POST":
            forms.append(parse_qs(request.content.decode()))
            return httpx.Response(
                200,
                json={
                    "amountSat": 0,
                    "paymentHash": AMOUNTLESS.payment_hash,
                    "serialized": AMOUNTLESS.text,
                },
            )
        assert request.url.path == f"/payments/incoming/{AMOUNTLESS.payment_hash}"
        return httpx.Response(200, json={"isPaid": True, "receivedSat": 55})

    payer = PhoenixdPayer("http://127.0.0.1:9740", "pw")
    created = run(payer.create_amountless_invoice("refund", 3_000_000), phoenixd)
    assert created.invoice == AMOUNTLESS.text
    assert "amountSat" not in forms[0] and forms[0]["expirySeconds"] == ["3000000"]
    received = run(payer.lookup_received(AMOUNTLESS.payment_hash), phoenixd)
    assert (received.status, received.amount_sat) == ("received", 55)


def test_lnbits_says_it_cannot_receive_amountless_without_any_call():
    payer = LnbitsPayer("http://127.0.0.1:5000", "adminkey")
    assert not payer.receives_amountless
    with pytest.raises(CannotReceive):
        run(payer.create_amountless_invoice("refund", 3_000_000))  # no handler: no HTTP at all


def test_lnbits_reads_an_incoming_payment():
    def lnbits(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"paid": True, "details": {"amount": 40_000}})

    payer = LnbitsPayer("http://127.0.0.1:5000", "adminkey")
    received = run(payer.lookup_received(AMOUNTLESS.payment_hash), lnbits)
    assert (received.status, received.amount_sat) == ("received", 40)


def test_spark_creates_an_amountless_bolt11_and_finds_the_receive():
    from types import SimpleNamespace

    from mpp_client.methods.lightning.spark import SparkPayer

    calls: list = []

    class Sdk:
        async def receive_payment(self, request):
            calls.append(request)
            return SimpleNamespace(payment_request=AMOUNTLESS.text, fee=0)

        async def list_payments(self, request):
            htlc = SimpleNamespace(payment_hash=AMOUNTLESS.payment_hash, preimage=None)
            details = SimpleNamespace(is_lightning=lambda: True, htlc_details=htlc)
            status = SimpleNamespace(name="COMPLETED")
            return SimpleNamespace(
                payments=[SimpleNamespace(id="r1", status=status, details=details, amount=66)]
            )

    payer = SparkPayer(sdk=Sdk(), network="regtest", account="agent")
    created = run(payer.create_amountless_invoice("refund", 3_000_000))
    assert created.payment_hash == AMOUNTLESS.payment_hash
    method = calls[0].payment_method
    assert method.amount_sats is None and method.expiry_secs == 3_000_000
    received = run(payer.lookup_received(AMOUNTLESS.payment_hash))
    assert (received.status, received.amount_sat) == ("received", 66)


def test_nwc_make_invoice_with_amount_zero_and_lookup_of_the_incoming_invoice():
    from mpp_client.methods.lightning import nwc

    asked: list[tuple[str, dict]] = []
    answers = {
        "make_invoice": {
            "result_type": "make_invoice",
            "result": {
                "type": "incoming",
                "invoice": AMOUNTLESS.text,
                "payment_hash": AMOUNTLESS.payment_hash,
            },
        },
        "lookup_invoice": {
            "result_type": "lookup_invoice",
            "result": {"type": "incoming", "state": "settled", "amount": 12_000},
        },
    }

    async def exchange(method: str, params: dict) -> object:
        asked.append((method, params))
        return nwc._Answer(answers[method])

    uri = "nostr+walletconnect://" + "ab" * 32 + "?relay=ws://127.0.0.1:1&secret=" + "cd" * 32
    payer = nwc.NwcPayer(uri)
    payer._exchange = exchange  # type: ignore[method-assign]
    created = run(payer.create_amountless_invoice("refund", 3_000_000))
    assert created.payment_hash == AMOUNTLESS.payment_hash
    assert asked[0] == ("make_invoice", {"amount": 0, "description": "refund", "expiry": 3_000_000})
    received = run(payer.lookup_received(AMOUNTLESS.payment_hash))
    assert (received.status, received.amount_sat) == ("received", 12)
    answers["make_invoice"] = {"error": {"code": "NOT_IMPLEMENTED", "message": "no"}}
    with pytest.raises(NothingSent, match="NOT_IMPLEMENTED"):
        run(payer.create_amountless_invoice("refund", 3_000_000))
