"""``mpp budget`` changes what ``mpp fetch`` may pay; ``mpp journal`` finds every payment."""

from __future__ import annotations

import csv
import io
import json

from mpp_client.money import Money
from mpp_client.wallet import USD_PEGGED, Limit, SpendPolicy, usd


def test_budget_show_lists_the_safe_defaults_with_what_was_used(mpp, server, base_url):
    assert mpp("fetch", f"{base_url}/paid").returncode == 0

    code, data = mpp.json("budget", "show")

    assert code == 0
    assert data["source"] == "built-in defaults"
    rules = {limit["rule"]: limit for limit in data["limits"]}
    assert set(rules) == {
        "default.usd.payment", "default.usd.day", "default.sat.payment", "default.sat.day"
    }  # fmt: skip
    # Money in JSON: base units of the cap's currency (6-decimal dollars) with the currency.
    day = rules["default.usd.day"]
    assert day["used"]["amount"] == 1000 and day["used"]["decimals"] == 6
    assert day["left"]["amount"] == 9_999_000 and day["cap"]["amount"] == 10_000_000
    assert day["used"]["currency"] == day["cap"]["currency"] == "usd"


def test_budget_set_writes_a_policy_file_the_library_reads(mpp):
    result = mpp("budget", "set", "--payment", "0.0005USD", "--day", "2 USD")

    assert result.returncode == 0, result.stderr
    policy = SpendPolicy.from_toml(mpp.policy_file)
    assert Limit(usd("0.0005"), "payment", currency=USD_PEGGED) in policy.limits
    assert Limit(usd("2"), "day", currency=USD_PEGGED) in policy.limits
    names = {limit.name for limit in policy.limits}
    assert "default.usd.payment" not in names and "default.usd.day" not in names
    assert "default.sat.payment" in names  # other currencies keep their caps


def test_a_lower_cap_makes_fetch_refuse(mpp, server, base_url):
    mpp("budget", "set", "--payment", "0.0005USD")

    result = mpp("fetch", f"{base_url}/paid")

    assert result.returncode == 3
    assert "limit.payment[currency=usd-pegged]" in result.stderr
    assert server.accepted == []


def test_a_daily_cap_stops_the_second_payment(mpp, server, base_url):
    mpp("budget", "set", "--day", "0.0015USD")

    first = mpp("fetch", f"{base_url}/paid")
    second = mpp("fetch", f"{base_url}/paid")

    assert first.returncode == 0
    assert second.returncode == 3 and "already held: $0.001" in second.stderr
    assert len(server.accepted) == 1


def test_a_scoped_cap_applies_to_its_origin_only(mpp, server, base_url):
    mpp("budget", "set", "--payment", "0.0001USD", "--origin", "https://elsewhere.example")

    assert mpp("fetch", f"{base_url}/paid").returncode == 0


def test_removing_a_cap_and_resetting(mpp):
    assert mpp("budget", "set", "--day", "none").returncode == 0
    policy = SpendPolicy.from_toml(mpp.policy_file)
    assert all(limit.per != "day" for limit in policy.limits)

    assert mpp("budget", "set", "--reset").returncode == 0
    assert not mpp.policy_file.exists()


def test_budget_set_with_nothing_to_change_is_a_usage_error(mpp):
    assert mpp("budget", "set").returncode == 2
    assert mpp("budget", "set", "--day", "lots").returncode == 2


def test_allowlisted_origins(mpp, server, base_url):
    mpp("budget", "set", "--allow-origin", "https://api.example.com")

    refused = mpp("fetch", f"{base_url}/paid")
    mpp("budget", "set", "--allow-origin", base_url)
    paid = mpp("fetch", f"{base_url}/paid")

    assert refused.returncode == 3 and "allow.origins" in refused.stderr
    assert paid.returncode == 0


def test_payments_above_the_approval_threshold_are_refused_without_a_terminal(
    mpp, server, base_url
):
    mpp("budget", "set", "--approve-above", "0.0001USD")

    result = mpp("fetch", f"{base_url}/paid")

    assert result.returncode == 3
    assert "needs approval" in result.stderr
    assert server.accepted == []


def test_approval_is_asked_on_the_terminal(mpp, server, base_url, terminal):
    mpp("budget", "set", "--approve-above", "0.0001USD")

    declined = terminal(mpp, "fetch", f"{base_url}/paid")
    declined.read_until(b"? [y/N] ")
    declined.send("n\n")
    assert declined.finish() == 3
    assert server.accepted == []

    approved = terminal(mpp, "fetch", f"{base_url}/paid")
    approved.read_until(b"Pay 0.001 tUSD to merchant for " + base_url.encode())
    approved.send("y\n")
    assert approved.finish() == 0
    assert len(server.accepted) == 1


# --- journal ------------------------------------------------------------------------------------


def test_journal_list_filters_and_tails(mpp, server, base_url):
    for path in ("/paid", "/paid", "/reject"):
        mpp("fetch", f"{base_url}{path}")

    code, settled = mpp.json("journal", "list", "--state", "settled")
    _, last = mpp.json("journal", "list", "--last", "1")
    text = mpp("journal", "list").stdout

    assert code == 0 and len(settled) == 2
    assert [entry["state"] for entry in last] == ["unknown"]  # rejected, not proven void
    assert text.count("settled") == 2 and "unknown" in text


def test_journal_show_accepts_an_id_prefix(mpp, server, base_url):
    mpp("fetch", f"{base_url}/paid")
    [entry] = mpp.json("journal", "list")[1]

    code, shown = mpp.json("journal", "show", entry["id"][:8])

    assert code == 0 and shown["id"] == entry["id"]
    assert shown["receipt"] == entry["receipt"] and shown["receipt"]["reference"].startswith("ref-")


def test_journal_export_jsonl_and_csv(mpp, server, base_url):
    mpp("fetch", f"{base_url}/paid")
    mpp("fetch", f"{base_url}/paid")

    jsonl = mpp("journal", "export")
    csv_file = mpp("journal", "export", "--format", "csv", "-o", "payments.csv")

    rows = [json.loads(line) for line in jsonl.stdout.splitlines()]
    assert [row["amount"] for row in rows] == [1000, 1000]
    assert {row["state"] for row in rows} == {"settled"}
    assert csv_file.returncode == 0
    table = list(csv.DictReader(io.StringIO((mpp.home / "payments.csv").read_text())))
    assert [row["amount"] for row in table] == ["1000", "1000"]
    assert [row["fingerprint"] for row in table] == [row["fingerprint"] for row in rows]


def test_unknown_outcomes_are_listed_and_stay_unknown_when_the_method_cannot_tell(
    mpp, server, base_url
):
    assert mpp("fetch", f"{base_url}/broken").returncode == 6

    unknown = mpp("journal", "unknown")
    reconciled = mpp("--json", "journal", "reconcile")

    assert "may or may not have settled" in unknown.stdout
    # TestMethod has no lookup: the entry stays unknown, and the exit code says so.
    assert reconciled.returncode == 6
    [result] = json.loads(reconciled.stdout)
    assert result["outcome"] == "pending"
    assert len(mpp.json("journal", "unknown")[1]) == 1


def test_nothing_to_reconcile(mpp):
    result = mpp("journal", "reconcile")

    assert result.returncode == 0 and "nothing to reconcile" in result.stdout


def test_sat_caps_are_written_in_sats(mpp):
    mpp("budget", "set", "--payment", "50 sat")

    policy = SpendPolicy.from_toml(mpp.policy_file)

    sat_caps = [limit for limit in policy.limits if limit.cap.currency.code == "sat"]
    assert Money(50, sat_caps[0].cap.currency) in [limit.cap for limit in sat_caps]
    assert "default.sat.payment" not in {limit.name for limit in policy.limits}
