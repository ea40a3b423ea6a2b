"""``mpp report --html``: one self-contained page, rendered by a real browser (headless
Chromium): the screenshot is drawn at the asked size, the DOM's figures equal the journal's,
the origin and date filters change the shown totals, and hostile journal text stays text."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest

from mpp_client.report import build_report, render_html
from mpp_client.wallet import SpendPolicy

from .chromium import dump_dom, read_png, screenshot
from .journal import HOSTILE, HOSTILE_REASON, NOW, A, B, Made, build
from .test_report import expected


class Dom(HTMLParser):
    """The elements of a serialised DOM: tag, attributes and direct text, in order."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.elements: list[dict] = []
        self._open: list[dict] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        element = {"tag": tag, "attrs": dict(attrs), "text": ""}
        self.elements.append(element)
        if tag not in ("meta", "input", "br", "link", "img", "line", "rect"):
            self._open.append(element)

    def handle_endtag(self, tag):
        while self._open:
            if self._open.pop()["tag"] == tag:
                break

    def handle_data(self, data):
        for element in self._open:
            element["text"] += data

    def find(self, **attrs) -> list[dict]:
        return [e for e in self.elements if all(e["attrs"].get(k) == v for k, v in attrs.items())]

    def tags(self, tag: str) -> list[dict]:
        return [e for e in self.elements if e["tag"] == tag]


def currency_key(dom: Dom, code: str) -> str:
    # The page keys currencies c0, c1, ... in order of appearance; its JSON says which is which.
    [data] = [e for e in dom.tags("script") if e["attrs"].get("id") == "mpp-data"]
    import json

    currencies = json.loads(data["text"])["currencies"]
    return next(k for k, v in currencies.items() if v["code"] == code)


def totals(dom: Dom, code: str) -> tuple[int, int]:
    key = currency_key(dom, code)
    [spent] = dom.find(**{"data-total": "spent", "data-currency": key})
    [held] = dom.find(**{"data-total": "held", "data-currency": key})
    return int(spent["attrs"]["data-base"]), int(held["attrs"]["data-base"])


@dataclass(frozen=True)
class Page:
    path: Path
    made: list[Made]

    def read_text(self) -> str:
        return self.path.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Page:
    root = tmp_path_factory.mktemp("report")
    journal, clock, made = build(root / "journal.sqlite3")
    try:
        report = build_report(journal, SpendPolicy(), clock=clock, tz=UTC)
    finally:
        journal.close()
    path = root / "report.html"
    path.write_text(render_html(report), encoding="utf-8")
    return Page(path, made)


def test_the_page_needs_nothing_from_the_network(page):
    text = page.read_text()
    dom = Dom(text)

    [policy] = [m for m in dom.tags("meta") if m["attrs"].get("http-equiv")]
    assert policy["attrs"]["content"].startswith("default-src 'none'")
    for element in dom.elements:
        for name in ("src", "href", "action", "xlink:href"):
            assert name not in element["attrs"], element
    assert not dom.tags("link") and not dom.tags("img") and not dom.tags("iframe")
    assert "<svg" in text and "<script>" in text


def test_a_screenshot_is_drawn_at_the_window_size(page, tmp_path):
    shot = screenshot(
        page.path, tmp_path / "profile", tmp_path / "report.png", width=1200, height=1500
    )

    png = read_png(shot)
    assert (png.width, png.height) == (1200, 1500)
    # Not blank: text, bars and tables make many different rows and colours.
    assert png.distinct_rows > 100 and png.distinct_bytes > 50


def test_the_rendered_figures_equal_the_journal(page, tmp_path):
    dom = Dom(dump_dom(page.path, tmp_path / "profile"))

    spent, held = expected(page.made, today=NOW.date())
    assert totals(dom, "usd-test") == (spent["usd-test"], held["usd-test"])
    assert totals(dom, "sat") == (spent["sat"], held["sat"])
    assert dom.find(**{"data-filtered": "no"})
    key = currency_key(dom, "usd-test")
    bars = dom.find(**{"data-currency": key, "data-kind": "spent", "data-day": str(NOW.date())})
    assert [int(b["attrs"]["data-base"]) for b in bars] == [10_000]
    [row] = dom.find(**{"data-group": "origin", "data-key": A, "data-currency": key})
    assert "0.011 tUSD" in row["text"] and "1 unknown" in row["text"]
    # The payments that are not final are highlighted.
    unknown_rows = [e for e in dom.tags("tr") if e["attrs"].get("class") == "unknown"]
    assert len([r for r in unknown_rows if "data-entry" in r["attrs"]]) == 2


def test_an_origin_filter_changes_the_totals(page, tmp_path):
    dom = Dom(dump_dom(page.path, tmp_path / "profile", f"origin={B}"))

    spent, held = expected(page.made, today=NOW.date(), origin=B)
    assert totals(dom, "usd-test") == (spent["usd-test"], held.get("usd-test", 0))
    assert totals(dom, "usd-test") == (5_000 + 12_000 + 2_000, 0)
    assert totals(dom, "sat") == (150, 0)
    assert dom.find(**{"data-filtered": "yes"})
    key = currency_key(dom, "usd-test")
    [row_a] = dom.find(**{"data-group": "origin", "data-key": A, "data-currency": key})
    assert "hidden" in row_a["attrs"]
    [shown] = [e for e in dom.elements if e["attrs"].get("id") == "f-shown"]
    assert B in shown["text"]
    # B has no unknown payment: the method row is no longer highlighted.
    [method] = dom.find(**{"data-group": "method", "data-key": "test", "data-currency": key})
    assert "unknown" not in method["attrs"].get("class", "")
    assert "0 unknown" not in method["text"] and "3" in method["text"]


def test_a_date_filter_changes_the_totals(page, tmp_path):
    since = NOW.date() - timedelta(days=5)
    fragment = f"from={since}&to={NOW.date() - timedelta(days=1)}"
    dom = Dom(dump_dom(page.path, tmp_path / "profile", fragment))

    # From 5 days ago to yesterday: B's 0.005 and 0.012; the sat payment 2 days ago is held.
    assert totals(dom, "usd-test") == (5_000 + 12_000, 0)
    assert totals(dom, "sat") == (0, 40)
    key = currency_key(dom, "usd-test")
    today_bar = dom.find(
        **{"data-currency": key, "data-kind": "spent", "data-day": str(NOW.date())}
    )
    assert [b["attrs"]["data-base"] for b in today_bar] == ["0"]


def test_hostile_journal_text_stays_text(page, tmp_path):
    text = page.read_text()
    dom = Dom(dump_dom(page.path, tmp_path / "profile", f"origin={HOSTILE}"))

    # The browser built no element from the origin or the reason, and ran none of their script.
    assert not dom.tags("img")
    assert [e["attrs"].get("id") for e in dom.tags("script")] == ["mpp-data", None]
    title = dom.tags("title")[0]  # the page's (the others are the bars' tooltips)
    assert "pwned" not in title["text"]
    texts = "".join(e["text"] for e in dom.elements if e["tag"] == "td")
    assert HOSTILE in texts
    assert HOSTILE_REASON.replace("\x1b", "\\x1b") in texts
    # The embedded data cannot close its script element.
    [data] = re.findall(r'<script type="application/json" id="mpp-data">(.*?)</script>', text)
    assert "<" not in data and ">" not in data
    # The filter by the hostile origin works like any other.
    assert totals(dom, "usd-test") == (0, 3_000)


def test_a_malformed_address_fragment_does_not_stop_the_filters(page, tmp_path):
    # "%E0%A4%A" is no UTF-8 percent-encoding: that part is skipped, the date still applies.
    fragment = f"origin=%E0%A4%A&from={NOW.date()}"
    dom = Dom(dump_dom(page.path, tmp_path / "profile", fragment))

    assert dom.find(**{"data-filtered": "yes"})
    assert totals(dom, "usd-test") == (10_000, 25_000)
