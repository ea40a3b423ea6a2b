"""Pay a HandCash charge through HandCash Connect.

    pip install 'mpp-client[handcash,keyring]'
    mpp wallet import hc --method handcash --app-id YOUR_APP_ID   # prompts for both secrets
    python examples/handcash.py https://api.example.com/paid --app-id YOUR_APP_ID

The app secret and the user's auth token are secrets: they are read from the key store entries
``handcash/hc/app-secret`` and ``handcash/hc/auth-token`` (as ``mpp wallet import`` stores
them) or ``$HANDCASH_APP_SECRET`` / ``$HANDCASH_AUTH_TOKEN``.
"""

from __future__ import annotations

import argparse
import os

import httpx

from mpp_client import PaymentTransport, Wallet, payment_of
from mpp_client.methods.handcash import HandCashCharge
from mpp_client.wallet import open_keystore


def secret(env: str, entry: str) -> str:
    return os.environ.get(env) or open_keystore().get(entry).reveal()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--app-id", required=True)
    parser.add_argument("--wallet-name", default="hc")
    args = parser.parse_args()

    handcash = HandCashCharge(
        app_id=args.app_id,
        app_secret=secret("HANDCASH_APP_SECRET", f"handcash/{args.wallet_name}/app-secret"),
        auth_token=secret("HANDCASH_AUTH_TOKEN", f"handcash/{args.wallet_name}/auth-token"),
    )
    wallet = Wallet([handcash])
    with httpx.Client(transport=PaymentTransport(wallet=wallet), timeout=60) as client:
        response = client.get(args.url)
    payment = payment_of(response)
    print(f"HTTP {response.status_code}")
    if payment is not None and payment.status == "paid" and payment.quote is not None:
        print(f"paid {payment.quote.amount}; transaction {payment.reference}")
    elif payment is not None:
        # "unknown" is not "unpaid": the amount stays held until `mpp journal reconcile`.
        raise SystemExit(f"not paid: {payment.status} ({payment.refusal or payment.error})")


if __name__ == "__main__":
    main()
