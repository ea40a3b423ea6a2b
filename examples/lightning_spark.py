"""Pay a Lightning charge from a Spark wallet (Breez SDK, self-custodial).

    pip install 'mpp-client[lightning,spark,keyring]'
    python examples/lightning_spark.py https://api.example.com/paid

The wallet mnemonic and the Breez API key are secrets: this example reads them from the key
store entries ``spark/mnemonic`` and ``spark/api-key`` (store them once with
``mpp_client.wallet.open_keystore().set(...)`` from a prompt), or ``$SPARK_MNEMONIC`` /
``$BREEZ_API_KEY``. ``--network regtest`` needs no API key.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import httpx

from mpp_client import PaymentTransport, Wallet, payment_of
from mpp_client.methods.lightning import LightningCharge, SparkPayer
from mpp_client.wallet import open_keystore


def secret(env: str, entry: str) -> str:
    return os.environ.get(env) or open_keystore().get(entry).reveal()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--network", choices=["mainnet", "regtest"], default="mainnet")
    parser.add_argument("--storage", default=str(Path.home() / ".local/share/mpp-client/spark"))
    args = parser.parse_args()

    payer = SparkPayer(
        mnemonic=secret("SPARK_MNEMONIC", "spark/mnemonic"),
        api_key=secret("BREEZ_API_KEY", "spark/api-key") if args.network == "mainnet" else None,
        network=args.network,
        storage_dir=args.storage,
    )
    wallet = Wallet([LightningCharge(payer, network=args.network, max_fee_sats=20)])
    with httpx.Client(transport=PaymentTransport(wallet=wallet), timeout=90) as client:
        response = client.get(args.url)
    payment = payment_of(response)
    print(f"HTTP {response.status_code}")
    status = "free" if payment is None else payment.status
    if payment is not None and payment.quote is not None and status == "paid":
        print(f"paid {payment.quote.amount}; payment hash {payment.reference}")
    elif status != "free":
        raise SystemExit(f"not paid ({status}); see `mpp journal list` for what is held")


if __name__ == "__main__":
    main()
