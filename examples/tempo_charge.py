"""Pay a Tempo (TIP-20 stablecoin) charge on the local demo chain with ``TempoCharge``.

Start the local demo setup first (a Tempo chain and an MPP server, and a funded wallet whose
key is in your key store under ``tempo/demo``):

    mpp demo serve                                  # terminal 1: prints the two URLs below
    python examples/tempo_charge.py http://127.0.0.1:PORT/paid --rpc-url http://127.0.0.1:RPC

Needs the ``tempo`` and ``keyring`` extras. With your own key instead of the key store, set
``TEMPO_PRIVATE_KEY`` (never put keys in code or on the command line).
"""

from __future__ import annotations

import argparse
import os

import httpx

from mpp_client import PaymentTransport, Wallet, payment_of
from mpp_client.methods.tempo import LocalKeySigner, TempoCharge
from mpp_client.wallet import Limit, SpendPolicy, open_keystore, usd


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="a paid URL of the MPP server")
    parser.add_argument("--rpc-url", required=True, help="the chain's JSON-RPC endpoint")
    parser.add_argument("--chain-id", type=int, default=31337, help="default: local anvil")
    parser.add_argument("--key-entry", default="tempo/demo", help="key store entry of the key")
    args = parser.parse_args()

    key = os.environ.get("TEMPO_PRIVATE_KEY") or open_keystore().get(args.key_entry).reveal()
    signer = LocalKeySigner(key)
    tempo = TempoCharge(signer, chain_id=args.chain_id, rpc_url=args.rpc_url)
    # A tighter policy than the defaults: at most 5 cents per payment, 50 cents a day.
    policy = SpendPolicy(limits=(Limit(usd("0.05"), "payment"), Limit(usd("0.50"), "day")))
    wallet = Wallet([tempo], policy=policy, journal=":memory:")

    with httpx.Client(transport=PaymentTransport(wallet=wallet), timeout=60) as client:
        response = client.get(args.url)
    payment = payment_of(response)
    print(f"HTTP {response.status_code}: {response.text[:200]}")
    if payment is None:
        print("nothing to pay: the server did not ask for a payment")
        return 0
    if payment.status != "paid":
        # An error answer after the credential left is not a proof that nothing was paid: the
        # amount stays held until `mpp journal reconcile` (or wallet.reconcile()) settles it.
        print(f"not paid: {payment.status} ({payment.refusal or payment.error or 'no detail'})")
        if payment.status in ("unknown", "rejected", "denied"):
            print(f"journal entry {payment.journal_id}: the amount stays held; transaction "
                  f"{payment.reference or '-'}")  # fmt: skip
        return 1
    assert payment.quote is not None  # a paid payment always has its quote
    print(f"paid {payment.quote.amount} from {signer.address}")
    for payee in payment.quote.payees:
        print(f"  to {payee.address}: {payee.amount} base units (6 decimals)")
    if payment.receipt is not None:
        print(f"receipt: {payment.receipt.status}, transaction {payment.receipt.reference}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
