"""Added cost of the wallet per payment: policy check + reserve + signed + sent + settled.

Runs each payment exactly as the flow drives the guard (``check``, then ``reserve`` run to
completion, then the four state transitions), against an SQLite journal file in WAL mode with
the default policy (per-payment and rolling-day caps, payee pinning) plus a lifetime cap.
Prints the median and p90 in milliseconds; the target is a median <= 1 ms.

By default the payments are as fast as they go (all in the rolling day). ``--per-day N`` runs
the journal on a simulated clock that moves 86400/N seconds per payment, so with more than N
payments the rolling day is full and slides: payments leave the window at its edge as new
ones come in (the steady state of a wallet paying N times a day).

    python benchmarks/bench_wallet.py [--payments 2000] [--per-day N] [--dir /tmp]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from mpp_client.guard import PaymentOptions
from mpp_client.methods.base import Payee, PaymentContext, Quote
from mpp_client.money import Currency, Money
from mpp_client.protocol import Challenge
from mpp_client.trampoline import drive
from mpp_client.wallet import DEFAULT_LIMITS, Limit, SpendPolicy, SqliteJournal, Wallet, usd

STABLE = Currency("0x20c0", 6, network="eip155:4217", symbol="pathUSD", usd_pegged=True)


def one_payment(wallet: Wallet, n: int) -> float:
    challenge = Challenge(f"bench-{n}", "bench", "tempo", "charge", "e30", {})
    quote = Quote(challenge, "tempo", "charge", Money(10, STABLE), (Payee("0xm", 10),), None,
                  network="eip155:4217")  # fmt: skip
    ctx = PaymentContext("https://bench.example", "https://bench.example/x", "GET",
                         datetime.now(UTC), f"call-{n}")  # fmt: skip
    options = PaymentOptions()
    start = time.perf_counter()
    wallet.check(quote, ctx, options)
    # The hold is a JournalWrite effect (run in a worker thread by async drivers): run inline.
    reservation = drive(wallet.reserve(quote, ctx, options), lambda effect: effect.function())
    reservation.signed("0xtx")
    reservation.sent("fingerprint", "0xtx")
    reservation.settled({"status": "success"}, "0xtx")
    return time.perf_counter() - start


class SimulatedDay:
    """A journal clock (Unix seconds) that moves ``86400 / per_day`` seconds per payment."""

    def __init__(self, per_day: int) -> None:
        self.now = 1_800_000_000.123
        self.step = 86_400 / per_day

    def tick(self) -> None:
        self.now += self.step

    def __call__(self) -> float:
        return self.now


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--payments", type=int, default=2000)
    parser.add_argument("--per-day", type=int, default=None,
                        help="simulate N payments a day (default: real time)")  # fmt: skip
    parser.add_argument("--dir", default=None, help="directory for the journal (default: tmp)")
    args = parser.parse_args()
    policy = SpendPolicy(limits=(*DEFAULT_LIMITS, Limit(usd("1000000"), "lifetime")))
    clock = SimulatedDay(args.per_day) if args.per_day else time.time
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        journal = SqliteJournal(Path(tmp) / "bench.sqlite3", clock=clock)
        wallet = Wallet(policy=policy, journal=journal)
        for n in range(50):  # warm up connections and caches
            one_payment(wallet, -n - 1)
        samples = []
        for n in range(args.payments):
            if isinstance(clock, SimulatedDay):
                clock.tick()
            samples.append(one_payment(wallet, n))
        wallet.close()
    ms = sorted(s * 1000 for s in samples)
    median = statistics.median(ms)
    p90 = ms[int(len(ms) * 0.9)]
    pace = f", {args.per_day} a day" if args.per_day else ""
    print(f"wallet cost per payment over {len(ms)} payments{pace} "
          f"(journal rows grow to {len(ms) + 50}):")  # fmt: skip
    print(f"  median {median:.3f} ms   p90 {p90:.3f} ms   max {ms[-1]:.3f} ms")
    print(f"  target median <= 1 ms: {'OK' if median <= 1.0 else 'MISSED'}")


if __name__ == "__main__":
    main()
