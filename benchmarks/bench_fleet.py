"""A fleet's wallet cost: policy + journal per payment on a loopback PostgreSQL, and throughput.

Each process runs payments exactly as ``bench_wallet.py`` does (``check``, ``reserve``, then
``signed``, ``sent``, ``settled``; default limits plus a lifetime cap, payee pinning on) against
one shared journal; nothing goes to a merchant. For 1, 2, 4 and 8 processes, PostgreSQL and
then one SQLite file, it prints in one run:

- the per-payment wall time (median and p90 over every payment of every process; the target
  is a PostgreSQL median <= 2 ms with 8 processes) and payments per second;
- the CPU time one payment costs: the paying processes' own (``time.process_time``) and, for
  PostgreSQL, the server's (its processes' user + system time from /proc, Linux only).

The CPU figures bound the wall time: with ``n`` processes busy on ``k`` CPUs (``n > k``) each
payment waits for the others' share, so no median can be far below ``n x CPU / k``; the line
"CPU floor" prints that bound for the largest process count.

The PostgreSQL server is a throwaway cluster (tests/fleet/pg_cluster.py: initdb/pg_ctl in a
temporary directory, fsync on, scripts/install-postgres.sh installs the binaries); its tables
are analyzed after the warm-up, as autovacuum would have done in a journal in use.

    python benchmarks/bench_fleet.py [--payments 300] [--processes 1,2,4,8]
"""

from __future__ import annotations

import argparse
import glob
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from bench_wallet import one_payment  # noqa: E402

from mpp_client.wallet import DEFAULT_LIMITS, Limit, SpendPolicy, Wallet, usd  # noqa: E402

SPAWN = multiprocessing.get_context("spawn")


def worker(target: str, worker_no: int, payments: int, ready, start, stop, queue) -> None:
    from mpp_client.wallet.journal import open_journal

    policy = SpendPolicy(limits=(*DEFAULT_LIMITS, Limit(usd("1000000"), "lifetime")))
    wallet = Wallet(policy=policy, journal=open_journal(target))
    for n in range(20):  # warm up connections, prepared statements, caches
        one_payment(wallet, -(worker_no * 1000 + n + 1))
    ready.put(worker_no)
    start.wait()
    cpu = time.process_time()
    began = time.perf_counter()
    samples = [one_payment(wallet, worker_no * 1_000_000 + n) for n in range(payments)]
    queue.put((samples, began, time.perf_counter(), time.process_time() - cpu))
    stop.wait()  # the server's CPU is read while this process's connections still exist
    wallet.close()


def machine_busy() -> float | None:
    """CPU seconds the whole machine has been busy (every process; Linux /proc/stat)."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle, iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def server_cpu(data_dir: Path) -> float | None:
    """User + system seconds of a PostgreSQL cluster's processes (Linux /proc), or ``None``."""
    try:
        postmaster = int((data_dir / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    ticks = 0
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(stat) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile
        if int(stat.split("/")[2]) == postmaster or int(fields[1]) == postmaster:
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


@dataclass
class Run:
    samples: list[float]  #: seconds per payment, every payment of every process
    rate: float  #: payments per second over the whole run
    client_cpu: float  #: CPU seconds of the paying processes per payment
    server_cpu: float | None  #: CPU seconds of the database server per payment
    others: float | None  #: CPUs busy with work other than this run's, on average

    def ms(self, quantile: float) -> float:
        ordered = sorted(self.samples)
        return 1000 * ordered[min(len(ordered) - 1, int(len(ordered) * quantile))]

    @property
    def median_ms(self) -> float:
        return 1000 * statistics.median(self.samples)

    @property
    def cpu_ms(self) -> float:
        return 1000 * (self.client_cpu + (self.server_cpu or 0.0))


def analyze(url: str) -> None:
    """Statistics for the planner, as autovacuum gathers them within a minute of a table's
    first rows (the benchmark is over sooner): a table never analyzed keeps the plans made
    while it was empty, which scan every payment for the breaker's and a request's reads."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ANALYZE")


def run(target: str, processes: int, payments: int, data_dir: Path | None) -> Run:
    ready, queue, start, stop = SPAWN.Queue(), SPAWN.Queue(), SPAWN.Event(), SPAWN.Event()
    children = [
        SPAWN.Process(target=worker, args=(target, n, payments, ready, start, stop, queue))
        for n in range(processes)
    ]
    for child in children:
        child.start()
    for _ in children:
        ready.get(timeout=300)
    if data_dir is not None:
        analyze(target)  # after the warm-up's payments, as in a journal that has been in use
    server_before = None if data_dir is None else server_cpu(data_dir)
    busy_before, began = machine_busy(), time.perf_counter()
    start.set()
    results = [queue.get(timeout=600) for _ in children]
    server_after = None if data_dir is None else server_cpu(data_dir)
    busy_after, ended = machine_busy(), time.perf_counter()
    stop.set()
    for child in children:
        child.join(timeout=60)
    samples = [s for result, _, _, _ in results for s in result]
    wall = max(r[2] for r in results) - min(r[1] for r in results)
    server = None
    if server_before is not None and server_after is not None:
        server = (server_after - server_before) / len(samples)
    client = sum(r[3] for r in results) / len(samples)
    others = None
    if busy_before is not None and busy_after is not None:
        ours = len(samples) * (client + (server or 0.0))
        others = max(0.0, (busy_after - busy_before - ours) / (ended - began))
    return Run(samples, len(samples) / wall, client, server, others)


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
    rows: list[tuple[int, Run, Run]] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for processes in counts:
                url = cluster.create_schema(f"bench_{processes}")
                with psycopg.connect(url, autocommit=True) as conn:
                    migrate(conn, url, consent=False)
                pg = run(url, processes, args.payments, cluster.data)
                sqlite = str(Path(tmp) / f"bench-{processes}.sqlite3")
                rows.append((processes, pg, run(sqlite, processes, args.payments, None)))
    finally:
        cluster.destroy()
    cpus = os.cpu_count() or 1
    # Other work on the machine moves these figures more than anything measured here.
    print(f"PostgreSQL {cluster.bin.parent.name} on loopback (fsync on) beside SQLite (WAL), "
          f"{args.payments} payments per process, {cpus} CPUs, load average "
          f"{load_before:.1f} before / {os.getloadavg()[0]:.1f} after.")  # fmt: skip
    print("Per payment (policy + journal): median / p90 wall ms, payments/s, CPU ms "
          "(client + server); 'others': CPUs other work kept busy meanwhile:")  # fmt: skip
    print("  processes    PostgreSQL                                      "
          "SQLite")  # fmt: skip
    for processes, pg, lite in rows:
        server = "   ?" if pg.server_cpu is None else f"{pg.server_cpu * 1000:4.2f}"
        print(f"  {processes:9d}    {pg.median_ms:6.2f} / {pg.ms(0.9):6.2f}  {pg.rate:6.0f}/s  "
              f"{pg.client_cpu * 1000:4.2f} + {server}  others {_cpus(pg.others)}    "
              f"{lite.median_ms:6.2f} / {lite.ms(0.9):6.2f}  {lite.rate:6.0f}/s  "
              f"{lite.client_cpu * 1000:4.2f}  others {_cpus(lite.others)}")  # fmt: skip
    processes, pg, _ = rows[-1]
    print(f"PostgreSQL median with {processes} processes: {pg.median_ms:.2f} ms "
          f"(target <= 2 ms: {'OK' if pg.median_ms <= 2.0 else 'MISSED'}); CPU floor "
          f"{processes} x {pg.cpu_ms:.2f} ms / {cpus} CPUs = "
          f"{max(processes, cpus) * pg.cpu_ms / cpus:.2f} ms.")  # fmt: skip


def _cpus(value: float | None) -> str:
    return "  ?" if value is None else f"{value:3.1f}"


if __name__ == "__main__":
    main()
