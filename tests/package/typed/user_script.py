"""A user's script, type-checked with mypy --strict by tests/package/test_typing.py (never run
by pytest): the public API must type-check as documented, with every driver."""

from __future__ import annotations

import asyncio

import httpx

from mpp_client import (
    AsyncPaymentTransport,
    MissingExtra,
    Payment,
    PaymentOptions,
    PaymentSession,
    PaymentTransport,
    Wallet,
    payment_of,
    usd,
)
from mpp_client.requests_session import PaymentResponse
from mpp_client.testing import FakeMppServer, TestMethod


def with_requests(wallet: Wallet, url: str) -> str | None:
    with PaymentSession(wallet=wallet) as session:
        response: PaymentResponse = session.get(url, mpp=PaymentOptions(max_amount=usd("0.05")))
        posted = session.post(url, json={"q": 1}, mpp=PaymentOptions(dry_run=True))
        payment: Payment | None = response.mpp_payment
        assert posted.mpp_payment is None or posted.mpp_payment.status == "quoted"
        return None if payment is None else payment.status


def with_httpx(wallet: Wallet, url: str) -> str | None:
    with httpx.Client(transport=PaymentTransport(wallet=wallet)) as client:
        payment = payment_of(client.get(url, extensions={"mpp": PaymentOptions(dry_run=True)}))
        return None if payment is None else payment.status


async def with_httpx_async(wallet: Wallet, url: str) -> str | None:
    async with httpx.AsyncClient(transport=AsyncPaymentTransport(wallet=wallet)) as client:
        payment = payment_of(await client.get(url))
        return None if payment is None else payment.status


def main() -> None:
    wallet = Wallet([TestMethod()], journal=":memory:")
    with FakeMppServer().serve() as base:
        print(with_requests(wallet, f"{base}/paid"), with_httpx(wallet, f"{base}/paid"))
        print(asyncio.run(with_httpx_async(wallet, f"{base}/paid")))
    try:
        from mpp_client.methods.tempo import TempoCharge  # noqa: F401
    except MissingExtra as missing:
        print(missing.extra)
