"""The public API type-checks in a user's own code, and ``mpp_payment`` is always there.

``typed/user_script.py`` is what a user writes; mypy --strict checks it as a separate program
(with requests' stubs, which know nothing of ``mpp=``), so a signature that only works for
untyped callers fails here.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import httpx

from mpp_client import AsyncPaymentTransport, PaymentSession, PaymentTransport, Wallet, payment_of
from mpp_client.requests_session import PaymentResponse
from mpp_client.testing import FakeMppServer, Route, TestMethod

USER_SCRIPT = Path(__file__).parent / "typed" / "user_script.py"


def test_a_users_script_passes_mypy_strict(tmp_path):
    done = subprocess.run(
        [
            sys.executable, "-m", "mypy", "--strict", "--no-incremental",
            "--cache-dir", str(tmp_path / "cache"), "--config-file", "/dev/null",
            str(USER_SCRIPT),
        ],
        capture_output=True, text=True, cwd=Path(__file__).parents[2], timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def _server() -> FakeMppServer:
    return FakeMppServer(
        {
            "/free": Route(offers=()),
            "/paid": Route(),
            "/foreign": Route(offers=()),
        }
    )


def test_requests_responses_always_carry_mpp_payment():
    wallet = Wallet([TestMethod()], journal=":memory:")
    with _server().serve() as base, PaymentSession(wallet=wallet) as session:
        free = session.get(f"{base}/free")
        missing = session.get(f"{base}/nowhere")
        paid = session.get(f"{base}/paid")
    for response in (free, missing, paid):
        assert isinstance(response, PaymentResponse)
    assert (free.status_code, free.mpp_payment) == (200, None)
    assert (missing.status_code, missing.mpp_payment) == (404, None)
    assert paid.mpp_payment is not None and paid.mpp_payment.status == "paid"
    assert payment_of(paid) is paid.mpp_payment


def test_an_unrecognised_402_is_unpaid_in_every_driver():
    # A wallet without a method for the server's challenges gets the 402 back untouched,
    # with a Payment saying why: the same answer from all three drivers.
    server = FakeMppServer({"/paid": Route()})
    wallet = Wallet([TestMethod(name="other")], journal=":memory:")
    with server.serve() as base:
        url = f"{base}/paid"
        with PaymentSession(wallet=wallet) as session:
            by_requests = session.get(url).mpp_payment
        with httpx.Client(transport=PaymentTransport(wallet=wallet)) as client:
            by_httpx = payment_of(client.get(url))

        async def fetch():
            async with httpx.AsyncClient(transport=AsyncPaymentTransport(wallet=wallet)) as c:
                return payment_of(await c.get(url))

        by_async = asyncio.run(fetch())
    for payment in (by_requests, by_httpx, by_async):
        assert payment is not None and payment.status == "unpaid" and payment.quote is None
    assert server.accepted == []


def test_free_responses_have_no_payment_in_every_driver():
    wallet = Wallet([TestMethod()], journal=":memory:")
    transport = _server().mock_transport()
    with httpx.Client(transport=PaymentTransport(transport, wallet=wallet)) as client:
        assert payment_of(client.get("https://fake.test/free")) is None

    async def fetch():
        inner = _server().mock_transport()
        async with httpx.AsyncClient(transport=AsyncPaymentTransport(inner, wallet=wallet)) as c:
            return payment_of(await c.get("https://fake.test/free"))

    assert asyncio.run(fetch()) is None
