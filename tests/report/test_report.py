"""``mpp_client.report``: the figures equal the journal's, the days follow the report's time zone
and the injected clock, hostile journal text stays text, and the terminal rendering shows bars,
caps and the payments that are not final."""

from __future__ import annotations

from datetime import UTC, date, timedelta, timezone
from pathlib import Path

import pytest

from mpp_client.money import SAT
from mpp_client.report import build_report, render_text
from mpp_client.testing.method import TEST_CURRENCY
from mpp_client.wallet import Limit, SpendPolicy, usd
from mpp_client.wallet.policy import USD_PEGGED

from .journal import HOSTILE, HOSTILE_REASON, NOW, A, B, Made, build


@pytest.fixture
def journal(tmp_path: Path):
    journal, clock, made = build(tmp_path / "journal.sqlite3")
    yield journal, clock, made
    journal.close()


def expected(made: list[Made], *, today: date, days: int = 30, origin: str | None = None):
    """The report's figures computed independently from what was written."""
    first = today - timedelta(days=days - 1)
    spent: dict[str, int] = {}
    held: dict[str, int] = {}
    for m in made:
        day = (NOW - timedelta(days=m.days_ago, minutes=made.index(m))).date()
        if not first <= day <= today or (origin and m.origin != origin):
            continue
        if m.outcome == "settled":
            spent[m.currency.code] = spent.get(m.currency.code, 0) + m.amount
        elif m.outcome in ("unknown", "sent"):
            held[m.currency.code] = held.get(m.currency.code, 0) + m.amount
    return spent, held


def test_totals_per_day_origin_and_method_equal_the_journal(journal):
    j, clock, made = journal
    report = build_report(j, SpendPolicy(), clock=clock, tz=UTC)

    assert report.days[-1] == NOW.date() and len(report.days) == 30
    spent, held = expected(made, today=NOW.date())
    assert {c.code: t.spent for c, t in report.totals.items()} == spent
    assert {c.code: t.held for c, t in report.totals.items() if t.held} == held
    # 0.03 tUSD settled in the 30 days: the 0.099 one 31 days ago and the released 0.007 are out.
    assert report.totals[TEST_CURRENCY].spent == 10_000 + 5_000 + 12_000 + 1_000 + 2_000
    assert report.totals[TEST_CURRENCY].held == 25_000 + 3_000
    today = report.daily[TEST_CURRENCY][-1]
    assert (today.day, today.spent, today.held) == (NOW.date(), 10_000, 25_000)
    origins = {(r.key, r.currency.code): r for r in report.origins}
    assert origins[(A, "usd-test")].spent == 11_000 and origins[(A, "usd-test")].held == 25_000
    assert origins[(A, "usd-test")].unknown == 1 and origins[(A, "usd-test")].payments == 3
    assert origins[(B, "sat")].spent == 150
    methods = {(r.key, r.currency.code): r for r in report.methods}
    assert methods[("lightning", "sat")].held == 40
    assert sum(r.spent for r in report.methods if r.currency == TEST_CURRENCY) == 30_000


def test_payments_not_final_are_listed_however_old(journal):
    j, clock, _ = journal
    report = build_report(j, SpendPolicy(), clock=clock, tz=UTC, days=1)

    assert [e.state for e in report.attention] == ["unknown", "sent", "unknown"]
    assert len(report.unknown) == 2
    assert {e.origin for e in report.unknown} == {A, HOSTILE}


def test_days_are_calendar_days_of_the_report_time_zone(journal):
    j, clock, _ = journal
    # NOW (15:00 UTC) is 00:00 at UTC-15: the payment made at NOW is today's, the one made a
    # minute before it belongs to the day before (in UTC both are today's).
    west = timezone(timedelta(hours=-15))
    report = build_report(j, SpendPolicy(), clock=clock, tz=west)

    assert report.days[-1] == NOW.date()
    assert report.timezone == "UTC-15:00"
    today, yesterday = report.daily[TEST_CURRENCY][-1], report.daily[TEST_CURRENCY][-2]
    assert (today.spent, today.held) == (10_000, 0)
    assert (yesterday.spent, yesterday.held) == (0, 25_000)


def test_the_injected_clock_decides_today(journal):
    j, clock, _ = journal
    clock.advance(timedelta(days=40).total_seconds())
    report = build_report(j, SpendPolicy(), clock=clock, tz=UTC)

    assert report.days[-1] == NOW.date() + timedelta(days=40)
    assert report.totals == {}  # every payment is older than the 30 days
    assert len(report.attention) == 3  # still not final: still shown


def test_caps_show_used_and_left_from_the_ledger(journal):
    j, clock, _ = journal
    policy = SpendPolicy(
        limits=(
            Limit(usd("0.05"), "day", currency=USD_PEGGED, name="daily"),
            Limit(usd("1.00"), "payment", currency=USD_PEGGED, name="each"),
        )
    )
    report = build_report(j, policy, clock=clock, tz=UTC)

    daily, each = report.caps
    # The last 24 hours: the 0.01 settled and the 0.025 unknown (held) payment.
    assert daily.used is not None and daily.used.amount == 35_000
    assert daily.left is not None and daily.left.amount == 15_000
    assert each.used is None and each.left is None


def test_terminal_text_has_bars_tables_caps_and_escapes_the_journal(journal):
    j, clock, _ = journal
    text = render_text(build_report(j, SpendPolicy(), clock=clock, tz=UTC))

    assert "Spend from 2026-03-01 to 2026-03-30 (30 days)" in text
    assert "times in UTC+00:00" in text
    assert "0.03 tUSD spent, 0.028 tUSD held" in text
    assert "150 sat spent, 40 sat held" in text
    assert "█" in text and "░" in text
    assert "3 payment(s) not final, 2 with an unknown outcome" in text
    assert "`mpp journal reconcile`" in text and "`mpp journal resolve ID" in text
    assert "default.usd.day" in text and "9.965 USD" in text
    # The reason's ESC is shown as an escape, never sent to the terminal.
    assert "\x1b" not in text and "\\x1b[2J" in text
    assert HOSTILE in text  # markup means nothing to a terminal: shown as it is
    assert HOSTILE_REASON.replace("\x1b", "\\x1b") in text


def test_colour_only_when_asked(journal):
    j, clock, _ = journal
    report = build_report(j, SpendPolicy(), clock=clock, tz=UTC)

    coloured = render_text(report, color=True)
    assert "\x1b[31m" in coloured  # unknown payments in red
    assert "\x1b[2J" not in coloured  # still not the journal's escape
    assert "\x1b[" not in render_text(report, color=False)


def test_a_report_of_an_empty_journal(tmp_path):
    from mpp_client.testing.clock import ManualClock
    from mpp_client.wallet import SqliteJournal

    clock = ManualClock(NOW)
    journal = SqliteJournal(tmp_path / "empty.sqlite3", clock=clock)
    try:
        report = build_report(journal, SpendPolicy(), clock=clock, tz=UTC)
    finally:
        journal.close()

    assert report.totals == {} and report.attention == ()
    assert "no payments in these days" in render_text(report)
    assert SAT not in report.daily
