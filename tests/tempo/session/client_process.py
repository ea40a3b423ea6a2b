"""A session client in its own process, for the SIGKILL test: streams a metered resource and
prints each data line as it arrives (the test kills it mid-stream)."""

from __future__ import annotations

import sys

import httpx

from mpp_client import PaymentTransport, Wallet
from mpp_client.methods.tempo import LocalKeySigner
from mpp_client.methods.tempo.session import TempoSession


def main() -> None:
    rpc_url, chain_id, escrow, key, journal, url = sys.argv[1:7]
    method = TempoSession(
        LocalKeySigner(key), chain_id=int(chain_id), rpc_url=rpc_url, max_deposit=1_000_000,
        escrows={int(chain_id): [escrow]},
    )  # fmt: skip
    wallet = Wallet([method], journal=journal)
    with (
        httpx.Client(transport=PaymentTransport(wallet=wallet), timeout=60) as client,
        client.stream("GET", url) as response,
    ):
        for line in response.iter_lines():
            if line.startswith("data:"):
                print(line, flush=True)


if __name__ == "__main__":
    main()
