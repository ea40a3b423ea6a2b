"""A budgeted agent: pays for HTTP resources within limits, journals every payment, and can
price a request before paying for it.

Runs offline as is, against mpp_client.testing's fake server and a method that moves no money:

    python examples/budgeted_agent.py

For real money, replace ``TestMethod()`` with a real method whose key comes from the key store,
e.g. Tempo::

    from mpp_client.methods.tempo import TempoCharge
    from mpp_client.methods.tempo.signer import LocalKeySigner
    from mpp_client.wallet import open_keystore

    keys = open_keystore()                      # OS keyring, or an encrypted file when headless
    signer = LocalKeySigner(keys.get("tempo/main").reveal())
    methods = [TempoCharge(signer)]
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

import httpx

from mpp_client.errors import BudgetExceeded, PayeeChanged, PaymentRefused
from mpp_client.guard import PaymentOptions
from mpp_client.testing import FakeMppServer, Offer, Route, TestMethod
from mpp_client.transport import AsyncPaymentTransport, PaymentTransport
from mpp_client.wallet import Limit, SpendPolicy, Wallet, usd

API = "https://api.example.test"


def build_wallet(journal: Path) -> Wallet:
    # Start from the safe defaults ($1 per payment, $10 per day in USD stablecoins) and tighten:
    # only our API, at most 5 cents a payment, $2 a day there, and ask before anything above 3c.
    policy = SpendPolicy(
        origins={API},
        approve_above=usd("0.03"),
    ).with_limits(
        Limit(usd("0.05"), "payment"),
        Limit(usd("2.00"), "day", origin=API),
    )

    def approve(quote, context) -> bool:
        # A real agent would ask a human (or a supervisor model) here; this one says yes.
        print(f"  approval asked: {quote.exposure} to {quote.payees[0].address} for {context.url}")
        return True

    return Wallet([TestMethod()], policy=policy, journal=journal, approve=approve)


def main() -> None:
    server = FakeMppServer(
        {
            "/search": Route(offers=(Offer(amount="10000"),)),  # $0.01
            "/report": Route(offers=(Offer(amount="40000"),)),  # $0.04: needs approval
            "/premium": Route(offers=(Offer(amount="250000"),)),  # $0.25: above the cap
            "/moved": Route(offers=(Offer(amount="10000", recipient="someone-else"),)),
        }
    )
    with tempfile.TemporaryDirectory() as tmp:
        wallet = build_wallet(Path(tmp) / "journal.sqlite3")
        client = httpx.Client(transport=PaymentTransport(server.mock_transport(), wallet=wallet))

        print("1. What would /premium cost? (dry run, nothing is paid)")
        priced = wallet.quote(API + "/premium", transport=server.mock_transport())
        print(f"   {priced.price} to {priced.payees[0].address}; allowed: {priced.allowed}"
              f" ({priced.refusal})")  # fmt: skip

        print("2. A task with its own budget of 3 cents:")
        with wallet.budget(usd("0.03"), label="task-42"):
            for n in range(4):
                try:
                    client.get(API + "/search", extensions={"mpp": PaymentOptions(label=f"q{n}")})
                    print(f"   search {n}: paid")
                except BudgetExceeded as refused:
                    print(f"   search {n}: refused by {refused.rule}: {refused.reason}")

        print("3. A larger payment goes through the approval callback:")
        client.get(API + "/report")

        print("4. The same API suddenly wants to be paid somewhere else (payee pinning):")
        server.routes["/search"] = server.routes["/moved"]
        try:
            client.get(API + "/search")
        except PayeeChanged as changed:
            print(f"   refused: {changed.reason}")

        print("5. Async code shares the same wallet, budgets and journal:")

        async def fetch_many() -> None:
            transport = AsyncPaymentTransport(server.mock_transport(), wallet=wallet)
            async with (
                httpx.AsyncClient(transport=transport) as aclient,
                wallet.budget(usd("0.10"), label="async-task"),
            ):
                results = await asyncio.gather(
                    *(aclient.get(API + "/report") for _ in range(3)), return_exceptions=True
                )
            paid = sum(1 for r in results if isinstance(r, httpx.Response))
            refused = sum(1 for r in results if isinstance(r, PaymentRefused))
            print(f"   {paid} paid, {refused} refused (each costs 4c, budget 10c)")

        asyncio.run(fetch_many())
        client.close()

        print("6. The journal:")
        for entry in wallet.payments():
            print(f"   {entry.created_at:%H:%M:%S} {entry.state:8} {entry.amount} "
                  f"{entry.url} label={entry.label} ref={entry.reference}")  # fmt: skip
        wallet.export(sys.stdout, format="csv")
        wallet.close()


if __name__ == "__main__":
    main()
