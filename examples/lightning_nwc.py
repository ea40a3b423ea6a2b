"""Pay a Lightning charge through Nostr Wallet Connect (NIP-47): Alby Hub, Mutiny, Coinos, ...

    pip install 'mpp-client[lightning,nwc,keyring]'
    mpp wallet import ln --method lightning --backend nwc     # paste the NWC URI at the prompt
    python examples/lightning_nwc.py https://api.example.com/paid

The NWC connection URI is a secret: it is read from the key store (entry ``lightning/ln``, as
``mpp wallet import`` stores it) or ``$NWC_URI``, never from code or argv. Give the connection a
budget in your wallet too: NIP-47 has no per-payment fee cap.
"""

from __future__ import annotations

import argparse
import os

import httpx

from mpp_client import PaymentTransport, Wallet, payment_of
from mpp_client.methods.lightning import LightningCharge, NwcPayer
from mpp_client.wallet import open_keystore


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--key-entry", default="lightning/ln")
    parser.add_argument("--network", default="mainnet")
    args = parser.parse_args()

    uri = os.environ.get("NWC_URI") or open_keystore().get(args.key_entry).reveal()
    wallet = Wallet(
        [LightningCharge(NwcPayer(uri), network=args.network, max_fee_sats=20)],
        journal=None,  # the default journal file, shared with `mpp journal`
    )
    # The default policy pays at most 1,000 sat per payment and 10,000 sat a day.
    with httpx.Client(transport=PaymentTransport(wallet=wallet), timeout=90) as client:
        response = client.get(args.url)
    payment = payment_of(response)
    print(f"HTTP {response.status_code}")
    if payment is None:
        return
    if payment.status != "paid" or payment.quote is None:
        # An unknown outcome may still settle: the invoice stays held (and is never paid
        # twice) until `mpp journal reconcile` asks the node.
        raise SystemExit(f"{payment.status}: {payment.refusal or payment.error}; hash "
                         f"{payment.reference}")  # fmt: skip
    print(f"paid {payment.quote.amount} (+ at most {payment.quote.max_fee} routing fee)")
    print(f"payment hash {payment.reference}")


if __name__ == "__main__":
    main()
