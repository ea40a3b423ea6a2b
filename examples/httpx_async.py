"""Pay for HTTP resources with ``httpx.AsyncClient``: several paid requests at once.

Self-contained (fake MPP server + ``TestMethod``, no money):

    python examples/httpx_async.py
"""

from __future__ import annotations

import asyncio

import httpx

from mpp_client import AsyncPaymentTransport, Wallet, payment_of
from mpp_client.testing import FakeMppServer, Route, TestMethod
from mpp_client.wallet import usd

server = FakeMppServer({f"/item/{n}": Route() for n in range(5)})


async def main(base: str) -> None:
    wallet = Wallet([TestMethod()], journal=":memory:")
    transport = AsyncPaymentTransport(wallet=wallet)
    # The budget applies to every task started inside the block.
    async with (
        httpx.AsyncClient(transport=transport) as client,
        wallet.budget(usd("0.01"), label="batch"),
    ):
        responses = await asyncio.gather(*(client.get(f"{base}/item/{n}") for n in range(5)))
    for response in responses:
        payment = payment_of(response)
        paid = (
            payment.quote.amount
            if payment is not None and payment.status == "paid" and payment.quote is not None
            else "nothing"
            if payment is None
            else f"nothing ({payment.status})"
        )
        print(f"{response.url.path}: HTTP {response.status_code}, paid {paid}")
    print(f"{len(wallet.payments(state='settled'))} payments settled")


if __name__ == "__main__":
    with server.serve() as base_url:
        asyncio.run(main(base_url))
