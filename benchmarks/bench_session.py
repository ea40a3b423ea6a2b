"""Tempo sessions: what a voucher costs the client, and what metering costs a stream.

Prints:

- voucher signing: EIP-712 digest + secp256k1 signature + the durable journal write
  (``ChannelStore.record_voucher``, one fsync), median and p90 over ``--vouchers`` (target:
  <= 0.3 ms median plus one fsync; the fsync alone is measured and shown beside it);
- 1,000 metered chunks over loopback, paid (a local anvil chain, our escrow and our session
  server; the server asks for ``--units`` chunks per voucher) against the same stream read
  unpaid from a plain SSE server, wall time of the client side of each (target: paid <= 1.2x).

    python benchmarks/bench_session.py [--vouchers 2000] [--chunks 1000] [--units 10]

Needs anvil and solc-js (scripts/install-anvil.sh, scripts/install-solc.sh).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

import httpx  # noqa: E402

from mpp_client import PaymentTransport, Wallet  # noqa: E402
from mpp_client.methods.tempo import PATH_USD, LocalKeySigner, TempoSession  # noqa: E402
from mpp_client.methods.tempo.voucher import voucher_digest  # noqa: E402
from mpp_client.testing.anvil import AnvilChain  # noqa: E402
from mpp_client.testing.tempo_session_server import (  # noqa: E402
    TempoSessionServer,
    deploy,
    escrow_artifact,
)
from mpp_client.wallet.channels import ChannelStore, NewChannel  # noqa: E402


def bench_vouchers(count: int) -> None:
    key = LocalKeySigner.generate()
    escrow, channel = "0x" + "11" * 20, "0x" + "22" * 32
    with tempfile.TemporaryDirectory() as tmp:
        store = ChannelStore(os.path.join(tmp, "journal.sqlite3"))
        store.open(NewChannel(
            id=channel, method="tempo", origin="https://x", payee="0x" + "33" * 20,
            currency=PATH_USD.address, network="eip155:4217", lookup_key="k", details={},
            deposit=10**12,
        ))  # fmt: skip
        signing, total = [], []
        for n in range(1, count + 1):
            start = time.perf_counter()
            digest = voucher_digest("v1", 4217, escrow, channel, n)
            signature = "0x" + key.sign_raw_hash(digest).hex()
            signed = time.perf_counter()
            store.record_voucher(channel, n, signature)
            done = time.perf_counter()
            signing.append(signed - start)
            total.append(done - start)
        fsyncs = []
        with open(os.path.join(tmp, "probe"), "wb") as probe:
            for _ in range(200):
                probe.write(b"x")
                start = time.perf_counter()
                os.fsync(probe.fileno())
                fsyncs.append(time.perf_counter() - start)

    def ms(values: list[float], q: float = 0.5) -> str:
        return f"{statistics.quantiles(values, n=100)[int(q * 100) - 1] * 1000:.3f} ms"

    print(f"voucher digest + sign:          median {ms(signing)}  p90 {ms(signing, 0.9)}")
    print(f"  + journal write (one fsync):  median {ms(total)}  p90 {ms(total, 0.9)}")
    print(f"  one fsync on this disk:       median {ms(fsyncs)}")


def _plain_sse(chunks: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            for index in range(chunks):
                body = f"id: {index}\ndata: chunk {index}\n\n".encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(body), body))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")

        def log_message(self, format: str, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _read(client: httpx.Client, url: str) -> float:
    start = time.perf_counter()
    with client.stream("GET", url) as response:
        got = sum(1 for line in response.iter_lines() if line.startswith("data:"))
    took = time.perf_counter() - start
    if got != CHUNKS[0]:
        raise SystemExit(f"read {got} chunks of {CHUNKS[0]}")
    return took


CHUNKS = [0]


def bench_stream(chunks: int, units: int, rounds: int) -> None:
    """Paid and unpaid streams of ``chunks`` chunks, ``rounds`` times each, interleaved. The
    paid one runs on a channel opened beforehand (the open is one on-chain transaction, not a
    per-chunk cost) against a server that checks vouchers off chain, as a production server
    does; so the difference is what metering costs: parsing, signing, journal writes and the
    voucher round trips while the stream waits."""
    CHUNKS[0] = chunks
    plain = _plain_sse(chunks)
    plain_url = f"http://127.0.0.1:{plain.server_address[1]}/"
    with AnvilChain.start() as chain, tempfile.TemporaryDirectory() as tmp:
        escrow = deploy(chain, str(escrow_artifact()["bytecode"]))
        payer, payee = LocalKeySigner.generate(), LocalKeySigner.generate()
        chain.fund(payer.address, 50_000_000)
        server = TempoSessionServer(
            chain=chain, escrow=escrow, token=PATH_USD.address, payee=payee, price=100,
            units_per_voucher=units, suggested_deposit=900_000, offchain_vouchers=True,
        )  # fmt: skip
        method = TempoSession(
            payer, chain_id=chain.chain_id, rpc_url=chain.rpc_url, max_deposit=1_000_000,
            escrows={chain.chain_id: [escrow]}, max_prepaid_units=units,
        )  # fmt: skip
        wallet = Wallet([method], journal=os.path.join(tmp, "journal.sqlite3"))
        with (
            server.serve() as base,
            httpx.Client(transport=PaymentTransport(wallet=wallet)) as paying,
            httpx.Client() as free,
        ):
            with paying.stream("GET", f"{base}/stream?n=1") as response:
                response.read()  # opens the channel
            before = server.actions.count("voucher")
            paid_url = f"{base}/stream?n={chunks}"
            unpaid, paid = [], []
            for _ in range(rounds):
                unpaid.append(_read(free, plain_url))
                paid.append(_read(paying, paid_url))
            vouchers = (server.actions.count("voucher") - before) / rounds
    plain.shutdown()
    u, p = statistics.median(unpaid), statistics.median(paid)
    print(f"stream of {chunks} chunks, a voucher every {units} chunks "
          f"({vouchers:.0f} vouchers per stream), median of {rounds}:")  # fmt: skip
    print(f"  unpaid:  {u * 1000:8.1f} ms")
    print(f"  paid:    {p * 1000:8.1f} ms  ({(p - u) / vouchers * 1000:.2f} ms per voucher)")
    print(f"  ratio:   {p / u:8.2f}x  (target <= 1.20x)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vouchers", type=int, default=2000)
    parser.add_argument("--chunks", type=int, default=1000)
    parser.add_argument("--units", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    bench_vouchers(args.vouchers)
    bench_stream(args.chunks, args.units, args.rounds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
