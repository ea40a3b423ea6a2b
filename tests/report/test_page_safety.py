"""The report's defences (the HTML page read from its markup; the browser tests render it): the
Content-Security-Policy runs only the page's own script (by its hash), allows no form target or
base URL; origins with control characters are filtered like any other (the embedded data and
the markup name them the same way); caps are shown nearly used up from exactly 90%, and the
percentage never rounds up to a full cap; a currency symbol cannot drive the terminal."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import re
from datetime import UTC
from fractions import Fraction
from pathlib import Path

from mpp_client.money import Money
from mpp_client.report import CapUsage, render_html, summarize
from mpp_client.report.terminal import render_text
from mpp_client.testing.method import TEST_CURRENCY

from .journal import NOW, A, build
from .test_html import Dom

SNEAKY = "https://pay\u202eexample.com\x1b[8m"


def _report(tmp_path: Path, caps: tuple[CapUsage, ...] = ()):
    journal, _, _ = build(tmp_path / "journal.sqlite3")
    try:
        records = [
            dataclasses.replace(r, origin=SNEAKY) if r.origin == A else r
            for r in journal.payments()
        ]
    finally:
        journal.close()
    return summarize(records, now=NOW.astimezone(UTC), caps=caps)


def test_only_the_pages_own_script_runs(tmp_path):
    text = render_html(_report(tmp_path))
    dom = Dom(text)

    [meta] = [m for m in dom.tags("meta") if m["attrs"].get("http-equiv")]
    policy = dict([*part.split(" ", 1), ""][:2] for part in meta["attrs"]["content"].split("; "))
    [script] = re.findall(r"<script>(.*?)</script>", text, re.S)
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert policy["default-src"] == "'none'"
    assert policy["script-src"] == f"'sha256-{digest}'"
    assert "unsafe-inline" not in policy["script-src"]
    assert policy["base-uri"] == "'none'" and policy["form-action"] == "'none'"


def test_an_origin_with_control_characters_is_filtered_like_any_other(tmp_path):
    dom = Dom(render_html(_report(tmp_path)))

    [data] = [e for e in dom.tags("script") if e["attrs"].get("id") == "mpp-data"]
    origins = {e["origin"] for e in json.loads(data["text"])["entries"]}
    options = {e["attrs"]["value"] for e in dom.tags("option")} - {""}
    keys = {e["attrs"]["data-key"] for e in dom.find(**{"data-group": "origin"})}
    # What the filter compares: the option chosen, the rows' keys and the entries' origins.
    assert options == origins and keys <= origins
    assert "\x1b" not in "".join(origins) and "\u202e" not in "".join(origins)


def _cap(used: int, cap: int = 1_000_000) -> CapUsage:
    return CapUsage("day", "day", Money(cap, TEST_CURRENCY), {}, Money(used, TEST_CURRENCY), None)


def test_a_cap_is_nearly_used_up_from_exactly_ninety_percent(tmp_path):
    assert _cap(900_000).share == Fraction(9, 10)
    report = _report(tmp_path, caps=(_cap(900_000), _cap(899_999)))
    dom = Dom(render_html(report))

    rows = dom.find(**{"data-cap": "day"})
    assert [r["attrs"].get("class") for r in rows] == ["over", None]


def test_the_percentage_never_rounds_up_to_a_full_cap(tmp_path):
    assert _cap(996_000).percent == "99%"
    assert _cap(1_000_000).percent == "100%"
    assert _cap(1).percent == "<1%" and _cap(0).percent == "0%"
    text = render_text(_report(tmp_path, caps=(_cap(996_000),)))
    assert "99%" in text and "100%" not in text


def test_a_currency_symbol_cannot_drive_the_terminal(tmp_path):
    journal, _, _ = build(tmp_path / "journal.sqlite3")
    try:
        sneaky = dataclasses.replace(TEST_CURRENCY, symbol="tUSD\x1b]0;pwned\x07\x1b[2J")
        records = [
            dataclasses.replace(r, amount=Money(r.amount.amount, sneaky))
            if r.amount.currency == TEST_CURRENCY
            else r
            for r in journal.payments()
        ]
    finally:
        journal.close()
    text = render_text(summarize(records, now=NOW.astimezone(UTC)), color=False)

    assert "\x1b" not in text and "\x07" not in text
    assert "tUSD\\x1b]0;pwned\\x07" in text
