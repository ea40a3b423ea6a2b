"""Tempo payments: mpp_client vs pympp 0.16's client, side by side, one run, same chain and server.

    bash scripts/install-anvil.sh && bash scripts/install-peers.sh
    python benchmarks/bench_tempo.py [--builds 300] [--trips 60] [--rounds 3]

Measures, on a local anvil Tempo chain and a real pympp 0.16 server (tempo/charge), both on
127.0.0.1:

1. credential build: from a parsed challenge to the signed credential payload, with every RPC
   call the client makes answered by the chain (ours caches the chain id and the gas price, so
   its hot path makes no RPC call; pympp makes eth_gasPrice and eth_estimateGas per payment on a
   new HTTP client each). Median per build.
2. paid round trips per second: GET -> 402 -> pay -> paid retry -> 200, sequential, with the
   server verifying and broadcasting on chain. Median over rounds.

Targets: build <= 1 ms median; round trips >= 3x pympp's.

pympp 0.16 signs a 60 s expiring-nonce window that anvil (<= T4) silently drops, so its window
is set to 25 s here (the same as ours); nothing else of pympp is changed.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import httpx  # noqa: E402

from mpp_client import PaymentTransport  # noqa: E402
from mpp_client.guard import OpenGuard  # noqa: E402
from mpp_client.methods.base import PaymentContext  # noqa: E402
from mpp_client.methods.tempo import LocalKeySigner, TempoCharge  # noqa: E402
from mpp_client.protocol import parse_challenges  # noqa: E402
from mpp_client.protocol.challenge import Challenge  # noqa: E402
from mpp_client.runner import SyncRunner  # noqa: E402
from mpp_client.testing.anvil import DEV_KEYS, AnvilChain  # noqa: E402
from tests.peers.fixtures import PeerServer, free_port  # noqa: E402


def start_pympp(chain: AnvilChain, recipient: str) -> PeerServer:
    port = free_port()
    argv = [
        sys.executable,
        str(REPO / "tests" / "peers" / "pympp_server.py"),
        "--port", str(port), "--anvil", chain.rpc_url, "--chain-id", str(chain.chain_id),
        "--recipient", recipient, "--split-recipient", recipient, "--fee-payer-key", DEV_KEYS[1],
    ]  # fmt: skip
    return PeerServer("pympp", argv, {}, port)


def fresh_challenges(template: Challenge, count: int) -> list[Challenge]:
    # Distinct ids, as a server would issue: a credential is built per challenge.
    return [dataclasses.replace(template, id=f"{template.id[:20]}-{i}") for i in range(count)]


def bench_build_ours(chain: AnvilChain, challenge: Challenge, builds: int) -> list[float]:
    signer = LocalKeySigner.generate()
    method = TempoCharge(signer, chain_id=chain.chain_id, rpc_url=chain.rpc_url)
    runner = SyncRunner(httpx.Client())
    times = []
    for candidate in fresh_challenges(challenge, builds + 5):
        from datetime import UTC, datetime

        context = PaymentContext(
            "http://127.0.0.1", "http://127.0.0.1/paid", "GET", datetime.now(UTC)
        )
        start = time.perf_counter()
        quote = method.quote(candidate, context)
        runner.run(method.pay(quote, context))
        times.append(time.perf_counter() - start)
    runner.close()
    return times[5:]  # the first builds fetch the chain id and gas price


def bench_build_pympp(chain: AnvilChain, header: str, builds: int) -> list[float]:
    from mpp import Challenge as PymppChallenge
    from mpp.methods.tempo.account import TempoAccount
    from mpp.methods.tempo.client import _tempo_method

    key = LocalKeySigner.generate().export_private_key()
    method = _tempo_method(
        account=TempoAccount.from_key(key), chain_id=chain.chain_id, rpc_url=chain.rpc_url
    )
    template = PymppChallenge.from_www_authenticate(header)

    async def run() -> list[float]:
        times = []
        for i in range(builds + 5):
            candidate = dataclasses.replace(template, id=f"{template.id[:20]}-{i}")
            start = time.perf_counter()
            await method.create_credential(candidate)
            times.append(time.perf_counter() - start)
        return times[5:]

    return asyncio.run(run())


def bench_trips_ours(chain: AnvilChain, url: str, trips: int) -> float:
    signer = LocalKeySigner.generate()
    chain.fund(signer.address, 10_000_000)
    method = TempoCharge(signer, chain_id=chain.chain_id, rpc_url=chain.rpc_url)
    transport = PaymentTransport(methods=[method], guard=OpenGuard())
    with httpx.Client(transport=transport, timeout=60) as client:
        assert client.get(url).status_code == 200  # warm up: connections, caches
        start = time.perf_counter()
        for _ in range(trips):
            response = client.get(url)
            assert response.status_code == 200, response.text
        return trips / (time.perf_counter() - start)


def bench_trips_pympp(chain: AnvilChain, url: str, trips: int) -> float:
    from mpp.client.transport import Mpp
    from mpp.methods.tempo import client as tempo
    from mpp.methods.tempo.account import TempoAccount

    signer = LocalKeySigner.generate()
    chain.fund(signer.address, 10_000_000)
    account = TempoAccount.from_key(signer.export_private_key())

    async def run() -> float:
        methods = [tempo.charge(account=account, chain_id=chain.chain_id, rpc_url=chain.rpc_url)]
        async with Mpp(methods=methods) as client:
            assert (await client.fetch(url)).status_code == 200
            start = time.perf_counter()
            for _ in range(trips):
                response = await client.fetch(url)
                assert response.status_code == 200, response.text
            return trips / (time.perf_counter() - start)

    return asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--builds", type=int, default=300)
    parser.add_argument("--trips", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    import mpp.methods.tempo.client as pympp_client

    pympp_client.EXPIRING_NONCE_VALID_BEFORE_SECS = 25  # anvil drops windows over 30 s

    with AnvilChain.start() as chain:
        server = start_pympp(chain, LocalKeySigner.generate().address)
        try:
            url = server.url + "/paid"
            header = httpx.get(url).headers["www-authenticate"]
            [challenge] = parse_challenges([header])

            ours_build, pympp_build, ours_rps, pympp_rps = [], [], [], []
            for _ in range(args.rounds):  # interleaved, so machine load hits both alike
                ours_build.append(
                    statistics.median(bench_build_ours(chain, challenge, args.builds))
                )
                pympp_build.append(
                    statistics.median(bench_build_pympp(chain, header, max(args.builds // 10, 20)))
                )
                ours_rps.append(bench_trips_ours(chain, url, args.trips))
                pympp_rps.append(bench_trips_pympp(chain, url, max(args.trips // 4, 10)))
        finally:
            server.stop()

    build_ours, build_pympp = statistics.median(ours_build), statistics.median(pympp_build)
    rps_ours, rps_pympp = statistics.median(ours_rps), statistics.median(pympp_rps)
    print(f"Tempo charge on anvil + pympp 0.16 server, {args.rounds} interleaved rounds (medians)")
    print(f"{'':32}{'mpp_client':>14}{'pympp 0.16':>14}{'ratio':>10}")
    print(
        f"{'credential build (ms)':32}{build_ours * 1e3:>14.3f}{build_pympp * 1e3:>14.3f}"
        f"{build_pympp / build_ours:>9.1f}x"
    )
    ratio = rps_ours / rps_pympp
    print(f"{'paid round trips per second':32}{rps_ours:>14.1f}{rps_pympp:>14.1f}{ratio:>9.1f}x")
    build_ok = "met" if build_ours <= 1e-3 else "MISSED"
    trips_ok = "met" if ratio >= 3 else "MISSED"
    print(f"targets: build <= 1 ms ({build_ok}); round trips >= 3x pympp ({trips_ok})")


if __name__ == "__main__":
    main()
