"""``copy_journal``: move a journal between an SQLite file and a PostgreSQL database, either way.

Every entry is copied as it is stored (id, order, state, ``held``, proof, receipt, fingerprint,
owner, times), with its payees, the currencies, the payee pins and the sessions' channel
records (highest voucher and its signature, deposit references, bearer secret); the
destination's running totals are rebuilt from what is held (SQLite's triggers do it,
PostgreSQL's are computed here in the same transaction). The destination must hold no
payments yet: a copy never merges two journals. Stop the processes that write the source
first: entries still in flight are copied in flight, and the destination reconciles them like
any other (an owner that never held a lease on the PostgreSQL database counts as ended there).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row

from mpp_client.errors import JournalError
from mpp_client.wallet.channels import ChannelStore
from mpp_client.wallet.journal import SqliteJournal
from mpp_client.wallet.postgres import _bucket_deltas, _write_buckets, is_postgres_url, shown_url
from mpp_client.wallet.postgres_schema import check_schema

__all__ = ["CopyReport", "copy_journal"]

_TABLES = {
    "sqlite": {"payments": "payments", "payees": "payment_payees", "pins": "pins",
               "currencies": "currencies"},
    "postgres": {"payments": "mpp_payments", "payees": "mpp_payment_payees", "pins": "mpp_pins",
                 "currencies": "mpp_currencies"},
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class CopyReport:
    """What was copied: counts of entries, payee rows, pins, currencies and session records."""

    payments: int
    payees: int
    pins: int
    currencies: int
    channels: int = 0


def _read(kind: str, conn: Any) -> dict[str, list[dict[str, Any]]]:
    names = _TABLES[kind]
    order = {"payments": " ORDER BY seq", "currencies": " ORDER BY id"}
    data = {}
    for table, name in names.items():
        rows = conn.execute(f"SELECT * FROM {name}{order.get(table, '')}").fetchall()  # noqa: S608
        data[table] = [dict(row) for row in rows]
    # Session records: an SQLite file has them only once a session used it.
    channels = "channels" if kind == "sqlite" else "mpp_channels"
    data["channels"] = (
        [dict(row) for row in conn.execute(f"SELECT * FROM {channels} ORDER BY created_at")]  # noqa: S608
        if kind == "postgres" or _columns(kind, conn, channels)
        else []
    )
    return data


def _columns(kind: str, conn: Any, table: str) -> set[str]:
    if kind == "sqlite":
        return {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
    rows = conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = "
        "current_schema() AND table_name = %s",
        (table,),
    ).fetchall()
    return {row["column_name"] for row in rows}


def _write(kind: str, conn: Any, data: dict[str, list[dict[str, Any]]]) -> None:
    names = _TABLES[kind]
    mark = "?" if kind == "sqlite" else "%s"
    count = conn.execute(f"SELECT count(*) AS n FROM {names['payments']}").fetchone()  # noqa: S608
    if count[0] if kind == "sqlite" else count["n"]:
        raise JournalError("the destination journal already holds payments: copy into an empty one")
    # Currencies get the destination's ids (by key); payments point at them.
    ids: dict[Any, int] = {}
    for row in data["currencies"]:
        conn.execute(
            f"INSERT INTO {names['currencies']} (key, code, decimals, network, symbol, "  # noqa: S608
            f"usd_pegged) VALUES ({', '.join([mark] * 6)}) ON CONFLICT (key) DO NOTHING",
            (row["key"], row["code"], row["decimals"], row["network"], row["symbol"],
             row["usd_pegged"]),
        )  # fmt: skip
        found = conn.execute(
            f"SELECT id FROM {names['currencies']} WHERE key = {mark}",  # noqa: S608
            (row["key"],),
        ).fetchone()
        ids[row["id"]] = found[0] if kind == "sqlite" else found["id"]
    wanted = _columns(kind, conn, names["payments"])
    for row in data["payments"]:
        values = {k: v for k, v in row.items() if k in wanted}
        values["currency_id"] = ids[row["currency_id"]]
        columns = ", ".join(values)
        conn.execute(
            f"INSERT INTO {names['payments']} ({columns}) "  # noqa: S608
            f"VALUES ({', '.join([mark] * len(values))})",
            tuple(values.values()),
        )
    for row in data["payees"]:
        conn.execute(
            f"INSERT INTO {names['payees']} (payment_id, address, amount) "  # noqa: S608
            f"VALUES ({mark}, {mark}, {mark})",
            (row["payment_id"], row["address"], row["amount"]),
        )
    for row in data["pins"]:
        conn.execute(
            f"INSERT INTO {names['pins']} (origin, method, payees, token, network, pinned_at) "  # noqa: S608
            f"VALUES ({', '.join([mark] * 6)})",
            (row["origin"], row["method"], row["payees"], row["token"], row["network"],
             row["pinned_at"]),
        )  # fmt: skip
    if data["channels"]:
        table = "channels" if kind == "sqlite" else "mpp_channels"
        wanted = _columns(kind, conn, table)
        for row in data["channels"]:
            values = {k: v for k, v in row.items() if k in wanted}
            conn.execute(
                f"INSERT INTO {table} ({', '.join(values)}) "  # noqa: S608
                f"VALUES ({', '.join([mark] * len(values))})",
                tuple(values.values()),
            )
    if kind == "postgres":
        _rebuild_totals(conn, data, ids)
        conn.execute(
            "SELECT setval(pg_get_serial_sequence('mpp_payments', 'seq'), "
            "GREATEST((SELECT max(seq) FROM mpp_payments), 1))"
        )


def _rebuild_totals(conn: Any, data: dict[str, list[dict[str, Any]]], ids: dict[Any, int]) -> None:
    payees: dict[str, list[tuple[str, int]]] = {}
    for row in data["payees"]:
        payees.setdefault(row["payment_id"], []).append((row["address"], row["amount"]))
    totals: dict[tuple[str, int, int, int], int] = {}
    for row in data["payments"]:
        if row["held"] != 1:
            continue
        for scope, currency, span, start, amount in _bucket_deltas(
            row["created_at"], ids[row["currency_id"]], row["exposure"], row["origin"],
            row["method"], payees.get(row["id"], []), 1,
        ):  # fmt: skip
            key = (scope, currency, span, start)
            totals[key] = totals.get(key, 0) + amount
    _write_buckets(conn, sorted((*key, amount) for key, amount in totals.items()))


def copy_journal(source: str, destination: str) -> CopyReport:
    """Copy every entry, payee, pin, currency and session record of the journal ``source`` into
    the empty journal ``destination`` (each an SQLite path or a ``postgresql://`` URL; a PostgreSQL
    destination must have been migrated). One transaction on the destination: all or nothing."""
    if is_postgres_url(source):
        with psycopg.connect(source, row_factory=dict_row) as conn:
            check_schema(conn, shown_url(source), shown_url(source))
            data = _read("postgres", conn)
    else:
        journal = SqliteJournal(source)  # brings an older file up to date
        try:
            data = _read("sqlite", journal._conn())
        finally:
            journal.close()
    if not is_postgres_url(destination):
        for row in data["payments"]:
            row.pop("write_id", None)  # PostgreSQL's lost-acknowledgement token
    if is_postgres_url(destination):
        with psycopg.connect(destination, row_factory=dict_row) as conn:
            check_schema(conn, shown_url(destination), shown_url(destination))
            with conn.transaction():
                conn.execute("LOCK TABLE mpp_payments IN EXCLUSIVE MODE")
                _write("postgres", conn, data)
    else:
        target = SqliteJournal(destination)
        if data["channels"]:
            ChannelStore(destination).close()  # creates the session records' table
        try:
            with target._write() as conn:
                _write("sqlite", conn, data)
        finally:
            target.close()
    return CopyReport(
        len(data["payments"]),
        len(data["payees"]),
        len(data["pins"]),
        len(data["currencies"]),
        len(data["channels"]),
    )
