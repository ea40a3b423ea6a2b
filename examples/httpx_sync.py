"""Pay for HTTP resources with a plain ``httpx.Client``.

Self-contained: it starts mpp_client's fake MPP server on 127.0.0.1 and pays it with
``TestMethod`` (moves no money), so you can run it anywhere:

    python examples/httpx_sync.py

For real money, swap the method for ``TempoCharge`` (see examples/tempo_charge.py) or another
payment method; nothing else changes.
"""

from __future__ import annotations

import httpx

from mpp_client import PaymentOptions, PaymentRefused, PaymentTransport, Wallet, payment_of
from mpp_client.testing import FakeMppServer, Offer, Route, TestMethod
from mpp_client.wallet import usd

server = FakeMppServer(
    {
        "/report": Route(body=b'{"report": "the paid content"}'),
        "/expensive": Route(offers=(Offer(amount="5000000"),)),  # 5.00 test dollars
    }
)


def main() -> None:
    # A wallet: payment methods + the spend policy (safe defaults: $1 per payment, $10 a day)
    # + a journal of every payment (":memory:" here; a file path in real use).
    wallet = Wallet([TestMethod()], journal=":memory:")
    with server.serve() as base, httpx.Client(transport=PaymentTransport(wallet=wallet)) as client:
        response = client.get(f"{base}/report")
        payment = payment_of(response)  # None when nothing was paid
        print(response.status_code, response.text)
        if payment is not None and payment.status == "paid" and payment.quote is not None:
            print(f"paid {payment.quote.amount} to {payment.quote.payees[0].address}")
            print(f"receipt: {payment.receipt}")
        elif payment is not None:  # "unknown": held until the journal entry is resolved
            print(f"not paid: {payment.status}, journal entry {payment.journal_id}")

        # Quote first, pay later: a dry run returns the 402 with the quote attached.
        quoted = client.get(f"{base}/report", extensions={"mpp": PaymentOptions(dry_run=True)})
        quote = payment_of(quoted)
        if quote is not None and quote.status == "quoted" and quote.quote is not None:
            print(f"dry run: would pay {quote.quote.amount}, allowed={quote.allowed}")

        # The spend policy refuses before anything is signed.
        try:
            client.get(f"{base}/expensive")
        except PaymentRefused as refused:
            print(f"refused, nothing paid: {refused.reason}")

        # A scoped budget caps everything paid inside the block.
        with wallet.budget(usd("0.002"), label="example"):
            for _ in range(3):
                try:
                    client.get(f"{base}/report")
                    print("paid inside the budget")
                except PaymentRefused as refused:
                    print(f"budget exhausted: {refused.reason}")

    for record in wallet.payments():
        print(f"journal: {record.state:8} {record.amount} {record.reference}")


if __name__ == "__main__":
    main()
