"""Pay for HTTP resources with ``requests``: ``PaymentSession`` is a real ``requests.Session``.

Self-contained (fake MPP server + ``TestMethod``, no money); needs the ``requests`` extra:

    pip install 'mpp-client[requests]'
    python examples/requests_session.py
"""

from __future__ import annotations

from mpp_client import Money, PaymentOptions, PaymentRefused, PaymentSession, Wallet, receipt_of
from mpp_client.testing import TEST_CURRENCY, FakeMppServer, Route, TestMethod

server = FakeMppServer({"/report": Route(body=b'{"report": "paid"}')})


def main() -> None:
    wallet = Wallet([TestMethod()], journal=":memory:")
    with server.serve() as base, PaymentSession(wallet=wallet) as session:
        response = session.get(f"{base}/report", timeout=30)
        print(response.status_code, response.json())
        print("receipt:", receipt_of(response))  # or response.mpp_payment

        # Per-request maximum, in base units of the currency (the test dollar has 6 decimals).
        try:
            session.get(f"{base}/report", mpp=PaymentOptions(max_amount=Money(10, TEST_CURRENCY)))
        except PaymentRefused as refused:
            print("refused, nothing paid:", refused.reason)


if __name__ == "__main__":
    main()
