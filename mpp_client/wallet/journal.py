"""The payment journal: a write-ahead record of every payment, durable across crashes.

Every payment moves ``reserved -> signed -> sent -> settled | failed | unknown`` and each step
is written before the step it names can move value. The journal is also where budgets are
counted, so ``reserve`` checks the policy and inserts the entry inside one write transaction
(``BEGIN IMMEDIATE``): threads, asyncio tasks and processes sharing a journal file can never
overrun a cap together.

Durability. The file is in WAL mode with ``synchronous=NORMAL``, which survives a crash of the
process (SIGKILL included) at every commit, and the ``sent`` step (the last write before a
credential leaves the process or a method broadcasts value) is committed with
``synchronous=FULL``, which fsyncs the WAL and with it every earlier step. So after a power loss
the journal may lose a reservation or a ``settled`` mark, but never forget a payment that could
have left the machine: a lost ``settled`` falls back to ``sent`` and is reconciled. This costs
one fsync per payment instead of four.

``SqliteJournal(":memory:")`` is a throwaway journal for one process (tests, demos).
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import os
import socket
import sqlite3
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any, Literal, Protocol, get_args

from mpp_client.errors import JournalError
from mpp_client.methods.base import Payee
from mpp_client.money import Currency, Money
from mpp_client.wallet.policy import Ledger, Pin

__all__ = [
    "HELD_STATES",
    "Journal",
    "JournalTransaction",
    "NewPayment",
    "PaymentRecord",
    "PaymentState",
    "SqliteJournal",
    "default_journal_path",
    "write_csv",
    "write_jsonl",
]

log = logging.getLogger("mpp_client.wallet")

PaymentState = Literal["reserved", "signed", "sent", "settled", "failed", "unknown"]
#: States whose amount counts against budgets (``failed`` counts only when money moved).
HELD_STATES: frozenset[str] = frozenset({"reserved", "signed", "sent", "settled", "unknown"})

# Which states each state may be reached from. ``unknown`` resolves to settled or failed when
# reconciled; settled and failed are final.
_FROM: dict[str, tuple[str, ...]] = {
    "signed": ("reserved", "signed"),
    "sent": ("reserved", "signed", "sent"),
    "settled": ("reserved", "signed", "sent", "unknown"),
    "failed": ("reserved", "signed", "sent", "unknown"),
    "unknown": ("reserved", "signed", "sent", "unknown"),
}


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

    def ledger(self) -> Ledger:
        """A read-only view for checks that take no lock."""
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
    ) -> bool:
        """Move an entry to ``state``; ``False`` if that transition is not allowed."""
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

    def recover(self) -> list[PaymentRecord]:
        """Resolve entries left in flight by processes that no longer exist; return those that
        became ``unknown``."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


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
-- Window totals are range scans of this covering index, one per currency: no sorting, and the
-- table itself is not touched unless a limit is scoped to an origin or method.
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

_CURRENCY_COLUMNS = (
    "currency_code, currency_decimals, currency_network, currency_symbol, usd_pegged"
)


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


def _when(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


def _receipt_data(receipt: Any) -> Any:
    """Receipt objects as JSON data (they hold no secrets: reference, method, timestamp)."""
    if receipt is None or isinstance(receipt, (dict, list, str, int, float, bool)):
        return receipt
    for attribute in ("to_dict", "as_dict", "to_json_dict"):
        method = getattr(receipt, attribute, None)
        if callable(method):
            return method()
    import dataclasses

    if dataclasses.is_dataclass(receipt) and not isinstance(receipt, type):
        return json.loads(json.dumps(dataclasses.asdict(receipt), default=str))
    return str(receipt)


_journals: weakref.WeakSet[SqliteJournal] = weakref.WeakSet()


def _after_fork() -> None:
    # A lock held by another thread at fork time would never be released in the child, and
    # SQLite connections must not cross a fork: the child starts clean.
    for journal in list(_journals):
        journal._reset_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


class SqliteJournal:
    """The embedded journal: one SQLite file (WAL mode) any number of threads, tasks and
    processes can share. ``path`` may be ``":memory:"`` for a throwaway journal.

    ``clock`` returns Unix seconds (injectable for tests of rolling windows);
    ``busy_timeout`` is how long a writer waits for another process's transaction, seconds.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        clock: Callable[[], float] = time.time,
        busy_timeout: float = 30.0,
    ) -> None:
        self.path = os.fspath(path)
        self._memory = self.path == ":memory:"
        self._clock = clock
        self._busy_timeout = busy_timeout
        self._lock = threading.RLock()
        self._local = threading.local()
        self._shared: sqlite3.Connection | None = None
        self._connections: list[sqlite3.Connection] = []
        self._closed = False
        if not self._memory:
            directory = os.path.dirname(os.path.abspath(self.path))
            os.makedirs(directory, mode=0o700, exist_ok=True)
        _journals.add(self)
        self._init_schema()

    def __repr__(self) -> str:
        return f"SqliteJournal({self.path!r})"

    # --- connections ---------------------------------------------------------------------------

    def _reset_after_fork(self) -> None:
        self._lock = threading.RLock()
        self._local = threading.local()
        self._connections = []
        if self._memory:
            self._shared = None  # an in-memory journal does not survive a fork

    def _open(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.path,
                timeout=self._busy_timeout,
                isolation_level=None,
                check_same_thread=False,
            )
            conn.row_factory = sqlite3.Row
            if not self._memory:
                conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
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

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        # One writer per process at a time: threads queue on a lock instead of SQLite's
        # sleep-and-retry busy handler; other processes are held off by BEGIN IMMEDIATE.
        with self._lock:
            conn = self._conn()
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise JournalError(f"cannot lock the payment journal: {exc}") from exc
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
                raise JournalError(f"cannot write the payment journal: {exc}") from exc

    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        if self._memory:
            with self._lock:
                yield self._conn()
        else:
            yield self._conn()

    def _init_schema(self) -> None:
        with self._lock:
            conn = self._conn()
            try:
                conn.executescript(_SCHEMA)
            except sqlite3.Error as exc:
                raise JournalError(f"cannot create the payment journal: {exc}") from exc

    def close(self) -> None:
        """Close every connection this journal opened."""
        with self._lock:
            self._closed = True
            for conn in self._connections:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            self._connections.clear()
            self._shared = None

    # --- Journal -------------------------------------------------------------------------------

    @contextlib.contextmanager
    def atomic(self) -> Iterator[JournalTransaction]:
        """A ``BEGIN IMMEDIATE`` transaction; raising inside rolls it back."""
        try:
            with self._write() as conn:
                yield _SqliteLedger(conn, self._clock)
        except sqlite3.Error as exc:
            raise JournalError(f"the payment journal failed: {exc}") from exc

    def ledger(self) -> Ledger:
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
    ) -> bool:
        if state not in _FROM:
            raise ValueError(f"cannot move a payment to {state!r}")
        held = 1
        if state == "failed":
            held = 1 if money_moved else 0
        receipt_text = None
        if receipt is not None:
            receipt_text = json.dumps(_receipt_data(receipt), default=str, sort_keys=True)
        previous = _FROM[state]
        sql = (
            "UPDATE payments SET state=?, held=?, updated_at=?, "  # noqa: S608 - placeholders only
            "reference=COALESCE(?, reference), fingerprint=COALESCE(?, fingerprint), "
            "receipt=COALESCE(?, receipt), reason=COALESCE(?, reason), "
            "money_moved=COALESCE(?, money_moved) "
            f"WHERE id=? AND state IN ({','.join('?' * len(previous))})"
        )
        moved = None if money_moved is None else int(money_moved)
        args = (state, held, self._clock(), reference, fingerprint, receipt_text, reason, moved)
        durable = state == "sent"
        try:
            with self._lock:
                conn = self._conn()
                if durable:
                    conn.execute("PRAGMA synchronous=FULL")
                try:
                    cursor = conn.execute(sql, (*args, entry_id, *previous))
                finally:
                    if durable:
                        conn.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error as exc:
            raise JournalError(f"cannot record that payment {entry_id} is {state}: {exc}") from exc
        if cursor.rowcount != 1:
            current = self.get(entry_id)
            log.warning(
                "payment %s: ignored a move to %s from %s",
                entry_id,
                state,
                current.state if current else "a missing entry",
            )
            return False
        return True

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
        where: list[str] = []
        args: list[Any] = []
        if state is not None:
            states = [state] if isinstance(state, str) else list(state)
            for name in states:
                if name not in get_args(PaymentState):
                    raise ValueError(f"unknown payment state {name!r}")
            where.append(f"state IN ({','.join('?' * len(states))})")
            args.extend(states)
        for column, value in (("origin", origin), ("method", method), ("reference", reference)):
            if value is not None:
                where.append(f"{column}=?")
                args.append(value)
        if label is not None:
            where.append("(label=? OR label LIKE ? OR label LIKE ?)")
            args.extend([label, f"{label}/%", f"%/{label}"])
        if since is not None:
            where.append("created_at>=?")
            args.append(since.timestamp())
        if until is not None:
            where.append("created_at<?")
            args.append(until.timestamp())
        sql = ("WHERE " + " AND ".join(where)) if where else ""
        sql += " ORDER BY seq"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return self._select(sql, tuple(args))

    def already_paid(self, reference: str) -> bool:
        with self._read() as conn:
            row = conn.execute(
                "SELECT 1 FROM payments WHERE reference=? AND (state IN "
                "('sent','settled','unknown') OR (state='failed' AND money_moved=1)) LIMIT 1",
                (reference,),
            ).fetchone()
        return row is not None

    def recover(self) -> list[PaymentRecord]:
        now = self._clock()
        me = _owner()
        became_unknown: list[str] = []
        with self._write() as conn:
            rows = conn.execute(
                "SELECT id, state, owner FROM payments "
                "WHERE state IN ('reserved','signed','sent') AND owner != ?",
                (me,),
            ).fetchall()
            dead: dict[str, bool] = {}
            for row in rows:
                owner = row["owner"]
                if owner not in dead:
                    dead[owner] = not _owner_alive(owner)
                if not dead[owner]:
                    continue
                if row["state"] == "reserved":
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

    def _select(self, where: str, args: tuple[Any, ...]) -> list[PaymentRecord]:
        try:
            with self._read() as conn:
                rows = conn.execute(f"SELECT * FROM payments {where}", args).fetchall()  # noqa: S608
        except sqlite3.Error as exc:
            raise JournalError(f"cannot read the payment journal: {exc}") from exc
        return [_record(row) for row in rows]


def _currency(row: sqlite3.Row) -> Currency:
    return Currency(
        row["currency_code"],
        row["currency_decimals"],
        network=row["currency_network"],
        symbol=row["currency_symbol"],
        usd_pegged=bool(row["usd_pegged"]),
    )


def _record(row: sqlite3.Row) -> PaymentRecord:
    currency = _currency(row)
    max_fee = None
    if row["max_fee"] is not None:
        fee_currency = (
            currency
            if row["max_fee_currency"] in (None, currency.code)
            else Currency(row["max_fee_currency"], 0)
        )
        max_fee = Money(row["max_fee"], fee_currency)
    expires = None if row["expires"] is None else datetime.fromisoformat(row["expires"])
    return PaymentRecord(
        id=row["id"],
        state=row["state"],
        created_at=datetime.fromtimestamp(row["created_at"], UTC),
        updated_at=datetime.fromtimestamp(row["updated_at"], UTC),
        call_id=row["call_id"],
        challenge_id=row["challenge_id"],
        realm=row["realm"],
        origin=row["origin"],
        url=row["url"],
        http_method=row["http_method"],
        method=row["method"],
        intent=row["intent"],
        amount=Money(row["amount"], currency),
        exposure=row["exposure"],
        max_fee=max_fee,
        network=row["network"],
        payees=tuple(Payee(p["address"], p["amount"]) for p in json.loads(row["payees"])),
        expires=expires,
        label=row["label"],
        reference=row["reference"],
        fingerprint=row["fingerprint"],
        receipt=None if row["receipt"] is None else json.loads(row["receipt"]),
        reason=row["reason"],
        money_moved=None if row["money_moved"] is None else bool(row["money_moved"]),
        owner=row["owner"],
    )


class _SqliteLedger:
    """Ledger queries on one connection (inside a transaction when the journal opened one)."""

    def __init__(self, conn: sqlite3.Connection, clock: Callable[[], float]) -> None:
        self._conn = conn
        self._clock = clock
        self._now: float | None = None
        self._known: list[tuple[int, Currency]] | None = None

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
            self._known = [
                (row["id"], Currency(row["code"], row["decimals"], network=row["network"],
                                     symbol=row["symbol"], usd_pegged=bool(row["usd_pegged"])))
                for row in rows
            ]  # fmt: skip
        return self._known

    def _currency_id(self, currency: Currency) -> int:
        key = json.dumps(
            [currency.code, currency.decimals, currency.network, currency.symbol,
             currency.usd_pegged]
        )  # fmt: skip
        self._conn.execute(
            "INSERT OR IGNORE INTO currencies (key, code, decimals, network, symbol, usd_pegged)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (key, currency.code, currency.decimals, currency.network, currency.symbol,
             int(currency.usd_pegged)),
        )  # fmt: skip
        self._known = None
        row = self._conn.execute("SELECT id FROM currencies WHERE key=?", (key,)).fetchone()
        return int(row[0])

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
        where = ["p.held=1", "p.currency_id=?"]
        args: list[Any] = []
        if since is not None:
            where.append("p.created_at>?")
            args.append(since)
        for column, value in (("p.origin", origin), ("p.method", method), ("p.call_id", call_id)):
            if value is not None:
                where.append(f"{column}=?")
                args.append(value)
        if payee is None:
            sql = "SELECT SUM(p.exposure) FROM payments p"
        else:
            sql = "SELECT SUM(y.amount) FROM payments p JOIN payment_payees y ON y.payment_id=p.id"
            where.append("y.address=?")
            args.append(payee)
        sql += " WHERE " + " AND ".join(where)
        totals: list[tuple[Currency, int]] = []
        for currency_id, currency in self._currencies():
            if currencies is not None and not currencies(currency):
                continue
            row = self._conn.execute(sql, (currency_id, *args)).fetchone()
            if row[0]:
                totals.append((currency, int(row[0])))
        return totals

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
        if row is None:
            return None
        return Pin(frozenset(json.loads(row["payees"])), row["token"], row["network"])

    def insert(self, payment: NewPayment) -> str:
        entry_id = uuid.uuid4().hex
        now = self.now()
        currency = payment.amount.currency
        fee = payment.max_fee
        self._conn.execute(
            "INSERT INTO payments (id, state, held, created_at, updated_at, call_id, "  # noqa: S608
            "challenge_id, realm, origin, url, http_method, method, intent, amount, exposure, "
            f"{_CURRENCY_COLUMNS}, currency_id, max_fee, max_fee_currency, network, payees, "
            f"expires, label, owner) VALUES (?, 'reserved', 1, {', '.join('?' * 25)})",
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
    "call_id", "label", "fingerprint", "receipt", "reason", "money_moved", "expires",
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
