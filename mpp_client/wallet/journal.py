"""The payment journal: a write-ahead record of every payment, durable across crashes.

Every payment follows the lifecycle of ``mpp_client.lifecycle`` (``reserved -> signed ->
broadcast -> sent -> settled | failed | unknown``) and each step is written before the step it
names can move value. A hold is released only with a proof: once a payment was ``broadcast`` or
``sent``, ``advance(..., "failed", money_moved=False)`` without a ``proof`` records ``unknown``
instead (the amount stays held). The journal is also where budgets are
counted, so ``reserve`` checks the policy and inserts the entry inside one write transaction
(``BEGIN IMMEDIATE``): threads, asyncio tasks and processes sharing a journal file can never
overrun a cap together. Rolling-window and lifetime totals are read from running totals
(per second, minute and hour, per currency and scope) that triggers keep in the same
transaction as every change, so checking a cap costs the same with ten payments in the day or
ten thousand, and stays exact to the payment at the window's edge (see schema 2 below).

Durability. The file is in WAL mode with ``synchronous=NORMAL``, which survives a crash of the
process (SIGKILL included) at every commit, and the ``sent`` step (the last write before a
credential leaves the process) and the ``broadcast`` step (the last before a method sends
value itself) are committed with ``synchronous=FULL`` (switched for that one commit on the
journal's one write connection), which fsyncs the WAL and with it every earlier step. So
after a power loss the journal may lose a reservation or a ``settled`` mark, but never forget
a payment that could have left the machine: a lost ``settled`` falls back to ``sent`` and is
reconciled. This costs one fsync per payment.

``advance_later`` writes a ``settled`` mark in the background (the journal's writer thread):
the caller does not wait for it, and every later read or write of this journal object runs
the marks handed over before it first, so this process always reads what it wrote. Losing one
in a crash is the same as losing it to a power loss: the entry stays ``sent`` (held) until
reconciled.

``SqliteJournal(":memory:")`` is a throwaway journal for one process (tests, demos).
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import logging
import math
import os
import queue
import re
import socket
import sqlite3
import threading
import uuid
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any, ClassVar, Protocol, get_args

from mpp_client.clock import SYSTEM_CLOCK, Clock
from mpp_client.errors import AlreadyPaid, JournalError
from mpp_client.lifecycle import (
    IN_FLIGHT_STATES,
    PaymentState,
    Proof,
    allowed_sources,
    holds,
    on_restart,
    release_needs_proof,
)
from mpp_client.methods.base import Payee
from mpp_client.money import Currency, Money
from mpp_client.protocol.receipt import Receipt
from mpp_client.wallet.policy import Ledger, Pin

__all__ = [
    "HELD_STATES",
    "DamagedEntry",
    "Journal",
    "JournalTransaction",
    "NewPayment",
    "PaymentRecord",
    "PaymentState",
    "SqliteJournal",
    "default_journal_path",
    "open_journal",
    "write_csv",
    "write_jsonl",
]

log = logging.getLogger("mpp_client.wallet")

#: States whose amount counts against budgets (``failed`` counts only when money moved).
HELD_STATES: frozenset[str] = IN_FLIGHT_STATES | {"settled", "unknown"}


def default_journal_path() -> str:
    """Where ``Wallet()`` keeps its journal unless told otherwise: ``$MPP_JOURNAL``, else
    ``journal.sqlite3`` in the user data directory (``$XDG_DATA_HOME/mpp-client`` or
    ``~/.local/share/mpp-client`` on Linux, ``~/Library/Application Support/mpp-client`` on
    macOS, ``%LOCALAPPDATA%\\mpp-client`` on Windows)."""
    if env := os.environ.get("MPP_JOURNAL"):
        return env
    home = os.path.expanduser("~")
    if os.name == "nt":
        base = os.environ.get("LOCALAPPDATA") or os.path.join(home, "AppData", "Local")
    elif os.uname().sysname == "Darwin":
        base = os.path.join(home, "Library", "Application Support")
    else:
        base = os.environ.get("XDG_DATA_HOME") or os.path.join(home, ".local", "share")
    return os.path.join(base, "mpp-client", "journal.sqlite3")


def open_journal(
    target: str | os.PathLike[str], *, clock: Clock | Callable[[], float] | None = None
) -> Journal:
    """The journal ``target`` names: a ``postgresql://`` or ``postgres://`` URL opens a
    ``PostgresJournal`` (the ``postgres`` extra; psycopg is imported only then), anything else
    is an SQLite file (or ``":memory:"``)."""
    text = os.fspath(target)
    if text.lower().startswith(("postgresql://", "postgres://")):
        from mpp_client.wallet.postgres import PostgresJournal

        return PostgresJournal(text, clock=clock)
    return SqliteJournal(text, clock=clock)


@dataclass(frozen=True, slots=True)
class NewPayment:
    """What ``reserve`` writes for a new entry. Amounts are base units of ``currency``;
    ``exposure`` is amount plus the maximum fee when the fee is in the same currency."""

    call_id: str
    challenge_id: str
    realm: str | None
    origin: str
    url: str
    http_method: str
    method: str
    intent: str
    amount: Money
    exposure: int
    max_fee: Money | None
    network: str | None
    payees: tuple[Payee, ...]
    expires: datetime | None
    label: str | None
    #: The paying account (``PaymentMethod.payer``), never a secret.
    payer: str | None = None
    #: A reference known before paying (a Lightning payment hash): at most one held entry
    #: may carry it.
    reference: str | None = None


@dataclass(frozen=True, slots=True)
class PaymentRecord:
    """One journal entry as read back. ``amount`` and ``exposure`` are in base units of
    ``amount.currency``; times are UTC. ``receipt`` is the server's receipt as JSON data;
    ``fingerprint`` is a SHA-256 of the credential (the credential itself is never stored)."""

    id: str
    state: PaymentState
    created_at: datetime
    updated_at: datetime
    call_id: str
    challenge_id: str
    realm: str | None
    origin: str
    url: str
    http_method: str
    method: str
    intent: str
    amount: Money
    exposure: int
    max_fee: Money | None
    network: str | None
    payees: tuple[Payee, ...]
    expires: datetime | None
    label: str | None
    reference: str | None
    fingerprint: str | None
    receipt: Any
    reason: str | None
    money_moved: bool | None
    owner: str
    #: Who paid (``PaymentMethod.payer``): reconciliation trusts only that account's lookup.
    payer: str | None = None
    #: What released the hold or resolved the entry (``mpp_client.lifecycle.Proof``).
    proof: str | None = None
    #: The server's receipt reference when it differs from ``reference`` (checked by
    #: reconciliation).
    receipt_reference: str | None = None
    #: When what was signed can no longer settle (a Tempo ``valid_before``), if known.
    void_after: datetime | None = None

    @property
    def held(self) -> bool:
        """Whether the amount counts against the budgets."""
        return holds(self.state, self.money_moved)

    def to_dict(self) -> dict[str, Any]:
        """The entry as JSON-ready data (amounts as integers of base units)."""
        cur = self.amount.currency
        return {
            "id": self.id,
            "state": self.state,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "call_id": self.call_id,
            "challenge_id": self.challenge_id,
            "realm": self.realm,
            "origin": self.origin,
            "url": self.url,
            "http_method": self.http_method,
            "method": self.method,
            "intent": self.intent,
            "amount": self.amount.amount,
            "exposure": self.exposure,
            "currency": cur.code,
            "decimals": cur.decimals,
            "currency_network": cur.network,
            "symbol": cur.symbol,
            "amount_display": str(self.amount),
            "max_fee": None if self.max_fee is None else self.max_fee.amount,
            "network": self.network,
            "payees": [{"address": p.address, "amount": p.amount} for p in self.payees],
            "expires": None if self.expires is None else self.expires.isoformat(),
            "label": self.label,
            "reference": self.reference,
            "fingerprint": self.fingerprint,
            "receipt": self.receipt,
            "reason": self.reason,
            "money_moved": self.money_moved,
            "held": self.held,
            "payer": self.payer,
            "proof": self.proof,
            "receipt_reference": self.receipt_reference,
            "void_after": None if self.void_after is None else self.void_after.isoformat(),
        }


class JournalTransaction(Ledger, Protocol):
    """A ``Ledger`` inside the journal's write transaction, which can also write."""

    def insert(self, payment: NewPayment) -> str:
        """Write a ``reserved`` entry; return its id."""
        ...

    def set_pin(self, origin: str, method: str, pin: Pin) -> None:
        """Store the first-use pin of ``origin`` for ``method``."""
        ...


class Journal(Protocol):
    """A store of payments. ``SqliteJournal`` is the embedded implementation; another store
    must give the same guarantee: ``atomic()`` serialises every writer of every process that
    shares the store, and each ``advance`` is durable when it returns."""

    def atomic(self) -> contextlib.AbstractContextManager[JournalTransaction]:
        """A write transaction: the policy re-check and the insert happen inside it."""
        ...

    def ledger(self, *, call_id: str | None = None) -> Ledger:
        """A read-only view for checks that take no lock. ``call_id``: the request the check
        is for (a store may read that request's figures with the others in one trip)."""
        ...

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
        """Move an entry to ``state``; ``False`` if that transition is not allowed. Releasing
        (``failed`` with ``money_moved=False``) after ``broadcast``/``sent``/``unknown`` needs a
        ``proof``; without one the entry becomes ``unknown`` and stays held."""
        ...

    def get(self, entry_id: str) -> PaymentRecord | None:
        """One entry by id."""
        ...

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
        """Entries matching every filter, oldest first."""
        ...

    def already_paid(self, reference: str) -> bool:
        """Whether value has (or may have) moved for ``reference`` already."""
        ...

    def unresolved(self) -> list[str]:
        """Ids of the entries whose outcome is unknown (the circuit breaker counts them)."""
        ...

    def recover(self) -> list[PaymentRecord]:
        """Resolve entries left in flight by processes that no longer exist; return those that
        became ``unknown``."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


# The states other than ``unknown``: an entry in none of them is ``unknown`` or in a state this
# code does not know (a damaged row); the circuit breaker counts both.
_UNRESOLVED_WHERE = "state NOT IN ({})".format(
    ", ".join(f"'{_state}'" for _state in sorted(get_args(PaymentState)) if _state != "unknown")
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS payments (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    state TEXT NOT NULL,
    held INTEGER NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    call_id TEXT NOT NULL,
    challenge_id TEXT NOT NULL,
    realm TEXT,
    origin TEXT NOT NULL,
    url TEXT NOT NULL,
    http_method TEXT NOT NULL,
    method TEXT NOT NULL,
    intent TEXT NOT NULL,
    amount INTEGER NOT NULL,
    exposure INTEGER NOT NULL,
    currency_code TEXT NOT NULL,
    currency_decimals INTEGER NOT NULL,
    currency_network TEXT,
    currency_symbol TEXT,
    usd_pegged INTEGER NOT NULL,
    currency_id INTEGER NOT NULL,
    max_fee INTEGER,
    max_fee_currency TEXT,
    network TEXT,
    payees TEXT NOT NULL,
    expires TEXT,
    label TEXT,
    reference TEXT,
    fingerprint TEXT,
    receipt TEXT,
    reason TEXT,
    money_moved INTEGER,
    owner TEXT NOT NULL
);
-- Window totals sum the payments of the window's first second (and of scopes without running
-- totals) as range scans of this covering index, one per currency.
CREATE INDEX IF NOT EXISTS payments_window ON payments (held, currency_id, created_at, exposure);
CREATE TABLE IF NOT EXISTS currencies (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    code TEXT NOT NULL,
    decimals INTEGER NOT NULL,
    network TEXT,
    symbol TEXT,
    usd_pegged INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS payments_call ON payments (call_id);
CREATE INDEX IF NOT EXISTS payments_reference ON payments (reference);
CREATE INDEX IF NOT EXISTS payments_state ON payments (state);
CREATE TABLE IF NOT EXISTS payment_payees (
    payment_id TEXT NOT NULL,
    address TEXT NOT NULL,
    amount INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS payment_payees_address ON payment_payees (address, payment_id);
CREATE TABLE IF NOT EXISTS pins (
    origin TEXT NOT NULL,
    method TEXT NOT NULL,
    payees TEXT NOT NULL,
    token TEXT NOT NULL,
    network TEXT,
    pinned_at REAL NOT NULL,
    PRIMARY KEY (origin, method)
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT OR IGNORE INTO meta (key, value) VALUES ('schema', '1');
"""
# The circuit breaker asks on every reservation which entries are unresolved: a partial index
# holding only those rows answers in the same time with ten payments or a million. (Only an
# index: a journal with it is read and written by older versions of this code unchanged.)
_SCHEMA += (
    f"CREATE INDEX IF NOT EXISTS payments_unresolved ON payments (seq) WHERE {_UNRESOLVED_WHERE};"
)

_CURRENCY_COLUMNS = (
    "currency_code, currency_decimals, currency_network, currency_symbol, usd_pegged"
)

# --- schema 2: running totals ---------------------------------------------------------------------
#
# Summing every held payment of a rolling day costs time in proportion to the payments in it.
# Instead each held payment adds its exposure to running totals ("buckets") of 1 s, 1 min and
# 1 h and to a lifetime total, per currency and per scope: every payment (``''``), its origin
# (``'o:' || origin``), its method (``'m:' || method``) and each payee (``'p:' || address``,
# with the payee's share). A window ``(since, now]`` is then the payments after ``since`` in its
# second (an index range of at most one second of payments), plus at most 59 second buckets,
# 59 minute buckets and one hour bucket per hour of the window: exact, and independent of how
# many payments the window holds.
#
# Triggers keep the buckets in the same transaction as every change to ``payments`` and
# ``payment_payees`` (insert, ``held`` flips, delete), whoever writes the file: older versions
# of this library sharing the file keep them right too.
#
# A bucket holds the payments whose whole second ``floor(created_at)`` falls in
# ``[start, start + span)``; ``span`` 0 is the lifetime total (``start`` 0). Integer arithmetic
# on the whole second keeps the bucket of a payment and the window edge in exact agreement.
_SPANS = (1, 60, 3600)
#: Buckets of 1 s, 1 min and 1 h older than this are deleted (windows are at most a day long).
_PRUNE_AGE = 2 * 86400
#: How often one process prunes (seconds of journal clock).
_PRUNE_EVERY = 3600.0
_PRUNED_KEY = "buckets_pruned_before"


def _watermark(value: object) -> int | None:
    """The pruning watermark (whole Unix seconds, stored as text: ten digits today, so not
    ``_SCHEMA_TEXT``); ``None`` if unreadable (the next prune then rewrites it)."""
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 18:
        return int(value)
    return None


def _second(time: str) -> str:
    """SQL for ``floor(time)`` as an integer (CAST truncates towards zero)."""
    return f"(CAST({time} AS INTEGER) - ({time} < CAST({time} AS INTEGER)))"


def _bucket_rows(row: str, amount: str, scope: str, sources: str, where: str) -> str:
    """An upsert adding ``amount`` to every bucket of payments row ``row``; ``scope`` is an SQL
    expression over ``sources`` (joined to the spans ``g``)."""
    second = _second(f"{row}.created_at")
    spans = " UNION ALL ".join(["SELECT 0 AS span", *(f"SELECT {s}" for s in _SPANS)])
    return (
        "INSERT INTO held_buckets (scope, currency_id, span, start, total) "  # noqa: S608
        f"SELECT {scope}, {row}.currency_id, g.span, "
        f"CASE g.span WHEN 0 THEN 0 ELSE {second} - ((({second}) % g.span) + g.span) % g.span END, "
        f"{amount} FROM ({spans}) g{sources} WHERE {where} "
        "ON CONFLICT (scope, currency_id, span, start) DO UPDATE SET total = total + excluded.total"
    )


def _payment_buckets(row: str, sign: str, where: str = "true", sources: str = "") -> str:
    """The every-payment, origin and method buckets of payments row ``row``."""
    scope = (
        f"CASE k.kind WHEN 0 THEN '' WHEN 1 THEN 'o:' || {row}.origin ELSE 'm:' || {row}.method END"
    )
    kinds = ", (SELECT 0 AS kind UNION ALL SELECT 1 UNION ALL SELECT 2) k"
    return _bucket_rows(row, f"{sign}{row}.exposure", scope, kinds + sources, where)


def _payee_buckets(row: str, payee: str, sign: str, sources: str, where: str) -> str:
    return _bucket_rows(row, f"{sign}{payee}.amount", f"'p:' || {payee}.address", sources, where)


def _payee_buckets_of(row: str, sign: str) -> str:
    """Every payee of payments row ``row`` (OLD or NEW in a trigger), if it is held."""
    return _payee_buckets(
        row, "y", sign, ", payment_payees y", f"y.payment_id = {row}.id AND {row}.held = 1"
    )


def _payee_buckets_for(payee: str, sign: str) -> str:
    """The payee row ``payee`` (OLD or NEW in a trigger), if its payment is held."""
    return _payee_buckets(
        "p", payee, sign, ", payments p", f"p.id = {payee}.payment_id AND p.held = 1"
    )


_COUNTED = ("id", "held", "created_at", "currency_id", "exposure", "origin", "method")
_CHANGED = " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in _COUNTED)

_SCHEMA_2: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS held_buckets (
        scope TEXT NOT NULL,
        currency_id INTEGER NOT NULL,
        span INTEGER NOT NULL,
        start INTEGER NOT NULL,
        -- SQLite turns an overflowing integer sum into an inexact float: refuse it instead.
        total INTEGER NOT NULL CHECK (typeof(total) = 'integer'),
        PRIMARY KEY (scope, currency_id, span, start)
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS payment_payees_payment ON payment_payees (payment_id)",
    "CREATE TRIGGER IF NOT EXISTS held_buckets_insert AFTER INSERT ON payments "
    "WHEN NEW.held = 1 BEGIN "
    f"{_payment_buckets('NEW', '+')}; {_payee_buckets_of('NEW', '+')}; END",
    f"CREATE TRIGGER IF NOT EXISTS held_buckets_update AFTER UPDATE OF {', '.join(_COUNTED)} "
    f"ON payments WHEN {_CHANGED} BEGIN "
    f"{_payment_buckets('OLD', '-', 'OLD.held = 1')}; {_payee_buckets_of('OLD', '-')}; "
    f"{_payment_buckets('NEW', '+', 'NEW.held = 1')}; {_payee_buckets_of('NEW', '+')}; END",
    "CREATE TRIGGER IF NOT EXISTS held_buckets_delete AFTER DELETE ON payments "
    "WHEN OLD.held = 1 BEGIN "
    f"{_payment_buckets('OLD', '-')}; {_payee_buckets_of('OLD', '-')}; END",
    "CREATE TRIGGER IF NOT EXISTS held_buckets_payee_insert AFTER INSERT ON payment_payees "
    f"BEGIN {_payee_buckets_for('NEW', '+')}; END",
    "CREATE TRIGGER IF NOT EXISTS held_buckets_payee_update AFTER UPDATE ON payment_payees "
    f"BEGIN {_payee_buckets_for('OLD', '-')}; {_payee_buckets_for('NEW', '+')}; END",
    "CREATE TRIGGER IF NOT EXISTS held_buckets_payee_delete AFTER DELETE ON payment_payees "
    f"BEGIN {_payee_buckets_for('OLD', '-')}; END",
    # Existing journals: count what is already held.
    "DELETE FROM held_buckets",
    _payment_buckets("p", "+", "p.held = 1", ", payments p"),
    _payee_buckets(
        "p", "y", "+", ", payment_payees y, payments p", "p.id = y.payment_id AND p.held = 1"
    ),
    "UPDATE meta SET value = '2' WHERE key = 'schema'",
)
# Schema 3: who paid, what proved a release, the receipt's own reference, and when a signed
# authorization stops being able to settle.
_SCHEMA_3_COLUMNS = (
    ("payer", "TEXT"),
    ("proof", "TEXT"),
    ("receipt_reference", "TEXT"),
    ("void_after", "REAL"),
)
_SCHEMA_VERSION = 3

_UNRESOLVED_SQL = (
    "SELECT id FROM payments INDEXED BY payments_unresolved "  # noqa: S608 - constants only
    f"WHERE {_UNRESOLVED_WHERE} ORDER BY seq"
)
#: ``meta.schema`` as written by this code: digits only.
_SCHEMA_TEXT = re.compile(r"[0-9]{1,9}")


def _decode_text(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def _process_start(pid: int) -> str:
    # The start time tells a live process from a later one that reused its pid.
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read()
    except OSError:
        return ""
    fields = stat[stat.rfind(b")") + 2 :].split()
    return fields[19].decode() if len(fields) > 19 else ""


_owner_cache: dict[int, str] = {}


def _owner() -> str:
    pid = os.getpid()
    if pid not in _owner_cache:
        _owner_cache[pid] = f"{socket.gethostname()}:{pid}:{_process_start(pid)}"
    return _owner_cache[pid]


def _owner_alive(owner: str) -> bool:
    host, _, rest = owner.partition(":")
    pid_text, _, started = rest.partition(":")
    if host != socket.gethostname():
        return True  # another machine's process: never presume it dead
    try:
        pid = int(pid_text)
    except ValueError:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not started or _process_start(pid) in ("", started)


def _receipt_data(receipt: Any) -> Any:
    """Receipt objects as JSON data (they hold no secrets: reference, method, timestamp)."""
    if receipt is None or isinstance(receipt, (dict, list, str, int, float, bool)):
        return receipt
    if type(receipt) is Receipt:
        # The fields ``dataclasses.asdict`` gives, without its deep copy and JSON round trip:
        # the one caller encodes this once, values JSON cannot hold as text, the same text.
        return {
            "status": receipt.status,
            "method": receipt.method,
            "timestamp": receipt.timestamp,
            "reference": receipt.reference,
            "challenge_id": receipt.challenge_id,
            "extra": dict(receipt.extra),
        }
    for attribute in ("to_dict", "as_dict", "to_json_dict"):
        method = getattr(receipt, attribute, None)
        if callable(method):
            return method()
    import dataclasses

    if dataclasses.is_dataclass(receipt) and not isinstance(receipt, type):
        return json.loads(json.dumps(dataclasses.asdict(receipt), default=str))
    return str(receipt)


_journals: weakref.WeakSet[SqliteJournal] = weakref.WeakSet()


def _close_connections(connections: list[sqlite3.Connection]) -> None:
    for conn in connections:
        with contextlib.suppress(sqlite3.Error):
            conn.close()
    connections.clear()


def _after_fork() -> None:
    # A lock held by another thread at fork time would never be released in the child, and
    # SQLite connections must not cross a fork: the child starts clean.
    for journal in list(_journals):
        journal._reset_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


@dataclass(frozen=True, slots=True)
class _Change:
    """The columns one ``advance`` may fill in (``None`` keeps what is there)."""

    reference: str | None
    fingerprint: str | None
    receipt: str | None
    reason: str | None
    moved: int | None
    proof: str | None
    receipt_reference: str | None
    void_after: float | None

    @classmethod
    def of(
        cls,
        *,
        reference: str | None,
        fingerprint: str | None,
        receipt: Any,
        reason: str | None,
        money_moved: bool | None,
        proof: Proof | None,
        receipt_reference: str | None,
        void_after: datetime | None,
    ) -> _Change:
        """The stored form of ``advance``'s arguments (every journal store encodes the same)."""
        receipt_text = None
        if receipt is not None:
            receipt_text = json.dumps(_receipt_data(receipt), default=str, sort_keys=True)
        return cls(
            reference=reference,
            fingerprint=fingerprint,
            receipt=receipt_text,
            reason=reason,
            moved=None if money_moved is None else int(money_moved),
            proof=proof,
            receipt_reference=receipt_reference,
            void_after=None if void_after is None else void_after.timestamp(),
        )


def _payments_where(
    param: str,
    state_in: Callable[[list[str]], tuple[str, list[Any]]],
    *,
    state: PaymentState | Sequence[PaymentState] | None,
    origin: str | None,
    method: str | None,
    reference: str | None,
    label: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int | None,
) -> tuple[str, tuple[Any, ...]]:
    """The ``WHERE ... ORDER BY ... LIMIT`` clause and arguments of ``payments()``, for a store
    whose placeholder is ``param``; ``state_in`` gives its clause matching a list of states."""
    where: list[str] = []
    args: list[Any] = []
    if state is not None:
        states: list[str] = [state] if isinstance(state, str) else list(state)
        for name in states:
            if name not in get_args(PaymentState):
                raise ValueError(f"unknown payment state {name!r}")
        clause, state_args = state_in(states)
        where.append(clause)
        args.extend(state_args)
    for column, value in (("origin", origin), ("method", method), ("reference", reference)):
        if value is not None:
            where.append(f"{column} = {param}")
            args.append(value)
    if label is not None:
        where.append(f"(label = {param} OR label LIKE {param} OR label LIKE {param})")
        args.extend([label, f"{label}/%", f"%/{label}"])
    if since is not None:
        where.append(f"created_at >= {param}")
        args.append(since.timestamp())
    if until is not None:
        where.append(f"created_at < {param}")
        args.append(until.timestamp())
    sql = ("WHERE " + " AND ".join(where)) if where else ""
    sql += " ORDER BY seq"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return sql, tuple(args)


@contextlib.contextmanager
def _immediate(conn: sqlite3.Connection, what: str) -> Iterator[sqlite3.Connection]:
    """One ``BEGIN IMMEDIATE`` transaction on ``conn``: committed when the block ends, rolled
    back when it raises; SQLite's errors become ``JournalError`` naming ``what``."""
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.Error as exc:
        raise JournalError(f"cannot lock {what}: {exc}") from exc
    try:
        yield conn
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise
    try:
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise JournalError(f"cannot write {what}: {exc}") from exc


#: ``UPDATE`` statements of ``advance`` by (state, allowed sources, release without proof).
_UPDATE_SQL: dict[tuple[str, frozenset[str], bool], str] = {}


def _update_sql(previous: frozenset[str], release: bool) -> str:
    """The ``UPDATE`` moving one entry from one of ``previous`` (the sources as SQL literals:
    lifecycle names only). ``release``: a release without proof, allowed only from states after
    which nothing left the process."""
    sources = sorted(previous)
    if release:
        sources = [s for s in sources if not release_needs_proof(s)]
    states = ", ".join(f"'{s}'" for s in sources)
    return (
        "UPDATE payments SET state=?, held=?, updated_at=?, "  # noqa: S608 - lifecycle names
        "reference=COALESCE(?, reference), fingerprint=COALESCE(?, fingerprint), "
        "receipt=COALESCE(?, receipt), reason=COALESCE(?, reason), "
        "money_moved=COALESCE(?, money_moved), proof=COALESCE(?, proof), "
        "receipt_reference=COALESCE(?, receipt_reference), "
        "void_after=COALESCE(?, void_after) "
        f"WHERE id=? AND state IN ({states})"
    )


def _write_in_background(
    journal_ref: weakref.ReferenceType[SqliteJournal], wake: queue.SimpleQueue[bool]
) -> None:
    """A journal's writer thread: write the steps handed over each time it is woken; told
    ``False`` (the journal closed or collected, the interpreter exiting), it writes what is
    left and ends."""
    try:
        while True:
            more = wake.get()
            journal = journal_ref()
            if journal is None:
                return
            try:
                if not journal._closed:
                    journal._write_later_steps()
            except Exception:  # each step logs its own failure; never end the thread on one
                log.exception("the payment journal's writer thread failed")
            del journal
            if not more:
                return
    finally:
        _writers.discard(wake)


#: The wake-up queues of running writer threads.
_writers: set[queue.SimpleQueue[bool]] = set()


def _stop_writers() -> None:
    # At interpreter exit, before atexit handlers and the teardown: each writer writes what
    # is left and ends (the interpreter waits for it, as it does for an executor's threads).
    for wake in list(_writers):
        wake.put(False)


threading._register_atexit(_stop_writers)  # type: ignore[attr-defined]


class SqliteJournal:
    """The embedded journal: one SQLite file (WAL mode) any number of threads, tasks and
    processes can share. ``path`` may be ``":memory:"`` for a throwaway journal.

    ``clock`` is a ``mpp_client.clock.Clock`` (or a function returning Unix seconds), for
    tests of rolling windows;
    ``busy_timeout`` is how long a writer waits for another process's transaction, seconds.
    """

    #: ``atomic()``'s transaction has ``unresolved()``: the wallet's circuit breaker counts the
    #: unresolved entries inside the hold's own transaction.
    breaker_in_transaction: ClassVar[bool] = True

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        clock: Clock | Callable[[], float] | None = None,
        busy_timeout: float = 30.0,
    ) -> None:
        self.path = os.fspath(path)
        self._memory = self.path == ":memory:"
        if clock is None:
            clock = SYSTEM_CLOCK
        self._clock: Callable[[], float] = clock.time if isinstance(clock, Clock) else clock
        self._busy_timeout = busy_timeout
        self._lock = threading.RLock()
        self._local = threading.local()
        self._shared: sqlite3.Connection | None = None
        #: The one connection of a file journal every write goes through (see ``_writer``).
        self._writer_conn: sqlite3.Connection | None = None
        self._connections: list[sqlite3.Connection] = []
        # A journal dropped without close() still closes its connections (Python 3.13 warns
        # about every SQLite connection left to the garbage collector).
        weakref.finalize(self, _close_connections, self._connections)
        self._closed = False
        self._next_prune = -math.inf  # journal clock time of the next look at old buckets
        self._warned: set[int] = set()  # damaged rows already logged
        #: Currency row ids by key, once committed (rows are never deleted).
        self._currency_ids: dict[str, int] = {}
        #: Steps handed to ``advance_later`` and not yet written, oldest first.
        self._later: deque[Callable[[], None]] = deque()
        #: Wakes the writer thread (``None``: not started in this process yet).
        self._wake: queue.SimpleQueue[bool] | None = None
        # Guards starting that thread; never held during I/O (an event loop may take it).
        self._wake_lock = threading.Lock()
        # Set (under the lock) while the steps handed over are being written.
        self._writing_later = False
        if not self._memory:
            directory = os.path.dirname(os.path.abspath(self.path))
            os.makedirs(directory, mode=0o700, exist_ok=True)
        _journals.add(self)
        try:
            self._init_schema()
        except BaseException:
            self.close()  # a refused journal keeps no connection (nor its WAL files) open
            raise

    def __repr__(self) -> str:
        return f"SqliteJournal({self.path!r})"

    # --- connections ---------------------------------------------------------------------------

    def _reset_after_fork(self) -> None:
        self._lock = threading.RLock()
        self._local = threading.local()
        # The parent writes the steps it handed over; the writer thread did not survive.
        self._later.clear()
        self._wake = None
        self._wake_lock = threading.Lock()
        self._writing_later = False
        self._connections.clear()  # the parent's, never closed here; the same list for finalize
        self._writer_conn = None
        if self._memory:
            self._shared = None  # an in-memory journal does not survive a fork
            self._currency_ids.clear()  # nor do its rows

    def _open(self, synchronous: str = "NORMAL") -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.path,
                timeout=self._busy_timeout,
                isolation_level=None,
                check_same_thread=False,
            )
            conn.row_factory = sqlite3.Row
            # Invalid UTF-8 in a damaged row would fail the whole query; decoded with
            # surrogate escapes it fails only that row's check (``_text``).
            conn.text_factory = _decode_text
            if not self._memory:
                conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={synchronous}")
            conn.execute("PRAGMA foreign_keys=ON")
        except sqlite3.Error as exc:
            raise JournalError(f"cannot open the payment journal {self.path}: {exc}") from exc
        if not self._memory:
            with contextlib.suppress(OSError):
                os.chmod(self.path, 0o600)
        self._connections.append(conn)
        return conn

    def _conn(self) -> sqlite3.Connection:
        if self._closed:
            raise JournalError("the payment journal is closed")
        if self._memory:
            if self._shared is None:
                self._shared = self._open()
            return self._shared
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._open()
        return conn

    def _writer(self) -> sqlite3.Connection:
        """The connection every write of this journal object goes through, from any thread,
        always under ``self._lock``. One connection keeps its page cache from one write to the
        next: SQLite drops a connection's whole cache when another connection committed since
        its last transaction, so alternating connections (hold, sent, the writer thread's
        ``settled``) re-read every page they touch. Reads use each thread's own connection.
        An in-memory journal has one connection for everything."""
        if self._memory or self._closed:
            return self._conn()
        conn = self._writer_conn
        if conn is None:
            conn = self._writer_conn = self._open()
        return conn

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        # One writer per process at a time: threads queue on a lock instead of SQLite's
        # sleep-and-retry busy handler; other processes are held off by BEGIN IMMEDIATE.
        if self._later:
            self._write_later_steps()
        with self._lock, _immediate(self._writer(), "the payment journal") as conn:
            yield conn

    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        if self._later:
            self._write_later_steps()
        if self._memory:
            with self._lock:
                yield self._conn()
        else:
            yield self._conn()

    # --- steps written in the background -------------------------------------------------------

    def _write_later_steps(self) -> None:
        """Write every step handed to ``advance_later`` so far, in order, under the journal's
        lock. A step leaves the queue only once written, so a reader that finds the queue
        empty reads it written, and one that finds it not empty waits here for the lock."""
        with self._lock:
            if self._writing_later:
                return  # a step being written reads the journal (its own log line): no loop
            self._writing_later = True
            later = self._later
            try:
                while later:
                    try:
                        later[0]()
                    finally:
                        later.popleft()  # only this, under the lock, takes steps off the queue
            finally:
                self._writing_later = False

    def _hand_over(self, step: Callable[[], None]) -> None:
        self._later.append(step)
        wake = self._wake
        if wake is None:
            with self._wake_lock:
                wake = self._wake
                if wake is None:
                    wake = self._wake = queue.SimpleQueue()
                    # The thread holds the journal only weakly: a journal dropped without
                    # close() is still collected (and its connections closed). Not a daemon:
                    # at interpreter exit it writes what is left, then ends, before anything
                    # is torn down (see _stop_writers).
                    _writers.add(wake)
                    weakref.finalize(self, wake.put, False)
                    threading.Thread(
                        target=_write_in_background,
                        args=(weakref.ref(self), wake),
                        name="mpp-journal-writer",
                    ).start()
        wake.put(True)

    def _init_schema(self) -> None:
        with self._lock:
            conn = self._conn()
            try:
                # Checked before anything is written: a newer or damaged journal is left as it
                # is (CREATE ... IF NOT EXISTS could still add to a newer layout).
                has_meta = conn.execute(
                    "SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'"
                ).fetchone()
                if has_meta is not None:
                    self._schema_version()
                conn.executescript(_SCHEMA)
            except sqlite3.Error as exc:
                raise JournalError(f"cannot create the payment journal {self.path}: {exc}") from exc
        self._migrate()

    def _migrate(self) -> None:
        """Bring a journal of an earlier schema up to date, once, whichever process is first
        (the version is read again under the write lock)."""
        try:
            if self._schema_version() >= _SCHEMA_VERSION:
                return
            with self._write() as conn:
                if self._schema_version() < 2:
                    for statement in _SCHEMA_2:
                        conn.execute(statement)
                if self._schema_version() < 3:
                    have = {row[1] for row in conn.execute("PRAGMA table_info(payments)")}
                    for column, kind in _SCHEMA_3_COLUMNS:
                        if column not in have:  # a file an older version wrote back to
                            conn.execute(f"ALTER TABLE payments ADD COLUMN {column} {kind}")
                    conn.execute("UPDATE meta SET value = '3' WHERE key = 'schema'")
        except sqlite3.Error as exc:
            raise JournalError(f"cannot upgrade the payment journal {self.path}: {exc}") from exc

    def _schema_version(self) -> int:
        """``meta.schema``; ``JournalError`` when it is not a number or newer than this code
        (a newer journal is never written to: its rules for holds may differ)."""
        row = self._conn().execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        if row is None:
            return 0
        value = row[0]
        if not isinstance(value, str) or not _SCHEMA_TEXT.fullmatch(value):
            raise JournalError(
                f"the payment journal {self.path} is damaged: its schema version "
                f"{_shown(value)} is not a number (table meta, key 'schema')"
            )
        version = int(value)
        if version > _SCHEMA_VERSION:
            raise JournalError(
                f"the payment journal {self.path} has schema version {version}, newer than "
                f"this mpp-client knows ({_SCHEMA_VERSION}): upgrade mpp-client "
                "(pip install -U mpp-client); the journal was not changed"
            )
        return version

    def _prune(self, conn: sqlite3.Connection, now: float) -> None:
        """Delete running totals no window can reach any more (inside a write transaction),
        about once an hour. The watermark it leaves makes a window reaching further back (a
        clock set back by days) sum payment by payment instead, so totals stay exact."""
        if now < self._next_prune:
            return
        horizon = math.floor(now) - _PRUNE_AGE
        row = conn.execute("SELECT value FROM meta WHERE key=?", (_PRUNED_KEY,)).fetchone()
        # An unreadable watermark (a damaged row) is rewritten, not a crash in ``reserve``.
        pruned_before = _watermark(None if row is None else row[0])
        if pruned_before is None or horizon >= pruned_before + _PRUNE_EVERY:
            conn.execute("DELETE FROM held_buckets WHERE span>0 AND start<?", (horizon,))
            conn.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                (_PRUNED_KEY, str(horizon)),
            )
            pruned_before = horizon
        self._next_prune = pruned_before + _PRUNE_AGE + _PRUNE_EVERY

    def close(self) -> None:
        """Write the steps still waiting in the background, then close every connection this
        journal opened."""
        with self._lock:
            if not self._closed:
                self._write_later_steps()
            self._closed = True
            _close_connections(self._connections)
            self._shared = self._writer_conn = None
            wake, self._wake = self._wake, None
        if wake is not None:
            wake.put(False)

    # --- Journal -------------------------------------------------------------------------------

    @contextlib.contextmanager
    def atomic(self) -> Iterator[JournalTransaction]:
        """A ``BEGIN IMMEDIATE`` transaction; raising inside rolls it back."""
        try:
            with self._write() as conn:
                ledger = _SqliteLedger(
                    conn, self._clock, prune=self._prune, currency_ids=self._currency_ids
                )
                yield ledger
            self._currency_ids.update(ledger.new_currencies)  # committed: ids now stay right
        except sqlite3.Error as exc:
            raise JournalError(f"the payment journal failed: {exc}") from exc

    def ledger(self, *, call_id: str | None = None) -> Ledger:
        # call_id is a hint for stores with a round trip per read; reads here are local.
        return _ReadLedger(self)

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
        previous = allowed_sources(state)
        if state == "failed" and money_moved is None:
            # "It failed, but we cannot tell whether value moved" is an unknown outcome.
            state, previous = "unknown", allowed_sources("unknown")
        change = _Change.of(
            reference=reference, fingerprint=fingerprint, receipt=receipt, reason=reason,
            money_moved=money_moved, proof=proof, receipt_reference=receipt_reference,
            void_after=void_after,
        )  # fmt: skip
        if self._later:
            self._write_later_steps()
        return self._advance(entry_id, state, previous, change)

    def advance_later(
        self,
        entry_id: str,
        state: PaymentState,
        *,
        reference: str | None = None,
        receipt: Any = None,
        receipt_reference: str | None = None,
    ) -> None:
        """``advance`` to ``settled`` without waiting: the step is written by the journal's
        writer thread, or first thing by the next call on this journal object (reads
        included), whichever comes first; ``close()`` and interpreter exit write what is left.

        Only ``settled`` is written this way: whether an entry is ``sent`` or ``settled``, its
        amount is held all the same (no cap, pin or breaker reads differently), and a mark lost
        in a crash leaves it ``sent``, which a restart turns into ``unknown`` for
        reconciliation, as a power loss would. A failure to write it is logged, not raised.
        """
        if state != "settled":
            raise ValueError("only settled is written in the background")
        previous = allowed_sources(state)

        def step() -> None:
            try:
                change = _Change.of(
                    reference=reference, fingerprint=None, receipt=receipt, reason=None,
                    money_moved=None, proof=None, receipt_reference=receipt_reference,
                    void_after=None,
                )  # fmt: skip
                self._advance(entry_id, state, previous, change)
            except Exception as exc:
                log.warning(
                    "payment %s: could not record that it settled (%s); it stays sent and "
                    "held until reconciled",
                    entry_id,
                    type(exc).__name__,
                )

        self._hand_over(step)

    def _advance(
        self, entry_id: str, state: str, previous: frozenset[str], change: _Change
    ) -> bool:
        # sent and broadcast commit with synchronous=FULL (an fsync of the WAL, which makes
        # every earlier commit durable too): the last write before something may leave the
        # process survives a power loss. The switch costs two PRAGMAs (microseconds); a second
        # connection kept at FULL would cost every write a cold page cache (see ``_writer``).
        durable = state in ("sent", "broadcast") and not self._memory
        try:
            with self._lock:
                conn = self._writer()
                if durable:
                    conn.execute("PRAGMA synchronous=FULL")
                try:
                    applied = self._update(conn, entry_id, state, previous, change)
                finally:
                    if durable:
                        conn.execute("PRAGMA synchronous=NORMAL")
                if not applied and state == "failed" and change.moved == 0 and not change.proof:
                    # A release without proof after something left the process: the
                    # outcome is unknown and the amount stays held.
                    unproven = dataclasses.replace(change, moved=None)
                    applied = self._update(
                        conn, entry_id, "unknown", allowed_sources("unknown"), unproven
                    )
                    if applied:
                        log.warning(
                            "payment %s: not released without a proof; kept as unknown",
                            entry_id,
                        )
        except sqlite3.Error as exc:
            raise JournalError(f"cannot record that payment {entry_id} is {state}: {exc}") from exc
        if not applied:
            current = self.get(entry_id)
            log.warning(
                "payment %s: ignored a move to %s from %s",
                entry_id,
                state,
                current.state if current else "a missing entry",
            )
        return applied

    def _update(
        self,
        conn: sqlite3.Connection,
        entry_id: str,
        state: str,
        previous: frozenset[str],
        change: _Change,
    ) -> bool:
        release = state == "failed" and change.moved == 0 and change.proof is None
        sql = _UPDATE_SQL.get((state, previous, release))
        if sql is None:
            sql = _UPDATE_SQL[(state, previous, release)] = _update_sql(previous, release)
        held = int(holds(state, None if change.moved is None else bool(change.moved)))
        args = (
            state, held, self._clock(), change.reference, change.fingerprint, change.receipt,
            change.reason, change.moved, change.proof, change.receipt_reference,
            change.void_after, entry_id,
        )  # fmt: skip
        return bool(conn.execute(sql, args).rowcount == 1)

    def get(self, entry_id: str) -> PaymentRecord | None:
        found = self._select("WHERE id=?", (entry_id,))
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
            "?", lambda states: (f"state IN ({','.join('?' * len(states))})", states),
            state=state, origin=origin, method=method, reference=reference, label=label,
            since=since, until=until, limit=limit,
        )  # fmt: skip
        return self._select(sql, args)

    def already_paid(self, reference: str) -> bool:
        with self._read() as conn:
            row = conn.execute(
                "SELECT 1 FROM payments WHERE reference=? AND (state IN "
                "('broadcast','sent','settled','unknown') OR (state='failed' AND money_moved=1)) "
                "LIMIT 1",
                (reference,),
            ).fetchone()
        return row is not None

    def unresolved(self) -> list[str]:
        # ``unknown`` and any state this code does not know (a damaged row): nothing says how
        # such a payment ended, so the breaker counts it. A partial index holds exactly these
        # rows, so this never scans the payments that are resolved.
        with self._read() as conn:
            rows = conn.execute(_UNRESOLVED_SQL).fetchall()
            return [str(row[0]) for row in rows]

    def recover(self) -> list[PaymentRecord]:
        now = self._clock()
        me = _owner()
        became_unknown: list[str] = []
        with self._write() as conn:
            rows = conn.execute(
                "SELECT id, state, owner FROM payments "
                "WHERE state IN ('reserved','signed','broadcast','sent') AND owner != ?",
                (me,),
            ).fetchall()
            dead: dict[str, bool] = {}
            for row in rows:
                owner = str(row["owner"])  # text unless the row is damaged
                if owner not in dead:
                    dead[owner] = not _owner_alive(owner)
                if not dead[owner]:
                    continue
                if on_restart(row["state"]) == "failed":
                    # Nothing was signed (methods checkpoint before anything can move value).
                    conn.execute(
                        "UPDATE payments SET state='failed', held=0, money_moved=0, "
                        "updated_at=?, reason=? WHERE id=?",
                        (now, "the paying process ended before anything was signed", row["id"]),
                    )
                else:
                    conn.execute(
                        "UPDATE payments SET state='unknown', updated_at=?, reason=? WHERE id=?",
                        (
                            now,
                            f"the paying process ended after the payment was {row['state']}",
                            row["id"],
                        ),
                    )
                    became_unknown.append(row["id"])
        return [record for i in became_unknown if (record := self.get(i)) is not None]

    # --- reading -------------------------------------------------------------------------------

    def _rows(self, where: str, args: tuple[Any, ...]) -> list[sqlite3.Row]:
        try:
            with self._read() as conn:
                return conn.execute(f"SELECT * FROM payments {where}", args).fetchall()  # noqa: S608
        except sqlite3.Error as exc:
            raise JournalError(f"cannot read the payment journal {self.path}: {exc}") from exc

    def _select(self, where: str, args: tuple[Any, ...]) -> list[PaymentRecord]:
        records, damaged = _decode(self._rows(where, args))
        for entry in damaged:
            self._warn_damaged(entry)
        return records

    def _warn_damaged(self, entry: DamagedEntry) -> None:
        if entry.seq in self._warned:
            return  # once per row and journal object: every listing would repeat it
        self._warned.add(entry.seq)
        log.warning(
            "payment journal %s: entry %s (row %d, state %s) is damaged and skipped (%s); %s",
            self.path,
            entry.id,
            entry.seq,
            entry.state,
            entry.problem,
            "its amount still counts against budgets" if entry.held else "it holds nothing",
        )

    def damaged(self) -> list[DamagedEntry]:
        """Every entry that cannot be read back (oldest first). ``payments()``, ``get()`` and
        the exports skip these; budgets still count the held ones, and one whose state is not
        a known state counts as unknown for the circuit breaker (``unresolved()``). Reads the
        whole journal: for diagnosis, not for every payment."""
        return _decode(self._rows("ORDER BY seq", ()))[1]


# --- reading rows ------------------------------------------------------------------------------
#
# A row is decoded column by column and every value checked, so one row damaged by a disk
# error, a manual edit or another program is reported and skipped instead of breaking every
# read (and with it ``Wallet()``). What counts against budgets is unaffected: running totals
# and held counts are SQL over the ``held`` column, which a damaged row keeps.

#: Errors decoding a stored value (json, datetime, Currency, Money).
_DECODE_ERRORS = (
    ValueError, TypeError, KeyError, AttributeError, OverflowError, OSError, RecursionError,
)  # fmt: skip
_STATES: frozenset[str] = frozenset(get_args(PaymentState))
_TEXT_COLUMNS = (
    "id", "call_id", "challenge_id", "origin", "url", "http_method", "method", "intent",
    "owner", "currency_code",
)  # fmt: skip
_OPTIONAL_TEXT_COLUMNS = (
    "realm", "network", "label", "reference", "fingerprint", "reason", "payer", "proof",
    "receipt_reference", "currency_network", "currency_symbol", "max_fee_currency", "expires",
    "receipt",
)  # fmt: skip


class _Row(Protocol):
    """A stored row read by column name: ``sqlite3.Row``, or a dict of another store's row
    (``PostgresJournal`` decodes its rows with the same functions)."""

    def __getitem__(self, column: str, /) -> Any: ...


class _Unreadable(Exception):
    """A stored value that does not decode: ``column`` and why."""

    def __init__(self, column: str, why: str) -> None:
        super().__init__(f"{column}: {why}")
        self.column = column


@dataclass(frozen=True, slots=True)
class DamagedEntry:
    """A journal row that cannot be read back (``SqliteJournal.damaged()``): listings skip it.

    ``held`` is the stored flag: while it is set the amount keeps counting against budgets
    (running totals are kept in SQL from that flag, not from the decoded row). An entry whose
    ``state`` is not a known state counts as unknown for the circuit breaker."""

    seq: int
    id: str
    state: str
    held: bool
    problem: str


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _text(value: Any) -> bool:
    # Invalid UTF-8 is read with surrogate escapes (see ``_open``); such text is damage.
    if not isinstance(value, str):
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _integer(row: _Row, column: str) -> int:
    value = row[column]
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Unreadable(column, f"not an integer: {_shown(value)}")
    return value


def _time(row: _Row, column: str) -> datetime:
    value = row[column]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Unreadable(column, f"not a timestamp: {_shown(value)}")
    try:
        return datetime.fromtimestamp(value, UTC)
    except _DECODE_ERRORS:
        raise _Unreadable(column, f"not a timestamp: {_shown(value)}") from None


def _json(row: _Row, column: str) -> Any:
    try:
        return json.loads(row[column])
    except _DECODE_ERRORS:
        raise _Unreadable(column, "not JSON") from None


def _payees(row: _Row) -> tuple[Payee, ...]:
    data = _json(row, "payees")
    if not isinstance(data, list):
        raise _Unreadable("payees", "not a list")
    payees = []
    for item in data:
        if not isinstance(item, dict):
            raise _Unreadable("payees", "an item is not an object")
        address, amount = item.get("address"), item.get("amount")
        if not isinstance(address, str) or isinstance(amount, bool) or not isinstance(amount, int):
            raise _Unreadable("payees", "an item has no text address or integer amount")
        payees.append(Payee(address, amount))
    return tuple(payees)


def _currency(row: _Row) -> Currency:
    decimals = _integer(row, "currency_decimals")
    try:
        return Currency(
            row["currency_code"],
            decimals,
            network=row["currency_network"],
            symbol=row["currency_symbol"],
            usd_pegged=bool(row["usd_pegged"]),
        )
    except _DECODE_ERRORS as exc:
        raise _Unreadable("currency_decimals", str(exc)) from None


def _stored_currency(row: _Row) -> Currency:
    """A row of table currencies (id, code, decimals, network, symbol, usd_pegged)."""
    try:
        return Currency(
            row["code"],
            row["decimals"],
            network=row["network"],
            symbol=row["symbol"],
            usd_pegged=bool(row["usd_pegged"]),
        )
    except _DECODE_ERRORS as exc:
        # Its payments' holds could not be matched to any cap: refuse to count budgets at all
        # rather than leave them out.
        raise JournalError(
            f"the payment journal's currency {row['id']} is damaged ({exc}); "
            "budgets cannot be counted"
        ) from None


def _stored_pin(row: _Row, origin: str, method: str) -> Pin:
    """A row of table pins (payees, token, network)."""
    try:
        payees = json.loads(row["payees"])
        if not isinstance(payees, list) or not all(isinstance(p, str) for p in payees):
            raise ValueError("not a list of addresses")
        if not isinstance(row["token"], str):
            raise ValueError("no token")
    except _DECODE_ERRORS:
        # Refusing is the safe answer: treating it as no pin would trust new payees.
        raise JournalError(
            f"the payment journal's payee pin for {origin} ({method}) is damaged; "
            "delete that row of table pins to pin again on the next payment"
        ) from None
    return Pin(frozenset(payees), row["token"], row["network"])


def _record(row: _Row) -> PaymentRecord:
    """The entry in ``row``; ``_Unreadable`` names the first column that does not decode."""
    for column in _TEXT_COLUMNS:
        if not _text(row[column]):
            raise _Unreadable(column, f"not text: {_shown(row[column])}")
    for column in _OPTIONAL_TEXT_COLUMNS:
        if row[column] is not None and not _text(row[column]):
            raise _Unreadable(column, f"not text: {_shown(row[column])}")
    state = row["state"]
    if state not in _STATES:
        raise _Unreadable("state", f"not a payment state: {_shown(state)}")
    currency = _currency(row)
    max_fee = None
    if row["max_fee"] is not None:
        fee = _integer(row, "max_fee")
        fee_currency = (
            currency
            if row["max_fee_currency"] in (None, currency.code)
            else Currency(row["max_fee_currency"], 0)
        )
        max_fee = Money(fee, fee_currency)
    expires = None
    if row["expires"] is not None:
        try:
            expires = datetime.fromisoformat(row["expires"])
        except _DECODE_ERRORS:
            raise _Unreadable("expires", f"not a time: {_shown(row['expires'])}") from None
    moved = row["money_moved"]
    if moved not in (None, 0, 1) or isinstance(moved, float):
        raise _Unreadable("money_moved", f"not 0, 1 or NULL: {_shown(moved)}")
    void_after = None if row["void_after"] is None else _time(row, "void_after")
    return PaymentRecord(
        id=row["id"],
        state=state,
        created_at=_time(row, "created_at"),
        updated_at=_time(row, "updated_at"),
        call_id=row["call_id"],
        challenge_id=row["challenge_id"],
        realm=row["realm"],
        origin=row["origin"],
        url=row["url"],
        http_method=row["http_method"],
        method=row["method"],
        intent=row["intent"],
        amount=Money(_integer(row, "amount"), currency),
        exposure=_integer(row, "exposure"),
        max_fee=max_fee,
        network=row["network"],
        payees=_payees(row),
        expires=expires,
        label=row["label"],
        reference=row["reference"],
        fingerprint=row["fingerprint"],
        receipt=None if row["receipt"] is None else _json(row, "receipt"),
        reason=row["reason"],
        money_moved=None if moved is None else bool(moved),
        owner=row["owner"],
        payer=row["payer"],
        proof=row["proof"],
        receipt_reference=row["receipt_reference"],
        void_after=void_after,
    )


def _decode(rows: Iterable[_Row]) -> tuple[list[PaymentRecord], list[DamagedEntry]]:
    """The readable entries of ``rows`` and the damaged ones, both in order."""
    records: list[PaymentRecord] = []
    damaged: list[DamagedEntry] = []
    for row in rows:
        try:
            records.append(_record(row))
        except _Unreadable as problem:
            damaged.append(_damage(row, problem))
    return records, damaged


def _damage(row: _Row, problem: _Unreadable) -> DamagedEntry:
    entry_id, state = row["id"], row["state"]
    return DamagedEntry(
        seq=int(row["seq"]),
        id=entry_id if _text(entry_id) else _shown(entry_id),
        state=state if _text(state) else _shown(state),
        held=row["held"] == 1,
        problem=str(problem),
    )


def _bucket_scope(origin: str | None, method: str | None, payee: str | None) -> str | None:
    """The running-total scope answering a filter, ``None`` if there is none (filters on more
    than one of origin, method and payee are summed payment by payment)."""
    given = [(p, v) for p, v in (("o:", origin), ("m:", method), ("p:", payee)) if v is not None]
    if not given:
        return ""
    if len(given) > 1:
        return None
    prefix, value = given[0]
    return prefix + value


#: Payments whose ``created_at`` is not a number (a damaged row: text and blobs sort after
#: every number, so this is an index range). Their buckets start at 0 and no window would reach
#: them; they count in every window instead, so a damaged held row never frees budget.
_UNPLACED = "p.created_at>=''"


def _edge_sum(
    origin: str | None,
    method: str | None,
    payee: str | None,
    when: str = "p.created_at>:since AND p.created_at<:second",
) -> tuple[str, dict[str, Any]]:
    """SQL summing the held payments in ``(:since, :second)`` (or ``when``) for one filter."""
    where = f"p.held=1 AND p.currency_id=:currency AND {when}"
    if payee is not None:
        return (
            "(SELECT SUM(y.amount) FROM payments p JOIN payment_payees y ON y.payment_id=p.id "  # noqa: S608
            f"WHERE {where} AND y.address=:payee)",
            {"payee": payee},
        )
    args: dict[str, Any] = {}
    if origin is not None:
        where += " AND p.origin=:origin"
        args["origin"] = origin
    if method is not None:
        where += " AND p.method=:method"
        args["method"] = method
    return f"(SELECT SUM(p.exposure) FROM payments p WHERE {where})", args  # noqa: S608


#: The window-total statement of ``_bucket_total`` by which filters it has (origin, method and
#: payee absent or not): the text depends on nothing else.
_WINDOW_SQL: dict[tuple[bool, bool, bool], str] = {}


class _SqliteLedger:
    """Ledger queries on one connection (inside a transaction when the journal opened one)."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        clock: Callable[[], float],
        *,
        prune: Callable[[sqlite3.Connection, float], None] | None = None,
        currency_ids: dict[str, int] | None = None,
    ) -> None:
        self._conn = conn
        self._clock = clock
        self._prune = prune
        self._now: float | None = None
        self._known: list[tuple[int, Currency]] | None = None
        # Ids of committed currency rows (the journal's cache: rows are never deleted, so an
        # id once committed stays right), and those this transaction inserted, which join the
        # cache only once it commits.
        self._currency_ids = {} if currency_ids is None else currency_ids
        self.new_currencies: dict[str, int] = {}

    def now(self) -> float:
        # One instant per assessment, so every window of one check agrees.
        if self._now is None:
            self._now = self._clock()
        return self._now

    def _currencies(self) -> list[tuple[int, Currency]]:
        if self._known is None:
            rows = self._conn.execute(
                "SELECT id, code, decimals, network, symbol, usd_pegged FROM currencies"
            ).fetchall()
            self._known = [(row["id"], _stored_currency(row)) for row in rows]
        return self._known

    def _currency_id(self, currency: Currency) -> int:
        key = json.dumps(
            [currency.code, currency.decimals, currency.network, currency.symbol,
             currency.usd_pegged]
        )  # fmt: skip
        known = self._currency_ids.get(key, self.new_currencies.get(key))
        if known is not None:
            return known  # two statements less per payment
        inserted = self._conn.execute(
            "INSERT OR IGNORE INTO currencies (key, code, decimals, network, symbol, usd_pegged)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (key, currency.code, currency.decimals, currency.network, currency.symbol,
             int(currency.usd_pegged)),
        ).rowcount  # fmt: skip
        self._known = None
        row = self._conn.execute("SELECT id FROM currencies WHERE key=?", (key,)).fetchone()
        currency_id = int(row[0])
        # A row this transaction added is cached only after the commit (a rollback drops it).
        (self.new_currencies if inserted else self._currency_ids)[key] = currency_id
        return currency_id

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
        scope = _bucket_scope(origin, method, payee) if call_id is None else None
        totals: list[tuple[Currency, int]] = []
        for currency_id, currency in self._currencies():
            if currencies is not None and not currencies(currency):
                continue
            total = None
            if scope is not None:
                total = self._bucket_total(scope, currency_id, since, origin, method, payee)
            if total is None:
                total = self._summed_total(currency_id, since, origin, method, payee, call_id)
            if total:
                totals.append((currency, total))
        return totals

    def _bucket_total(
        self,
        scope: str,
        currency_id: int,
        since: float | None,
        origin: str | None,
        method: str | None,
        payee: str | None,
    ) -> int | None:
        """The held total from running totals; ``None`` when they cannot answer exactly (a
        window reaching back before pruned buckets, or a total past SQLite's integers)."""
        if since is None:
            row = self._conn.execute(
                "SELECT total FROM held_buckets "
                "WHERE scope=? AND currency_id=? AND span=0 AND start=0",
                (scope, currency_id),
            ).fetchone()
            total = 0 if row is None else row[0]
            return total if isinstance(total, int) else None
        # Whole seconds, minutes and hours after ``since``; payments of the second ``since``
        # falls in are summed one by one (a bucket holds whole seconds only).
        second = math.floor(since) + 1
        minute = -(-second // 60) * 60
        hour = -(-minute // 3600) * 3600
        edge, edge_args = _edge_sum(origin, method, payee)
        shape = (origin is None, method is None, payee is None)
        sql = _WINDOW_SQL.get(shape)
        if sql is None:  # one statement per filter shape: built once, then SQLite's cache
            unplaced, _ = _edge_sum(origin, method, payee, _UNPLACED)
            sums = (
                "(SELECT SUM(total) FROM held_buckets WHERE scope=:scope AND "
                "currency_id=:currency AND span={span} AND start>={low}{high})"
            )
            sql = _WINDOW_SQL[shape] = "SELECT " + ", ".join(  # noqa: S608 - fixed names
                [
                    "(SELECT CAST(value AS INTEGER) FROM meta WHERE key=:pruned)",
                    sums.format(span=3600, low=":hour", high=""),
                    sums.format(span=60, low=":minute", high=" AND start<:hour"),
                    sums.format(span=1, low=":second", high=" AND start<:minute"),
                    edge,
                    unplaced,
                ]
            )
        row = self._conn.execute(
            sql,
            {
                "pruned": _PRUNED_KEY,
                "scope": scope,
                "currency": currency_id,
                "hour": hour,
                "minute": minute,
                "second": second,
                "since": since,
                **edge_args,
            },
        ).fetchone()
        pruned_before = row[0]
        if pruned_before is not None and second < pruned_before:
            return None
        parts = [0 if value is None else value for value in row[1:]]
        if not all(isinstance(value, int) for value in parts):
            return None  # an overflowed running total became a float: sum exactly instead
        return sum(parts)

    def _summed_total(
        self,
        currency_id: int,
        since: float | None,
        origin: str | None,
        method: str | None,
        payee: str | None,
        call_id: str | None,
    ) -> int:
        """The held total summed payment by payment (for scopes without running totals)."""
        where = ["p.held=1", "p.currency_id=?"]
        args: list[Any] = [currency_id]
        if since is not None:
            where.append("p.created_at>?")
            args.append(since)
        for column, value in (("p.origin", origin), ("p.method", method), ("p.call_id", call_id)):
            if value is not None:
                where.append(f"{column}=?")
                args.append(value)
        # A call has a handful of payments: without the hint SQLite would scan every held
        # payment in the currency instead.
        table = "payments p INDEXED BY payments_call" if call_id is not None else "payments p"
        if payee is None:
            sql = f"SELECT SUM(p.exposure) FROM {table}"  # noqa: S608 - fixed names
        else:
            sql = f"SELECT SUM(y.amount) FROM {table} JOIN payment_payees y ON y.payment_id=p.id"  # noqa: S608
            where.append("y.address=?")
            args.append(payee)
        sql += " WHERE " + " AND ".join(where)
        row = self._conn.execute(sql, args).fetchone()
        return int(row[0] or 0)

    def unresolved(self) -> list[str]:
        """``SqliteJournal.unresolved`` inside this transaction (the breaker of a hold: no read
        transaction of its own on another connection)."""
        return [str(row[0]) for row in self._conn.execute(_UNRESOLVED_SQL).fetchall()]

    def held_count(self, call_id: str) -> int:
        row = self._conn.execute(
            "SELECT COUNT(*) FROM payments WHERE call_id=? AND held=1", (call_id,)
        ).fetchone()
        return int(row[0])

    def pin(self, origin: str, method: str) -> Pin | None:
        row = self._conn.execute(
            "SELECT payees, token, network FROM pins WHERE origin=? AND method=?",
            (origin, method),
        ).fetchone()
        return None if row is None else _stored_pin(row, origin, method)

    def insert(self, payment: NewPayment) -> str:
        if payment.reference is not None:
            # Inside the write transaction: two requests for one invoice cannot both pass.
            row = self._conn.execute(
                "SELECT id FROM payments WHERE reference=? AND held=1 LIMIT 1",
                (payment.reference,),
            ).fetchone()
            if row is not None:
                raise AlreadyPaid(
                    f"payment reference {payment.reference} is already paid or being paid "
                    f"(journal entry {row[0]}); it is never paid twice"
                )
        entry_id = uuid.uuid4().hex
        now = self.now()
        if self._prune is not None:
            self._prune(self._conn, now)
        currency = payment.amount.currency
        fee = payment.max_fee
        self._conn.execute(
            "INSERT INTO payments (id, state, held, created_at, updated_at, call_id, "  # noqa: S608
            "challenge_id, realm, origin, url, http_method, method, intent, amount, exposure, "
            f"{_CURRENCY_COLUMNS}, currency_id, max_fee, max_fee_currency, network, payees, "
            "expires, label, owner, payer, reference) "
            f"VALUES (?, 'reserved', 1, {', '.join('?' * 27)})",
            (
                entry_id,
                now,
                now,
                payment.call_id,
                payment.challenge_id,
                payment.realm,
                payment.origin,
                payment.url,
                payment.http_method,
                payment.method,
                payment.intent,
                payment.amount.amount,
                payment.exposure,
                currency.code,
                currency.decimals,
                currency.network,
                currency.symbol,
                int(currency.usd_pegged),
                self._currency_id(currency),
                None if fee is None else fee.amount,
                None if fee is None else fee.currency.code,
                payment.network,
                json.dumps([{"address": p.address, "amount": p.amount} for p in payment.payees]),
                None if payment.expires is None else payment.expires.isoformat(),
                payment.label,
                _owner(),
                payment.payer,
                payment.reference,
            ),
        )
        self._conn.executemany(
            "INSERT INTO payment_payees (payment_id, address, amount) VALUES (?, ?, ?)",
            [(entry_id, p.address, p.amount) for p in payment.payees],
        )
        return entry_id

    def set_pin(self, origin: str, method: str, pin: Pin) -> None:
        self._conn.execute(
            "INSERT OR REPLACE INTO pins (origin, method, payees, token, network, pinned_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (origin, method, json.dumps(sorted(pin.payees)), pin.token, pin.network, self.now()),
        )


class _ReadLedger:
    """Ledger reads outside any transaction (for ``check``, which takes no lock)."""

    def __init__(self, journal: SqliteJournal) -> None:
        self._journal = journal
        self._now: float | None = None

    def _ledger(self) -> _SqliteLedger:
        ledger = _SqliteLedger(self._journal._conn(), self._journal._clock)
        ledger._now = self.now()
        return ledger

    def now(self) -> float:
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
        with self._journal._read():
            return self._ledger().held_totals(
                since=since, origin=origin, method=method, payee=payee, call_id=call_id,
                currencies=currencies,
            )  # fmt: skip

    def held_count(self, call_id: str) -> int:
        with self._journal._read():
            return self._ledger().held_count(call_id)

    def pin(self, origin: str, method: str) -> Pin | None:
        with self._journal._read():
            return self._ledger().pin(origin, method)


# --- export ------------------------------------------------------------------------------------

_CSV_COLUMNS = (
    "id", "state", "created_at", "updated_at", "origin", "url", "http_method", "method",
    "intent", "amount", "exposure", "currency", "decimals", "currency_network", "symbol",
    "amount_display", "max_fee", "network", "payees", "reference", "challenge_id", "realm",
    "call_id", "label", "fingerprint", "receipt", "reason", "money_moved", "expires", "held",
    "payer", "proof", "receipt_reference", "void_after",
)  # fmt: skip


def write_jsonl(records: Sequence[PaymentRecord], out: IO[str]) -> int:
    """Write one JSON object per entry; return how many."""
    for record in records:
        out.write(json.dumps(record.to_dict(), sort_keys=True) + "\n")
    return len(records)


def write_csv(records: Sequence[PaymentRecord], out: IO[str]) -> int:
    """Write a CSV with a header row (payees and receipt as JSON text); return how many."""
    writer = csv.DictWriter(out, fieldnames=_CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for record in records:
        data = record.to_dict()
        data["payees"] = json.dumps(data["payees"])
        data["receipt"] = None if data["receipt"] is None else json.dumps(data["receipt"])
        writer.writerow(data)
    return len(records)
