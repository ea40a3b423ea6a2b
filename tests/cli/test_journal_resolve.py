"""``mpp journal resolve`` settles or fails unknown payments by hand; ``reconcile`` says what it
did with each; the unknown-payments circuit breaker stops ``mpp fetch`` before it pays."""

from __future__ import annotations

import json
import sqlite3


def _unknown(mpp, base_url, count=1):
    for _ in range(count):
        assert mpp("fetch", f"{base_url}/broken").returncode == 6
    entries = mpp.json("journal", "unknown")[1]
    assert len(entries) == count
    return [entry["id"] for entry in entries]


def _entry(mpp, entry_id):
    code, entry = mpp.json("journal", "show", entry_id)
    assert code == 0
    return entry


def test_resolve_settled_keeps_the_amount_spent(mpp, server, base_url):
    [entry_id] = _unknown(mpp, base_url)

    result = mpp("journal", "resolve", entry_id[:8], "settled", "--note", "merchant says paid")

    assert result.returncode == 0, result.stderr
    assert f"{entry_id[:12]}: unknown -> settled" in result.stdout
    assert "stays counted as spent" in result.stdout
    entry = _entry(mpp, entry_id)
    assert entry["state"] == "settled" and entry["proof"] == "owner" and entry["held"] is True
    assert "merchant says paid" in entry["reason"]
    assert mpp.json("journal", "unknown")[1] == []
    _, budget = mpp.json("budget", "show")
    day = {limit["rule"]: limit for limit in budget["limits"]}["default.usd.day"]
    assert day["used"]["amount"] == 1000  # base units of 6-decimal dollars


def test_resolve_failed_needs_yes_without_a_terminal(mpp, server, base_url):
    [entry_id] = _unknown(mpp, base_url)

    refused = mpp("journal", "resolve", entry_id, "failed", "--note", "refunded")

    assert refused.returncode == 2
    assert "--yes" in refused.stderr
    assert _entry(mpp, entry_id)["state"] == "unknown"

    code, data = mpp.json("journal", "resolve", entry_id, "failed", "--note", "refunded", "--yes")

    assert code == 0
    assert data["id"] == entry_id and data["previous_state"] == "unknown"
    assert data["state"] == "failed" and data["proof"] == "owner" and data["held"] is False
    assert data["released"] == 1000  # base units
    assert data["entry"]["money_moved"] is False and data["entry"]["amount"] == 1000
    _, budget = mpp.json("budget", "show")
    day = {limit["rule"]: limit for limit in budget["limits"]}["default.usd.day"]
    assert day["used"]["amount"] == 0


def test_resolve_failed_asks_on_the_terminal(mpp, server, base_url, terminal):
    [entry_id] = _unknown(mpp, base_url)

    declined = terminal(mpp, "journal", "resolve", entry_id, "failed", "--note", "refunded")
    declined.read_until(b"RELEASE its amount back to your budgets? [y/N] ")
    declined.send("n\n")
    assert declined.finish() == 1
    assert b"not resolved" in declined.output
    assert _entry(mpp, entry_id)["state"] == "unknown"

    confirmed = terminal(mpp, "journal", "resolve", entry_id, "failed", "--note", "refunded")
    confirmed.read_until(b"[y/N] ")
    confirmed.send("y\n")
    assert confirmed.finish() == 0
    assert b"released back to your budgets" in confirmed.output
    assert _entry(mpp, entry_id)["state"] == "failed"


def test_resolve_refuses_entries_that_are_not_unknown(mpp, server, base_url):
    mpp("fetch", f"{base_url}/paid")
    [entry] = mpp.json("journal", "list")[1]

    result = mpp("journal", "resolve", entry["id"], "failed", "--note", "oops", "--yes")

    assert result.returncode == 2
    assert "is settled, not unknown" in result.stderr
    assert result.stdout == ""
    assert _entry(mpp, entry["id"])["state"] == "settled"


def test_resolve_refuses_a_missing_entry_and_an_empty_note(mpp, server, base_url):
    [entry_id] = _unknown(mpp, base_url)

    missing = mpp("journal", "resolve", "ffffffffffff", "settled", "--note", "x")
    empty = mpp("journal", "resolve", entry_id, "settled", "--note", "  ")
    no_note = mpp("journal", "resolve", entry_id, "settled")

    assert missing.returncode == 2 and "no journal entry 'ffffffffffff'" in missing.stderr
    assert empty.returncode == 2 and "--note" in empty.stderr
    assert no_note.returncode == 2 and "--note" in no_note.stderr
    assert _entry(mpp, entry_id)["state"] == "unknown"


def test_resolve_help_says_failed_releases_money(mpp):
    result = mpp("journal", "resolve", "--help")

    assert result.returncode == 0
    assert "RELEASED" in result.stdout and "--yes" in result.stdout


def test_reconcile_shows_each_outcome_and_detail(mpp, server, base_url):
    [entry_id] = _unknown(mpp, base_url)

    text = mpp("journal", "reconcile")
    code, data = mpp.json("journal", "reconcile")

    assert text.returncode == 6 and code == 6
    assert entry_id[:12] in text.stdout and "pending" in text.stdout
    assert "cannot look payments up" in text.stdout
    assert "mpp journal resolve" in text.stdout
    [result] = data
    assert result["id"] == entry_id and result["outcome"] == "pending"
    assert result["detail"] and result["state"] == "unknown" and result["held"] is True

    mpp("journal", "resolve", entry_id, "settled", "--note", "paid")
    done = mpp("journal", "reconcile")
    assert done.returncode == 0 and "nothing to reconcile" in done.stdout


def test_reconcile_skips_payments_made_by_another_account(mpp, server, base_url):
    [entry_id] = _unknown(mpp, base_url)
    # As if another account (an earlier key, another node) had paid it.
    with sqlite3.connect(mpp.data_dir / "journal.sqlite3") as db:
        db.execute("UPDATE payments SET payer=? WHERE id=?", ("test:another-account", entry_id))
    db.close()

    text = mpp("journal", "reconcile")
    code, data = mpp.json("journal", "reconcile")

    assert text.returncode == 6 and code == 6
    assert "skipped" in text.stdout and "paid by test:another-account" in text.stdout
    assert "--wallet" in text.stdout and "mpp journal resolve" in text.stdout
    [result] = data
    assert result["outcome"] == "skipped" and "paid by test:another-account" in result["detail"]
    shown = mpp("journal", "show", entry_id)
    assert "test:another-account" in shown.stdout and "held" in shown.stdout


def test_list_and_show_display_money_payer_and_proof(mpp, server, base_url):
    mpp("fetch", f"{base_url}/paid")
    [entry_id] = _unknown(mpp, base_url)
    mpp("journal", "resolve", entry_id, "failed", "--note", "refunded", "--yes")

    text = mpp("journal", "list").stdout
    code, entries = mpp.json("journal", "list")
    shown = mpp("journal", "show", entry_id).stdout

    assert code == 0
    assert "MONEY" in text and "spent" in text and "released" in text
    by_state = {entry["state"]: entry for entry in entries}
    assert by_state["settled"]["held"] is True and by_state["failed"]["held"] is False
    assert by_state["failed"]["proof"] == "owner"
    assert {"payer", "proof", "held", "void_after", "receipt_reference"} <= set(entries[0])
    assert "proof" in shown and "owner" in shown and "released" in shown


def test_the_breaker_stops_fetch_before_a_fourth_credential(mpp, server, base_url):
    _unknown(mpp, base_url, count=3)
    credentials = sum(1 for request in server.requests if request.credential() is not None)
    assert credentials == 3

    refused = mpp("fetch", f"{base_url}/broken")
    as_json = mpp("--json", "fetch", f"{base_url}/paid")

    assert refused.returncode == 3
    assert "wallet.max_unknown" in refused.stderr
    assert "mpp journal reconcile" in refused.stderr and "mpp journal resolve" in refused.stderr
    assert "Nothing was paid" in refused.stderr
    assert as_json.returncode == 3
    error = json.loads(as_json.stdout)["error"]
    assert error["rule"] == "wallet.max_unknown" and error["type"] == "UnresolvedPayments"
    assert error["money_moved"] is False
    # No credential left for the refused fetches.
    assert sum(1 for request in server.requests if request.credential() is not None) == 3
    assert len(server.accepted) == 3

    # Resolving one lets payments through again.
    [first, *_] = [entry["id"] for entry in mpp.json("journal", "unknown")[1]]
    mpp("journal", "resolve", first, "settled", "--note", "merchant confirmed")
    assert mpp("fetch", f"{base_url}/paid").returncode == 0
