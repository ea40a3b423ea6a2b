"""``mpp journal migrate`` and ``mpp journal copy``: explicit migrations that never alter a
database in use silently, and copies between SQLite and PostgreSQL that keep every state."""

from __future__ import annotations

import json

import psycopg

from mpp_client.cli import main
from mpp_client.wallet import SqliteJournal, Wallet
from mpp_client.wallet.postgres import PostgresJournal

from ..wallet.conftest import pay, quote
from . import workers


def test_migrate_creates_a_journal_and_refuses_a_database_in_use_without_yes(pg, capsys):
    fresh = pg.create_schema("cli_fresh")
    assert main(["--json", "journal", "migrate", fresh]) == 0
    assert json.loads(capsys.readouterr().out)["applied"] is True
    PostgresJournal(fresh, heartbeat=False).close()  # usable now
    assert main(["--json", "journal", "migrate", fresh]) == 0  # nothing left to do
    assert json.loads(capsys.readouterr().out)["steps"] == []

    busy = pg.create_schema("cli_busy")
    with psycopg.connect(busy, autocommit=True) as conn:
        conn.execute("CREATE TABLE orders (id int)")
    assert main(["journal", "migrate", busy, "--dry-run"]) == 0
    assert main(["journal", "migrate", busy]) == 2
    assert "--yes" in capsys.readouterr().err
    with psycopg.connect(busy, autocommit=True) as conn:
        assert conn.execute("SELECT to_regclass('mpp_payments')").fetchone()[0] is None
    assert main(["journal", "migrate", busy, "--yes"]) == 0


def test_copy_moves_every_state_proof_receipt_and_pin_both_ways(tmp_path, pg_url, capsys):
    source = SqliteJournal(tmp_path / "one.sqlite3")
    wallet = Wallet(journal=source, policy=workers.policy("100").__class__())
    pay(wallet, quote(1_000, payee="0xpinned"))
    released = pay(wallet, quote(2_000, payee="0xpinned"), settle=False)
    released.failed("refused before signing", money_moved=False)
    left = pay(wallet, quote(3_000, payee="0xpinned"), settle=False)
    left.sent("fp", "0xleft")
    left.failed("no answer", money_moved=False, proof="credential-void")
    unknown = pay(wallet, quote(4_000, payee="0xpinned"), settle=False)
    unknown.sent("fp2", "0xunknown")
    unknown.unknown("timed out")
    before = [r.to_dict() for r in source.payments()]
    pin = source.ledger().pin("https://api.example.com", "tempo")
    wallet.close()

    assert main(["journal", "copy", str(tmp_path / "one.sqlite3"), pg_url]) == 0
    target = PostgresJournal(pg_url, heartbeat=False)
    assert [r.to_dict() for r in target.payments()] == before
    assert target.ledger().pin("https://api.example.com", "tempo") == pin
    held = target.ledger().held_totals()
    assert [amount for _, amount in held] == [1_000 + 4_000]  # released ones hold nothing
    target.close()

    back = tmp_path / "back.sqlite3"
    assert main(["journal", "copy", pg_url, str(back)]) == 0
    copied = SqliteJournal(back)
    assert [r.to_dict() for r in copied.payments()] == before
    assert [amount for _, amount in copied.ledger().held_totals()] == [5_000]
    copied.close()
    assert main(["journal", "copy", str(tmp_path / "one.sqlite3"), pg_url]) == 1  # not empty
    assert "already holds payments" in capsys.readouterr().err
