"""A fleet's wallet cost: policy + journal per payment on a loopback PostgreSQL, and throughput.

Each process runs payments exactly as ``bench_wallet.py`` does (``check``, ``reserve``, then
``signed``, ``sent``, ``settled``; default limits plus a lifetime cap, payee pinning on) against
one shared journal. Prints:

- the per-payment median and p90 with 8 concurrent processes on one PostgreSQL journal
  (target: median <= 2 ms);
- payments per second for 1, 2, 4 and 8 processes, PostgreSQL beside one SQLite file.

The PostgreSQL server is a throwaway cluster (tests/fleet/pg_cluster.py: initdb/pg_ctl in a
temporary directory, fsync on, scripts/install-postgres.sh installs the binaries).

    python benchmarks/bench_fleet.py [--payments 300] [--processes 1,2,4,8]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from bench_wallet import one_payment  # noqa: E402

from mpp_client.wallet import DEFAULT_LIMITS, Limit, SpendPolicy, Wallet, usd  # noqa: E402

SPAWN = multiprocessing.get_context("spawn")


def worker(target: str, worker_no: int, payments: int, ready, start, queue) -> None:
    from mpp_client.wallet.journal import open_journal

    policy = SpendPolicy(limits=(*DEFAULT_LIMITS, Limit(usd("1000000"), "lifetime")))
    wallet = Wallet(policy=policy, journal=open_journal(target))
    for n in range(20):  # warm up connections, prepared statements, caches
        one_payment(wallet, -(worker_no * 1000 + n + 1))
    ready.put(worker_no)
    start.wait()
    began = time.perf_counter()
    samples = [one_payment(wallet, worker_no * 1_000_000 + n) for n in range(payments)]
    queue.put((samples, began, time.perf_counter()))
    wallet.close()


def run(target: str, processes: int, payments: int) -> tuple[list[float], float]:
    """Per-payment seconds of every process, and payments per second over the whole run."""
    ready, queue, start = SPAWN.Queue(), SPAWN.Queue(), SPAWN.Event()
    children = [
        SPAWN.Process(target=worker, args=(target, n, payments, ready, start, queue))
        for n in range(processes)
    ]
    for child in children:
        child.start()
    for _ in children:
        ready.get(timeout=300)
    start.set()
    results = [queue.get(timeout=600) for _ in children]
    for child in children:
        child.join(timeout=60)
    samples = [s for result, _, _ in results for s in result]
    wall = max(end for _, _, end in results) - min(began for _, began, _ in results)
    return samples, len(samples) / wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--payments", type=int, default=300, help="per process")
    parser.add_argument("--processes", default="1,2,4,8")
    args = parser.parse_args()
    counts = [int(n) for n in args.processes.split(",")]

    import psycopg

    from mpp_client.wallet.postgres_schema import migrate
    from tests.fleet.pg_cluster import PgCluster

    cluster = PgCluster(fsync=True)
    cluster.start()
    load_before = os.getloadavg()[0]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            rows = []
            eight: list[float] = []
            for processes in counts:
                url = cluster.create_schema(f"bench_{processes}")
                with psycopg.connect(url, autocommit=True) as conn:
                    migrate(conn, url, consent=False)
                pg_samples, pg_rate = run(url, processes, args.payments)
                sqlite = str(Path(tmp) / f"bench-{processes}.sqlite3")
                _, sqlite_rate = run(sqlite, processes, args.payments)
                rows.append((processes, pg_rate, sqlite_rate))
                if processes == max(counts):
                    eight = pg_samples
        ms = sorted(s * 1000 for s in eight)
        median = statistics.median(ms)
        # Other work on the machine moves these figures more than anything measured here.
        print(f"PostgreSQL {cluster.bin.parent.name} on loopback (fsync on), "
              f"{args.payments} payments per process, {os.cpu_count()} CPUs, load average "
              f"{load_before:.1f} before / {os.getloadavg()[0]:.1f} after:")  # fmt: skip
        print(f"  per payment with {max(counts)} processes: median {median:.3f} ms   "
              f"p90 {ms[int(len(ms) * 0.9)]:.3f} ms   max {ms[-1]:.3f} ms")  # fmt: skip
        print(f"  target median <= 2 ms: {'OK' if median <= 2.0 else 'MISSED'}")
        print("  throughput (payments/s)   PostgreSQL     SQLite")
        for processes, pg_rate, sqlite_rate in rows:
            print(f"    {processes} process(es)        {pg_rate:10.0f} {sqlite_rate:10.0f}")
    finally:
        cluster.destroy()


if __name__ == "__main__":
    main()
