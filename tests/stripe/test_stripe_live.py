"""Live: mint a real test-mode shared payment token and let pympp's real server charge it on
Stripe. Runs only with ``STRIPE_SECRET_KEY=sk_test_...`` (the same test account is payer and
seller, as in mppx's integration tests); moves no real money."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from mpp_client import PaymentTransport
from mpp_client.driver import payment_of
from mpp_client.guard import OpenGuard
from mpp_client.methods.stripe import StripeCharge
from tests.loopback_server import serve

KEY = os.environ.get("STRIPE_SECRET_KEY", "")
pytestmark = [
    pytest.mark.skipif(not KEY.startswith("sk_test_"), reason="needs STRIPE_SECRET_KEY=sk_test_"),
    pytest.mark.slow,
]


@pytest.fixture
def live_seller() -> Iterator[str]:
    from mpp.methods.stripe import server as stripe_server
    from mpp.server import Mpp
    from mpp.server.decorator import pay
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    mpp = Mpp(
        methods=stripe_server.charge(secret_key=KEY, network_id="internal", currency="usd"),
        realm="127.0.0.1",
        secret_key="live-test-hmac-secret-0123456789abcdef",
    )

    @pay(mpp.charge(amount="0.50"))
    async def paid(request: Any, credential: Any, receipt: Any) -> JSONResponse:
        return JSONResponse({"ok": True})

    with serve(Starlette(routes=[Route("/paid", paid)])) as url:
        yield url


def test_live_test_mode_payment(live_seller: str) -> None:
    method = StripeCharge(KEY, payment_method="pm_card_visa")
    with httpx.Client(transport=PaymentTransport(methods=[method], guard=OpenGuard())) as client:
        response = client.get(f"{live_seller}/paid", timeout=60)
    assert response.status_code == 200, response.text
    payment = payment_of(response)
    assert payment is not None and payment.receipt is not None
    assert payment.receipt.reference.startswith("pi_")
