"""A report over a journal of 100 000 old payments reads only the covered days and the payments
that are not final: the old rows are never loaded (counted at the journal's ``payments``), and
the figures are those of the small journal plus what the old rows add to the lifetime cap."""

from __future__ import annotations

import math
import sqlite3
from datetime import UTC, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

from mpp_client.report import build_report, render_html, render_text
from mpp_client.testing.method import TEST_CURRENCY
from mpp_client.wallet import Limit, SpendPolicy, SqliteJournal, usd
from mpp_client.wallet.policy import USD_PEGGED

from .journal import NOW, PLAN, build

OLD_ROWS = 100_000


class CountingJournal:
    """The journal, counting the records its ``payments`` hands out."""

    def __init__(self, journal: Any) -> None:
        self._journal = journal
        self.loaded = 0

    def payments(self, **filters: Any) -> list[Any]:
        records = self._journal.payments(**filters)
        self.loaded += len(records)
        return records

    def __getattr__(self, name: str) -> Any:
        return getattr(self._journal, name)


def _add_old_rows(path: Path, count: int) -> None:
    # Copies of the oldest settled payment (31 days ago), each a year and more before NOW, in
    # one statement: what years of use leave behind.
    old = (NOW - timedelta(days=400)).timestamp()
    with sqlite3.connect(path) as conn:
        conn.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
            "INSERT INTO payments (id, state, held, created_at, updated_at, call_id, "
            "challenge_id, realm, origin, url, http_method, method, intent, amount, exposure, "
            "currency_code, currency_decimals, currency_network, currency_symbol, usd_pegged, "
            "currency_id, max_fee, max_fee_currency, network, payees, expires, label, "
            "reference, fingerprint, receipt, reason, money_moved, owner) "
            "SELECT 'old-' || n.i, state, held, ? - n.i, ? - n.i, call_id, challenge_id, "
            "realm, origin, url, http_method, method, intent, 1, 1, currency_code, "
            "currency_decimals, currency_network, currency_symbol, usd_pegged, currency_id, "
            "max_fee, max_fee_currency, network, payees, expires, label, NULL, fingerprint, "
            "receipt, reason, money_moved, owner FROM payments, n "
            "WHERE payments.seq = (SELECT max(seq) FROM payments WHERE state = 'settled')",
            (count, old, old),
        )


def test_a_huge_journal_is_not_loaded_for_a_months_report(tmp_path: Path):
    path = tmp_path / "journal.sqlite3"
    small, clock, _ = build(path)
    policy = SpendPolicy(limits=(Limit(usd("100"), "lifetime", currency=USD_PEGGED),))
    before = build_report(small, policy, clock=clock, tz=UTC)
    small.close()
    _add_old_rows(path, OLD_ROWS)

    big = SqliteJournal(path, clock=clock)
    try:
        counting = CountingJournal(big)
        report = build_report(counting, policy, clock=clock, tz=UTC)  # type: ignore[arg-type]
    finally:
        big.close()

    # Loaded: the payments of the covered days (and the day before, for the zone's offsets)
    # and the held ones however old; never the 100 000 old rows.
    assert counting.loaded <= 2 * len(PLAN)
    assert report.totals == before.totals
    assert report.origins == before.origins and report.attention == before.attention
    # The lifetime cap still counts every one of them (the ledger's totals, not the rows).
    [cap] = report.caps
    assert before.caps[0].used is not None and cap.used is not None
    # Each old row is 1 base unit of a 6-decimal dollar token; the cap counts dollars.
    grown = Fraction(OLD_ROWS, 10**TEST_CURRENCY.decimals) * 10**cap.cap.currency.decimals
    assert cap.used.amount - before.caps[0].used.amount == math.ceil(grown)
    render_text(report)
    render_html(report)
