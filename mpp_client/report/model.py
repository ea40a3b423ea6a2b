"""The spend report's data, computed once from the journal: what the renderers draw.

Amounts are what the payees were paid (``PaymentRecord.amount``, base units of its currency;
network fees are not included), summed per currency: amounts in different currencies are never
added together. An entry counts as ``spent`` (settled, or failed after the value moved),
``held`` (the outcome is not final: in flight or unknown; the amount stays reserved against
the budgets) or ``released`` (proven to have moved nothing; not counted). Days are calendar days
in the report's time zone; "today" comes from the injected clock, never from the machine's date.

Nothing secret is in a report: no credential fingerprints, receipts or payer accounts.
Everything textual in it (origins, reasons, method names) came from servers or the journal and
is hostile: the renderers escape it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import TYPE_CHECKING, Literal, get_args

from mpp_client.lifecycle import PaymentState
from mpp_client.money import Currency, Money
from mpp_client.report.caps import CapUsage, cap_usage

if TYPE_CHECKING:
    from mpp_client.clock import Clock
    from mpp_client.wallet import PaymentRecord, SpendPolicy
    from mpp_client.wallet.journal import Journal
    from mpp_client.wallet.prices import PriceSource

__all__ = [
    "DayTotal",
    "GroupRow",
    "MoneyStatus",
    "Report",
    "ReportEntry",
    "build_report",
    "money_status",
    "summarize",
    "timezone_label",
]

MoneyStatus = Literal["spent", "held", "released"]

#: How many days the daily chart and the tables cover, today included.
DEFAULT_DAYS = 30

#: The states an entry whose outcome is not final can be in (``failed`` too: failed without
#: knowing whether money moved stays held); ``money_status`` decides.
_MAYBE_HELD: tuple[PaymentState, ...] = tuple(s for s in get_args(PaymentState) if s != "settled")


def money_status(record: PaymentRecord) -> MoneyStatus:
    """What the entry means for the budgets: ``held`` (reserved, the outcome not final),
    ``spent`` (settled, or failed after the value moved) or ``released`` (proven: nothing
    moved)."""
    if not record.held:
        return "released"
    if record.state == "settled" or (record.state == "failed" and record.money_moved):
        return "spent"
    return "held"


def timezone_label(moment: datetime) -> str:
    """``UTC+01:00 (CET)``: the offset of an aware ``moment`` and its zone's name."""
    offset = moment.utcoffset() or timedelta(0)
    sign = "-" if offset < timedelta(0) else "+"
    minutes = abs(int(offset.total_seconds())) // 60
    label = f"UTC{sign}{minutes // 60:02d}:{minutes % 60:02d}"
    name = moment.tzname()
    return f"{label} ({name})" if name and name not in (label, "UTC") else label


@dataclass(frozen=True, slots=True)
class ReportEntry:
    """One journal entry as the report shows it (``created`` in the report's time zone)."""

    id: str
    created: datetime
    origin: str
    method: str
    state: str
    status: MoneyStatus
    amount: Money
    reason: str | None

    @property
    def day(self) -> date:
        return self.created.date()


@dataclass(frozen=True, slots=True)
class DayTotal:
    """One day of one currency: base units ``spent`` and ``held``."""

    day: date
    spent: int
    held: int


@dataclass(frozen=True, slots=True)
class GroupRow:
    """One origin (or method) in one currency over the report's days: base units ``spent``
    and ``held``, how many ``payments`` (released ones not counted) and how many of them are
    ``unknown``."""

    key: str
    currency: Currency
    spent: int
    held: int
    payments: int
    unknown: int

    @property
    def total(self) -> int:
        return self.spent + self.held


@dataclass(frozen=True, slots=True)
class Report:
    """Everything ``mpp report`` shows. ``days``: the calendar days covered, oldest first,
    ending today (``generated_at``'s date). ``daily``, ``origins``, ``methods`` and the totals
    cover those days; ``attention`` lists every payment whose outcome is not final, however
    old; ``caps`` are the policy's limits as the journal stands now; ``entries`` are the
    payments of the covered days (for filtering), oldest first."""

    generated_at: datetime
    timezone: str
    days: tuple[date, ...]
    currencies: tuple[Currency, ...]
    daily: dict[Currency, tuple[DayTotal, ...]]
    totals: dict[Currency, DayTotal]
    origins: tuple[GroupRow, ...]
    methods: tuple[GroupRow, ...]
    caps: tuple[CapUsage, ...]
    attention: tuple[ReportEntry, ...]
    entries: tuple[ReportEntry, ...]

    @property
    def unknown(self) -> tuple[ReportEntry, ...]:
        """Payments whose outcome is unknown (may have settled; held)."""
        return tuple(e for e in self.attention if e.state == "unknown")


def _entry(record: PaymentRecord, tz: tzinfo | None) -> ReportEntry:
    created = record.created_at.astimezone(tz) if tz else record.created_at.astimezone()
    return ReportEntry(
        id=record.id,
        created=created,
        origin=record.origin,
        method=record.method,
        state=record.state,
        status=money_status(record),
        amount=record.amount,
        reason=record.reason,
    )


def _groups(entries: Iterable[ReportEntry], key: Literal["origin", "method"]) -> list[GroupRow]:
    sums: dict[tuple[str, Currency], list[int]] = {}
    for entry in entries:
        if entry.status == "released":
            continue
        cell = sums.setdefault((getattr(entry, key), entry.amount.currency), [0, 0, 0, 0])
        cell[0 if entry.status == "spent" else 1] += entry.amount.amount
        cell[2] += 1
        cell[3] += entry.state == "unknown"
    rows = [GroupRow(k, cur, *values) for (k, cur), values in sums.items()]
    rows.sort(key=lambda r: (-r.total, r.key, r.currency.code))
    return rows


def summarize(
    records: Sequence[PaymentRecord],
    *,
    now: datetime,
    caps: Sequence[CapUsage] = (),
    days: int = DEFAULT_DAYS,
) -> Report:
    """The report over ``records`` for the ``days`` calendar days ending on ``now``'s date
    (``now`` is aware; its zone is the report's)."""
    if days < 1:
        raise ValueError("a report covers at least one day")
    tz = now.tzinfo
    today = now.date()
    covered = tuple(today - timedelta(days=n) for n in range(days - 1, -1, -1))
    every = [_entry(r, tz) for r in records]
    every.sort(key=lambda e: (e.created, e.id))
    start = covered[0]
    entries = tuple(e for e in every if start <= e.day <= today)
    currencies: list[Currency] = []
    per_day: dict[tuple[Currency, date], list[int]] = {}
    for entry in entries:
        currency = entry.amount.currency
        if currency not in currencies:
            currencies.append(currency)
        if entry.status == "released":
            continue
        cell = per_day.setdefault((currency, entry.day), [0, 0])
        cell[0 if entry.status == "spent" else 1] += entry.amount.amount
    daily: dict[Currency, tuple[DayTotal, ...]] = {}
    totals: dict[Currency, DayTotal] = {}
    for currency in currencies:
        row = tuple(DayTotal(d, *per_day.get((currency, d), (0, 0))) for d in covered)
        daily[currency] = row
        totals[currency] = DayTotal(today, sum(d.spent for d in row), sum(d.held for d in row))
    attention = tuple(e for e in every if e.status == "held")
    return Report(
        generated_at=now,
        timezone=timezone_label(now),
        days=covered,
        currencies=tuple(currencies),
        daily=daily,
        totals=totals,
        origins=tuple(_groups(entries, "origin")),
        methods=tuple(_groups(entries, "method")),
        caps=tuple(caps),
        attention=attention,
        entries=entries,
    )


def build_report(
    journal: Journal,
    policy: SpendPolicy,
    *,
    clock: Clock,
    tz: tzinfo | None = None,
    prices: PriceSource | None = None,
    days: int = DEFAULT_DAYS,
) -> Report:
    """Read ``journal`` once and compute the report for the ``days`` days ending today by
    ``clock``, in time zone ``tz`` (default: the machine's local zone), with ``policy``'s caps
    as the journal's ledger counts them."""
    moment = datetime.fromtimestamp(clock.time(), UTC)
    now = moment.astimezone(tz) if tz else moment.astimezone()
    caps = cap_usage(policy, journal.ledger(), prices)
    # Only what the report shows is read: the covered days (from a day before the first one's
    # midnight, whatever the zone's offsets; summarize draws the exact line) and the payments
    # not final, however old. A journal of years is not loaded for a month's report.
    first = now.date() - timedelta(days=max(days, 1) - 1)
    since = datetime.combine(first, time(0), tzinfo=UTC) - timedelta(days=1)
    recent = journal.payments(since=since)
    seen = {r.id for r in recent}
    pending = [
        r
        for r in journal.payments(state=_MAYBE_HELD)
        if r.id not in seen and money_status(r) == "held"
    ]
    return summarize([*pending, *recent], now=now, caps=caps, days=days)
