"""Window and lifetime totals come from running totals per second, minute and hour: they must
agree exactly with summing the payments one by one, at every window edge, after releases,
deletes, pruning and clocks set back; and journals of the first schema are upgraded."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mpp_client.errors import BudgetExceeded, JournalError
from mpp_client.guard import PaymentOptions
from mpp_client.methods.base import Payee
from mpp_client.money import SAT, Money
from mpp_client.runner import run_sync
from mpp_client.wallet import Limit, SpendPolicy, SqliteJournal, Wallet, usd
from mpp_client.wallet.journal import _SCHEMA, NewPayment

from .conftest import PATH_USD, Clock, context, quote

ORIGINS = ("https://a.example", "https://b.example")
METHODS = ("tempo", "lightning")
PAYEES = ("0xa", "0xb", "0xc")
CURRENCIES = (PATH_USD, SAT)
START = 1_800_000_000.0


def new_payment(
    amount: int, currency=PATH_USD, origin=ORIGINS[0], method=METHODS[0], payees=None
) -> NewPayment:
    payees = payees if payees is not None else (Payee(PAYEES[0], amount),)
    return NewPayment(
        call_id="call", challenge_id="ch", realm=None, origin=origin, url=origin + "/x",
        http_method="GET", method=method, intent="charge", amount=Money(amount, currency),
        exposure=amount, max_fee=None, network=None, payees=payees, expires=None, label=None,
    )  # fmt: skip


@dataclass
class Held:
    """The model: one payment as the policy should count it."""

    created_at: float
    exposure: int
    currency_code: str
    origin: str
    method: str
    payees: tuple[Payee, ...]
    held: bool = True
    extra: list[Payee] = field(default_factory=list)


def model_total(
    payments: list[Held],
    code: str,
    since: float | None,
    origin: str | None = None,
    method: str | None = None,
    payee: str | None = None,
) -> int:
    total = 0
    for p in payments:
        if not p.held or p.currency_code != code:
            continue
        if since is not None and not p.created_at > since:
            continue
        if origin is not None and p.origin != origin:
            continue
        if method is not None and p.method != method:
            continue
        if payee is None:
            total += p.exposure
        else:
            total += sum(y.amount for y in (*p.payees, *p.extra) if y.address == payee)
    return total


FILTERS = [
    {},
    {"origin": ORIGINS[0]},
    {"origin": ORIGINS[1]},
    {"method": METHODS[1]},
    {"payee": PAYEES[0]},
    {"payee": PAYEES[2]},
    {"origin": ORIGINS[0], "method": METHODS[0]},  # no running total: summed one by one
]


def check_totals(journal: SqliteJournal, payments: list[Held], sinces: list[float | None]) -> None:
    ledger = journal.ledger()
    for filters in FILTERS:
        for since in sinces:
            got = dict((c.code, a) for c, a in ledger.held_totals(since=since, **filters))
            for currency in CURRENCIES:
                want = model_total(payments, currency.code, since, **filters)
                assert got.get(currency.code, 0) == want, (filters, since, currency.code)


# Gaps in milliseconds: bucket edges (a second, a minute, an hour, a day) and a hair either
# side of them, days (pruning), and the clock set back.
gap_ms = st.one_of(
    st.sampled_from([0, 1, 999, 1_000, 1_001, 59_999, 60_000, 3_599_999, 3_600_000]),
    st.sampled_from([86_399_999, 86_400_000, 86_400_001, 3 * 86_400_000, -1, -1_000]),
    st.sampled_from([-3_600_000, -4 * 86_400_000]),
    st.integers(0, 7_200_000),
)
operation = st.one_of(
    st.tuples(
        st.just("pay"),
        gap_ms,
        st.integers(1, 10**6),
        st.sampled_from(CURRENCIES),
        st.sampled_from(ORIGINS),
        st.sampled_from(METHODS),
        st.lists(st.sampled_from(PAYEES), min_size=1, max_size=3),
    ),
    st.tuples(
        st.sampled_from(["release", "moved", "settle", "delete", "raw-release"]),
        st.integers(0, 1_000),
    ),
    st.tuples(st.just("add-payee"), st.integers(0, 1_000), st.sampled_from(PAYEES)),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(operation, min_size=1, max_size=30), st.sampled_from([0.0, 0.25, 0.999]))
def test_totals_match_summing_every_payment(ops, offset):
    clock = Clock(START + offset)
    journal = SqliteJournal(":memory:", clock=clock)
    payments: list[Held] = []
    ids: list[str] = []
    try:
        for op in ops:
            kind = op[0]
            if kind == "pay":
                _, gap, amount, currency, origin, method, addresses = op
                clock.now += gap / 1000
                payees = tuple(Payee(a, amount // len(addresses)) for a in addresses)
                with journal.atomic() as ledger:
                    ids.append(ledger.insert(new_payment(amount, currency, origin, method, payees)))
                payments.append(Held(clock.now, amount, currency.code, origin, method, payees))
            elif ids:
                n = op[1] % len(ids)
                entry, held = ids[n], payments[n]
                if kind == "release":
                    if journal.advance(entry, "failed", reason="x", money_moved=False):
                        held.held = False
                # ``advance`` writes held=1 for every state but a release, whatever it was.
                elif kind == "moved":
                    if journal.advance(entry, "failed", reason="x", money_moved=True):
                        held.held = True
                elif kind == "settle":
                    if journal.advance(entry, "settled"):
                        held.held = True
                elif kind == "delete":
                    with journal._write() as conn:  # what an owner pruning history might do
                        conn.execute("DELETE FROM payments WHERE id=?", (entry,))
                    held.held = False
                elif kind == "raw-release":
                    with journal._write() as conn:  # like recover() or another version
                        conn.execute("UPDATE payments SET held=0 WHERE id=?", (entry,))
                    held.held = False
                else:
                    with journal._write() as conn:
                        conn.execute(
                            "INSERT INTO payment_payees (payment_id, address, amount) "
                            "VALUES (?, ?, 7)",
                            (entry, op[2]),
                        )
                    held.extra.append(Payee(op[2], 7))
            now = clock.now
            sinces: list[float | None] = [None, now - 3600, now - 86400]
            for p in payments[-3:]:
                sinces += [p.created_at, p.created_at - 0.0005, p.created_at - 1, p.created_at - 60]
            check_totals(journal, payments, sinces)
    finally:
        journal.close()


def test_daily_cap_is_exact_at_the_edge_of_the_window_with_many_payments(tmp_path):
    """Many payments in one second a day ago: the ones in the window's first second count
    one by one, the rest through running totals."""
    clock = Clock(START + 0.5)
    wallet = Wallet(
        policy=SpendPolicy(limits=(Limit(usd("1"), "day"),), pin_payees=False),
        journal=SqliteJournal(tmp_path / "j.sqlite3", clock=clock),
    )
    for step in range(100):  # $0.01 every 5 ms: 0.5 .. 0.995
        clock.now = START + 0.5 + step * 0.005
        run_sync(wallet.reserve(quote(10_000), context(), PaymentOptions()))
    clock.now = START + 86_400 + 0.75  # the window is (START + 0.75, ...]: 49 payments left
    run_sync(wallet.reserve(quote(510_000), context(), PaymentOptions()))
    with pytest.raises(BudgetExceeded):
        run_sync(wallet.reserve(quote(1), context(), PaymentOptions()))
    clock.now += 0.005  # one more of the old payments leaves the window
    run_sync(wallet.reserve(quote(10_000), context(), PaymentOptions()))
    with pytest.raises(BudgetExceeded):
        run_sync(wallet.reserve(quote(1), context(), PaymentOptions()))
    wallet.close()


def _downgrade_to_first_schema(path) -> None:
    """Turn a journal into what the first schema left on disk (no running totals)."""
    conn = sqlite3.connect(path)
    names = conn.execute(
        "SELECT type, name FROM sqlite_master WHERE name LIKE 'held_buckets%' "
        "OR name='payment_payees_payment'"
    ).fetchall()
    for kind, name in names:
        if kind in ("trigger", "index"):
            conn.execute(f"DROP {kind.upper()} {name}")
    conn.execute("DROP TABLE held_buckets")
    conn.execute("DELETE FROM meta WHERE key != 'schema'")
    conn.execute("UPDATE meta SET value='1' WHERE key='schema'")
    conn.commit()
    conn.close()


def _schema(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    return conn.execute(
        "SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY name"
    ).fetchall()


def test_journals_of_the_first_schema_are_upgraded_with_their_totals(tmp_path):
    path = tmp_path / "old.sqlite3"
    clock = Clock()
    journal = SqliteJournal(path, clock=clock)
    ids = []
    for n, (currency, origin) in enumerate(
        [(PATH_USD, ORIGINS[0]), (PATH_USD, ORIGINS[1]), (SAT, ORIGINS[0]), (PATH_USD, ORIGINS[0])]
    ):
        clock.now += 1_000.25
        payees = (Payee(PAYEES[n % 2], 100 * (n + 1)), Payee(PAYEES[2], 5))
        with journal.atomic() as ledger:
            ids.append(
                ledger.insert(new_payment(100 * (n + 1) + 5, currency, origin, payees=payees))
            )
    journal.advance(ids[1], "failed", reason="refused", money_moved=False)
    journal.close()
    _downgrade_to_first_schema(path)

    first = sqlite3.connect(":memory:")
    first.executescript(_SCHEMA)
    old = sqlite3.connect(path)
    assert _schema(old) == _schema(first)  # exactly what the first schema made
    old.close()

    journal = SqliteJournal(path, clock=clock)
    conn = journal._conn()
    assert conn.execute("SELECT value FROM meta WHERE key='schema'").fetchone()[0] == "3"
    ledger = journal.ledger()
    usd_held = [
        (c.code, a) for c, a in ledger.held_totals() if c == PATH_USD
    ]  # lifetime: 105 + 405 (205 released)
    assert usd_held == [(PATH_USD.code, 510)]
    assert [(c.code, a) for c, a in ledger.held_totals(payee=PAYEES[2])] == [
        (PATH_USD.code, 10),
        (SAT.code, 5),
    ]
    # The window reaches back over the last two payments only.
    since = clock.now - 1_500
    assert [(c.code, a) for c, a in ledger.held_totals(since=since, origin=ORIGINS[0])] == [
        (PATH_USD.code, 405),
        (SAT.code, 305),
    ]
    # Counted from the running totals, which hold the same figures.
    assert (
        conn.execute(
            "SELECT total FROM held_buckets WHERE scope='' AND span=0 AND currency_id="
            "(SELECT currency_id FROM payments WHERE id=?)",
            (ids[0],),
        ).fetchone()[0]
        == 510
    )
    # New payments keep counting, and a second open does not count the old ones twice.
    with journal.atomic() as writer:
        writer.insert(new_payment(1_000))
    journal.close()
    journal = SqliteJournal(path, clock=clock)
    assert [a for c, a in journal.ledger().held_totals() if c == PATH_USD] == [1_510]
    journal.close()


def test_a_total_past_sqlite_integers_is_refused_not_rounded():
    journal = SqliteJournal(":memory:", clock=Clock())
    with journal.atomic() as ledger:
        ledger.insert(new_payment(2**62))
    with pytest.raises(JournalError), journal.atomic() as ledger:
        ledger.insert(new_payment(2**62))
    assert [a for _, a in journal.ledger().held_totals()] == [2**62]
    journal.close()


def test_windows_reaching_before_pruned_totals_are_summed_exactly():
    clock = Clock()
    journal = SqliteJournal(":memory:", clock=clock)
    amounts: Callable[[float], list[int]] = lambda since: [  # noqa: E731
        a for _, a in journal.ledger().held_totals(since=since)
    ]
    with journal.atomic() as ledger:
        ledger.insert(new_payment(7))
    clock.now += 5 * 86_400  # the next payment prunes buckets older than two days
    with journal.atomic() as ledger:
        ledger.insert(new_payment(11))
    conn = journal._conn()
    # One second left per scope (every payment, origin, method, payee).
    assert conn.execute("SELECT COUNT(*) FROM held_buckets WHERE span=1").fetchone()[0] == 4
    assert amounts(clock.now - 86_400) == [11]
    assert amounts(clock.now - 6 * 86_400) == [18]  # before the watermark: summed
    assert [a for _, a in journal.ledger().held_totals()] == [18]  # lifetime is never pruned
    journal.close()


def test_a_fresh_watermark_is_read_back_and_not_pruned_again(tmp_path):
    # The watermark is a ten-digit Unix second: a second journal object (another process)
    # within the hour must read it back and leave it, not delete and rewrite on every pass.
    clock = Clock()
    clock.now = START
    path = str(tmp_path / "journal.sqlite3")
    first = SqliteJournal(path, clock=clock)
    with first.atomic() as ledger:
        ledger.insert(new_payment(7))
    mark = "SELECT value FROM meta WHERE key='buckets_pruned_before'"
    (written,) = first._conn().execute(mark).fetchone()
    assert written == str(int(START) - 2 * 86_400) and len(written) == 10
    clock.now += 600  # ten minutes later: not due again
    second = SqliteJournal(path, clock=clock)
    with second.atomic() as ledger:
        ledger.insert(new_payment(11))
    assert tuple(second._conn().execute(mark).fetchone()) == (written,)
    clock.now += 3_600  # an hour after the watermark: due, moved forward
    third = SqliteJournal(path, clock=clock)
    with third.atomic() as ledger:
        ledger.insert(new_payment(13))
    assert tuple(third._conn().execute(mark).fetchone()) == (str(int(clock.now) - 2 * 86_400),)
    for journal in (first, second, third):
        journal.close()
