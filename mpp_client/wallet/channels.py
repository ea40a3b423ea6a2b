"""Durable session records: payment channels (Tempo) and prepaid sessions (Lightning).

A session spends from money put aside once (a channel deposit, a prepaid balance) by signing
cumulative totals (vouchers) or presenting a bearer secret. What can be lost is the deposit,
so the deposit and every top-up are ordinary journal entries (reserved against the budgets
by the wallet, like any payment); this table records what the entries cannot: which channel
they funded, the highest cumulative amount ever signed (``highest_signed``, never lowered),
what the server accepted (``highest_accepted``, moved only after a receipt was validated),
and how the session ended.

Rules, all enforced here in one ``BEGIN IMMEDIATE`` transaction per change, so they hold
across threads, tasks and processes sharing the journal file:

- ``record_voucher`` is a compare-and-set: it writes a cumulative amount only when it is
  higher than the stored one (an equal amount is an idempotent resend and returns the stored
  signature); a lower one raises ``VoucherRegression``. It commits with ``synchronous=FULL``
  (one fsync) BEFORE the caller may send the voucher, so a crash never forgets one that left.
- ``sign_next`` reads the highest signed voucher, signs the next one and records it in one
  such transaction (the same rules, no re-read, no retry).
- ``accept`` never moves ``highest_accepted`` above ``highest_signed`` nor down.
- ``settle_close`` records the refund and, in the same transaction, lowers the exposure of the
  session's deposit entries by the refund (latest top-up first): the unspent deposit returns to
  the budgets only when the close has settled.

``note(id, **facts)`` merges durable facts into ``details`` (``overclaimed``: no more top-ups).

Durability: every change that can precede moving value (open, voucher, top-up, state, close,
secret, note) commits with ``synchronous=FULL`` (one fsync); ``accept`` (what the server
acknowledged, re-learnable from its next receipt and never above what was signed) commits at
``NORMAL``, so a voucher costs one fsync, not two.

Secrets (a Lightning deposit preimage): ``set_secret``/``secret`` keep one per session in a
column no listing, ``to_dict`` or ``repr`` shows; ``secret`` returns a ``Secret``.

The table lives in the same SQLite file as the payment journal (``ChannelStore.for_journal``;
a journal in memory shares its connection). It is created on first use and versioned by the
``meta`` key ``channels_schema``; the payment journal's own schema is untouched.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from mpp_client.clock import SYSTEM_CLOCK, Clock
from mpp_client.errors import JournalError
from mpp_client.secret import Secret
from mpp_client.wallet.journal import _immediate

__all__ = [
    "ChannelRecord",
    "ChannelState",
    "ChannelStore",
    "NewChannel",
    "SessionRecordsUnavailable",
    "VoucherRegression",
    "accepted_move",
    "check_voucher",
]

#: ``opening``: the open is signed (it may have left); ``open``: the server accepted it;
#: ``closing``: a close was sent; ``closed``: the close settled (refund known); ``evicted``: the
#: server no longer knows the channel (410) or it was finalized elsewhere.
ChannelState = Literal["opening", "open", "closing", "closed", "evicted"]
_STATES = ("opening", "open", "closing", "closed", "evicted")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS channels (
    id TEXT PRIMARY KEY,
    method TEXT NOT NULL,
    origin TEXT NOT NULL,
    payee TEXT NOT NULL,
    currency TEXT NOT NULL,
    network TEXT,
    lookup_key TEXT NOT NULL,
    details TEXT NOT NULL,
    deposit TEXT NOT NULL,
    highest_signed TEXT NOT NULL,
    voucher TEXT,
    highest_accepted TEXT NOT NULL,
    refund TEXT,
    state TEXT NOT NULL,
    deposit_refs TEXT NOT NULL,
    secret TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS channels_lookup ON channels (method, lookup_key, state);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT OR IGNORE INTO meta (key, value) VALUES ('channels_schema', '1');
"""

# Amounts are decimal text: uint128 totals do not fit SQLite's 64-bit integers.
_COLUMNS = (
    "id, method, origin, payee, currency, network, lookup_key, details, deposit, "
    "highest_signed, voucher, highest_accepted, refund, state, deposit_refs, created_at, "
    "updated_at"
)


class VoucherRegression(JournalError):
    """A voucher lower than one already signed for the channel was about to be recorded (it
    is never sent: cumulative vouchers only go up)."""


class SessionRecordsUnavailable(JournalError, TypeError):
    """The wallet's journal cannot hold session records (a custom ``Journal`` without a
    channel store; SQLite and PostgreSQL journals have one): raised
    when a session method joins the wallet, before anything is paid. The fix: give the method
    its own ``ChannelStore(path)``."""


def check_voucher(channel_id: str, cumulative: int, highest: int, deposit: int, state: str) -> None:
    """Refuse to record a voucher for ``cumulative`` (base units) on a channel whose highest
    signed voucher is ``highest``: never lower (``VoucherRegression``), never above the
    ``deposit``, never on a closed or evicted channel. Every channel store applies these."""
    if cumulative < highest:
        raise VoucherRegression(
            f"session {channel_id}: a voucher for {cumulative} is below the {highest} "
            "already signed; not recorded, not sent"
        )
    if cumulative > deposit:
        raise JournalError(
            f"session {channel_id}: a voucher for {cumulative} is above the deposit {deposit}"
        )
    if state in ("closed", "evicted"):
        raise JournalError(f"session {channel_id} is {state}: no more vouchers")


def accepted_move(row: Any, accepted: int, state: str) -> tuple[int, str]:
    """A validated receipt's effect on a channel ``row`` (``highest_signed``,
    ``highest_accepted``, ``state``): the new accepted cumulative (base units; up to
    ``accepted``, never above what was signed, never down) and the state (``opening`` becomes
    ``state``, any other stays). Every channel store applies this."""
    signed, current = int(row["highest_signed"]), int(row["highest_accepted"])
    value = max(current, min(accepted, signed))
    return value, state if row["state"] == "opening" else str(row["state"])


@dataclass(frozen=True, slots=True)
class NewChannel:
    """A session as first recorded. Amounts are base units of ``currency``. ``lookup_key``
    names what a later request may reuse the session for (origin, payee, token, escrow,
    chain, payer...; chosen by the method). ``details`` holds method facts as JSON data (escrow,
    chain id, salt, protocol version); never secrets. ``deposit_ref`` is the journal reference
    of the deposit's payment entry (the open transaction hash)."""

    id: str
    method: str
    origin: str
    payee: str
    currency: str
    network: str | None
    lookup_key: str
    details: Mapping[str, Any]
    deposit: int
    highest_signed: int = 0
    voucher: str | None = None
    deposit_ref: str | None = None


@dataclass(frozen=True, slots=True)
class ChannelRecord:
    """One session as read back (amounts in base units of ``currency``; times Unix seconds).

    ``voucher`` is the signature of the ``highest_signed`` voucher; it is not shown by
    ``repr`` or ``to_dict`` (only the payee can use it, but it is a payment authorization)."""

    id: str
    method: str
    origin: str
    payee: str
    currency: str
    network: str | None
    lookup_key: str
    details: Mapping[str, Any]
    deposit: int
    highest_signed: int
    highest_accepted: int
    refund: int | None
    state: ChannelState
    deposit_refs: tuple[str, ...]
    created_at: float
    updated_at: float
    voucher: str | None = field(default=None, repr=False)

    @property
    def remaining(self) -> int:
        """Deposit not yet promised by a signed voucher."""
        return self.deposit - self.highest_signed

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data, amounts as integers (no voucher signature, no secret)."""
        return {
            "id": self.id,
            "method": self.method,
            "origin": self.origin,
            "payee": self.payee,
            "currency": self.currency,
            "network": self.network,
            "details": dict(self.details),
            "deposit": self.deposit,
            "highest_signed": self.highest_signed,
            "highest_accepted": self.highest_accepted,
            "refund": self.refund,
            "state": self.state,
            "deposit_refs": list(self.deposit_refs),
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


class ChannelStore:
    """Session records in a journal's SQLite file (see the module docstring).

    ``path``: the journal file (or ``":memory:"`` for one that lives with this store only).
    Use ``ChannelStore.for_journal(journal)`` to share a ``SqliteJournal``'s file (and, for a
    journal in memory, its connection), so refunds can lower the deposit entries' exposure.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        clock: Clock | None = None,
        busy_timeout: float = 30.0,
        _journal: Any = None,
    ) -> None:
        self.path = os.fspath(path)
        self.clock: Clock = clock if clock is not None else SYSTEM_CLOCK
        self._busy_timeout = busy_timeout
        self._journal = _journal
        self._lock = threading.RLock()
        self._local = threading.local()
        self._shared: sqlite3.Connection | None = None
        self._connections: list[sqlite3.Connection] = []
        #: Whether this store writes to the WAL of the wallet's ``SqliteJournal`` (set by
        #: ``for_journal``), so a voucher the flow sends may skip its own fsync (the flow's
        #: ``sent`` step fsyncs the same WAL before the credential leaves). See
        #: ``record_voucher``.
        self.wal_shared_with_journal = False
        lock = self._journal._lock if self._journal is not None else self._lock
        try:
            with lock:
                self._conn().executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise JournalError(f"cannot create the session records in {self.path}: {exc}") from exc

    @classmethod
    def for_journal(cls, journal: Any, *, clock: Clock | None = None) -> ChannelStore:
        """The store in the same database as ``journal`` (a ``SqliteJournal``)."""
        from mpp_client.wallet.journal import SqliteJournal

        # A journal with its own session records (a PostgresJournal) provides the store.
        opener = getattr(journal, "channel_store", None)
        if callable(opener):
            return cast(ChannelStore, opener(clock=clock))
        path = getattr(journal, "path", None)
        if not isinstance(journal, SqliteJournal) or not isinstance(path, str):
            raise SessionRecordsUnavailable(
                f"session records live in a SqliteJournal's file, and this wallet's journal is "
                f"a {type(journal).__name__}; give the session method its own "
                "ChannelStore(path) (TempoSession(channels=...), LightningSession(store=...))"
            )
        shared = journal if path == ":memory:" else None
        store = cls(path, clock=clock, _journal=shared)
        # The journal's ``sent`` step is a FULL (fsync) commit to this same WAL (see
        # ``SqliteJournal``): it makes every earlier commit of the file durable with it.
        store.wal_shared_with_journal = path != ":memory:"
        return store

    def __repr__(self) -> str:
        return f"ChannelStore({self.path!r})"

    # --- connections ---------------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        if self._journal is not None:
            conn: sqlite3.Connection = self._journal._conn()  # a journal in memory: one db
            return conn
        if self.path == ":memory:":
            if self._shared is None:
                self._shared = self._open()
            return self._shared
        found: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if found is None:
            found = self._local.conn = self._open()
        return found

    def _open(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.path, timeout=self._busy_timeout, isolation_level=None,
                check_same_thread=False,
            )  # fmt: skip
            conn.row_factory = sqlite3.Row
            if self.path != ":memory:":
                conn.execute("PRAGMA journal_mode=WAL")
            # NORMAL by default; ``_write(durable=True)`` switches to FULL for the changes that
            # must survive a power loss (a voucher about to leave, an open, a refund).
            conn.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error as exc:
            raise JournalError(f"cannot open the session records in {self.path}: {exc}") from exc
        self._connections.append(conn)
        return conn

    @contextlib.contextmanager
    def _write(self, *, durable: bool = False) -> Iterator[sqlite3.Connection]:
        lock = self._journal._lock if self._journal is not None else self._lock
        with lock:
            conn = self._conn()
            try:
                if durable:
                    conn.execute("PRAGMA synchronous=FULL")
            except sqlite3.Error as exc:
                raise JournalError(f"cannot lock the session records: {exc}") from exc
            try:
                with _immediate(conn, "the session records"):
                    yield conn
            finally:
                if durable:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("PRAGMA synchronous=NORMAL")

    def close(self) -> None:
        """Close the connections this store opened (not a shared journal's)."""
        with self._lock:
            for conn in self._connections:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            self._connections.clear()
            self._shared = None

    # --- writing -------------------------------------------------------------------------------

    def open(self, channel: NewChannel) -> ChannelRecord:
        """Record a new session as ``opening`` (durably: the open may leave the process next).
        Raises ``JournalError`` when a session with this id exists already."""
        now = self.clock.time()
        refs = [channel.deposit_ref] if channel.deposit_ref else []
        try:
            with self._write(durable=True) as conn:
                conn.execute(
                    f"INSERT INTO channels ({_COLUMNS}) VALUES "  # noqa: S608 - constant columns
                    "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        channel.id, channel.method, channel.origin, channel.payee,
                        channel.currency, channel.network, channel.lookup_key,
                        json.dumps(dict(channel.details), sort_keys=True),
                        str(channel.deposit), str(channel.highest_signed), channel.voucher, "0",
                        None, "opening", json.dumps(refs), now, now,
                    ),
                )  # fmt: skip
        except sqlite3.IntegrityError as exc:
            raise JournalError(f"session {channel.id} is already recorded") from exc
        return self._written(channel.id)

    def record_voucher(
        self, channel_id: str, cumulative: int, signature: str, *, fsync: bool = True
    ) -> ChannelRecord:
        """Compare-and-set the highest signed voucher (see the module docstring). Returns the
        record as stored: for an equal amount, with the signature stored first.

        ``fsync=False`` commits at ``synchronous=NORMAL`` (no fsync of its own). Only for a
        voucher the payment flow sends, on a store whose ``wal_shared_with_journal`` is true:
        the flow commits the payment's ``sent`` step with an fsync of this same WAL before the
        credential leaves the process, and that fsync makes this earlier commit durable too.
        Every other voucher (in-stream, a store of its own, PostgreSQL) keeps its fsync."""
        if cumulative < 0:
            raise ValueError("a cumulative amount is never negative")
        with self._write(durable=fsync or not self.wal_shared_with_journal) as conn:
            row = conn.execute(
                "SELECT highest_signed, deposit, state FROM channels WHERE id=?", (channel_id,)
            ).fetchone()
            if row is None:
                raise JournalError(f"no session record {channel_id}")
            highest = int(row["highest_signed"])
            check_voucher(channel_id, cumulative, highest, int(row["deposit"]), row["state"])
            if cumulative > highest:
                conn.execute(
                    "UPDATE channels SET highest_signed=?, voucher=?, updated_at=? "
                    "WHERE id=? AND highest_signed=?",
                    (str(cumulative), signature, self.clock.time(), channel_id, str(highest)),
                )
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM channels WHERE id=?",  # noqa: S608 - constant columns
                (channel_id,),
            ).fetchone()
        return _record(row)

    def sign_next(
        self,
        channel_id: str,
        target: Callable[[int, int], int],
        sign: Callable[[int], str],
        *,
        fsync: bool = True,
    ) -> tuple[int, str, int]:
        """Sign and record the next voucher in ONE write transaction: read the highest signed
        cumulative ``h`` and the deposit ``d``, sign ``target(h, d)`` (``sign(cumulative)``
        returns the signature) and store it, all under the write lock, so no other writer
        (thread or process) can come in between and nothing needs re-reading or retrying.
        ``target(h, d) == h`` with a stored voucher returns the stored one (an idempotent
        resend, nothing signed). An exception from ``target`` or ``sign`` records nothing.
        Returns ``(cumulative, signature, deposit)``; the rules are ``record_voucher``'s
        (``check_voucher``: never lower, never above the deposit, never on a closed or
        evicted channel; ``fsync`` as there).

        A subclass that stores records elsewhere (``PostgresChannelStore``) and does not
        override this gets the same result from its own ``get`` and ``record_voucher``."""
        if type(self).record_voucher is not ChannelStore.record_voucher:
            return self._sign_next_by_parts(channel_id, target, sign, fsync=fsync)
        with self._write(durable=fsync or not self.wal_shared_with_journal) as conn:
            row = conn.execute(
                "SELECT highest_signed, deposit, state, voucher FROM channels WHERE id=?",
                (channel_id,),
            ).fetchone()
            if row is None:
                raise JournalError(f"no session record {channel_id}")
            highest, deposit = int(row["highest_signed"]), int(row["deposit"])
            cumulative = int(target(highest, deposit))
            if cumulative == highest and row["voucher"]:
                return cumulative, str(row["voucher"]), deposit
            check_voucher(channel_id, cumulative, highest, deposit, row["state"])
            signature = sign(cumulative)
            conn.execute(
                "UPDATE channels SET highest_signed=?, voucher=?, updated_at=? WHERE id=?",
                (str(cumulative), signature, self.clock.time(), channel_id),
            )
        return cumulative, signature, deposit

    def _sign_next_by_parts(
        self,
        channel_id: str,
        target: Callable[[int, int], int],
        sign: Callable[[int], str],
        *,
        fsync: bool,
    ) -> tuple[int, str, int]:
        """``sign_next`` from ``get`` and ``record_voucher`` (a compare-and-set that may lose
        to another writer: then read again and recompute)."""
        for _ in range(16):
            record = self.get(channel_id)
            if record is None:
                raise JournalError(f"no session record {channel_id}")
            cumulative = int(target(record.highest_signed, record.deposit))
            if cumulative == record.highest_signed and record.voucher:
                return cumulative, record.voucher, record.deposit
            check_voucher(
                channel_id, cumulative, record.highest_signed, record.deposit, record.state
            )
            signature = sign(cumulative)
            try:
                stored = self.record_voucher(channel_id, cumulative, signature, fsync=fsync)
            except VoucherRegression:
                continue  # another writer went higher meanwhile: recompute
            if stored.highest_signed == cumulative and stored.voucher == signature:
                return cumulative, signature, stored.deposit
        raise JournalError(f"session {channel_id}: could not record a voucher (contention)")

    def accept(self, channel_id: str, accepted: int, *, state: ChannelState = "open") -> None:
        """The server accepted ``accepted`` (from a validated receipt): move
        ``highest_accepted`` up to it (never above ``highest_signed``, never down) and the
        state from ``opening`` to ``state``."""
        with self._write() as conn:
            row = conn.execute(
                "SELECT highest_signed, highest_accepted, state FROM channels WHERE id=?",
                (channel_id,),
            ).fetchone()
            if row is None:
                return
            value, new_state = accepted_move(row, accepted, state)
            conn.execute(
                "UPDATE channels SET highest_accepted=?, state=?, updated_at=? WHERE id=?",
                (str(value), new_state, self.clock.time(), channel_id),
            )

    def topped_up(self, channel_id: str, deposit: int, deposit_ref: str | None) -> None:
        """The deposit grew to ``deposit`` (a top-up the chain or server confirmed)."""
        with self._write(durable=True) as conn:
            row = conn.execute(
                "SELECT deposit, deposit_refs FROM channels WHERE id=?", (channel_id,)
            ).fetchone()
            if row is None:
                raise JournalError(f"no session record {channel_id}")
            refs = list(json.loads(row["deposit_refs"]))
            if deposit_ref and deposit_ref not in refs:
                refs.append(deposit_ref)
            conn.execute(
                "UPDATE channels SET deposit=?, deposit_refs=?, updated_at=? WHERE id=?",
                (str(max(deposit, int(row["deposit"]))), json.dumps(refs), self.clock.time(),
                 channel_id),
            )  # fmt: skip

    def set_state(self, channel_id: str, state: ChannelState) -> None:
        """Move a session to ``state`` (``closing``, ``evicted``, ...)."""
        if state not in _STATES:
            raise ValueError(f"unknown session state {state!r}")
        with self._write(durable=True) as conn:
            conn.execute(
                "UPDATE channels SET state=?, updated_at=? WHERE id=?",
                (state, self.clock.time(), channel_id),
            )

    def settle_close(self, channel_id: str, *, paid: int, refund: int) -> ChannelRecord:
        """The close settled: ``paid`` went to the payee, ``refund`` back to the payer (base
        units). Records both and releases the refund from the budgets (lowers the exposure of
        the session's deposit entries, latest first) in one transaction."""
        with self._write(durable=True) as conn:
            row = conn.execute(
                "SELECT deposit_refs, state FROM channels WHERE id=?", (channel_id,)
            ).fetchone()
            if row is None:
                raise JournalError(f"no session record {channel_id}")
            if row["state"] == "closed":
                return self._written(channel_id)
            left = refund
            refs: Sequence[str] = json.loads(row["deposit_refs"])
            has_payments = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type='table' AND name='payments'"
            ).fetchone()
            for ref in reversed(refs):
                if left <= 0 or not has_payments:
                    break
                entry = conn.execute(
                    # Only an entry still exposing money: a zero-amount entry sharing the
                    # reference (a voucher, a bearer request) has nothing to give back.
                    "SELECT id, exposure FROM payments WHERE reference=? AND held=1 "
                    "AND exposure > 0 ORDER BY seq DESC LIMIT 1",
                    (ref,),
                ).fetchone()
                if entry is None:
                    continue
                cut = min(left, int(entry["exposure"]))
                conn.execute(
                    "UPDATE payments SET exposure=exposure-?, updated_at=?, "
                    "reason=COALESCE(reason || '; ', '') || ? WHERE id=?",
                    (cut, self.clock.time(), f"session {channel_id} closed: {cut} refunded",
                     entry["id"]),
                )  # fmt: skip
                left -= cut
            conn.execute(
                "UPDATE channels SET state='closed', refund=?, highest_accepted=?, updated_at=? "
                "WHERE id=?",
                (str(refund), str(paid), self.clock.time(), channel_id),
            )
        return self._written(channel_id)

    def note(self, channel_id: str, **facts: Any) -> ChannelRecord:
        """Merge ``facts`` (JSON values) into the session's ``details``, durably: a fact a
        restart must still know (e.g. ``overclaimed=True``: the server claimed more spent than
        was deposited, so no more top-ups). Raises ``JournalError`` for an unknown session."""
        with self._write(durable=True) as conn:
            row = conn.execute("SELECT details FROM channels WHERE id=?", (channel_id,)).fetchone()
            if row is None:
                raise JournalError(f"no session record {channel_id}")
            details = {**json.loads(row["details"]), **facts}
            conn.execute(
                "UPDATE channels SET details=?, updated_at=? WHERE id=?",
                (json.dumps(details, sort_keys=True), self.clock.time(), channel_id),
            )
        return self._written(channel_id)

    def set_secret(self, channel_id: str, secret: str) -> None:
        """Store the session's bearer secret (e.g. a Lightning deposit preimage) in a column
        that no listing, ``to_dict`` or ``repr`` shows."""
        with self._write(durable=True) as conn:
            conn.execute("UPDATE channels SET secret=? WHERE id=?", (secret, channel_id))

    def secret(self, channel_id: str) -> Secret[str] | None:
        """The session's bearer secret, wrapped so it is never printed by accident."""
        row = (
            self._conn().execute("SELECT secret FROM channels WHERE id=?", (channel_id,)).fetchone()
        )
        if row is None or row["secret"] is None:
            return None
        return Secret(str(row["secret"]))

    # --- reading -------------------------------------------------------------------------------

    def _written(self, channel_id: str) -> ChannelRecord:
        """The record of a session this store has just written (so it exists)."""
        found = self.get(channel_id)
        assert found is not None
        return found

    def get(self, channel_id: str) -> ChannelRecord | None:
        """The session ``channel_id``, or ``None``."""
        rows = self._select("WHERE id=?", (channel_id,))
        return rows[0] if rows else None

    def find(
        self, method: str, lookup_key: str, *, states: Sequence[ChannelState] = ("open",)
    ) -> list[ChannelRecord]:
        """Sessions of ``method`` with ``lookup_key`` in one of ``states``, newest first."""
        marks = ",".join("?" * len(states))
        return self._select(
            f"WHERE method=? AND lookup_key=? AND state IN ({marks}) ORDER BY created_at DESC",
            (method, lookup_key, *states),
        )

    def channels(self, *, method: str | None = None) -> list[ChannelRecord]:
        """Every session (of ``method``), oldest first."""
        if method is None:
            return self._select("ORDER BY created_at", ())
        return self._select("WHERE method=? ORDER BY created_at", (method,))

    def _select(self, where: str, args: tuple[Any, ...]) -> list[ChannelRecord]:
        lock = self._journal._lock if self._journal is not None else self._lock
        try:
            with lock:
                rows = (
                    self._conn()
                    .execute(f"SELECT {_COLUMNS} FROM channels {where}", args)  # noqa: S608
                    .fetchall()
                )
        except sqlite3.Error as exc:
            raise JournalError(f"cannot read the session records: {exc}") from exc
        return [_record(row) for row in rows]


def _record(row: sqlite3.Row) -> ChannelRecord:
    refund = row["refund"]
    return ChannelRecord(
        id=row["id"],
        method=row["method"],
        origin=row["origin"],
        payee=row["payee"],
        currency=row["currency"],
        network=row["network"],
        lookup_key=row["lookup_key"],
        details=json.loads(row["details"]),
        deposit=int(row["deposit"]),
        highest_signed=int(row["highest_signed"]),
        highest_accepted=int(row["highest_accepted"]),
        refund=None if refund is None else int(refund),
        state=row["state"],
        deposit_refs=tuple(json.loads(row["deposit_refs"])),
        created_at=float(row["created_at"]),
        updated_at=float(row["updated_at"]),
        voucher=row["voucher"],
    )
