"""Tempo sessions: what a voucher costs the client, and what metering costs a stream.

Prints:

- voucher signing: EIP-712 digest + secp256k1 signature + the durable journal write
  (``ChannelStore.record_voucher``, one fsync), median and p90 over ``--vouchers`` (target:
  <= 0.3 ms median plus one fsync; the fsync alone is measured and shown beside it);
- 1,000 metered chunks over loopback, paid (a local anvil chain, our escrow and our session
  server; the server asks for ``--units`` chunks per voucher, the client may prepay
  ``--prepaid`` units ahead) against the same stream read unpaid from a plain SSE server, wall
  time of the client side of each (target: paid <= 1.2x), split into the time to the
  response headers (the paid request itself) and the body (the metering).

    python benchmarks/bench_session.py [--vouchers 2000] [--chunks 1000] [--units 10]
        [--prepaid 1000] [--rounds 5]

Needs anvil and solc-js (scripts/install-anvil.sh, scripts/install-solc.sh).
"""

from __future__ import annotations

import argparse
import os
import secrets
import socket
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

import httpx  # noqa: E402

from mpp_client import PaymentTransport, Wallet  # noqa: E402
from mpp_client.methods.tempo import PATH_USD, LocalKeySigner, TempoSession  # noqa: E402
from mpp_client.methods.tempo.voucher import voucher_digest  # noqa: E402
from mpp_client.session import session_of  # noqa: E402
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
                probe.write(b"x" * 4096)  # a page, as a WAL commit writes
                probe.flush()
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

        def setup(self) -> None:
            super().setup()
            # Like the session server (and production servers): no Nagle delay on small writes.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

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


def serve(args: argparse.Namespace) -> int:
    """The child process: both servers, so their threads do not share the client's GIL. Prints
    the two base URLs, then for each line read on stdin the vouchers the session server got
    so far (paid requests', in-stream POSTs'); serves until stdin closes. The switch interval
    is short so that a voucher's POST is not kept waiting for the GIL by the thread busy
    streaming (a production server answers both at once; a Python one would add up to 5 ms
    per voucher)."""
    sys.setswitchinterval(0.0002)
    chain = AnvilChain(None, args.port, args.chain_id)  # type: ignore[arg-type]
    server = TempoSessionServer(
        chain=chain, escrow=args.escrow, token=PATH_USD.address,
        payee=LocalKeySigner(os.environ["MPP_BENCH_PAYEE_KEY"]), price=PRICE,
        units_per_voucher=args.units, suggested_deposit=DEPOSIT, offchain_vouchers=True,
    )  # fmt: skip
    plain = _plain_sse(args.chunks)
    with server.serve() as base:
        print(base, f"http://127.0.0.1:{plain.server_address[1]}/", flush=True)
        for _ in sys.stdin:
            posts = sum(1 for seen in server.requests if seen.method == "POST")
            print(server.actions.count("voucher") - posts, posts, flush=True)
    return 0


PRICE, DEPOSIT = 10, 900_000  # base units: 90,000 units of deposit, under the $1 default cap


@dataclass
class _Run:
    """One stream read: wall time, of which the time to the response headers (for a paid
    stream: the 402, the voucher of the paid request and the paid retry), the client's CPU
    time (process CPU), and how often the server paused for a voucher."""

    wall: float
    headers: float
    cpu: float
    pauses: int = 0


def _read(client: httpx.Client, url: str, chunks: int) -> _Run:
    start, cpu = time.perf_counter(), time.process_time()
    with client.stream("GET", url) as response:
        headers = time.perf_counter() - start
        got = sum(1 for line in response.iter_lines() if line.startswith("data:"))
    took, used = time.perf_counter() - start, time.process_time() - cpu
    if got != chunks:
        raise SystemExit(f"read {got} chunks of {chunks}")
    state = session_of(response)
    # Control events less the final receipt: the server's payment-need-voucher pauses.
    pauses = state.control_events - 1 if state is not None else 0
    return _Run(took, headers, used, pauses)


def bench_stream(chunks: int, units: int, prepaid: int, rounds: int) -> None:
    """Paid and unpaid streams of ``chunks`` chunks, ``rounds`` times each, interleaved, from
    servers in a child process. The paid one runs on a channel opened beforehand (the open is
    one on-chain transaction, not a per-chunk cost) against a server that asks for a voucher
    every ``units`` chunks and checks it off chain, as a production server does; the client
    may pay ``prepaid`` units ahead (``max_prepaid_units``: it posts the next voucher before
    the server runs out). So the difference is what metering costs the client: the paid
    request, parsing, signing, journal writes and voucher round trips."""
    import subprocess

    with AnvilChain.start() as chain, tempfile.TemporaryDirectory() as tmp:
        escrow = deploy(chain, str(escrow_artifact()["bytecode"]))
        payer, payee_key = LocalKeySigner.generate(), secrets.token_hex(32)
        chain.fund(payer.address, 50_000_000)
        child = subprocess.Popen(
            [sys.executable, __file__, "--serve", "--port", str(chain.port), "--chain-id",
             str(chain.chain_id), "--escrow", escrow, "--units", str(units),
             "--chunks", str(chunks)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            env={**os.environ, "MPP_BENCH_PAYEE_KEY": payee_key},  # a throwaway key
        )  # fmt: skip
        assert child.stdin is not None and child.stdout is not None
        base, plain_url = child.stdout.readline().split()
        method = TempoSession(
            payer, chain_id=chain.chain_id, rpc_url=chain.rpc_url, max_deposit=DEPOSIT,
            escrows={chain.chain_id: [escrow]}, max_prepaid_units=prepaid,
        )  # fmt: skip
        wallet = Wallet([method], journal=os.path.join(tmp, "journal.sqlite3"))
        unpaid: list[_Run] = []
        paid: list[_Run] = []
        with (
            httpx.Client(transport=PaymentTransport(wallet=wallet)) as paying,
            httpx.Client() as free,
        ):
            with paying.stream("GET", f"{base}/stream?n=1") as response:
                response.read()  # opens the channel
            paid_url = f"{base}/stream?n={chunks}"
            _read(free, plain_url, chunks), _read(paying, paid_url, chunks)  # warm both up

            def counts() -> list[int]:
                assert child.stdin is not None and child.stdout is not None
                child.stdin.write("\n")
                child.stdin.flush()
                return [int(part) for part in child.stdout.readline().split()]

            before = counts()
            for _ in range(rounds):
                unpaid.append(_read(free, plain_url, chunks))
                paid.append(_read(paying, paid_url, chunks))
            after = counts()
        child.stdin.close()
        child.wait(timeout=30)
    requests_paid, in_stream = ((b - a) / rounds for a, b in zip(before, after, strict=True))

    def median(runs: list[_Run], field: str) -> float:
        return statistics.median(getattr(run, field) for run in runs)

    u, p = median(unpaid, "wall"), median(paid, "wall")
    uh, ph = median(unpaid, "headers"), median(paid, "headers")
    uc, pc = median(unpaid, "cpu"), median(paid, "cpu")
    pauses = median(paid, "pauses")
    print(f"stream of {chunks} chunks; the server asks for a voucher every {units} chunks, the "
          f"client prepays up to {prepaid} units (per stream: {requests_paid:.0f} paid request "
          f"voucher, {in_stream:.1f} in-stream vouchers; the server paused {pauses:.0f} times), "
          f"median of {rounds}:")  # fmt: skip
    print(f"  unpaid:  wall {u * 1000:8.1f} ms   (headers {uh * 1000:5.1f} ms, body "
          f"{(u - uh) * 1000:6.1f} ms)   client CPU {uc * 1000:7.1f} ms")  # fmt: skip
    print(f"  paid:    wall {p * 1000:8.1f} ms   (headers {ph * 1000:5.1f} ms, body "
          f"{(p - ph) * 1000:6.1f} ms)   client CPU {pc * 1000:7.1f} ms")  # fmt: skip
    print(f"  ratio:   wall {p / u:8.2f}x    (target <= 1.20x; body alone "
          f"{(p - ph) / (u - uh):.2f}x)   client CPU {pc / uc:6.2f}x")  # fmt: skip
    print("  (paid headers: the 402, the paid request's voucher and journal entry, the paid retry)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vouchers", type=int, default=2000)
    parser.add_argument("--chunks", type=int, default=1000)
    parser.add_argument("--units", type=int, default=10, help="chunks per voucher asked")
    parser.add_argument("--prepaid", type=int, default=1000, help="units the client may pay ahead")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--chain-id", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--escrow", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return serve(args)
    bench_vouchers(args.vouchers)
    bench_stream(args.chunks, args.units, args.prepaid, args.rounds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
