"""One ``--json`` schema across commands (``mpp_client.cli.schema``): every command's document,
on success and on failure, is checked against it, so a renamed field, an amount printed as a
display string or an error printed as text instead of JSON fails here."""

from __future__ import annotations

import argparse

import pytest
from jsonschema import Draft202012Validator

from mpp_client.cli import build_parser
from mpp_client.cli.schema import COMMANDS, SCHEMA, document_schema
from mpp_client.testing import FakeMppServer, Offer, Route

from .conftest import Mpp


@pytest.fixture
def server() -> FakeMppServer:
    return FakeMppServer(
        {
            "/paid": Route(body=b"paid content"),
            "/partner": Route(offers=(Offer(recipient="partner"),)),
            "/broken": Route(paid_status=500),
        }
    )


def check(mpp: Mpp, command: str, *args: str, code: int | None = 0) -> dict | list:
    result = mpp("--json", *args)
    assert result.stdout, result.stderr
    import json

    data = json.loads(result.stdout)
    Draft202012Validator(document_schema(command)).validate(data)
    if code is not None:
        assert result.returncode == code, (result.stdout, result.stderr)
    if isinstance(data, dict) and "error" in data:
        assert data["error"]["exit_code"] == result.returncode
    return data


def test_the_schema_is_a_valid_json_schema():
    Draft202012Validator.check_schema(SCHEMA)
    for command in COMMANDS:
        Draft202012Validator.check_schema(document_schema(command))


# Commands that print no ``--json`` document of their own, and why. A new command must be added
# to the schema (or here, with its reason): the test below fails until it is.
NO_DOCUMENT = {
    "demo": "runs the scripted demo, its narration is text (`demo serve` has a document)",
    "journal export": "writes JSON Lines or CSV itself (--format)",
    "mcp serve": "speaks MCP on standard input and output",
    "journal migrate": "the fleet journal's commands (cli/journal_store.py): not yet in it",
    "journal copy": "the fleet journal's commands (cli/journal_store.py): not yet in it",
}
# Schema entries for one form of a command (its own document).
VARIANTS = {"demo serve": "demo", "fetch --dry-run": "fetch"}


def _commands(parser: argparse.ArgumentParser, prefix: str = "") -> list[str]:
    found: list[str] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                full = f"{prefix} {name}".strip()
                found += _commands(sub, full) or [full]
    return found


def test_every_command_has_a_documented_schema_or_a_reason():
    commands = set(_commands(build_parser()))

    assert commands - set(COMMANDS) == set(NO_DOCUMENT)
    assert {VARIANTS.get(c, c) for c in COMMANDS} <= commands


@pytest.mark.slow  # about 30 runs of `mpp`, each a new process
def test_every_command_prints_the_documented_document(mpp: Mpp, server, base_url, tmp_path):
    from mpp_client.methods.tempo import LocalKeySigner

    key = LocalKeySigner.generate().export_private_key()
    wallet = check(
        mpp, "wallet import", "wallet", "import", "main", "--method", "tempo",
        "--chain-id", "42431", "--insecure-secret-arg", key,
    )  # fmt: skip
    assert isinstance(wallet, dict) and wallet["name"] == "main"
    check(mpp, "wallet list", "wallet", "list")
    check(mpp, "wallet show", "wallet", "show", "main")
    check(mpp, "wallet default", "wallet", "default", "main")

    paid = check(mpp, "fetch", "fetch", f"{base_url}/paid")
    assert isinstance(paid, dict)
    payment = paid["payment"]
    assert payment["amount"] == 1000 and payment["currency"] == "usd-test"
    assert len(payment["fingerprint"]) == 64  # the journal entry's name for it
    quote = check(mpp, "fetch --dry-run", "fetch", "--dry-run", f"{base_url}/paid")
    assert isinstance(quote, dict) and quote["quote"]["exposure"] == 1000
    refused = check(mpp, "fetch", "fetch", f"{base_url}/partner", code=3)
    assert isinstance(refused, dict) and "mpp budget trust" in refused["error"]["hint"]
    check(mpp, "fetch", "fetch", f"{base_url}/broken", code=6)

    budget = check(mpp, "budget show", "budget", "show")
    assert isinstance(budget, dict)
    day = next(limit for limit in budget["limits"] if limit["per"] == "day")
    assert isinstance(day["used"]["amount"], int) and day["used"]["currency"] == "usd"
    check(mpp, "budget set", "budget", "set", "--day", "5USD")
    check(
        mpp, "budget trust", "budget", "trust", base_url, "--method", "test",
        "--payee", "partner", "--yes",
    )  # fmt: skip

    entries = check(mpp, "journal list", "journal", "list", "--since", "2000-01-01")
    assert isinstance(entries, list) and len(entries) == 2
    [unknown] = check(mpp, "journal unknown", "journal", "unknown")
    entry = check(mpp, "journal show", "journal", "show", entries[0]["id"][:10])
    assert isinstance(entry, dict) and entry["fingerprint"] == payment["fingerprint"]
    check(mpp, "journal reconcile", "journal", "reconcile", code=None)
    check(
        mpp, "journal resolve", "journal", "resolve", unknown["id"], "settled",
        "--note", "the merchant confirmed it",
    )  # fmt: skip
    report = check(mpp, "report", "report")
    assert isinstance(report, dict) and report["totals"][0]["spent"]["amount"] == 2000
    page = tmp_path / "report.html"
    check(mpp, "report", "report", "--html", str(page))
    assert page.read_text().startswith("<!DOCTYPE html>")
    check(mpp, "budget set", "budget", "set", "--reset")
    check(mpp, "wallet remove", "wallet", "remove", "main", "--yes")


def test_failures_are_documents_with_their_exit_code(mpp: Mpp):
    usage = check(mpp, "journal list", "journal", "lst", code=2)
    assert isinstance(usage, dict) and usage["error"]["type"] == "usage"
    missing = check(mpp, "journal show", "journal", "show", "nope", code=2)
    assert isinstance(missing, dict) and "no journal entry" in missing["error"]["message"]
    bad_date = check(mpp, "journal list", "journal", "list", "--since", "03/04/2026", code=2)
    assert isinstance(bad_date, dict) and "YYYY-MM-DD" in bad_date["error"]["message"]
    no_pin = check(
        mpp, "budget trust", "budget", "trust", "https://a.example", "--method", "test",
        "--payee", "x", "--yes", code=2,
    )  # fmt: skip
    assert isinstance(no_pin, dict) and "no pin" in no_pin["error"]["message"]
