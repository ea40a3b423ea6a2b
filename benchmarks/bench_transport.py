"""Added cost of the payment transport on requests that need no payment, side by side with
pympp 0.16's transport, in one run.

    python benchmarks/bench_transport.py [--rounds 7] [--n 20000]

Each arm calls the transport's handle method directly on a fresh ``httpx.Request`` whose inner
transport is an ``httpx.MockTransport`` answering 200, so only the wrapper's own work is timed
(the client's URL merging, cookies and so on are the same for everyone and left out). The
"bare" arm calls the MockTransport alone; "added" is wrapper minus bare. Medians over rounds.
pympp's transport is async only, so it is compared with our async twin; our sync transport is
reported too. Target: added cost <= 2 µs per request.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Callable

import httpx

from mpp_client import AsyncPaymentTransport, PaymentTransport
from mpp_client.guard import OpenGuard
from mpp_client.testing import TestMethod

URL = "https://api.example.com/v1/free?q=1"


def _ok(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, content=b"{}")


_CLIENT = httpx.Client()


def _fresh(n: int) -> list[httpx.Request]:
    # Built like a client builds them (default headers, the timeout extension).
    return [_CLIENT.build_request("GET", URL) for _ in range(n)]


def _sync_round(handle: Callable[[httpx.Request], httpx.Response], n: int) -> float:
    requests = _fresh(n)
    start = time.perf_counter()
    for request in requests:
        handle(request)
    return (time.perf_counter() - start) / n


def _async_round(handle, n: int) -> float:
    requests = _fresh(n)

    async def run() -> float:
        start = time.perf_counter()
        for request in requests:
            await handle(request)
        return (time.perf_counter() - start) / n

    return asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--n", type=int, default=20000)
    args = parser.parse_args()

    inner = httpx.MockTransport(_ok)
    ours_sync = PaymentTransport(inner, methods=[TestMethod()], guard=OpenGuard())
    ours_async = AsyncPaymentTransport(inner, methods=[TestMethod()], guard=OpenGuard())
    arms: dict[str, Callable[[], float]] = {
        "bare MockTransport (sync)": lambda: _sync_round(inner.handle_request, args.n),
        "mpp_client PaymentTransport": lambda: _sync_round(ours_sync.handle_request, args.n),
        "bare MockTransport (async)": lambda: _async_round(inner.handle_async_request, args.n),
        "mpp_client AsyncPaymentTransport": lambda: _async_round(
            ours_async.handle_async_request, args.n
        ),
    }
    try:
        from mpp.client import PaymentTransport as PymppTransport

        pympp = PymppTransport(methods=[], inner=inner)
        arms["pympp 0.16 PaymentTransport (async)"] = lambda: _async_round(
            pympp.handle_async_request, args.n
        )
    except ImportError:  # pragma: no cover - the peers extra is not installed
        print("pympp not installed: pip install -e '.[peers]' for the side-by-side column")

    samples: dict[str, list[float]] = {name: [] for name in arms}
    for _ in range(args.rounds):  # interleaved rounds: machine noise hits every arm alike
        for name, arm in arms.items():
            samples[name].append(arm())
    median = {name: statistics.median(values) * 1e6 for name, values in samples.items()}

    baseline = {
        "mpp_client PaymentTransport": "bare MockTransport (sync)",
        "mpp_client AsyncPaymentTransport": "bare MockTransport (async)",
        "pympp 0.16 PaymentTransport (async)": "bare MockTransport (async)",
    }
    print(f"{'arm':40} {'µs/request':>11} {'added µs':>9}")
    for name, value in median.items():
        added = f"{value - median[baseline[name]]:9.2f}" if name in baseline else ""
        print(f"{name:40} {value:11.2f} {added:>9}")
    ours = median["mpp_client AsyncPaymentTransport"] - median["bare MockTransport (async)"]
    theirs_key = "pympp 0.16 PaymentTransport (async)"
    if theirs_key in median:
        theirs = median[theirs_key] - median["bare MockTransport (async)"]
        print(f"\nadded cost, async: mpp_client {ours:.2f} µs vs pympp {theirs:.2f} µs")
    sync_added = median["mpp_client PaymentTransport"] - median["bare MockTransport (sync)"]
    print(f"added cost, sync: mpp_client {sync_added:.2f} µs (target <= 2 µs)")


if __name__ == "__main__":
    main()
