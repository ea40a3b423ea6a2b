"""The PostgreSQL journal: one budget and one journal for a fleet of processes on many hosts.

``PostgresJournal("postgresql://user@db.internal/payments")`` keeps every promise of the SQLite
journal (``mpp_client.wallet.journal``) across machines:

- **Check and hold in one transaction.** ``atomic()`` opens a transaction and takes one
  transaction-level advisory lock of the journal before the policy reads anything, so the
  re-check of every cap and the insert of the ``reserved`` entry are serialised across every
  process of every host, exactly like SQLite's ``BEGIN IMMEDIATE``; each later statement of
  the transaction sees everything committed before the lock was granted (READ COMMITTED takes
  a snapshot per statement). Every change of the running totals takes the same lock, so two
  writers never wait on each other's rows in opposite orders.
- **Few round trips inside the lock.** BEGIN, the lock, the lease check and the reads the
  policy is expected to make (those of this thread's last ``check`` and of the last hold: caps'
  totals, the pin, the request's count; windows relative to the hold's instant) go in one
  pipelined round trip; the statements after the lock see exactly what a read made later in
  the hold would, so the policy is answered from them (a read not foreseen, or one after the
  transaction wrote, goes to the server). The hold's writes go with its COMMIT: two round
  trips hold the lock. A ``check`` sends the reads of the previous check in one round trip too,
  with the circuit breaker's read (``unresolved``, which the wallet asks right after) and the
  ``settled`` marks waiting to be written (``advance_later``). Foreseen reads travel as one
  statement (``_combined``: a JSON array of each read's rows): round trips and statements,
  not rows, are what a payment's time goes to, above all when processes outnumber CPUs.
- **Totals cost the same at a million rows.** Held exposure is kept in running totals (rows of
  1 s, 1 min, 1 h and lifetime per currency and scope, table ``mpp_held_buckets``) written in
  the transaction that holds or releases; a rolling window reads at most 59 + 59 + 24 of them
  plus the payments of its first second.
- **Every state is committed before the step it names.** ``advance`` returns after the
  server's commit (``advance_later``, for ``settled`` only, does not: its mark goes with the
  next read). ``sent`` and ``broadcast`` (the last writes before value can leave) and
  lease claims are committed with ``synchronous_commit`` on: flushed to the server's WAL,
  and with them every earlier write. The other steps commit without waiting for that flush
  (``synchronous_commit`` off, like the SQLite journal's ``synchronous=NORMAL``): a server
  crash may forget a reservation or a ``settled`` mark of the last moments, never a payment
  that could have left; a forgotten hold fails its next step instead. A step before value
  can move (``signed``, ``broadcast``, ``sent``) that cannot be recorded raises
  ``JournalError`` instead of returning ``False``: the flow then stops before that step.
- **The lifecycle's proof rule** is decided under the entry's row lock: releasing after
  ``broadcast``/``sent``/``unknown`` without a ``Proof`` records ``unknown`` instead.

Liveness across hosts: each journal object holds a lease (``mpp_leases``: host, pid, process
start, heartbeat, expiry) that a background thread renews every ``lease_seconds / 3``; a hold
renews it when the thread did not in the last third of ``lease_seconds`` (and otherwise checks,
under the lock, that it was not claimed). ``recover()`` (run by ``Wallet()`` and by the
heartbeat thread) claims, in one transaction, the leases that expired without being claimed,
and moves their in-flight entries like the SQLite journal does for a dead process (``reserved``
-> ``failed``, released; later states -> ``unknown``, held): whichever process claims first
does it, exactly once. A process that finds its own lease claimed (it was paused past its
expiry) takes a new one; the entries moved meanwhile refuse their next step (see above), so
nothing is signed or sent for an entry another process already released.

Faults. A connection that drops or a server that restarts before a hold commits refuses the
payment (``JournalUnavailable``; nothing was signed). A lost commit acknowledgement is resolved
by looking the written row up after reconnecting (by the entry id a hold inserted, by the write
token an ``advance`` stored), behind the same lock the write held, so a commit still being
processed is waited for, never guessed. ``advance`` reconnects and retries for up to
``reconnect_timeout`` seconds; a hold whose commit cannot be confirmed at all is failed (it
never signed anything) once the database answers again.

Sessions' channel records and vouchers (``PostgresChannelStore``, table ``mpp_channels``)
live in the same database: ``ChannelStore.for_journal`` gives a session method on a
PostgreSQL wallet this store, which writes each channel under its row lock.

psycopg 3 and psycopg-pool come with the ``postgres`` extra; this module is imported only when
a ``postgresql://`` or ``postgres://`` journal is opened.
"""

from __future__ import annotations

from mpp_client.extras import require_extra

require_extra("postgres", "PostgresJournal", modules=("psycopg", "psycopg_pool"))

import atexit  # noqa: E402  (after the extra check: a missing extra is named, not a traceback)
import contextlib  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
import weakref  # noqa: E402
from collections.abc import Callable, Iterator, Sequence  # noqa: E402
from datetime import datetime  # noqa: E402
from typing import Any, TypeVar, cast  # noqa: E402

import psycopg  # noqa: E402
import psycopg_pool  # noqa: E402
from psycopg.conninfo import conninfo_to_dict  # noqa: E402
from psycopg.rows import DictRow, dict_row  # noqa: E402

from mpp_client.clock import SYSTEM_CLOCK, Clock  # noqa: E402
from mpp_client.errors import AlreadyPaid, JournalError, JournalUnavailable  # noqa: E402
from mpp_client.lifecycle import (  # noqa: E402
    IN_FLIGHT_STATES,
    PaymentState,
    Proof,
    allowed_sources,
    holds,
    on_restart,
    release_needs_proof,
)
from mpp_client.money import Currency  # noqa: E402
from mpp_client.secret import Secret  # noqa: E402
from mpp_client.wallet.channels import (  # noqa: E402
    _COLUMNS as _CHANNEL_COLUMNS,
)
from mpp_client.wallet.channels import (  # noqa: E402
    _STATES as _CHANNEL_STATES,
)
from mpp_client.wallet.channels import (  # noqa: E402
    ChannelRecord,
    ChannelState,
    ChannelStore,
    NewChannel,
    accepted_move,
    check_voucher,
)
from mpp_client.wallet.channels import (  # noqa: E402
    _record as _channel_record,
)
from mpp_client.wallet.journal import (  # noqa: E402
    _PRUNE_AGE,
    _PRUNE_EVERY,
    _PRUNED_KEY,
    _SPANS,
    DamagedEntry,
    JournalTransaction,
    NewPayment,
    PaymentRecord,
    _bucket_scope,
    _Change,
    _decode,
    _owner,
    _payments_where,
    _stored_currency,
    _stored_pin,
    _watermark,
)
from mpp_client.wallet.policy import Ledger, Pin  # noqa: E402
from mpp_client.wallet.postgres_schema import (  # noqa: E402
    IN_FLIGHT_SQL,
    RESOLVED_SQL,
    check_schema,
)

__all__ = ["PostgresChannelStore", "PostgresJournal", "is_postgres_url", "shown_url"]

log = logging.getLogger("mpp_client.wallet")

Connection = psycopg.Connection[DictRow]
_IDLE = psycopg.pq.TransactionStatus.IDLE
T = TypeVar("T")

#: ``pg_advisory_xact_lock`` key of the journal's writers (a constant: "mpp-jrnl").
WRITE_LOCK = 0x6D70_702D_6A72_6E6C
_IN_FLIGHT = sorted(IN_FLIGHT_STATES)
#: Steps written before value can move: one that cannot be recorded must stop the flow.
_BEFORE_VALUE_MOVES = frozenset({"signed", "broadcast", "sent"})
_MOVED = "('broadcast','sent','settled','unknown')"
#: Steps committed with ``synchronous_commit`` on: the last writes before value can leave.
_DURABLE = frozenset({"sent", "broadcast"})


def is_postgres_url(target: object) -> bool:
    """Whether a journal target names a PostgreSQL database (``postgresql://``, ``postgres://``)."""
    return isinstance(target, str) and target.lower().startswith(("postgresql://", "postgres://"))


def shown_url(url: str) -> str:
    """``url`` without its password or options, for messages (``postgresql://user@host:port/db``)."""
    try:
        parts = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "postgresql://(an unreadable URL)"
    user = f"{parts['user']}@" if parts.get("user") else ""
    port = f":{parts['port']}" if parts.get("port") else ""
    return (
        f"postgresql://{user}{parts.get('host') or 'localhost'}{port}/{parts.get('dbname') or ''}"
    )


def _problem(exc: BaseException) -> str:
    # psycopg's messages name host and port, never the password; keep the first line.
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


_journals: weakref.WeakSet[PostgresJournal] = weakref.WeakSet()


def _after_fork() -> None:
    # Connections and the heartbeat thread must not cross a fork: the child opens its own (and
    # takes its own lease); closing the parent's sockets from the child would end them.
    for journal in list(_journals):
        journal._reset_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def _write_all_later() -> None:
    # At interpreter exit: the ``settled`` marks still waiting for a round trip to carry them.
    for journal in list(_journals):
        if journal._later and not journal._closed and os.getpid() == journal._pid:
            with contextlib.suppress(Exception):
                journal._retrying(lambda conn: None, "record settled payments")


atexit.register(_write_all_later)


def _bucket_deltas(
    created_at: float,
    currency_id: int,
    exposure: int,
    origin: str,
    method: str,
    payees: Sequence[tuple[str, int]],
    sign: int,
) -> list[tuple[str, int, int, int, int]]:
    """The running-total rows one held payment adds to (``sign`` 1) or takes from (-1), sorted
    so every writer updates them in one order. Scopes as in the SQLite journal."""
    second = math.floor(created_at)
    amounts: dict[str, int] = {"": exposure, "o:" + origin: exposure, "m:" + method: exposure}
    for address, amount in payees:
        amounts["p:" + address] = amounts.get("p:" + address, 0) + amount
    rows = []
    for scope, amount in amounts.items():
        rows.append((scope, currency_id, 0, 0, sign * amount))
        for span in _SPANS:
            rows.append((scope, currency_id, span, second - second % span, sign * amount))
    return sorted(rows)


_UPSERT_BUCKETS = (
    "INSERT INTO mpp_held_buckets (scope, currency_id, span, start, total) "
    "SELECT * FROM unnest(%s::text[], %s::integer[], %s::integer[], %s::bigint[], "
    "%s::numeric[]) ON CONFLICT (scope, currency_id, span, start) "
    "DO UPDATE SET total = mpp_held_buckets.total + EXCLUDED.total"
)


def _write_buckets(conn: Connection, rows: list[tuple[str, int, int, int, int]]) -> None:
    if rows:
        columns = [list(column) for column in zip(*rows, strict=True)]
        conn.execute(_UPSERT_BUCKETS, columns)


#: The hold's insert by (columns, payees, distinct payees): the same few texts every payment.
_INSERTS: dict[tuple[Any, ...], str] = {}


def _insert_sql(columns: tuple[str, ...], payees: int, shares: int) -> str:
    """The hold's one statement: the entry (``columns`` named as its parameters), its payees
    (``y{n}_a``, ``y{n}_m``) and the rows of running totals it adds to (``_bucket_deltas``
    with sign 1, expanded by the server: the scopes of every payment, then ``b{n}_s`` /
    ``b{n}_t`` for the payees' shares, times the spans, starting at ``w{span}``). Scalars
    only: list parameters cost a Python array dump per element, the largest client cost of
    a hold."""
    key = (columns, payees, shares)
    text = _INSERTS.get(key)
    if text is not None:
        return text
    names = ", ".join(columns)
    placeholders = ", ".join(f"%({name})s" for name in columns)
    text = (
        f"WITH p AS (INSERT INTO mpp_payments (state, held, {names}) "  # noqa: S608
        f"VALUES ('reserved', 1, {placeholders})) "
    )
    if payees:
        rows = ", ".join(f"(%(id)s, %(y{n}_a)s, %(y{n}_m)s)" for n in range(payees))
        text += (
            ", y AS (INSERT INTO mpp_payment_payees (payment_id, address, amount) "  # noqa: S608
            f"VALUES {rows}) "
        )
    scopes = [
        "(''::text, %(exposure)s::numeric)",
        "('o:' || %(origin)s, %(exposure)s)",
        "('m:' || %(method)s, %(exposure)s)",
        *(f"(%(b{n}_s)s, %(b{n}_t)s)" for n in range(shares)),
    ]
    spans = ", ".join(["(0, 0::bigint)", *(f"({span}, %(w{span})s)" for span in _SPANS)])
    text += (
        "INSERT INTO mpp_held_buckets (scope, currency_id, span, start, total) "  # noqa: S608
        "SELECT s.scope, %(currency_id)s, w.span, w.start, s.total "
        f"FROM (VALUES {', '.join(scopes)}) AS s(scope, total) "
        f"CROSS JOIN (VALUES {spans}) AS w(span, start) ORDER BY 1, 3 "
        "ON CONFLICT (scope, currency_id, span, start) "
        "DO UPDATE SET total = mpp_held_buckets.total + EXCLUDED.total"
    )
    if len(_INSERTS) < 64:
        _INSERTS[key] = text
    return text


_PIN_SQL = "SELECT payees, token, network FROM mpp_pins WHERE origin = %s AND method = %s"
# The text of the partial index's predicate, so the planner sees the index answers it.
_UNRESOLVED_SQL = f"SELECT id FROM mpp_payments WHERE state NOT IN {RESOLVED_SQL} ORDER BY seq"  # noqa: S608
_UNRESOLVED_KEY = ("unresolved",)
_LEASE_KEY = ("lease",)
#: Makes the statement's own transaction commit with the WAL flush (``_update_sql``).
_DURABLE_CTE = "WITH durable AS MATERIALIZED (SELECT set_config('synchronous_commit', 'on', true)) "
#: Seconds the breaker's answer read with a check stands for ``unresolved()`` in its thread.
_UNRESOLVED_FRESH = 0.5
#: Seconds a ``settled`` mark waits for this process's next read to carry it (``advance_later``).
_LATER_DELAY = 0.05
_COUNT_SQL = "SELECT count(*) AS n FROM mpp_payments WHERE call_id = %s AND held = 1"


def _read_templates(
    reads: list[tuple[Any, ...]], now: float, *, this_call: bool
) -> list[tuple[Any, ...]]:
    """Reads as the next hold would make them: windows as seconds before the journal clock's
    now (what the policy computes: ``now - seconds``). Reads of one request (a call id) are
    kept only from that request's own ``check`` (``this_call``), which the hold follows."""
    templates: list[tuple[Any, ...]] = []
    for read in reads:
        if read[0] == "totals":
            _, since, origin, method, payee, call_id, summed = read
            if call_id is not None and not this_call:
                continue
            ago = None if since is None else round(now - since, 6)
            templates.append(("totals", ago, origin, method, payee, call_id, summed))
        elif read[0] == "pin" or this_call:
            templates.append(read)
    return list(dict.fromkeys(templates))


def _foreseen_reads(
    templates: list[tuple[Any, ...]], now: float
) -> list[tuple[tuple[Any, ...], str, Any]]:
    """The reads (key, statement, arguments) the templates predict for a hold at ``now``."""
    reads: list[tuple[tuple[Any, ...], str, Any]] = []
    for template in templates:
        if template[0] == "totals":
            _, ago, origin, method, payee, call_id, summed = template
            since = None if ago is None else now - ago
            sql, args = _PgLedger.totals_query(since, origin, method, payee, call_id, summed=summed)
            reads.append((("totals", since, origin, method, payee, call_id, summed), sql, args))
        elif template[0] == "count":
            reads.append((template, _COUNT_SQL, (template[1],)))
        else:
            _, origin, method = template
            reads.append((template, _PIN_SQL, (origin, method)))
    return reads


_PLACEHOLDER = re.compile(r"%\((\w+)\)s|%s")
#: Combined statements by their parts' statements and argument names (the same every payment).
_COMBINED: dict[Any, str] = {}


def _renamed(prefix: str, sql: str, args: Any, params: dict[str, Any]) -> str:
    """``sql`` with its placeholders named ``{prefix}_{name}`` (or ``_{position}``), and their
    values added to ``params``."""
    if isinstance(args, dict):
        params.update({f"{prefix}_{name}": value for name, value in args.items()})
    else:
        params.update({f"{prefix}_{i}": value for i, value in enumerate(args)})
    positional = iter(range(1_000_000))

    def rename(match: re.Match[str]) -> str:
        name = match.group(1) if match.group(1) else str(next(positional))
        return f"%({prefix}_{name})s"

    return _PLACEHOLDER.sub(rename, sql)


def _combined(
    reads: Sequence[tuple[tuple[Any, ...], str, Any]],
    writes: Sequence[tuple[str, Any]] = (),
) -> tuple[str, dict[str, Any]]:
    """One statement answering every read: a JSON array with each read's rows (objects named
    by column, in the read's order), after ``writes`` (``UPDATE`` statements run as
    data-modifying CTEs of it: they commit with it; the reads do not see them). In this
    environment each statement and above all each round trip costs far more than the rows
    (a client and a server wake-up each), so five reads and a write cost about one this
    way. Placeholders are renamed per part (``r0_since``...): parts share names."""
    shape = tuple(
        (sql, tuple(args) if isinstance(args, dict) else len(args))
        for sql, args in [*[(sql, args) for _, sql, args in reads], *writes]
    )
    params: dict[str, Any] = {}
    text = _COMBINED.get(shape)
    if text is not None:  # the parameters only (renaming the text costs a regex per part)
        for prefix, args in [
            *((f"r{n}", args) for n, (_, _, args) in enumerate(reads)),
            *((f"w{n}", args) for n, (_, args) in enumerate(writes)),
        ]:
            if isinstance(args, dict):
                params.update({f"{prefix}_{name}": value for name, value in args.items()})
            else:
                params.update({f"{prefix}_{i}": value for i, value in enumerate(args)})
        return text, params
    texts = [_renamed(f"r{n}", sql, args, params) for n, (_, sql, args) in enumerate(reads)]
    texts += [_renamed(f"w{n}", sql, args, params) for n, (sql, args) in enumerate(writes)]
    ctes = [f"w{n} AS ({t})" for n, t in enumerate(texts[len(reads) :])]
    parts = [
        "(SELECT COALESCE(json_agg(row_to_json(q)), '[]'::json) "  # noqa: S608
        f"FROM ({t}) q)"  # the journal's own statements
        for t in texts[: len(reads)]
    ]
    text = (f"WITH {', '.join(ctes)} " if ctes else "") + (
        f"SELECT json_build_array({', '.join(parts)}) AS answers"
    )
    if len(_COMBINED) < 256:
        _COMBINED[shape] = text
    return text, params


def _combined_answers(
    reads: Sequence[tuple[tuple[Any, ...], str, Any]], cursor: psycopg.Cursor[DictRow]
) -> dict[tuple[Any, ...], list[DictRow]]:
    """The rows of each read from the answer of its ``_combined`` statement."""
    row = cursor.fetchone()
    answers = [] if row is None else row["answers"]
    if len(answers) != len(reads):
        raise JournalError("the payment journal answered a combined read with the wrong shape")
    return {
        key: cast(list[DictRow], rows) for (key, _, _), rows in zip(reads, answers, strict=True)
    }


class _Unanswered(Exception):
    """A read an offline ``_PgLedger`` has no prefetched answer for."""


class _PgLedger:
    """Ledger queries on one connection (inside the hold's transaction, or autocommit reads)."""

    def __init__(self, journal: PostgresJournal, conn: Connection, *, writing: bool) -> None:
        self._journal = journal
        self._conn = conn
        self._writing = writing
        self._now: float | None = None
        #: Ids this transaction inserted (looked up after a lost commit acknowledgement).
        self.inserted: list[str] = []
        #: Currency ids this transaction made (cached once it commits).
        self.new_currencies: dict[Any, int] = {}
        #: Writes not sent yet: they go with the COMMIT, in one round trip inside the lock.
        self.deferred: list[tuple[str, Any]] = []
        #: Answers read under the lock in the hold's first round trip (``_Prefetch``), by read.
        self.prefetched: dict[tuple[Any, ...], list[DictRow]] = {}
        #: Whether this transaction wrote anything yet: prefetched answers predate writes.
        self.wrote = False
        #: The reads of this hold, as templates the next hold prefetches.
        self.reads: list[tuple[Any, ...]] = []
        #: No connection: a read not prefetched raises ``_Unanswered`` (``_ReadLedger``).
        self.offline = False

    def _answer(self, key: tuple[Any, ...], sql: str, args: Any) -> list[DictRow]:
        """The rows of a read: prefetched under this transaction's lock before any write of
        it (so exactly what the statement would return now), else read now."""
        self.reads.append(key)
        rows = None if self.wrote or self.deferred else self.prefetched.pop(key, None)
        if rows is None:
            if self.offline:
                raise _Unanswered
            self.flush()
            rows = self._conn.execute(sql, args).fetchall()
        return rows

    def _defer(self, sql: str, params: Any) -> None:
        self.deferred.append((sql, params))

    def flush(self) -> None:
        """Send the deferred writes (before any read that must see them)."""
        writes, self.deferred = self.deferred, []
        self.wrote = self.wrote or bool(writes)
        for sql, params in writes:
            self._conn.execute(sql, params)

    def now(self) -> float:
        # One instant per assessment, so every window of one check agrees.
        if self._now is None:
            self._now = self._journal._clock()
        return self._now

    def held_totals(
        self,
        *,
        since: float | None = None,
        origin: str | None = None,
        method: str | None = None,
        payee: str | None = None,
        call_id: str | None = None,
        currencies: Callable[[Currency], bool] | None = None,
    ) -> list[tuple[Currency, int]]:
        return self._totals(since, origin, method, payee, call_id, currencies, summed=False)

    def _totals(
        self,
        since: float | None,
        origin: str | None,
        method: str | None,
        payee: str | None,
        call_id: str | None,
        currencies: Callable[[Currency], bool] | None,
        *,
        summed: bool,
    ) -> list[tuple[Currency, int]]:
        key = ("totals", since, origin, method, payee, call_id, summed)
        sql, args = self.totals_query(since, origin, method, payee, call_id, summed=summed)
        rows = self._answer(key, sql, args)
        scope = _bucket_scope(origin, method, payee) if call_id is None and not summed else None
        if scope is not None and since is not None and rows:
            value = rows[0]["pruned"]
            pruned = _watermark(value)
            if pruned is not None and math.floor(since) + 1 < pruned:
                return self._totals(since, origin, method, payee, call_id, currencies, summed=True)
        totals = []
        for row in rows:
            currency = _stored_currency(row)
            if currencies is not None and not currencies(currency):
                continue
            total = int(row["total"] or 0)
            if total:
                totals.append((currency, total))
        return totals

    @staticmethod
    def totals_query(
        since: float | None,
        origin: str | None,
        method: str | None,
        payee: str | None,
        call_id: str | None,
        *,
        summed: bool,
    ) -> tuple[str, dict[str, Any]]:
        """The statement of one ``held_totals`` read (every currency; the caller filters)."""
        scope = _bucket_scope(origin, method, payee) if call_id is None and not summed else None
        if scope is None:
            total_sql, args = _PgLedger._summed(since, origin, method, payee, call_id)
        elif since is None:
            total_sql = (
                "(SELECT total FROM mpp_held_buckets WHERE scope = %(scope)s "
                "AND currency_id = c.id AND span = 0 AND start = 0)"
            )
            args = {"scope": scope}
        else:
            total_sql, args = _PgLedger._windowed(scope, since, origin, method, payee)
        # The pruning watermark comes with the totals (no round trip of its own): a window
        # reaching before pruned running totals (a clock set back by days) is summed instead.
        return (
            "SELECT c.id, c.code, c.decimals, c.network, c.symbol, c.usd_pegged, "  # noqa: S608
            f"{total_sql} AS total, (SELECT value FROM mpp_meta WHERE key = %(pruned_key)s) "
            "AS pruned FROM mpp_currencies c ORDER BY c.id",
            {**args, "pruned_key": _PRUNED_KEY},
        )

    @staticmethod
    def _windowed(
        scope: str, since: float, origin: str | None, method: str | None, payee: str | None
    ) -> tuple[str, dict[str, Any]]:
        # Whole seconds, minutes and hours after ``since``; payments of the second ``since``
        # falls in are summed one by one (a bucket holds whole seconds only).
        second = math.floor(since) + 1
        minute = -(-second // 60) * 60
        hour = -(-minute // 3600) * 3600
        sums = (
            "COALESCE((SELECT SUM(total) FROM mpp_held_buckets WHERE scope = %(scope)s "
            "AND currency_id = c.id AND span = {span} AND start >= {low}{high}), 0)"
        )
        edge, edge_args = _PgLedger._edge(origin, method, payee)
        sql = " + ".join(
            [
                sums.format(span=3600, low="%(hour)s", high=""),
                sums.format(span=60, low="%(minute)s", high=" AND start < %(hour)s"),
                sums.format(span=1, low="%(second)s", high=" AND start < %(minute)s"),
                f"COALESCE({edge}, 0)",
            ]
        )
        args = {"scope": scope, "hour": hour, "minute": minute, "second": second,
                "since": since, **edge_args}  # fmt: skip
        return f"({sql})", args

    @staticmethod
    def _edge(
        origin: str | None, method: str | None, payee: str | None
    ) -> tuple[str, dict[str, Any]]:
        where = (
            "p.held = 1 AND p.currency_id = c.id AND p.created_at > %(since)s "
            "AND p.created_at < %(second)s"
        )
        if payee is not None:
            return (
                "(SELECT SUM(y.amount) FROM mpp_payments p JOIN mpp_payment_payees y "  # noqa: S608
                f"ON y.payment_id = p.id WHERE {where} AND y.address = %(payee)s)",
                {"payee": payee},
            )
        args: dict[str, Any] = {}
        if origin is not None:
            where += " AND p.origin = %(origin)s"
            args["origin"] = origin
        if method is not None:
            where += " AND p.method = %(method)s"
            args["method"] = method
        return f"(SELECT SUM(p.exposure) FROM mpp_payments p WHERE {where})", args  # noqa: S608

    @staticmethod
    def _summed(
        since: float | None,
        origin: str | None,
        method: str | None,
        payee: str | None,
        call_id: str | None,
    ) -> tuple[str, dict[str, Any]]:
        """The held total summed payment by payment (scopes without running totals)."""
        where = ["p.held = 1", "p.currency_id = c.id"]
        args: dict[str, Any] = {}
        if since is not None:
            where.append("p.created_at > %(since)s")
            args["since"] = since
        for column, value in (("origin", origin), ("method", method), ("call_id", call_id)):
            if value is not None:
                where.append(f"p.{column} = %({column})s")
                args[column] = value
        if payee is None:
            sql = "SELECT SUM(p.exposure) FROM mpp_payments p"
        else:
            sql = (
                "SELECT SUM(y.amount) FROM mpp_payments p "
                "JOIN mpp_payment_payees y ON y.payment_id = p.id"
            )
            where.append("y.address = %(payee)s")
            args["payee"] = payee
        return f"({sql} WHERE {' AND '.join(where)})", args

    def held_count(self, call_id: str) -> int:
        rows = self._answer(("count", call_id), _COUNT_SQL, (call_id,))
        return int(rows[0]["n"]) if rows else 0

    def pin(self, origin: str, method: str) -> Pin | None:
        rows = self._answer(("pin", origin, method), _PIN_SQL, (origin, method))
        return None if not rows else _stored_pin(rows[0], origin, method)

    def insert(self, payment: NewPayment) -> str:
        if not self._writing:
            raise JournalError("a read-only ledger cannot write")
        self.flush()
        self.wrote = True  # prefetched answers no longer stand for what reads would return
        conn = self._conn
        if payment.reference is not None:
            # Under the journal's lock: two requests for one invoice cannot both pass.
            row = conn.execute(
                "SELECT id FROM mpp_payments WHERE reference = %s AND held = 1 LIMIT 1",
                (payment.reference,),
            ).fetchone()
            if row is not None:
                raise AlreadyPaid(
                    f"payment reference {payment.reference} is already paid or being paid "
                    f"(journal entry {row['id']}); it is never paid twice"
                )
        entry_id = uuid.uuid4().hex
        now = self.now()
        self._journal._prune(conn, now)
        currency = payment.amount.currency
        currency_id = self._journal._currency_id(conn, currency, self.new_currencies)
        fee = payment.max_fee
        payees = [(p.address, p.amount) for p in payment.payees]
        values = {
            "id": entry_id, "created_at": now, "updated_at": now, "call_id": payment.call_id,
            "challenge_id": payment.challenge_id, "realm": payment.realm,
            "origin": payment.origin, "url": payment.url, "http_method": payment.http_method,
            "method": payment.method, "intent": payment.intent, "amount": payment.amount.amount,
            "exposure": payment.exposure, "currency_code": currency.code,
            "currency_decimals": currency.decimals, "currency_network": currency.network,
            "currency_symbol": currency.symbol, "usd_pegged": int(currency.usd_pegged),
            "currency_id": currency_id, "max_fee": None if fee is None else fee.amount,
            "max_fee_currency": None if fee is None else fee.currency.code,
            "network": payment.network,
            "payees": json.dumps([{"address": a, "amount": m} for a, m in payees]),
            "expires": None if payment.expires is None else payment.expires.isoformat(),
            "label": payment.label, "owner": self._journal._lease_owner,
            "payer": payment.payer, "reference": payment.reference, "write_id": entry_id,
        }  # fmt: skip
        params: dict[str, Any] = dict(values)
        for n, (address, amount) in enumerate(payees):
            params[f"y{n}_a"], params[f"y{n}_m"] = address, amount
        shares: dict[str, int] = {}
        for address, amount in payees:  # a payee's running totals sum its shares
            shares["p:" + address] = shares.get("p:" + address, 0) + amount
        for n, (scope, amount) in enumerate(shares.items()):
            params[f"b{n}_s"], params[f"b{n}_t"] = scope, amount
        second = math.floor(now)
        for span in _SPANS:
            params[f"w{span}"] = second - second % span
        # One statement: the entry, its payees and its running totals, sent with the COMMIT.
        self._defer(_insert_sql(tuple(values), len(payees), len(shares)), params)
        self.inserted.append(entry_id)
        return entry_id

    def set_pin(self, origin: str, method: str, pin: Pin) -> None:
        self._defer(
            "INSERT INTO mpp_pins (origin, method, payees, token, network, pinned_at) "
            "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (origin, method) DO UPDATE SET "
            "payees = EXCLUDED.payees, token = EXCLUDED.token, network = EXCLUDED.network, "
            "pinned_at = EXCLUDED.pinned_at",
            (origin, method, json.dumps(sorted(pin.payees)), pin.token, pin.network, self.now()),
        )


class _ReadLedger:
    """Ledger reads outside any transaction (for ``check``, which takes no lock)."""

    def __init__(
        self, journal: PostgresJournal, reads: list[tuple[Any, ...]], *, call_id: str | None
    ) -> None:
        self._journal = journal
        self._call_id = call_id
        self._now: float | None = None
        #: This check's reads as templates: the hold that follows in this thread prefetches them.
        self._reads = reads
        #: The reads the last check made, fetched together on this check's first read.
        self._prefetched: dict[tuple[Any, ...], list[DictRow]] | None = None
        self._seen: list[tuple[Any, ...]] = []

    def now(self) -> float:
        if self._now is None:
            self._now = self._journal._clock()
        return self._now

    def _read(self, work: Callable[[_PgLedger], T]) -> T:
        if self._prefetched is not None:
            # Answered by this check's first statement: no connection, no round trip (a
            # read it did not foresee goes to the server below).
            offline = _PgLedger(self._journal, cast(Connection, None), writing=False)
            offline._now = self.now()
            offline.prefetched = self._prefetched
            offline.offline = True
            try:
                answer = work(offline)
            except _Unanswered:
                pass
            else:
                self._noted(offline)
                return answer

        def run(conn: Connection) -> T:
            ledger = _PgLedger(self._journal, conn, writing=False)
            ledger._now = self.now()
            if self._prefetched is None:
                # One statement for every read the last check made, and the circuit breaker's
                # (``unresolved``, asked just before the hold that follows this check): one
                # snapshot, one round trip. A check is advisory; the hold re-checks the caps.
                foreseen = _foreseen_reads(self._journal._check_templates, self.now())
                foreseen.append((_UNRESOLVED_KEY, _UNRESOLVED_SQL, ()))
                if self._call_id:
                    foreseen.append((("count", self._call_id), _COUNT_SQL, (self._call_id,)))
                journal = self._journal
                cursor = None
                if journal._later:
                    # The ``settled`` marks handed over since this process's last read go in
                    # this statement (autocommit: they commit with it, the reads do not see
                    # them, and they change nothing a check reads).
                    with journal._later_writing:
                        marks, writes = journal._later_writes()
                        sql, args = _combined(foreseen, writes)
                        try:
                            cursor = conn.execute(sql, args)
                        except psycopg.OperationalError:
                            raise  # reconnect and try again: the marks stay pending
                        except psycopg.Error:
                            cursor = None  # a mark the server refuses: written on its own below
                        else:
                            journal._later_done(marks)
                if cursor is None:
                    if journal._later or journal._later_writing.locked():
                        journal._write_later(conn)  # logs and drops a mark it cannot write
                    sql, args = _combined(foreseen)
                    cursor = conn.execute(sql, args)
                self._prefetched = _combined_answers(foreseen, cursor)
                unresolved = self._prefetched.pop(_UNRESOLVED_KEY)
                self._journal._checked.unresolved = (
                    time.monotonic(),
                    [str(row["id"]) for row in unresolved],
                )
            elif self._journal._later or self._journal._later_writing.locked():
                self._journal._write_later(conn)  # a read not foreseen: the marks go first
            ledger.prefetched = self._prefetched
            answer = work(ledger)
            self._noted(ledger)
            return answer

        return self._journal._retrying(run, "read the payment journal", carries_later=True)

    def _noted(self, ledger: _PgLedger) -> None:
        """Remember the reads ``ledger`` made: the next hold and the next check foresee them."""
        now = ledger.now()
        self._reads.extend(_read_templates(ledger.reads, now, this_call=True))
        checked = _read_templates(self._seen + ledger.reads, now, this_call=False)
        self._seen.extend(ledger.reads)
        self._journal._check_templates = checked

    def held_totals(
        self,
        *,
        since: float | None = None,
        origin: str | None = None,
        method: str | None = None,
        payee: str | None = None,
        call_id: str | None = None,
        currencies: Callable[[Currency], bool] | None = None,
    ) -> list[tuple[Currency, int]]:
        return self._read(
            lambda ledger: ledger.held_totals(
                since=since,
                origin=origin,
                method=method,
                payee=payee,
                call_id=call_id,
                currencies=currencies,
            )
        )

    def held_count(self, call_id: str) -> int:
        return self._read(lambda ledger: ledger.held_count(call_id))

    def pin(self, origin: str, method: str) -> Pin | None:
        return self._read(lambda ledger: ledger.pin(origin, method))


class PostgresJournal:
    """A payment journal in a PostgreSQL database that processes on many hosts share.

    ``url``: a libpq URL (``postgresql://user@host:5432/dbname``; a password is better kept in
    ``~/.pgpass`` or ``$PGPASSWORD`` than in the URL). The database must have been prepared
    with ``mpp journal migrate URL``: the journal refuses one without its tables or with an
    older or newer layout, and never alters it by itself.

    ``clock``: the journal clock (``Clock`` or a function of Unix seconds) for payment times and
    rolling windows. ``lease_seconds``: how long this process's lease lasts without a
    heartbeat (renewed every third of it): after that, another process may treat this one as
    dead. Hosts' clocks only matter for it when ``lease_clock`` is given: by default leases
    are stamped and judged by the database server's clock. ``lease_clock``: a clock (Unix
    seconds) for lease stamps and expiry decisions instead (tests). ``pool_size``: most
    connections this journal opens. ``reconnect_timeout``: seconds a write or read retries
    through a lost connection before ``JournalUnavailable``. ``heartbeat``: run the lease
    heartbeat thread (which also claims expired leases of other processes).
    """

    def __init__(
        self,
        url: str,
        *,
        clock: Clock | Callable[[], float] | None = None,
        lease_seconds: float = 30.0,
        lease_clock: Clock | Callable[[], float] | None = None,
        pool_size: int = 4,
        reconnect_timeout: float = 10.0,
        connect_timeout: float = 5.0,
        heartbeat: bool = True,
    ) -> None:
        if not is_postgres_url(url):
            raise ValueError("a PostgresJournal needs a postgresql:// or postgres:// URL")
        if lease_seconds <= 0 or pool_size < 1:
            raise ValueError("lease_seconds must be positive and pool_size at least 1")
        self._url = url
        self.where = shown_url(url)
        if clock is None:
            clock = SYSTEM_CLOCK
        self._clock: Callable[[], float] = clock.time if isinstance(clock, Clock) else clock
        self._lease_clock: Callable[[], float] | None = (
            lease_clock.time if isinstance(lease_clock, Clock) else lease_clock
        )
        self.lease_seconds = float(lease_seconds)
        self._pool_size = pool_size
        self._reconnect_timeout = reconnect_timeout
        self._connect_timeout = connect_timeout
        self._heartbeat_enabled = heartbeat
        self._lock = threading.RLock()
        self._hold_lock = threading.Lock()  # one hold of this process waits on the DB lock
        self._pool: psycopg_pool.ConnectionPool[Connection] | None = None
        self._pid = os.getpid()
        self._owner_id: str | None = None
        self._lease_written = False  # the lease row of ``_owner_id`` committed
        self._renewed_at = -math.inf  # time.monotonic() of the last lease extension
        #: The reads of the last hold, as templates (``_read_templates``) the next prefetches.
        self._templates: list[tuple[Any, ...]] = []
        #: The reads of the last ``check``, as templates the next check prefetches.
        self._check_templates: list[tuple[Any, ...]] = []
        #: Per thread: the reads of its last ``check`` (``ledger()``), for its next hold.
        self._checked = threading.local()
        self._beat: threading.Thread | None = None
        self._stop = threading.Event()
        self._closed = False
        self._currency_ids: dict[tuple[Any, ...], int] = {}
        self._next_prune = -math.inf
        self._warned: set[int] = set()
        #: Holds whose commit could not be confirmed: failed once the database answers.
        self._doubtful: set[str] = set()
        #: Outcomes that could not be written (the database was away): written when it answers.
        self._pending: list[tuple[str, str, _Change]] = []
        self._settling = threading.Lock()
        #: ``settled`` marks handed to ``advance_later`` and not written yet, oldest first:
        #: (entry id, change, write token, journal time of the hand-over).
        self._later: list[tuple[str, _Change, str, float]] = []
        #: Held while marks are taken and written, so a later write of this process never
        #: overtakes a mark handed over before it.
        self._later_writing = threading.Lock()
        self._later_wake = threading.Event()
        self._later_stop = threading.Event()
        self._later_thread: threading.Thread | None = None
        _journals.add(self)
        try:
            with self._direct() as conn:
                check_schema(conn, self.where, self.where)
        except psycopg.OperationalError as exc:
            raise JournalUnavailable(
                f"cannot reach the PostgreSQL journal {self.where}: {_problem(exc)}"
            ) from None

    def __repr__(self) -> str:
        return f"PostgresJournal({self.where!r})"

    # --- connections ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def _direct(self) -> Iterator[Connection]:
        """One connection outside the pool (schema checks)."""
        conn = psycopg.connect(
            self._url,
            autocommit=True,
            row_factory=dict_row,
            connect_timeout=math.ceil(self._connect_timeout),
        )
        try:
            yield conn
        finally:
            conn.close()

    def _configure(self, conn: Connection) -> None:
        # Only the steps before value can leave wait for the WAL flush (``_DURABLE``); they
        # flush every earlier write with them. Set here so a server default cannot change it.
        conn.execute("SET synchronous_commit TO off")
        conn.execute("SET application_name TO 'mpp-client journal'")

    def _get_pool(self) -> psycopg_pool.ConnectionPool[Connection]:
        if self._closed:
            raise JournalError("the payment journal is closed")
        if os.getpid() != self._pid:
            self._reset_after_fork()
        with self._lock:
            if self._pool is None:
                self._pool = psycopg_pool.ConnectionPool(
                    self._url,
                    connection_class=psycopg.Connection[DictRow],
                    kwargs={
                        "autocommit": True,
                        "row_factory": dict_row,
                        "connect_timeout": str(math.ceil(self._connect_timeout)),
                    },
                    configure=self._configure,
                    min_size=1,
                    max_size=self._pool_size,
                    timeout=self._reconnect_timeout,
                    reconnect_timeout=max(self._reconnect_timeout, 60.0),
                    name="mpp-journal",
                    open=True,
                )
            return self._pool

    def _reset_after_fork(self) -> None:
        self._lock = threading.RLock()
        self._hold_lock = threading.Lock()
        self._settling = threading.Lock()
        # The parent writes the marks it handed over; its writer thread did not survive.
        self._later = []
        self._later_writing = threading.Lock()
        self._later_wake = threading.Event()
        self._later_stop = threading.Event()
        self._later_thread = None
        self._pool = None  # the parent's: never used (nor closed) here
        self._pid = os.getpid()
        self._owner_id = None
        self._lease_written = False
        self._renewed_at = -math.inf
        self._beat = None
        self._stop = threading.Event()

    @contextlib.contextmanager
    def _connection(self) -> Iterator[Connection]:
        with self._get_pool().connection() as conn:
            yield conn

    def _retrying(
        self,
        work: Callable[[Connection], T],
        doing: str,
        *,
        again: Callable[[Connection], T] | None = None,
        carries_later: bool = False,
    ) -> T:
        """Run ``work`` on a pooled connection; through a lost connection (a restart, a drop)
        reconnect and run ``again`` (default ``work``: it must be idempotent) until
        ``reconnect_timeout`` has passed. The ``settled`` marks waiting to be written go
        first, in a statement of their own, unless ``carries_later``: ``work`` then writes
        them itself (with its own statement: a round trip less)."""
        deadline = time.monotonic() + self._reconnect_timeout
        delay = 0.05
        attempt = work
        while True:
            try:
                with self._connection() as conn:
                    if not carries_later and (self._later or self._later_writing.locked()):
                        self._write_later(conn)  # what this process reads includes them
                    return attempt(conn)
            except psycopg.OperationalError as exc:
                if time.monotonic() + delay > deadline:
                    raise JournalUnavailable(
                        f"cannot {doing}: the PostgreSQL journal {self.where} is unreachable "
                        f"({_problem(exc)})"
                    ) from None
                log.info("payment journal %s: %s; retrying", self.where, _problem(exc))
            except psycopg.Error as exc:
                raise JournalError(f"cannot {doing} ({self.where}): {_problem(exc)}") from None
            attempt = again if again is not None else work
            time.sleep(delay)  # backing off from a server that is restarting
            delay = min(delay * 2, 0.5)

    # --- leases --------------------------------------------------------------------------------

    def _lease_now_sql(self) -> tuple[str, float | None]:
        """SQL for the lease clock's now (the server's unless ``lease_clock`` was given)."""
        if self._lease_clock is None:
            return "extract(epoch FROM clock_timestamp())::float8", None
        return "%(now)s::float8", self._lease_clock()

    @property
    def _lease_owner(self) -> str:
        """This journal object's owner name (entries record it; its lease row is keyed by it)."""
        if os.getpid() != self._pid:
            self._reset_after_fork()
        if self._owner_id is None:
            self._owner_id = f"{_owner()}:{uuid.uuid4().hex[:12]}"
        return self._owner_id

    def _renew_lease(
        self, conn: Connection, reads: list[tuple[tuple[Any, ...], str, Any]]
    ) -> tuple[bool, dict[tuple[Any, ...], list[DictRow]]]:
        """BEGIN, the journal's lock, this journal's lease checked and the foreseen ``reads``,
        in one round trip (under the lock a claim cannot interleave: the lease statement runs
        after the lock is granted and sees every committed claim; each read, under READ
        COMMITTED, sees everything committed before the grant, as a read made later in the
        hold would). The lease is extended by the hold unless the heartbeat thread did so
        within the last third of ``lease_seconds``: then only checked (still ours, not
        claimed). A new lease when there is none yet or it was claimed. Returns whether a new
        lease was written (it exists once the hold commits) and the reads' rows by key."""
        now_sql, now = self._lease_now_sql()
        args: dict[str, Any] = {"ttl": self.lease_seconds, "now": now}
        renewing = self._owner_id is not None and self._lease_written
        fresh = (
            self._beat is not None
            and self._beat.is_alive()
            and time.monotonic() - self._renewed_at < self.lease_seconds / 3
        )
        reads = list(reads)
        if renewing and fresh:
            # Only checked: one more read of the combined statement.
            reads.append(
                (
                    _LEASE_KEY,
                    "SELECT owner FROM mpp_leases WHERE owner = %(owner)s AND claimed_by IS NULL",
                    {"owner": self._owner_id},
                )
            )
        # Three statements, one round trip (pipelined). The lock must be a statement of its
        # own, before the reads: a statement's snapshot is taken when it starts, so reads in
        # the lock's statement would not see a hold committed while this one waited for it.
        # A round trip costs more than its statements when processes outnumber CPUs: each is
        # a wait for the server's process to be scheduled, and for this one's to be again.
        with conn.pipeline():
            conn.execute("BEGIN")
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
            if renewing and not fresh:
                cursor = conn.execute(
                    f"UPDATE mpp_leases SET heartbeat_at = {now_sql}, "  # noqa: S608
                    f"expires_at = {now_sql} + %(ttl)s WHERE owner = %(owner)s "
                    "AND claimed_by IS NULL RETURNING owner",
                    {**args, "owner": self._owner_id},
                )
            if reads:
                sql, read_args = _combined(reads)
                answers = conn.execute(sql, read_args)
        prefetched = _combined_answers(reads, answers) if reads else {}
        if renewing:
            ours = prefetched.pop(_LEASE_KEY) if fresh else cursor.fetchall()
            if ours:
                if not fresh:
                    self._renewed_at = time.monotonic()
                return False, prefetched
            log.warning(
                "payment journal %s: this process's lease %s was claimed by another process "
                "(it was not renewed in time); taking a new one",
                self.where,
                self._owner_id,
            )
        self._owner_id = None
        self._lease_written = False
        host, pid, started = _owner().split(":", 2)
        conn.execute(
            "INSERT INTO mpp_leases (owner, host, pid, process_start, started_at, heartbeat_at, "  # noqa: S608
            f"expires_at) VALUES (%(owner)s, %(host)s, %(pid)s, %(started)s, {now_sql}, "
            f"{now_sql}, {now_sql} + %(ttl)s)",
            {**args, "owner": self._lease_owner, "host": host, "pid": int(pid),
             "started": started},
        )  # fmt: skip
        self._renewed_at = time.monotonic()
        return True, prefetched

    def _start_heartbeat(self) -> None:
        if not self._heartbeat_enabled or (self._beat is not None and self._beat.is_alive()):
            return
        self._stop = threading.Event()
        self._beat = threading.Thread(
            target=self._heartbeat, args=(self._stop,), name="mpp-journal-lease", daemon=True
        )
        self._beat.start()

    def _heartbeat(self, stop: threading.Event) -> None:
        while not stop.wait(self.lease_seconds / 3):
            try:
                self.heartbeat()
                self.recover()
            except Exception as exc:  # the next beat tries again; holds renew the lease too
                log.warning("payment journal %s: lease heartbeat failed: %s", self.where, exc)

    def heartbeat(self) -> None:
        """Renew this process's lease now (the background thread does it every third of
        ``lease_seconds``); also fails holds whose commit could not be confirmed."""

        def beat(conn: Connection) -> None:
            if self._owner_id is None or not self._lease_written:
                return
            now_sql, now = self._lease_now_sql()
            began = time.monotonic()
            renewed = conn.execute(
                f"UPDATE mpp_leases SET heartbeat_at = {now_sql}, "  # noqa: S608
                f"expires_at = {now_sql} + %(ttl)s WHERE owner = %(owner)s "
                "AND claimed_by IS NULL",
                {"owner": self._owner_id, "ttl": self.lease_seconds, "now": now},
            )
            if renewed.rowcount == 1:
                self._renewed_at = max(self._renewed_at, began)

        self._retrying(beat, "renew the journal lease")
        self._settle_doubtful()

    # --- Journal -------------------------------------------------------------------------------

    @contextlib.contextmanager
    def atomic(self) -> Iterator[JournalTransaction]:
        """A transaction under the journal's advisory lock (every writer of every host waits
        for it); raising inside rolls it back. A lost connection before the commit refuses
        with ``JournalUnavailable``: nothing was held, nothing may be signed."""
        with self._hold_lock:
            self._settle_doubtful()
            pool = self._get_pool()
            now = self._clock()  # one instant per assessment, known before the first read
            checked = getattr(self._checked, "reads", [])
            self._checked.reads = []
            templates = list(dict.fromkeys([*self._templates, *checked]))
            conn, new_lease, prefetched = self._begin_hold(pool, _foreseen_reads(templates, now))
            ledger = _PgLedger(self, conn, writing=True)
            ledger._now = now
            ledger.prefetched = prefetched
            problem: str | None = None
            try:
                try:
                    yield ledger
                except psycopg.OperationalError as exc:
                    raise JournalUnavailable(
                        f"the PostgreSQL journal {self.where} went away before the payment "
                        f"was held ({_problem(exc)}); nothing was paid"
                    ) from None
                except psycopg.Error as exc:
                    raise JournalError(
                        f"the payment journal {self.where} failed: {_problem(exc)}"
                    ) from None
                try:
                    with conn.pipeline():  # the hold's writes and its COMMIT: one round trip
                        ledger.flush()
                        conn.execute("COMMIT")
                except psycopg.OperationalError as exc:
                    problem = _problem(exc)
                except psycopg.Error as exc:
                    raise JournalError(
                        f"the payment journal {self.where} refused the hold: {_problem(exc)}"
                    ) from None
            except BaseException:
                if new_lease:
                    self._owner_id = None  # its row was rolled back with the transaction
                with contextlib.suppress(psycopg.Error):
                    if not conn.broken:
                        conn.execute("ROLLBACK")
                raise
            finally:
                pool.putconn(conn)
            if problem is None:
                self._committed(ledger, new_lease)
                return
            # The commit was sent and its answer lost: it may or may not have happened.
            self._confirm_hold(ledger.inserted, problem)
            self._committed(ledger, new_lease)

    def _committed(self, ledger: _PgLedger, new_lease: bool) -> None:
        self._currency_ids.update(ledger.new_currencies)
        self._templates = _read_templates(ledger.reads, ledger.now(), this_call=False)
        if new_lease:
            self._lease_written = True
            self._start_heartbeat()

    def _begin_hold(
        self,
        pool: psycopg_pool.ConnectionPool[Connection],
        reads: list[tuple[tuple[Any, ...], str, Any]],
    ) -> tuple[Connection, bool, dict[tuple[Any, ...], list[DictRow]]]:
        """A connection in a transaction holding the journal's lock, this journal's lease
        renewed, and the rows of the foreseen ``reads``. Nothing is written before these
        succeed, so a pooled connection that turns out dead (after a server restart) is
        replaced, within ``reconnect_timeout``."""
        deadline = time.monotonic() + self._reconnect_timeout
        delay = 0.05
        while True:
            try:
                conn = pool.getconn()
            except psycopg_pool.PoolTimeout as exc:
                raise JournalUnavailable(
                    f"cannot hold the payment: the PostgreSQL journal {self.where} is "
                    f"unreachable ({_problem(exc)}); nothing was paid"
                ) from None
            try:
                return conn, *self._renew_lease(conn, reads)
            except psycopg.OperationalError as exc:
                broken = conn.broken
                with contextlib.suppress(psycopg.Error):
                    if not broken:
                        conn.execute("ROLLBACK")
                pool.putconn(conn)
                if not broken or time.monotonic() + delay > deadline:
                    raise JournalUnavailable(
                        f"cannot hold the payment: the PostgreSQL journal {self.where} is "
                        f"unreachable ({_problem(exc)}); nothing was paid"
                    ) from None
            except BaseException as exc:
                with contextlib.suppress(psycopg.Error):
                    conn.execute("ROLLBACK")
                pool.putconn(conn)
                if isinstance(exc, psycopg.Error):
                    raise JournalError(
                        f"cannot lock the payment journal {self.where}: {_problem(exc)}"
                    ) from None
                raise
            time.sleep(delay)  # backing off from a server that is restarting
            delay = min(delay * 2, 0.5)

    def _confirm_hold(self, inserted: list[str], problem: str) -> None:
        """After a lost commit acknowledgement: look the inserted entry up. Behind the journal's
        lock, so a commit the server is still processing is waited for, never guessed."""
        if not inserted:
            raise JournalUnavailable(
                f"the PostgreSQL journal {self.where} went away during a commit ({problem}); "
                "nothing was paid"
            )

        def look(conn: Connection) -> bool:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
                rows = conn.execute(
                    "SELECT id FROM mpp_payments WHERE id = ANY(%s)", (inserted,)
                ).fetchall()
            return len(rows) == len(inserted)

        try:
            found = self._retrying(look, "confirm a hold")
        except JournalError:
            # Unknown whether it committed: fail it (it signed nothing) once the database is
            # back, so a committed one does not hold budget for the rest of this process.
            self._doubtful.update(inserted)
            raise JournalUnavailable(
                f"the PostgreSQL journal {self.where} went away during the commit of a hold "
                f"({problem}) and cannot be asked whether it happened; nothing was paid"
            ) from None
        if not found:
            raise JournalUnavailable(
                f"the hold did not commit: the PostgreSQL journal {self.where} went away "
                f"({problem}); nothing was paid"
            )
        log.info("payment journal %s: hold %s committed; its acknowledgement was lost",
                 self.where, inserted[0])  # fmt: skip

    def _settle_doubtful(self) -> None:
        """Write the outcomes and fail the holds the database missed (one thread at a time:
        the heartbeat and a hold may both get here)."""
        if not (self._pending or self._doubtful) or not self._settling.acquire(blocking=False):
            return
        try:
            self._settle()
        finally:
            self._settling.release()

    def _settle(self) -> None:
        while self._pending:
            entry_id, state, change = self._pending[0]
            try:
                applied = self._write(entry_id, state, change, "write an outcome")
            except JournalError:
                return  # still unreachable: next time
            self._pending.pop(0)
            log.info("payment %s: recorded %s after the database came back (%s)",
                     entry_id, state, "applied" if applied else "superseded")  # fmt: skip
        for entry_id in sorted(self._doubtful):
            try:
                self.advance(
                    entry_id,
                    "failed",
                    reason="the hold's commit could not be confirmed; nothing was signed",
                    money_moved=False,
                )
            except JournalError:
                return  # still unreachable: next time
            self._doubtful.discard(entry_id)

    def channel_store(self, *, clock: Clock | None = None) -> ChannelStore:
        """Sessions' channel records in this journal's database (``ChannelStore.for_journal``
        returns it for a wallet on PostgreSQL)."""
        return PostgresChannelStore(self, clock=clock)

    def ledger(self, *, call_id: str | None = None) -> Ledger:
        """A read-only view for checks that take no lock. ``call_id``: the request the check
        is for, when the caller knows it: its ``held_count`` then goes with the other
        foreseen reads (the one read of a check whose arguments change every request), so a
        check is one round trip instead of two."""
        reads: list[tuple[Any, ...]] = []
        self._checked.reads = reads  # a new check in this thread: its reads replace the last
        return _ReadLedger(self, reads, call_id=call_id)

    def _currency_id(self, conn: Connection, currency: Currency, new: dict[Any, int]) -> int:
        """The id of ``currency`` (made on first use). Ids found in this transaction go to
        ``new``, cached only once it commits (a rolled-back row has no id to reuse)."""
        key_parts = (currency.code, currency.decimals, currency.network, currency.symbol,
                     currency.usd_pegged)  # fmt: skip
        known = self._currency_ids.get(key_parts, new.get(key_parts))
        if known is not None:
            return known
        key = json.dumps(list(key_parts))
        conn.execute(
            "INSERT INTO mpp_currencies (key, code, decimals, network, symbol, usd_pegged) "
            "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (key) DO NOTHING",
            (key, currency.code, currency.decimals, currency.network, currency.symbol,
             int(currency.usd_pegged)),
        )  # fmt: skip
        row = conn.execute("SELECT id FROM mpp_currencies WHERE key = %s", (key,)).fetchone()
        if row is None:
            raise JournalError(f"the payment journal {self.where} lost a currency row")
        new[key_parts] = int(row["id"])
        return new[key_parts]

    def _prune(self, conn: Connection, now: float) -> None:
        """Delete running totals no window can reach any more (inside a hold), about hourly.
        The watermark makes a window reaching further back sum payment by payment."""
        if now < self._next_prune:
            return
        horizon = math.floor(now) - _PRUNE_AGE
        row = conn.execute("SELECT value FROM mpp_meta WHERE key = %s", (_PRUNED_KEY,)).fetchone()
        value = None if row is None else row["value"]
        pruned_before = _watermark(value)
        if pruned_before is None or horizon >= pruned_before + _PRUNE_EVERY:
            conn.execute("DELETE FROM mpp_held_buckets WHERE span > 0 AND start < %s", (horizon,))
            conn.execute(
                "INSERT INTO mpp_meta (key, value) VALUES (%s, %s) "
                "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                (_PRUNED_KEY, str(horizon)),
            )
            pruned_before = horizon
        self._next_prune = pruned_before + _PRUNE_AGE + _PRUNE_EVERY

    def advance(
        self,
        entry_id: str,
        state: PaymentState,
        *,
        reference: str | None = None,
        fingerprint: str | None = None,
        receipt: Any = None,
        reason: str | None = None,
        money_moved: bool | None = None,
        proof: Proof | None = None,
        receipt_reference: str | None = None,
        void_after: datetime | None = None,
    ) -> bool:
        allowed_sources(state)  # a state that does not exist is a ValueError
        if state == "failed" and money_moved is None:
            # "It failed, but we cannot tell whether value moved" is an unknown outcome.
            state = "unknown"
        change = _Change.of(
            reference=reference, fingerprint=fingerprint, receipt=receipt, reason=reason,
            money_moved=money_moved, proof=proof, receipt_reference=receipt_reference,
            void_after=void_after,
        )  # fmt: skip
        try:
            applied = self._write(
                entry_id, state, change, f"record that payment {entry_id} is {state}"
            )
        except JournalUnavailable:
            if state not in _BEFORE_VALUE_MOVES:
                # An outcome (settled, failed, unknown) the database could not take: written
                # when it answers again, in order. Meanwhile the entry keeps its last state,
                # which holds the amount.
                self._pending.append((entry_id, state, change))
            raise
        if not applied:
            current = self.get(entry_id)
            now = current.state if current else "a missing entry"
            if state in _BEFORE_VALUE_MOVES:
                # E.g. another process claimed the entry after this one's lease expired: the
                # step must not happen when the journal does not say it did.
                raise JournalError(
                    f"payment {entry_id} is {now} in the journal {self.where}: cannot record it "
                    f"as {state}, so that step does not happen"
                )
            log.warning("payment %s: ignored a move to %s from %s", entry_id, state, now)
        return applied

    def advance_later(
        self,
        entry_id: str,
        state: PaymentState,
        *,
        reference: str | None = None,
        receipt: Any = None,
        receipt_reference: str | None = None,
    ) -> None:
        """``advance`` to ``settled`` without waiting for the database: the mark goes with this
        process's next read of the journal (a ``check``'s round trip, usually the next thing a
        paying process does), before any other call's statements, or is written by a
        background thread after ``_LATER_DELAY`` seconds; ``close()`` and interpreter exit
        write what is left. A round trip less per payment.

        Only ``settled``: whether an entry is ``sent`` or ``settled``, its amount is held all
        the same (no cap, pin, count or breaker reads differently), and a mark lost with the
        process leaves the entry ``sent``, which the lease's expiry turns into ``unknown`` for
        reconciliation, as a server crash losing an unflushed ``settled`` commit would. A mark
        the database refuses is logged, not raised; one it cannot take now (the database is
        away) is written when it answers again."""
        if state != "settled":
            raise ValueError("only settled is written in the background")
        change = _Change.of(
            reference=reference, fingerprint=None, receipt=receipt, reason=None,
            money_moved=None, proof=None, receipt_reference=receipt_reference, void_after=None,
        )  # fmt: skip
        if os.getpid() != self._pid:
            self._reset_after_fork()
        self._later.append((entry_id, change, uuid.uuid4().hex, self._clock()))
        if self._later_thread is None or not self._later_thread.is_alive():
            self._later_thread = threading.Thread(
                target=self._later_writer, name="mpp-journal-settled", daemon=True
            )
            self._later_thread.start()
        self._later_wake.set()

    def _later_writer(self) -> None:
        """Write the marks no read took within ``_LATER_DELAY`` (a process that stopped paying)."""
        wake, stop = self._later_wake, self._later_stop
        while not stop.is_set():
            wake.wait()
            wake.clear()
            if stop.wait(_LATER_DELAY):
                return  # close() writes what is left
            if self._later:
                try:
                    self._retrying(lambda conn: None, "record settled payments")
                except JournalError as exc:
                    log.warning("payment journal %s: %s", self.where, exc)

    def _later_writes(
        self,
    ) -> tuple[list[tuple[str, _Change, str, float]], list[tuple[str, Any]]]:
        """The pending marks and their ``UPDATE`` statements (the caller holds
        ``_later_writing``)."""
        marks = list(self._later)
        writes = [
            self._update_sql(i, "settled", change, token, now=at) for i, change, token, at in marks
        ]
        return marks, writes

    def _later_done(self, marks: list[tuple[str, _Change, str, float]]) -> None:
        del self._later[: len(marks)]  # only appended to meanwhile, never reordered

    def _write_later(self, conn: Connection) -> None:
        """Write every pending mark on ``conn`` (one round trip), in order."""
        with self._later_writing:
            if not self._later:
                return
            marks, writes = self._later_writes()
            try:
                sql, args = _combined([], writes)
                conn.execute(sql, args)
            except psycopg.OperationalError:
                raise  # the caller reconnects; the marks stay pending
            except psycopg.Error as exc:
                marks = list(self._later)
                log.warning(
                    "payment journal %s: could not record that %d payment(s) settled (%s); "
                    "they stay sent and held until reconciled",
                    self.where,
                    len(marks),
                    _problem(exc),
                )
            self._later_done(marks)

    def _write(self, entry_id: str, state: str, change: _Change, doing: str) -> bool:
        """One step, through lost connections. The token it stores tells, after a lost
        acknowledgement, whether it committed."""
        token = uuid.uuid4().hex
        if state == "failed" and change.moved == 0:
            return self._retrying(lambda conn: self._release(conn, entry_id, change, token), doing)
        return self._retrying(
            lambda conn: self._move(conn, entry_id, state, change, token),
            doing,
            again=lambda conn: self._move_again(conn, entry_id, state, change, token),
        )

    def _move(
        self, conn: Connection, entry_id: str, state: str, change: _Change, token: str
    ) -> bool:
        """A move that keeps the amount held (every move but a release): one statement, one
        round trip; for ``sent`` and ``broadcast`` its commit waits for the WAL flush."""
        sql, args = self._update_sql(entry_id, state, change, token)
        return conn.execute(sql, args).rowcount == 1

    def _update_sql(
        self, entry_id: str, state: str, change: _Change, token: str, *, now: float | None = None
    ) -> tuple[str, dict[str, Any]]:
        """The ``UPDATE`` of one step. For ``sent`` and ``broadcast`` (``_DURABLE``) it sets
        ``synchronous_commit`` on for its own transaction (``set_config(..., true)`` in the
        statement, so an autocommit step is one statement, not BEGIN/SET/UPDATE/COMMIT): its
        commit returns after the WAL is flushed past it. Every step before it (the hold,
        ``signed``) committed with ``synchronous_commit`` off, unflushed; the WAL is one
        sequence, so this flush makes them durable too. If the server crashed before that
        flush and forgot them, this statement finds no entry in a state it may move from,
        ``advance`` raises, and the credential is never sent. The join makes the setting part
        of every row the statement changes: an update that changes no row needs no flush."""
        # The source states are the lifecycle's constants, written into the text (one text per
        # target state): a list parameter costs a Python array dump on every step.
        sources = ",".join(f"'{source}'" for source in sorted(allowed_sources(state)))
        held = int(holds(state, None if change.moved is None else bool(change.moved)))
        durable = state in _DURABLE
        return (
            (_DURABLE_CTE if durable else "")  # noqa: S608 - constant fragments only
            + "UPDATE mpp_payments SET state = %(state)s, held = %(held)s, updated_at = %(now)s, "
            "reference = COALESCE(%(reference)s, reference), "
            "fingerprint = COALESCE(%(fingerprint)s, fingerprint), "
            "receipt = COALESCE(%(receipt)s, receipt), reason = COALESCE(%(reason)s, reason), "
            "money_moved = COALESCE(%(moved)s, money_moved), proof = COALESCE(%(proof)s, proof), "
            "receipt_reference = COALESCE(%(receipt_reference)s, receipt_reference), "
            "void_after = COALESCE(%(void_after)s, void_after), write_id = %(token)s "
            + ("FROM durable " if durable else "")
            + f"WHERE id = %(id)s AND state IN ({sources})",
            {
                "state": state, "held": held, "now": self._clock() if now is None else now,
                "reference": change.reference,
                "fingerprint": change.fingerprint, "receipt": change.receipt,
                "reason": change.reason, "moved": change.moved, "proof": change.proof,
                "receipt_reference": change.receipt_reference, "void_after": change.void_after,
                "token": token, "id": entry_id,
            },
        )  # fmt: skip

    def _move_again(
        self, conn: Connection, entry_id: str, state: str, change: _Change, token: str
    ) -> bool:
        """After a lost connection: did the first try commit? Under the row's lock, so a write
        the server is still finishing is waited for."""
        with conn.transaction():
            if state in _DURABLE:
                conn.execute("SET LOCAL synchronous_commit TO on")
            row = conn.execute(
                "SELECT write_id FROM mpp_payments WHERE id = %s FOR UPDATE", (entry_id,)
            ).fetchone()
            if row is not None and row["write_id"] == token:
                return True
            return self._move(conn, entry_id, state, change, token)

    def _release(self, conn: Connection, entry_id: str, change: _Change, token: str) -> bool:
        """``failed`` with ``money_moved=False``: the hold is released only with a proof once
        something may have left the process; the running totals follow, under the lock."""
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
            row = conn.execute(
                "SELECT state, held, write_id, created_at, currency_id, exposure, origin, method "
                "FROM mpp_payments WHERE id = %s FOR UPDATE",
                (entry_id,),
            ).fetchone()
            if row is None:
                return False
            if row["write_id"] == token:
                return True  # the first try committed; its acknowledgement was lost
            current = row["state"]
            if current not in allowed_sources("failed"):
                return False
            if change.proof is None and release_needs_proof(current):
                # A release without proof after something left the process: the outcome is
                # unknown and the amount stays held.
                unproven = _Change(**{**_fields(change), "moved": None})
                applied = self._move(conn, entry_id, "unknown", unproven, token)
                if applied:
                    log.warning(
                        "payment %s: not released without a proof; kept as unknown", entry_id
                    )
                return applied
            self._move_released(conn, entry_id, row, change, token)
            return True

    def _move_released(
        self, conn: Connection, entry_id: str, row: DictRow, change: _Change, token: str
    ) -> None:
        conn.execute(
            "UPDATE mpp_payments SET state = 'failed', held = 0, updated_at = %(now)s, "
            "reference = COALESCE(%(reference)s, reference), "
            "fingerprint = COALESCE(%(fingerprint)s, fingerprint), "
            "receipt = COALESCE(%(receipt)s, receipt), reason = COALESCE(%(reason)s, reason), "
            "money_moved = 0, proof = COALESCE(%(proof)s, proof), "
            "receipt_reference = COALESCE(%(receipt_reference)s, receipt_reference), "
            "void_after = COALESCE(%(void_after)s, void_after), write_id = %(token)s "
            "WHERE id = %(id)s",
            {
                "now": self._clock(), "reference": change.reference,
                "fingerprint": change.fingerprint, "receipt": change.receipt,
                "reason": change.reason, "proof": change.proof,
                "receipt_reference": change.receipt_reference, "void_after": change.void_after,
                "token": token, "id": entry_id,
            },
        )  # fmt: skip
        if row["held"] == 1:
            self._unhold(conn, entry_id, row)

    def _unhold(self, conn: Connection, entry_id: str, row: DictRow) -> None:
        """Take a released payment out of the running totals (under the journal's lock)."""
        payees = conn.execute(
            "SELECT address, amount FROM mpp_payment_payees WHERE payment_id = %s", (entry_id,)
        ).fetchall()
        _write_buckets(
            conn,
            _bucket_deltas(
                row["created_at"], row["currency_id"], row["exposure"], row["origin"],
                row["method"], [(p["address"], p["amount"]) for p in payees], -1,
            ),
        )  # fmt: skip

    def get(self, entry_id: str) -> PaymentRecord | None:
        found = self._select("WHERE id = %s", (entry_id,))
        return found[0] if found else None

    def payments(
        self,
        *,
        state: PaymentState | Sequence[PaymentState] | None = None,
        origin: str | None = None,
        method: str | None = None,
        reference: str | None = None,
        label: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
    ) -> list[PaymentRecord]:
        sql, args = _payments_where(
            "%s", lambda states: ("state = ANY(%s)", [states]),
            state=state, origin=origin, method=method, reference=reference, label=label,
            since=since, until=until, limit=limit,
        )  # fmt: skip
        return self._select(sql, args)

    def already_paid(self, reference: str) -> bool:
        def look(conn: Connection) -> bool:
            row = conn.execute(
                "SELECT 1 AS found FROM mpp_payments WHERE reference = %s AND (state IN "  # noqa: S608
                f"{_MOVED} OR (state = 'failed' AND money_moved = 1)) LIMIT 1",
                (reference,),
            ).fetchone()
            return row is not None

        return self._retrying(look, "read the payment journal")

    def unresolved(self) -> list[str]:
        # ``unknown`` and any state this code does not know (a damaged row): nothing says how
        # such a payment ended, so the breaker counts it (a partial index keeps it cheap).
        # The wallet asks right after its check, which read this in the same statement as the
        # caps (``_ReadLedger``): that answer, read a moment ago in this thread, stands for one
        # read now. The breaker is a stop after too many unknown outcomes, not a cap: it is no
        # more exact across processes than the instant between the read and the hold.
        fresh = getattr(self._checked, "unresolved", None)
        if fresh is not None:
            self._checked.unresolved = None
            read_at, ids = fresh
            if time.monotonic() - read_at < _UNRESOLVED_FRESH:
                return list(ids)

        def look(conn: Connection) -> list[str]:
            rows = conn.execute(_UNRESOLVED_SQL).fetchall()
            return [str(row["id"]) for row in rows]

        return self._retrying(look, "read the payment journal")

    def recover(self) -> list[PaymentRecord]:
        """Claim the leases that expired unclaimed (their processes ended, or stopped renewing
        them), and move their in-flight entries: ``reserved`` -> ``failed`` (released: nothing
        was signed), later states -> ``unknown`` (held). One transaction under the journal's
        lock, so each expired lease is claimed by exactly one process. Returns the entries that
        became ``unknown`` here."""
        self._settle_doubtful()
        ids = self._retrying(self._claim, "claim the entries of ended processes")
        return [record for i in ids if (record := self.get(i)) is not None]

    def _claim(self, conn: Connection) -> list[str]:
        me = self._lease_owner
        now_sql, now = self._lease_now_sql()
        became_unknown: list[str] = []
        with conn.transaction():
            # A claim is flushed before anyone acts on it: it must never be made twice.
            conn.execute("SET LOCAL synchronous_commit TO on")
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
            args = {"me": me, "now": now}
            owners = [
                row["owner"]
                for row in conn.execute(
                    f"UPDATE mpp_leases SET claimed_by = %(me)s, claimed_at = {now_sql} "  # noqa: S608
                    f"WHERE claimed_by IS NULL AND expires_at < {now_sql} AND owner <> %(me)s "
                    "RETURNING owner",
                    args,
                ).fetchall()
            ]
            # Entries of owners that never held a lease here (a journal copied from SQLite):
            # no process of theirs can be writing to this database.
            owners += [
                row["owner"]
                for row in conn.execute(
                    "INSERT INTO mpp_leases (owner, host, pid, process_start, started_at, "  # noqa: S608
                    "heartbeat_at, expires_at, claimed_by, claimed_at) "
                    f"SELECT DISTINCT p.owner, '', 0, '', {now_sql}, {now_sql}, {now_sql}, "
                    f"%(me)s, {now_sql} FROM mpp_payments p WHERE p.state IN {IN_FLIGHT_SQL} "
                    "AND p.owner <> %(me)s AND NOT EXISTS "
                    "(SELECT 1 FROM mpp_leases l WHERE l.owner = p.owner) "
                    "ON CONFLICT (owner) DO NOTHING RETURNING owner",
                    args,
                ).fetchall()
            ]
            if not owners:
                return []
            rows = conn.execute(
                "SELECT id, state, held, created_at, currency_id, exposure, origin, method "
                "FROM mpp_payments WHERE owner = ANY(%s) AND state = ANY(%s) ORDER BY seq "
                "FOR UPDATE",
                (owners, _IN_FLIGHT),
            ).fetchall()
            token = uuid.uuid4().hex
            for row in rows:
                if on_restart(row["state"]) == "failed":
                    # Nothing was signed (methods checkpoint before anything can move value).
                    change = _Change(None, None, None,
                                     "the paying process ended before anything was signed",
                                     0, None, None, None)  # fmt: skip
                    self._move_released(conn, row["id"], row, change, token)
                else:
                    conn.execute(
                        "UPDATE mpp_payments SET state = 'unknown', updated_at = %s, "
                        "reason = %s, write_id = %s WHERE id = %s",
                        (self._clock(),
                         f"the paying process ended after the payment was {row['state']} "
                         "(its lease expired)", token, row["id"]),
                    )  # fmt: skip
                    became_unknown.append(row["id"])
            log.info("payment journal %s: claimed %d expired lease(s): %d entries unknown",
                     self.where, len(owners), len(became_unknown))  # fmt: skip
        return became_unknown

    # --- reading -------------------------------------------------------------------------------

    def _rows(self, where: str, args: tuple[Any, ...]) -> list[DictRow]:
        def read(conn: Connection) -> list[DictRow]:
            return conn.execute(f"SELECT * FROM mpp_payments {where}", args).fetchall()  # noqa: S608

        return self._retrying(read, f"read the payment journal {self.where}")

    def _select(self, where: str, args: tuple[Any, ...]) -> list[PaymentRecord]:
        records, damaged = _decode(self._rows(where, args))
        for entry in damaged:
            if entry.seq not in self._warned:
                self._warned.add(entry.seq)
                log.warning(
                    "payment journal %s: entry %s (row %d) is damaged and skipped (%s)",
                    self.where, entry.id, entry.seq, entry.problem,
                )  # fmt: skip
        return records

    def damaged(self) -> list[DamagedEntry]:
        """Every entry that cannot be read back (oldest first); see ``SqliteJournal.damaged``."""
        return _decode(self._rows("ORDER BY seq", ()))[1]

    def close(self) -> None:
        """Stop the heartbeat, end this process's lease (other processes may claim what it left
        in flight at once) and close the connections."""
        with self._lock:
            if self._closed:
                return
            self._stop.set()
            self._later_stop.set()
            self._later_wake.set()
            pool, self._pool = self._pool, None
            if pool is not None and os.getpid() == self._pid:
                if self._later:
                    with contextlib.suppress(psycopg.Error), pool.connection(timeout=2) as conn:
                        self._write_later(conn)
                    if self._later:
                        log.warning(
                            "payment journal %s: %d settled mark(s) not written (the database "
                            "is unreachable); those payments stay sent and held until reconciled",
                            self.where,
                            len(self._later),
                        )
                if self._owner_id is not None and self._lease_written:
                    now_sql, now = self._lease_now_sql()
                    with contextlib.suppress(psycopg.Error), pool.connection(timeout=2) as conn:
                        conn.execute(
                            f"UPDATE mpp_leases SET expires_at = {now_sql} "  # noqa: S608
                            "WHERE owner = %(owner)s AND claimed_by IS NULL",
                            {"owner": self._owner_id, "now": now},
                        )
                pool.close()
            self._closed = True


def _fields(change: _Change) -> dict[str, Any]:
    return {name: getattr(change, name) for name in _Change.__slots__}


def _channel(row: DictRow) -> ChannelRecord:
    # The SQLite store's decoder: it reads columns by name, as a DictRow gives them.
    return _channel_record(cast(Any, row))


_CHANNEL_SELECT = f"SELECT {_CHANNEL_COLUMNS} FROM mpp_channels"  # noqa: S608 - constant columns


class PostgresChannelStore(ChannelStore):
    """Sessions' channel records (``mpp_client.wallet.channels``) in a ``PostgresJournal``'s
    database, table ``mpp_channels`` (schema 2), with the SQLite store's rules across hosts:

    - One writer per channel: every change is one transaction that first takes the channel's
      row lock (``SELECT ... FOR UPDATE``), so two processes writing one channel run one after
      the other, the second seeing what the first committed.
    - ``record_voucher`` is the same compare-and-set under that lock: never lower than the
      highest recorded (``VoucherRegression``), an equal amount returns the stored signature.
    - Changes that can precede moving value (open, voucher, top-up, state, close, secret, note)
      commit with ``synchronous_commit`` on before they return; ``accept`` commits without
      waiting for the flush (what the server acknowledged is re-learnt from its next receipt).
    - ``settle_close`` lowers the deposit entries' exposure and their running totals in the
      same transaction, under the journal's write lock (as every change of the totals).

    Through a lost connection a change is retried for up to the journal's
    ``reconnect_timeout``; every change is idempotent (a voucher resent at the same amount, an
    open found already recorded with the same id, method and key), so a lost commit
    acknowledgement never records twice.
    """

    def __init__(self, journal: PostgresJournal, *, clock: Clock | None = None) -> None:
        # Not ChannelStore.__init__: no SQLite file; the journal's pool serves every query.
        self.path = journal.where
        self.clock = clock if clock is not None else SYSTEM_CLOCK
        self._pg = journal

    def __repr__(self) -> str:
        return f"PostgresChannelStore({self._pg.where!r})"

    def close(self) -> None:
        """Nothing to close: the connections are the journal's."""

    def _change(
        self,
        work: Callable[[Connection], T],
        doing: str,
        *,
        durable: bool = True,
        again: Callable[[Connection], T] | None = None,
    ) -> T:
        def run(step: Callable[[Connection], T]) -> Callable[[Connection], T]:
            def transaction(conn: Connection) -> T:
                with conn.transaction():
                    if durable:
                        conn.execute("SET LOCAL synchronous_commit TO on")
                    return step(conn)

            return transaction

        return self._pg._retrying(run(work), doing, again=None if again is None else run(again))

    @staticmethod
    def _locked(conn: Connection, channel_id: str, columns: str) -> DictRow:
        row = conn.execute(
            f"SELECT {columns} FROM mpp_channels WHERE id = %s FOR UPDATE",  # noqa: S608
            (channel_id,),
        ).fetchone()
        if row is None:
            raise JournalError(f"no session record {channel_id}")
        return row

    def open(self, channel: NewChannel) -> ChannelRecord:
        """Record a new session as ``opening`` (durably). ``JournalError`` when a session with
        this id exists already."""
        now = self.clock.time()
        refs = [channel.deposit_ref] if channel.deposit_ref else []
        values = (
            channel.id, channel.method, channel.origin, channel.payee, channel.currency,
            channel.network, channel.lookup_key,
            json.dumps(dict(channel.details), sort_keys=True), str(channel.deposit),
            str(channel.highest_signed), channel.voucher, "0", None, "opening",
            json.dumps(refs), now, now,
        )  # fmt: skip

        def insert(conn: Connection) -> bool:
            try:
                with conn.transaction():
                    conn.execute(
                        f"INSERT INTO mpp_channels ({_CHANNEL_COLUMNS}) VALUES "  # noqa: S608
                        f"({', '.join(['%s'] * len(values))})",
                        values,
                    )
            except psycopg.errors.UniqueViolation:
                return False
            return True

        def insert_again(conn: Connection) -> bool:
            # After a lost acknowledgement: the row this store wrote (same id, method, key and
            # creation time) means the first try committed.
            row = conn.execute(
                "SELECT method, lookup_key, created_at FROM mpp_channels WHERE id = %s",
                (channel.id,),
            ).fetchone()
            if row is not None:
                return (row["method"], row["lookup_key"], row["created_at"]) == (
                    channel.method,
                    channel.lookup_key,
                    now,
                )
            return insert(conn)

        if not self._change(insert, f"record session {channel.id}", again=insert_again):
            raise JournalError(f"session {channel.id} is already recorded")
        return self._written(channel.id)

    def record_voucher(
        self, channel_id: str, cumulative: int, signature: str, *, fsync: bool = True
    ) -> ChannelRecord:
        """Compare-and-set the highest signed voucher under the channel's row lock (see the
        class docstring). Returns the record as stored. ``fsync`` is accepted for the
        ``ChannelStore`` signature; this store always commits a voucher with the WAL flush."""
        if cumulative < 0:
            raise ValueError("a cumulative amount is never negative")

        def cas(conn: Connection) -> ChannelRecord:
            row = self._locked(conn, channel_id, _CHANNEL_COLUMNS)
            highest = int(row["highest_signed"])
            check_voucher(channel_id, cumulative, highest, int(row["deposit"]), row["state"])
            if cumulative == highest:
                return _channel(row)
            updated = conn.execute(
                "UPDATE mpp_channels SET highest_signed = %s, voucher = %s, "  # noqa: S608
                f"updated_at = %s WHERE id = %s RETURNING {_CHANNEL_COLUMNS}",
                (str(cumulative), signature, self.clock.time(), channel_id),
            ).fetchone()
            assert updated is not None  # the row is locked by this transaction
            return _channel(updated)

        return self._change(cas, f"record a voucher of session {channel_id}")

    def accept(self, channel_id: str, accepted: int, *, state: ChannelState = "open") -> None:
        """Move ``highest_accepted`` up to ``accepted`` (never above ``highest_signed``, never
        down) and the state from ``opening`` to ``state``."""

        def move(conn: Connection) -> None:
            row = conn.execute(
                "SELECT highest_signed, highest_accepted, state FROM mpp_channels "
                "WHERE id = %s FOR UPDATE",
                (channel_id,),
            ).fetchone()
            if row is None:
                return
            value, new_state = accepted_move(row, accepted, state)
            conn.execute(
                "UPDATE mpp_channels SET highest_accepted = %s, state = %s, updated_at = %s "
                "WHERE id = %s",
                (str(value), new_state, self.clock.time(), channel_id),
            )

        self._change(move, f"record what session {channel_id} accepted", durable=False)

    def topped_up(self, channel_id: str, deposit: int, deposit_ref: str | None) -> None:
        """The deposit grew to ``deposit`` (never lowered; ``deposit_ref`` added once)."""

        def grow(conn: Connection) -> None:
            row = self._locked(conn, channel_id, "deposit, deposit_refs")
            refs = list(json.loads(row["deposit_refs"]))
            if deposit_ref and deposit_ref not in refs:
                refs.append(deposit_ref)
            conn.execute(
                "UPDATE mpp_channels SET deposit = %s, deposit_refs = %s, updated_at = %s "
                "WHERE id = %s",
                (str(max(deposit, int(row["deposit"]))), json.dumps(refs), self.clock.time(),
                 channel_id),
            )  # fmt: skip

        self._change(grow, f"record a top-up of session {channel_id}")

    def set_state(self, channel_id: str, state: ChannelState) -> None:
        """Move a session to ``state``."""
        if state not in _CHANNEL_STATES:
            raise ValueError(f"unknown session state {state!r}")
        self._change(
            lambda conn: conn.execute(
                "UPDATE mpp_channels SET state = %s, updated_at = %s WHERE id = %s",
                (state, self.clock.time(), channel_id),
            ),
            f"record that session {channel_id} is {state}",
        )

    def settle_close(self, channel_id: str, *, paid: int, refund: int) -> ChannelRecord:
        """The close settled: records ``paid`` and ``refund`` and lowers the exposure of the
        session's deposit entries (latest first) and their running totals by ``refund``, in
        one transaction under the journal's write lock."""
        now = self.clock.time()

        def close(conn: Connection) -> None:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
            row = self._locked(conn, channel_id, "deposit_refs, state")
            if row["state"] == "closed":
                return  # settled already (or a retry after a lost acknowledgement)
            left = refund
            for ref in reversed(json.loads(row["deposit_refs"])):
                if left <= 0:
                    break
                entry = conn.execute(
                    # Only an entry still exposing money (a zero-amount entry sharing the
                    # reference has nothing to give back).
                    "SELECT id, exposure, created_at, currency_id, origin, method "
                    "FROM mpp_payments WHERE reference = %s AND held = 1 AND exposure > 0 "
                    "ORDER BY seq DESC LIMIT 1 FOR UPDATE",
                    (ref,),
                ).fetchone()
                if entry is None:
                    continue
                cut = min(left, int(entry["exposure"]))
                conn.execute(
                    "UPDATE mpp_payments SET exposure = exposure - %s, updated_at = %s, "
                    "reason = COALESCE(reason || '; ', '') || %s WHERE id = %s",
                    (cut, now, f"session {channel_id} closed: {cut} refunded", entry["id"]),
                )
                # Payee totals count the payees' amounts, which a refund does not change
                # (as the SQLite journal's triggers): only the exposure scopes drop.
                _write_buckets(
                    conn,
                    _bucket_deltas(entry["created_at"], entry["currency_id"], cut,
                                   entry["origin"], entry["method"], (), -1),
                )  # fmt: skip
                left -= cut
            conn.execute(
                "UPDATE mpp_channels SET state = 'closed', refund = %s, highest_accepted = %s, "
                "updated_at = %s WHERE id = %s",
                (str(refund), str(paid), now, channel_id),
            )

        self._change(close, f"record the close of session {channel_id}")
        return self._written(channel_id)

    def note(self, channel_id: str, **facts: Any) -> ChannelRecord:
        """Merge ``facts`` (JSON values) into the session's ``details``, durably."""

        def merge(conn: Connection) -> None:
            row = self._locked(conn, channel_id, "details")
            details = {**json.loads(row["details"]), **facts}
            conn.execute(
                "UPDATE mpp_channels SET details = %s, updated_at = %s WHERE id = %s",
                (json.dumps(details, sort_keys=True), self.clock.time(), channel_id),
            )

        self._change(merge, f"record a fact of session {channel_id}")
        return self._written(channel_id)

    def set_secret(self, channel_id: str, secret: str) -> None:
        """Store the session's bearer secret in a column no listing shows."""
        self._change(
            lambda conn: conn.execute(
                "UPDATE mpp_channels SET secret = %s WHERE id = %s", (secret, channel_id)
            ),
            f"record the secret of session {channel_id}",
        )

    def secret(self, channel_id: str) -> Secret[str] | None:
        """The session's bearer secret, wrapped so it is never printed by accident."""
        row = self._pg._retrying(
            lambda conn: conn.execute(
                "SELECT secret FROM mpp_channels WHERE id = %s", (channel_id,)
            ).fetchone(),
            "read the session records",
        )
        if row is None or row["secret"] is None:
            return None
        return Secret(str(row["secret"]))

    def get(self, channel_id: str) -> ChannelRecord | None:
        """The session ``channel_id``, or ``None``."""
        rows = self._select("WHERE id = %s", (channel_id,))
        return rows[0] if rows else None

    def find(
        self, method: str, lookup_key: str, *, states: Sequence[ChannelState] = ("open",)
    ) -> list[ChannelRecord]:
        """Sessions of ``method`` with ``lookup_key`` in one of ``states``, newest first."""
        return self._select(
            "WHERE method = %s AND lookup_key = %s AND state = ANY(%s) ORDER BY created_at DESC",
            (method, lookup_key, list(states)),
        )

    def channels(self, *, method: str | None = None) -> list[ChannelRecord]:
        """Every session (of ``method``), oldest first."""
        if method is None:
            return self._select("ORDER BY created_at", ())
        return self._select("WHERE method = %s ORDER BY created_at", (method,))

    def _select(self, where: str, args: tuple[Any, ...]) -> list[ChannelRecord]:
        rows = self._pg._retrying(
            lambda conn: conn.execute(f"{_CHANNEL_SELECT} {where}", args).fetchall(),
            "read the session records",
        )
        return [_channel(row) for row in rows]
