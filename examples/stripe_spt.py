"""Pay a Stripe charge with a shared payment token (one token per payment, limited to exactly
that amount, currency and seller, expiring with the challenge).

    mpp wallet import card --method stripe --payment-method pm_...   # paste sk_test_...
    python examples/stripe_spt.py https://api.example.com/paid --payment-method pm_...

The Stripe secret key is read from the key store (entry ``stripe/card``, as ``mpp wallet
import`` stores it) or ``$STRIPE_SECRET_KEY``. Use a restricted or test key (sk_test_...) while
you try it.
"""

from __future__ import annotations

import argparse
import os

import httpx

from mpp_client import Currency, Money, PaymentTransport, Wallet, payment_of
from mpp_client.methods.stripe import StripeCharge
from mpp_client.wallet import Limit, SpendPolicy, open_keystore


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--payment-method", required=True, help="pm_...")
    parser.add_argument("--customer", help="cus_... (when the payment method belongs to one)")
    parser.add_argument("--key-entry", default="stripe/card")
    args = parser.parse_args()

    key = os.environ.get("STRIPE_SECRET_KEY") or open_keystore().get(args.key_entry).reveal()
    stripe = StripeCharge(key, payment_method=args.payment_method, customer=args.customer)
    # Card payments are in fiat minor units: cap them at 2.00 USD each.
    cap = Limit(Money(200, Currency.fiat("usd")), "payment")
    wallet = Wallet([stripe], policy=SpendPolicy().with_limits(cap))
    with httpx.Client(transport=PaymentTransport(wallet=wallet), timeout=60) as client:
        response = client.get(args.url)
    payment = payment_of(response)
    print(f"HTTP {response.status_code}")
    if payment is not None:
        if payment.status != "paid" or payment.quote is None:
            # A token the seller may hold stays counted until it is proven unused.
            raise SystemExit(f"{payment.status}: {payment.refusal or payment.error}")
        print(f"paid {payment.quote.amount} with token {payment.reference}")


if __name__ == "__main__":
    main()
