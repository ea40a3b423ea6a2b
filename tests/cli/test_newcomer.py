"""A newcomer's first hour with ``mpp`` (issue 17): a pinned payee that changed names the
command that accepts it, mistyped commands get a suggestion, the unknown-outcome note names the
commands that deal with it and respects -q and --json, usage errors are JSON under --json, and
``journal show`` prints fields, not reprs."""

from __future__ import annotations

import json

import pytest

from mpp_client.testing import FakeMppServer, Offer, Route

from .conftest import Mpp


@pytest.fixture
def server() -> FakeMppServer:
    return FakeMppServer(
        {
            "/paid": Route(body=b'{"report":"paid content"}'),
            # The same origin asks to pay someone else: payee pinning refuses it.
            "/partner": Route(offers=(Offer(recipient="partner"),), body=b"partner content"),
            "/broken": Route(paid_status=500),
        }
    )


def test_a_mistyped_command_gets_a_suggestion(mpp: Mpp):
    top = mpp("jurnal", "list")
    sub = mpp("journal", "lst")

    assert top.returncode == 2 and "did you mean 'journal'?" in top.stderr
    assert sub.returncode == 2 and "did you mean 'list'?" in sub.stderr
    assert "usage: mpp journal" in sub.stderr


def test_usage_errors_are_json_with_their_exit_code_under_json(mpp: Mpp):
    code, data = mpp.json("jurnal", "list")
    assert code == 2
    assert data["error"]["type"] == "usage" and data["error"]["exit_code"] == 2
    assert "did you mean 'journal'?" in data["error"]["message"]

    code, data = mpp.json("journal", "show", "no-such-entry")
    assert code == 2 and data["error"]["exit_code"] == 2
    assert "no journal entry" in data["error"]["message"]

    # After `fetch`, --json is curl's request body: `mpp fetch --json` is not JSON output.
    plain = mpp("fetch", "--json")
    assert plain.returncode == 2 and plain.stdout == ""


def test_a_changed_payee_names_the_commands_that_accept_it(mpp: Mpp, server, base_url):
    assert mpp("fetch", f"{base_url}/paid").returncode == 0

    refused = mpp("fetch", f"{base_url}/partner")
    code, data = mpp.json("fetch", f"{base_url}/partner")

    assert refused.returncode == 3
    assert "payee partner is new" in refused.stderr
    command = f"mpp budget trust {base_url} --method test --payee partner"
    assert command in refused.stderr
    assert "mpp fetch --accept-payee" in refused.stderr
    assert code == 3 and command in data["error"]["hint"]
    assert data["error"]["rule"] == "pin.payee"
    assert len(server.accepted) == 1  # nothing was paid to the new payee

    unconfirmed = mpp("budget", "trust", base_url, "--method", "test", "--payee", "partner")
    assert unconfirmed.returncode == 2 and "--yes" in unconfirmed.stderr
    assert mpp("fetch", f"{base_url}/partner").returncode == 3  # still refused

    code, trusted = mpp.json(*command.split()[1:], "--yes")
    assert code == 0 and trusted["changed"] is True
    assert trusted["payees"] == ["merchant", "partner"]

    paid = mpp("fetch", f"{base_url}/partner")
    assert paid.returncode == 0, paid.stderr
    assert paid.stdout == "partner content"
    assert len(server.accepted) == 2


def test_accept_payee_asks_on_the_terminal_and_remembers(mpp: Mpp, server, base_url, terminal):
    assert mpp("fetch", f"{base_url}/paid").returncode == 0

    session = terminal(mpp, "fetch", "--accept-payee", f"{base_url}/partner")
    session.read_until(b"[y/N]")
    session.send("y\n")
    assert session.finish() == 0
    assert b"new payee partner" in session.output
    assert b"partner content" in session.output

    again = mpp("fetch", f"{base_url}/partner")  # the pin now holds both payees
    assert again.returncode == 0, again.stderr
    assert len(server.accepted) == 3


def test_accept_payee_without_a_terminal_points_to_budget_trust(mpp: Mpp, server, base_url):
    result = mpp("fetch", "--accept-payee", f"{base_url}/paid")

    assert result.returncode == 2
    assert "mpp budget trust" in result.stderr
    assert server.accepted == []


def test_the_unknown_outcome_note_names_the_commands_and_respects_quiet_and_json(
    mpp: Mpp, server, base_url
):
    assert mpp("fetch", f"{base_url}/broken").returncode == 6

    listed = mpp("journal", "list")
    quiet = mpp("-q", "journal", "list")
    machine = mpp("--json", "journal", "list")
    wallets = mpp("wallet", "list")

    assert listed.stderr.count("have an unknown outcome") == 1
    assert "`mpp journal reconcile`" in listed.stderr
    assert "`mpp journal resolve ID settled|failed --note TEXT`" in listed.stderr
    assert "Wallet.reconcile" not in listed.stderr  # a command, not a Python API
    assert "unknown outcome" not in quiet.stderr
    assert "unknown outcome" not in machine.stderr
    assert json.loads(machine.stdout)[0]["state"] == "unknown"
    assert "unknown outcome" not in wallets.stderr


def test_journal_show_prints_fields_not_reprs(mpp: Mpp, server, base_url):
    assert mpp("fetch", f"{base_url}/paid").returncode == 0
    _, [entry] = mpp.json("journal", "list")

    shown = mpp("journal", "show", entry["id"][:8])

    assert shown.returncode == 0
    text = shown.stdout
    assert "{'" not in text and "[{" not in text and "None" not in text
    lines = text.splitlines()
    assert any(
        line.startswith("amount") and "0.001 tUSD (1000 base units)" in line for line in lines
    )
    assert "payees" in lines
    assert any(line.strip().startswith("merchant") and "0.001 tUSD" in line for line in lines)
    assert "receipt" in lines
    assert any(line.startswith("  status") and "success" in line for line in lines)
    assert any(line.startswith("money") and "spent" in line for line in lines)
