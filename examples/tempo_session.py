"""Stream a metered (pay-per-chunk) response through a Tempo payment channel, on a local chain.

Self-contained: it starts a local Tempo chain (anvil), deploys the test escrow contract, runs
the session server of ``mpp_client.testing`` and pays it with ``TempoSession``; then it prints
what each chunk cost and closes the channel (the unspent deposit comes back on chain).

    scripts/install-anvil.sh && scripts/install-solc.sh      # once, from a checkout
    python examples/tempo_session.py --chunks 20

Needs the ``tempo`` extra.
"""

from __future__ import annotations

import argparse
import tempfile

import httpx

from mpp_client import PaymentTransport, Wallet
from mpp_client.methods.tempo import PATH_USD, LocalKeySigner, TempoSession
from mpp_client.session import session_of
from mpp_client.testing.anvil import AnvilChain
from mpp_client.testing.tempo_session_server import TempoSessionServer, deploy, escrow_artifact


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=20, help="chunks to stream")
    args = parser.parse_args()

    with AnvilChain.start() as chain, tempfile.TemporaryDirectory() as tmp:
        escrow = deploy(chain, escrow_artifact()["bytecode"])
        payer, payee = LocalKeySigner.generate(), LocalKeySigner.generate()
        chain.fund(payer.address, 2_000_000)  # 2.00 pathUSD
        chain.fund(payee.address, 100_000)  # the payee pays for its close transaction
        server = TempoSessionServer(chain=chain, escrow=escrow, token=PATH_USD.address,
                                    payee=payee, price=1_000)  # fmt: skip
        method = TempoSession(
            payer, chain_id=chain.chain_id, rpc_url=chain.rpc_url, max_deposit=500_000,
            escrows={chain.chain_id: [escrow]},  # a local escrow: allowed explicitly
        )  # fmt: skip
        wallet = Wallet([method], journal=f"{tmp}/journal.sqlite3")
        with (
            server.serve() as base,
            httpx.Client(transport=PaymentTransport(wallet=wallet)) as client,
        ):
            url = f"{base}/stream?n={args.chunks}"
            quoted = wallet.quote(url)
            print(f"price {quoted.unit_price} per chunk, deposit {quoted.deposit}")
            paid = 0
            with client.stream("GET", url) as response:
                state = session_of(response)
                for line in response.iter_lines():
                    if not line.startswith("data:"):
                        continue
                    signed = state.details.get("highestSigned", 0) if state else 0
                    print(f"{line[6:]:>10}  voucher total {signed:>7}  (+{signed - paid})")
                    paid = signed
            receipt = state.receipt if state else None
            if receipt is not None:
                print(f"receipt: accepted {receipt.extra['acceptedCumulative']} base units")
            closed = method.close(url)
        print(f"closed: paid {closed.highest_accepted}, refunded {closed.refund} base units")
        print(f"payee balance on chain: {chain.balance_of(payee.address)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
