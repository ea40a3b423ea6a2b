"""``mpp`` run in this process (``main(argv, clock=...)``) where the clock or the time zone must
be pinned: ``journal list --since/--until/--today``, ``mpp report``; and the spinner stopping
while a prompt is on the terminal."""

from __future__ import annotations

import io
import json
import sqlite3
import time
from pathlib import Path

import pytest

from mpp_client.cli import main
from mpp_client.cli.output import Progress, prompting
from tests.report.journal import build


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """An isolated home with the report-test journal (payments on the days before NOW), and
    the local time zone pinned to UTC-05:00 (EST, no daylight saving)."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("MPP_JOURNAL", str(tmp_path / "journal.sqlite3"))
    monkeypatch.delenv("MPP_OUTPUT", raising=False)
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TZ", "EST+05")
    time.tzset()
    journal, clock, made = build(tmp_path / "journal.sqlite3")
    journal.close()
    yield clock, made
    monkeypatch.undo()
    time.tzset()


def run(capsys, clock, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv), clock=clock)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def ids(capsys, clock, *argv: str) -> list[str]:
    code, out, err = run(capsys, clock, "--json", "journal", "list", *argv)
    assert code == 0, err
    return [entry["id"] for entry in json.loads(out)]


def test_today_is_the_clocks_day_in_the_local_time_zone(home, capsys):
    clock, made = home
    # NOW is 10:00 EST on 2026-03-30: today's payments are the three made minutes before it.
    today = ids(capsys, clock, "--today")
    assert today == [m.entry_id for m in made if m.days_ago == 0]

    code, out, _ = run(capsys, clock, "journal", "list", "--today")
    assert code == 0
    assert "times in UTC-05:00 (EST)" in out
    assert "from 2026-03-30 00:00 to 2026-03-31 00:00" in out

    clock.advance(86400)  # the next day: nothing yet
    assert ids(capsys, clock, "--today") == []


def test_since_and_until_take_whole_local_days(home, capsys):
    clock, made = home
    # --until is inclusive of its day: the 28th and the 29th (EST).
    window = ids(capsys, clock, "--since", "2026-03-28", "--until", "2026-03-29")
    assert window == [m.entry_id for m in made if m.days_ago in (1, 2)]
    # A time with an offset is exact: from 14:59 UTC on the 30th, the payments made at 14:59
    # and 15:00 (the first two written; each payment n was made n minutes before NOW).
    late = ids(capsys, clock, "--since", "2026-03-30T14:59:00Z")
    assert set(late) == {made[0].entry_id, made[1].entry_id}
    # Without an offset a time is local: 09:59 EST is 14:59 UTC.
    assert ids(capsys, clock, "--since", "2026-03-30T09:59") == late
    # --until excludes its instant.
    assert ids(capsys, clock, "--since", "2026-03-30T09:59", "--until", "2026-03-30T10:00") == [
        made[1].entry_id
    ]


@pytest.mark.parametrize(
    "value",
    [
        "03/04/2026",
        "2026-3-4",
        "20260304",
        "2026-02-30",
        "yesterday",
        "2026-03-04T25:00",
        "\u0662\u0660\u0662\u0666-\u0660\u0663-\u0660\u0664",  # Arabic-Indic digits
        "2026-03-04T10:00+24:00",
    ],
)
def test_dates_are_parsed_exactly_or_refused(home, capsys, value):
    clock, _ = home
    code, _, err = run(capsys, clock, "journal", "list", "--since", value)

    assert code == 2
    assert value in err


def test_today_and_since_together_are_refused(home, capsys):
    clock, _ = home
    code, _, err = run(capsys, clock, "journal", "list", "--today", "--since", "2026-03-01")
    assert code == 2 and "--today" in err


def test_report_uses_the_injected_clock_and_the_local_zone(home, capsys, tmp_path):
    clock, _ = home
    code, out, err = run(capsys, clock, "report")
    assert code == 0, err
    assert "Spend from 2026-03-01 to 2026-03-30 (30 days)" in out
    assert "times in UTC-05:00 (EST)" in out
    assert "\x1b[" not in out  # not a terminal: no colour

    code, out, _ = run(capsys, clock, "--json", "report")
    data = json.loads(out)
    assert data["to"] == "2026-03-30" and data["timezone"] == "UTC-05:00 (EST)"
    spent = {t["spent"]["currency"]: t["spent"]["amount"] for t in data["totals"]}
    assert spent == {"usd-test": 30_000, "sat": 150}
    assert [a["state"] for a in data["attention"]] == ["unknown", "sent", "unknown"]

    page = tmp_path / "out.html"
    code, out, _ = run(capsys, clock, "report", "--html", str(page))
    assert code == 0 and str(page) in out
    assert 'data-total="spent"' in page.read_text()


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_prompt_stops_the_spinner_and_it_starts_again_after():
    stream = FakeTerminal()
    progress = Progress(stream)
    progress.start("paying")
    assert progress.spinning
    try:
        with prompting():
            # Stopped: no thread draws while the question is on the terminal, the line cleared.
            assert not progress.spinning
            written = stream.getvalue()
            assert written == "" or written.endswith("\r\x1b[2K")
        assert progress.spinning
    finally:
        progress.stop()
    assert not progress.spinning


def test_the_key_file_passphrase_prompt_stops_the_spinner(tmp_path, monkeypatch):
    """The passphrase is asked the first time a key is needed: in the middle of a payment,
    while ``mpp fetch``'s spinner runs."""
    from mpp_client.cli import accounts, secret_input
    from mpp_client.cli.config import Config
    from mpp_client.wallet import EncryptedFileKeyStore, Secret, SecretKind

    path = tmp_path / "keys.json"
    EncryptedFileKeyStore(str(path), passphrase=lambda: "pass", prompt=False).set(
        "tempo/main", Secret("ab" * 32, SecretKind.TEMPO_PRIVATE_KEY)
    )
    for name in (
        "MPP_KEYSTORE_PASSPHRASE",
        "MPP_KEYSTORE_PASSPHRASE_FILE",
        "CREDENTIALS_DIRECTORY",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MPP_KEYSTORE", "file")
    monkeypatch.setenv("MPP_KEYSTORE_FILE", str(path))
    monkeypatch.setattr(secret_input, "terminal_available", lambda: True)
    progress = Progress(FakeTerminal())
    seen: list[bool] = []

    def getpass(prompt: str) -> str:
        seen.append(progress.spinning)
        return "pass"

    monkeypatch.setattr(secret_input.getpass, "getpass", getpass)
    store = accounts.open_store(Config(path=tmp_path / "config.toml"))
    progress.start("paying")
    try:
        assert store.get("tempo/main").reveal() == "ab" * 32
    finally:
        progress.stop()
    assert seen == [False]


def test_journal_list_rows_are_one_line_each_whatever_the_server_sent(home, capsys, tmp_path):
    clock, made = home
    # A receipt reference and a currency symbol are the server's (or a token's) text.
    with sqlite3.connect(tmp_path / "journal.sqlite3") as conn:
        conn.execute(
            "UPDATE payments SET reference=?, currency_symbol=? WHERE id=?",
            ("ref\nfake-row  settled", "tUSD\x1b[2J", made[0].entry_id),
        )
    code, out, _ = run(capsys, clock, "journal", "list", "--today")

    assert code == 0
    rows = [line for line in out.splitlines() if line and not line.startswith("times in")]
    assert len(rows) == 1 + len([m for m in made if m.days_ago == 0])
    assert "\x1b" not in out and "fake-row" in out
