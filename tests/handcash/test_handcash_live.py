"""Live: pay one US cent from a real HandCash wallet to ``HANDCASH_LIVE_RECIPIENT`` through a
local MPP server, then find the payment in the wallet's history. Runs only when
``HANDCASH_APP_ID``, ``HANDCASH_APP_SECRET``, ``HANDCASH_AUTH_TOKEN`` and
``HANDCASH_LIVE_RECIPIENT`` are set (use a test wallet with a small per-app limit)."""

from __future__ import annotations

import os

import httpx
import pytest

from mpp_client import PaymentTransport
from mpp_client.driver import payment_of
from mpp_client.guard import OpenGuard
from mpp_client.methods.handcash import DEFAULT_BASE_URL, HandCashCharge
from mpp_client.runner import run_sync
from mpp_client.testing import FakeMppServer, Offer, Route

NAMES = ("HANDCASH_APP_ID", "HANDCASH_APP_SECRET", "HANDCASH_AUTH_TOKEN", "HANDCASH_LIVE_RECIPIENT")
pytestmark = [
    pytest.mark.skipif(
        not all(os.environ.get(n) for n in NAMES), reason="needs HandCash credentials"
    ),
    pytest.mark.slow,
]


def test_live_one_cent_payment() -> None:
    method = HandCashCharge(
        app_id=os.environ["HANDCASH_APP_ID"],
        app_secret=os.environ["HANDCASH_APP_SECRET"],
        auth_token=os.environ["HANDCASH_AUTH_TOKEN"],
        base_url=os.environ.get("HANDCASH_BASE_URL", DEFAULT_BASE_URL),
    )
    offer = Offer(
        method="handcash",
        amount="1",
        currency="usd",
        recipient=os.environ["HANDCASH_LIVE_RECIPIENT"],
        verify=lambda credential: "transactionId" in credential.payload,
    )
    server = FakeMppServer({"/paid": Route(offers=[offer])})
    with (
        server.serve() as base,
        httpx.Client(transport=PaymentTransport(methods=[method], guard=OpenGuard())) as client,
    ):
        response = client.get(f"{base}/paid", timeout=60)
    assert response.status_code == 200, response.text
    payment = payment_of(response)
    assert payment is not None
    [credential] = server.accepted
    txid = credential.payload["transactionId"]
    assert run_sync(method.lookup(txid)).status == "settled"
