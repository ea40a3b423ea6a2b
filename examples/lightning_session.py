"""Stream from a Lightning session: a prepaid deposit, top-ups mid-stream, the refund on close.

    pip install 'mpp-client[lightning]'
    export LND_URL=https://127.0.0.1:8080 LND_MACAROON_HEX=...   # invoices:write + offchain:write
    python examples/lightning_session.py 'https://api.example.com/stream?chunks=500'

The first 402 opens the session: its deposit invoice is checked against the challenge (amount,
payment hash, network, expiry, never paid before) and paid, with a fresh amountless return
invoice from the same LND node for the refund. The stream's ``payment-need-topup`` events are
answered with top-ups while it stays open; ``close`` asks for the refund and checks it arrived
on the return invoice. The deposit, every top-up and the session itself (its preimage as a
secret) are in the journal, so a second run resumes the session instead of paying again.
"""

from __future__ import annotations

import argparse
import os

import httpx

from mpp_client import PaymentTransport, Wallet
from mpp_client.methods.lightning import LndRestPayer
from mpp_client.methods.lightning.session import LightningSession
from mpp_client.session import session_of


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--network", default="mainnet")
    parser.add_argument("--max-deposit", type=int, default=5_000, help="sats per deposit/top-up")
    parser.add_argument("--keep-open", action="store_true", help="do not close the session")
    args = parser.parse_args()

    payer = LndRestPayer(os.environ["LND_URL"], os.environ["LND_MACAROON_HEX"])
    session = LightningSession(
        payer, network=args.network, max_fee_sats=20, max_deposit_sats=args.max_deposit
    )
    # The default policy pays at most 1,000 sat per payment: raise it for bigger deposits.
    wallet = Wallet([session], journal=None)  # the default journal, shared with `mpp journal`
    with httpx.Client(transport=PaymentTransport(wallet=wallet), timeout=90) as client:
        with client.stream("GET", args.url) as response:
            print(f"HTTP {response.status_code}")
            for line in response.iter_lines():
                if line.startswith("data: "):
                    print(line[6:])
            stream = session_of(response)
        if stream is not None:
            print(f"top-ups: {stream.details.get('topups', 0)}, receipt: {stream.receipt}")
        if args.keep_open:
            return
        closed = session.close(client, args.url)
    print(
        f"deposited {closed.deposited} sat, spent {closed.spent} sat, refund: "
        f"{closed.received if closed.received is not None else 'not seen yet'} sat"
    )
    if closed.problem is not None:
        print(f"problem: {closed.problem}")


if __name__ == "__main__":
    main()
