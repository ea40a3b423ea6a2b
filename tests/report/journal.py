"""A journal for report tests: the real ``SqliteJournal`` on a ``ManualClock``, holding settled,
unknown, in-flight and released payments across days, origins, methods and two currencies,
quoted by ``TestMethod``s so the amounts, payees and currencies are what a method produced.
Hostile text (markup, script, terminal escapes) sits in an origin and in a reason."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from mpp_client.methods.base import PaymentContext
from mpp_client.money import SAT, Currency
from mpp_client.protocol import Challenge
from mpp_client.testing.clock import ManualClock
from mpp_client.testing.method import TEST_CURRENCY, TestMethod
from mpp_client.wallet import SqliteJournal
from mpp_client.wallet.journal import NewPayment

#: "Now" for every report test: 2026-03-30 15:00 UTC (never today's date).
NOW = datetime(2026, 3, 30, 15, 0, tzinfo=UTC)
A = "https://api.example.com"
B = "https://news.example.org"
HOSTILE = 'https://x.example"><img src=x onerror=alert(1)></td><script>alert(2)</script>'
HOSTILE_REASON = "</script><script>document.title='pwned'</script>\x1b[2J<b>bold</b>"


@dataclass(frozen=True)
class Made:
    """One payment written: its day offset from NOW, and what the journal should hold."""

    entry_id: str
    days_ago: int
    origin: str
    method: str
    currency: Currency
    amount: int
    outcome: str  # settled | unknown | sent | released


def _challenge(method: str, amount: int, currency: str) -> Challenge:
    return Challenge.create(
        id=f"ch-{method}-{amount}-{currency}",
        realm="report-test",
        method=method,
        intent="charge",
        request={"amount": str(amount), "currency": currency, "recipient": "merchant"},
    )


PLAN: list[tuple[int, str, str, str, int, str]] = [
    # days ago, origin, method, currency, amount (base units), outcome
    (0, A, "test", "usd-test", 10_000, "settled"),
    (0, A, "test", "usd-test", 25_000, "unknown"),
    (0, B, "lightning", "sat", 150, "settled"),
    (1, B, "test", "usd-test", 5_000, "settled"),
    (2, A, "lightning", "sat", 40, "sent"),
    (3, A, "test", "usd-test", 7_000, "released"),
    (5, B, "test", "usd-test", 12_000, "settled"),
    (9, HOSTILE, "test", "usd-test", 3_000, "unknown"),
    (12, A, "test", "usd-test", 1_000, "settled"),
    (29, B, "test", "usd-test", 2_000, "settled"),
    (31, A, "test", "usd-test", 99_000, "settled"),  # outside the 30 days
]


def build(path: Path) -> tuple[SqliteJournal, ManualClock, list[Made]]:
    clock = ManualClock(NOW)
    journal = SqliteJournal(path, clock=clock)
    methods = {
        "test": TestMethod("test"),
        "lightning": TestMethod("lightning", currencies={"sat": SAT}),
    }
    made: list[Made] = []
    for n, (days_ago, origin, method_name, code, amount, outcome) in enumerate(PLAN):
        clock.set(NOW - timedelta(days=days_ago, minutes=n))
        method = methods[method_name]
        challenge = _challenge(method_name, amount, code)
        context = PaymentContext(
            origin=origin, url=origin + "/report", http_method="GET", now=NOW, call_id=f"c{n}"
        )
        quote = method.quote(challenge, context)
        with journal.atomic() as tx:
            entry = tx.insert(
                NewPayment(
                    call_id=f"call-{n}", challenge_id=challenge.id, realm=challenge.realm,
                    origin=origin, url=origin + "/report", http_method="GET",
                    method=quote.method, intent=quote.intent, amount=quote.amount,
                    exposure=quote.exposure.amount, max_fee=None, network=quote.network,
                    payees=tuple(quote.payees), expires=None, label=None,
                )
            )  # fmt: skip
        if outcome == "released":
            assert journal.advance(entry, "failed", money_moved=False, reason="declined")
        else:
            assert journal.advance(entry, "signed")
            assert journal.advance(entry, "sent")
            if outcome == "settled":
                assert journal.advance(entry, "settled", reference=f"ref-{n}")
            elif outcome == "unknown":
                reason = HOSTILE_REASON if origin == HOSTILE else "HTTP 500 after paying"
                assert journal.advance(entry, "unknown", reason=reason)
        currency = TEST_CURRENCY if code == "usd-test" else SAT
        made.append(Made(entry, days_ago, origin, method_name, currency, amount, outcome))
    clock.set(NOW)
    return journal, clock, made
