"""Fixtures: a fake Stripe API and pympp 0.16's REAL Stripe server, both on 127.0.0.1.

pympp's server confirms PaymentIntents against ``mpp.methods.stripe._defaults.STRIPE_API_BASE``
(read at call time), which the ``pympp_server`` fixture points at the fake for the test.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from mpp_client.methods.stripe import StripeCharge
from tests.loopback_server import serve
from tests.stripe.challenges import FAKE_LIVE_KEY, SELLER_KEY
from tests.stripe.stripe_fake import FakeStripe

PYMPP_SECRET = "pympp-hmac-secret-for-tests-0123456789"


@pytest.fixture
def fake_stripe() -> FakeStripe:
    return FakeStripe(keys={SELLER_KEY, FAKE_LIVE_KEY})


@pytest.fixture
def stripe_url(fake_stripe: FakeStripe) -> Iterator[str]:
    with serve(fake_stripe.app()) as url:
        yield url


@pytest.fixture
def make_stripe(stripe_url: str) -> Callable[..., StripeCharge]:
    def make(**kwargs: Any) -> StripeCharge:
        kwargs.setdefault("payment_method", "pm_card_visa")
        key = kwargs.pop("secret_key", SELLER_KEY)
        return StripeCharge(key, api_base=stripe_url, **kwargs)

    return make


@pytest.fixture
def pympp_server(stripe_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """pympp 0.16's real stripe/charge server: ``/paid`` (0.50 usd), ``/paid/order`` (with
    ``externalId``), ``/paid/yen`` (500 jpy)."""
    import mpp.methods.stripe._defaults as stripe_defaults
    from mpp.methods.stripe import server as stripe_server
    from mpp.server import Mpp
    from mpp.server.decorator import pay
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    monkeypatch.setattr(stripe_defaults, "STRIPE_API_BASE", f"{stripe_url}/v1")
    mpp = Mpp(
        methods=stripe_server.charge(
            secret_key=SELLER_KEY,
            network_id="internal",
            currency="usd",
            # pympp never closes the client it makes for Stripe calls: one that keeps no
            # idle connection leaves no socket open behind the test.
            http_client=httpx.AsyncClient(limits=httpx.Limits(max_keepalive_connections=0)),
        ),
        realm="127.0.0.1",
        secret_key=PYMPP_SECRET,
    )

    def paid(**options: Any) -> Any:
        @pay(mpp.charge(**options))
        async def endpoint(request: Any, credential: Any, receipt: Any) -> JSONResponse:
            return JSONResponse({"data": "paid content", "reference": receipt.reference})

        return endpoint

    app = Starlette(
        routes=[
            Route("/paid", paid(amount="0.50"), methods=["GET", "POST"]),
            Route("/paid/order", paid(amount="0.50", external_id="order-123")),
            Route("/paid/yen", paid(amount="500", currency="jpy", decimals=0)),
        ]
    )
    with serve(app) as url:
        yield url


@pytest.fixture(autouse=True)
def _collect_garbage() -> Iterator[None]:
    # Run finalizers of sockets, clients and generators of this test now: CPython 3.11.7 can
    # raise "AST constructor recursion depth mismatch" when the garbage collector runs such
    # finalizers in the middle of a later compile (pytest's assertion rewriting).
    yield
    gc.collect()
