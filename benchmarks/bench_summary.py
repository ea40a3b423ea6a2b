"""One run, one table: the issue-15 speed figures, side by side with pympp 0.16 where it has one.

    python benchmarks/bench_summary.py [--quick]

Prints medians and ratios for:

1. Tempo credential build vs the physical floor. Build: ``TempoCharge.pay`` from a quote to the
   signed credential payload (memo, calldata, RLP, signing hash, signature, envelope, tx hash,
   in-flight registry), with the RPC caches warm so no network call is made; also quote + pay.
   Floor: one keccak plus one coincurve signature over the same signing payload, timed in the
   same run. Target: build <= 2x floor.
2. The client's share of a paid round trip, server answered in-process (``FakeMppServer``'s
   ``MockTransport``, test method, no sockets, no chain): with no wallet, with a wallet on an
   in-memory journal and on a file journal, sync and async. pympp's client has no wallet and
   no in-process server harness comparable to this one: its Tempo round trip against a real
   pympp server on anvil is in ``bench_tempo.py``.
3. Event-loop lag while 100 async payments run concurrently through ``AsyncPaymentTransport``
   with a file-journal wallet: a ticker asks for 1 ms sleeps and records how late it wakes
   (max and p99). Target: <= 1 ms max.
4. Import time added to httpx, in fresh processes (median of interleaved runs):
   ``import httpx`` vs ``import httpx, mpp_client`` and vs ``from mpp_client import
   PaymentTransport``. Target: added <= 0.25x httpx's own.
5. Parsing: one 600-char tempo challenge and four folded, ours vs pympp 0.16's transport path
   (quote-aware splitter + ``Challenge.from_www_authenticate``). Targets: ours/pympp <= 0.12
   (one), <= 0.10 (four).

Speed goals live here, never in timed tests. The machine is shared and noisy: read medians and
ratios of one run, not absolute times.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Generator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import httpx  # noqa: E402

from mpp_client import AsyncPaymentTransport, Money, PaymentTransport  # noqa: E402
from mpp_client.guard import OpenGuard  # noqa: E402
from mpp_client.methods.base import PaymentContext  # noqa: E402
from mpp_client.protocol import b64url_encode, canonical_json, parse_challenges  # noqa: E402
from mpp_client.testing import TestMethod  # noqa: E402
from mpp_client.testing.method import TEST_CURRENCY  # noqa: E402
from mpp_client.testing.server import FakeMppServer, Offer, Route  # noqa: E402
from mpp_client.wallet import Limit, SpendPolicy, Wallet  # noqa: E402

ROWS: list[tuple[str, str, str, str, str]] = []


def row(name: str, ours: str, theirs: str = "", ratio: str = "", verdict: str = "") -> None:
    ROWS.append((name, ours, theirs, ratio, verdict))


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


# --- 1. credential build vs floor -----------------------------------------------------------------


def _drive(gen: Generator[Any, Any, Any]) -> Any:
    """Run a method generator whose only effects are checkpoints (answered with None)."""
    try:
        gen.send(None)
        while True:
            gen.send(None)
    except StopIteration as stop:
        return stop.value


def bench_build(n: int) -> None:
    from mpp_client.methods.tempo import LocalKeySigner, TempoCharge
    from mpp_client.methods.tempo.keccak import keccak256
    from mpp_client.methods.tempo.signer import _sign

    signer = LocalKeySigner.generate()
    url = "http://rpc.invalid"
    method = TempoCharge(signer, chain_id=31337, rpc_url=url)
    # Warm caches, as after the first payment: chain id, gas price, chain-clock offset.
    now = method.clock.time()
    method._chain_of[url] = 31337
    method._gas_price[url] = (20 * 10**9, now)
    method._chain_offset[url] = (0, now)
    method.gas_price_ttl = method.chain_time_ttl = 1e9
    request = {
        "amount": "10000",
        "currency": "0x20c0000000000000000000000000000000000000",
        "recipient": "0x" + "ab" * 20,
        "methodDetails": {"chainId": 31337},
    }
    expires = (datetime.now(UTC) + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    header = (
        f'Payment id="{"i" * 43}", realm="127.0.0.1", method="tempo", intent="charge", '
        f'request="{b64url_encode(canonical_json(request))}", expires="{expires}"'
    )
    [challenge] = parse_challenges([header])
    context = PaymentContext("http://127.0.0.1", "http://127.0.0.1/paid", "GET", datetime.now(UTC))
    # Distinct challenge ids, as a server issues them: one credential per challenge.
    challenges = [dataclasses.replace(challenge, id=f"c{i:042d}") for i in range(3 * n + 50)]
    quotes = [method.quote(c, context) for c in challenges]
    for q in quotes[:50]:
        _drive(method.pay(q, context))
    key = signer._key.reveal()
    payload = b"\x76" + bytes(180)  # the size of a one-transfer signing payload
    build, both, floor = [], [], []
    for i in range(n):  # interleaved, so machine load hits every arm alike
        q = quotes[50 + i]
        t = time.perf_counter()
        _drive(method.pay(q, context))
        build.append(time.perf_counter() - t)
        c = challenges[50 + n + i]
        t = time.perf_counter()
        _drive(method.pay(method.quote(c, context), context))
        both.append(time.perf_counter() - t)
        t = time.perf_counter()
        _sign(key, keccak256(payload))
        floor.append(time.perf_counter() - t)
    b, qb, f = (statistics.median(x) * 1e6 for x in (build, both, floor))
    row("floor: 1 keccak + 1 coincurve sign (us)", f"{f:.1f}")
    row("tempo build: pay(), caches warm (us)", f"{b:.1f}", "", f"{b / f:.2f}x floor",
        verdict(b <= 2 * f))  # fmt: skip
    row("tempo build: quote() + pay() (us)", f"{qb:.1f}", "", f"{qb / f:.2f}x floor")


# --- 2. client share of a paid round trip, in-process server --------------------------------------


def _wallet(journal: Any) -> Wallet:
    policy = SpendPolicy(limits=(Limit(Money(10**15, TEST_CURRENCY), "day"),), pin_payees=False)
    return Wallet([TestMethod()], journal=journal, policy=policy, max_unknown=None)


def _server() -> FakeMppServer:
    return FakeMppServer({"/paid": Route(offers=(Offer(amount="1000"),))})


def _sync_trip(transport_for: Callable[[httpx.BaseTransport], PaymentTransport], n: int) -> float:
    server = _server()
    with httpx.Client(transport=transport_for(server.mock_transport())) as client:
        client.get("https://fake.test/paid")
        start = time.perf_counter()
        for _ in range(n):
            assert client.get("https://fake.test/paid").status_code == 200
        return (time.perf_counter() - start) / n


def _async_trip(
    transport_for: Callable[[httpx.AsyncBaseTransport], AsyncPaymentTransport], n: int
) -> float:
    server = _server()

    async def run() -> float:
        async with httpx.AsyncClient(transport=transport_for(server.mock_transport())) as client:
            await client.get("https://fake.test/paid")
            start = time.perf_counter()
            for _ in range(n):
                assert (await client.get("https://fake.test/paid")).status_code == 200
            return (time.perf_counter() - start) / n

    return asyncio.run(run())


def bench_trips(n: int, rounds: int, tmp: Path) -> None:
    counter = iter(range(10**6))

    def file_journal() -> Path:
        return tmp / f"journal-{next(counter)}.sqlite3"

    arms: dict[str, Callable[[], float]] = {
        "sync, no wallet": lambda: _sync_trip(
            lambda inner: PaymentTransport(inner, methods=[TestMethod()], guard=OpenGuard()), n
        ),
        "sync, wallet, in-memory journal": lambda: _sync_trip(
            lambda inner: PaymentTransport(inner, wallet=_wallet(":memory:")), n
        ),
        "sync, wallet, file journal": lambda: _sync_trip(
            lambda inner: PaymentTransport(inner, wallet=_wallet(file_journal())), n
        ),
        "async, no wallet": lambda: _async_trip(
            lambda inner: AsyncPaymentTransport(inner, methods=[TestMethod()], guard=OpenGuard()),
            n,
        ),
        "async, wallet, in-memory journal": lambda: _async_trip(
            lambda inner: AsyncPaymentTransport(inner, wallet=_wallet(":memory:")), n
        ),
        "async, wallet, file journal": lambda: _async_trip(
            lambda inner: AsyncPaymentTransport(inner, wallet=_wallet(file_journal())), n
        ),
    }
    samples: dict[str, list[float]] = {name: [] for name in arms}
    for _ in range(rounds):
        for name, arm in arms.items():
            samples[name].append(arm())
    for name, values in samples.items():
        row(f"paid round trip, in-process server: {name} (ms)",
            f"{statistics.median(values) * 1e3:.3f}")  # fmt: skip


# --- 3. event-loop lag ----------------------------------------------------------------------------


def bench_lag(tmp: Path, payments: int = 100) -> None:
    server = _server()
    wallet = _wallet(tmp / "lag.sqlite3")

    async def run() -> list[float]:
        transport = AsyncPaymentTransport(server.mock_transport(), wallet=wallet)
        lags: list[float] = []
        done = asyncio.Event()

        async def ticker() -> None:
            while not done.is_set():
                start = time.perf_counter()
                await asyncio.sleep(0.001)
                lags.append(time.perf_counter() - start - 0.001)

        async with httpx.AsyncClient(transport=transport) as client:
            await client.get("https://fake.test/paid")  # warm: imports, connections, caches
            tick = asyncio.create_task(ticker())
            await asyncio.sleep(0.01)
            lags.clear()
            answers = await asyncio.gather(
                *(client.get("https://fake.test/paid") for _ in range(payments))
            )
            done.set()
            await tick
        assert all(a.status_code == 200 for a in answers)
        return lags

    lags = sorted(asyncio.run(run()))
    wallet.close()
    worst = lags[-1] * 1e3
    p99 = lags[int(0.99 * (len(lags) - 1))] * 1e3
    row(f"event-loop lag, {payments} concurrent async payments, file journal: max (ms)",
        f"{worst:.2f}", "", "", verdict(worst <= 1.0))  # fmt: skip
    row("event-loop lag, same run: p99 (ms)", f"{p99:.2f}")


# --- 4. import time -------------------------------------------------------------------------------


def _process_seconds(code: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - start


def bench_import(runs: int) -> None:
    codes = {
        "python": "pass",
        "httpx": "import httpx",
        "httpx+mpp_client": "import httpx, mpp_client",
        "httpx+transport": "import httpx\nfrom mpp_client import PaymentTransport",
    }
    for code in codes.values():
        _process_seconds(code)  # warm the file cache and the bytecode
    times: dict[str, list[float]] = {name: [] for name in codes}
    for _ in range(runs):
        for name, code in codes.items():
            times[name].append(_process_seconds(code))
    med = {name: statistics.median(values) * 1e3 for name, values in times.items()}
    httpx_own = med["httpx"] - med["python"]
    added = med["httpx+mpp_client"] - med["httpx"]
    added_transport = med["httpx+transport"] - med["httpx"]
    row("import httpx: its own time over bare python (ms)", f"{httpx_own:.1f}")
    row("import mpp_client: added to httpx (ms)", f"{added:.1f}", "",
        f"{added / httpx_own:.2f}x httpx", verdict(added <= 0.25 * httpx_own))  # fmt: skip
    ratio = added_transport / httpx_own
    row("from mpp_client import PaymentTransport: added (ms)", f"{added_transport:.1f}", "",
        f"{ratio:.2f}x httpx", verdict(ratio <= 0.25))  # fmt: skip


# --- 5. parsing -----------------------------------------------------------------------------------


def bench_parse(repeat: int) -> None:
    import bench_protocol as bp

    if bp.pympp is None:
        row("parse: pympp not installed", "")
        return
    one = bp.tempo_challenge().to_header()
    four = ", ".join(bp.tempo_challenge(i).to_header() for i in range(4))

    def theirs(value: str) -> Callable[[], object]:
        return lambda: [bp.pympp.Challenge.from_www_authenticate(v) for v in bp.pympp_split(value)]

    for label, value, target in (("1 challenge", one, 0.12), ("4 folded", four, 0.10)):
        ours_t = bp.per_call(lambda v=value: parse_challenges([v]), repeat, 0.1) * 1e6
        theirs_t = bp.per_call(theirs(value), repeat, 0.1) * 1e6
        ratio = ours_t / theirs_t
        row(f"parse {label} (us)", f"{ours_t:.1f}", f"{theirs_t:.1f}", f"{ratio:.3f}x pympp",
            verdict(ratio <= target))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples (a smoke run)")
    args = parser.parse_args()
    quick = args.quick
    with tempfile.TemporaryDirectory() as tmp:
        bench_build(300 if quick else 2000)
        bench_trips(50 if quick else 300, 1 if quick else 3, Path(tmp))
        bench_lag(Path(tmp))
        bench_import(3 if quick else 9)
        bench_parse(3 if quick else 7)
    print(f"machine: {platform.machine()}, {_cpus()} CPUs, Python {platform.python_version()}")
    print(f"{'figure':76}{'mpp_client':>12}{'pympp 0.16':>12}{'ratio':>16}  target")
    for name, ours, theirs, ratio, ok in ROWS:
        print(f"{name:76}{ours:>12}{theirs:>12}{ratio:>16}  {ok}")


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 0


if __name__ == "__main__":
    main()
