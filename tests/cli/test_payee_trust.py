"""Accepting a payee change is always an explicit, visible decision, scoped to exactly what was
named: ``mpp fetch --accept-payee`` passes a payment without asking only when the policy's own
pin check would pass it; the hint's ``mpp budget trust`` command quotes the server's values for
the shell (or keeps placeholders when they hold terminal controls); ``mpp --json budget trust``
never asks, it needs ``--yes``; a pin changed by another process after the question is not
overwritten."""

from __future__ import annotations

import dataclasses
import json
import shlex
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mpp_client.cli import fetch
from mpp_client.cli.output import Progress
from mpp_client.errors import PayeeChanged
from mpp_client.methods.base import PaymentContext
from mpp_client.money import Currency
from mpp_client.protocol import Challenge
from mpp_client.testing import FakeMppServer, Offer, Route
from mpp_client.testing.clock import ManualClock
from mpp_client.testing.method import TEST_CURRENCY, TestMethod
from mpp_client.wallet import SpendPolicy, SqliteJournal, Wallet
from mpp_client.wallet.policy import Pin

from .conftest import Mpp

NOW = datetime(2026, 3, 30, 15, 0, tzinfo=UTC)
ORIGIN = "https://shop.example"
HOSTILE_NETWORK = "net; touch pwned"
EVIL = Currency("evil", 6, network=HOSTILE_NETWORK)


def _challenge(currency: str = "usd-test", recipient: str = "merchant") -> Challenge:
    return Challenge.create(
        id=f"ch-{currency}-{recipient}",
        realm="shop",
        method="test",
        intent="charge",
        request={"amount": "1000", "currency": currency, "recipient": recipient},
    )


@pytest.fixture
def wallet(tmp_path: Path):
    clock = ManualClock(NOW)
    journal = SqliteJournal(tmp_path / "journal.sqlite3", clock=clock)
    method = TestMethod("test", currencies={"usd-test": TEST_CURRENCY, "evil": EVIL})
    wallet = Wallet([method], journal=journal, clock=clock, policy=SpendPolicy())
    yield wallet, method
    wallet.close()


def _context() -> PaymentContext:
    return PaymentContext(origin=ORIGIN, url=ORIGIN + "/item", http_method="GET", now=NOW)


def test_accept_payee_asks_whenever_the_policy_sees_a_change(wallet, monkeypatch):
    w, method = wallet
    asked: list[str] = []
    monkeypatch.setattr(fetch, "ask_on_terminal", lambda q: asked.append(q) or False)
    # Pinned with no chain; the quote names none either, but its currency does: the policy
    # compares the currency's chain (quote.network or currency.network) and sees a change.
    with w.journal.atomic() as tx:
        tx.set_pin(ORIGIN, "test", Pin(frozenset({"merchant"}), "usd-test", None))
    quote = method.quote(_challenge(), _context())
    quote = dataclasses.replace(quote, network=None)
    approve = fetch._approval(Progress(enabled=False), w, only_changes=True)

    assert approve(quote, _context()) is False
    assert len(asked) == 1 and "chain None -> test" in asked[0]


def test_accept_payee_passes_unchanged_payments_without_asking(wallet, monkeypatch):
    w, method = wallet
    asked: list[str] = []
    monkeypatch.setattr(fetch, "ask_on_terminal", lambda q: asked.append(q) or False)
    with w.journal.atomic() as tx:
        tx.set_pin(ORIGIN, "test", Pin(frozenset({"merchant"}), "usd-test", "test"))
    approve = fetch._approval(Progress(enabled=False), w, only_changes=True)

    assert approve(method.quote(_challenge(), _context()), _context()) is True
    assert asked == []
    assert approve(method.quote(_challenge(recipient="other"), _context()), _context()) is False
    assert len(asked) == 1 and "new payee other" in asked[0]


def _refusal(challenge: Challenge) -> PayeeChanged:
    return PayeeChanged("chain changed", rule="pin.chain", challenge=challenge)


def test_the_trust_hint_quotes_the_servers_values_for_the_shell(wallet):
    w, _ = wallet
    with w.journal.atomic() as tx:
        tx.set_pin(ORIGIN, "test", Pin(frozenset({"merchant"}), "usd-test", "test"))

    hint = fetch.trust_hint(_refusal(_challenge("evil")), w, ORIGIN + "/item")

    assert hint is not None
    command = hint.split("`")[3]
    assert shlex.split(command) == [
        "mpp", "budget", "trust", ORIGIN, "--method", "test",
        "--token", "evil", "--network", HOSTILE_NETWORK,
    ]  # fmt: skip


def test_the_trust_hint_keeps_placeholders_for_terminal_controls(wallet):
    w, _ = wallet
    with w.journal.atomic() as tx:
        tx.set_pin(ORIGIN, "test", Pin(frozenset({"merchant"}), "usd-test", "test"))
    fake = "merchant\nmpp: paid 0.00 tUSD"

    hint = fetch.trust_hint(_refusal(_challenge(recipient=fake)), w, ORIGIN + "/item")

    assert hint is not None and "\n" not in hint and fake not in hint
    assert "--payee ADDRESS" in hint


@pytest.fixture
def server() -> FakeMppServer:
    return FakeMppServer(
        {
            "/paid": Route(body=b"paid content"),
            "/partner": Route(offers=(Offer(recipient="partner"),), body=b"partner content"),
        }
    )


def test_json_budget_trust_never_asks_and_needs_yes(mpp: Mpp, server, base_url, terminal):
    assert mpp("fetch", f"{base_url}/paid").returncode == 0
    args = ("--json", "budget", "trust", base_url, "--method", "test", "--payee", "partner")

    session = terminal(mpp, *args)
    code = session.finish()

    assert code == 2
    assert b"[y/N]" not in session.output
    text = session.output.decode().replace("\r\n", "\n")
    document = json.loads(text[text.index("{") :])
    assert document["error"]["exit_code"] == 2 and "--yes" in document["error"]["message"]
    assert mpp("fetch", f"{base_url}/partner").returncode == 3  # the pin is unchanged


def test_budget_trust_refuses_empty_values(mpp: Mpp):
    for option in ("--token", "--network", "--method"):
        argv = ["budget", "trust", "https://a.example", "--method", "test", "--payee", "x"]
        argv += [option, " "]
        result = mpp(*argv)
        assert result.returncode == 2 and "cannot be empty" in result.stderr
