"""Sessions' channel records on PostgreSQL: the voucher compare-and-set across connections and
processes, one writer per channel, the close's refund in the running totals, the migration from
a journal of schema 1, and ``mpp journal copy`` of the records."""

from __future__ import annotations

import multiprocessing
import threading
from pathlib import Path
from typing import Any

import psycopg
import pytest

from mpp_client import Wallet
from mpp_client.cli import main
from mpp_client.errors import JournalError
from mpp_client.methods.lightning.session import LightningSession
from mpp_client.methods.tempo import LocalKeySigner
from mpp_client.methods.tempo.session import TempoSession
from mpp_client.wallet.channels import ChannelStore, NewChannel, VoucherRegression
from mpp_client.wallet.postgres import PostgresChannelStore, PostgresJournal
from mpp_client.wallet.postgres_schema import _VERSION_1, SCHEMA_VERSION, migrate
from tests.lightning.fake_payer import RecordingPayer


def new(channel_id: str = "0xabc", deposit: int = 1_000_000) -> NewChannel:
    return NewChannel(
        id=channel_id, method="tempo", origin="http://127.0.0.1:1", payee="0xpayee",
        currency="0xtoken", network="eip155:31337", lookup_key="k",
        details={"escrow": "0xescrow"}, deposit=deposit, highest_signed=10, voucher="0xsig10",
        deposit_ref="0xopen",
    )  # fmt: skip


def test_the_highest_voucher_is_kept_and_resumed_from_another_connection(pg_url: str) -> None:
    first = PostgresJournal(pg_url, heartbeat=False)
    second = PostgresJournal(pg_url, heartbeat=False)  # another pool: a stand-in for a host
    try:
        store = ChannelStore.for_journal(first)
        assert isinstance(store, PostgresChannelStore)
        store.open(new())
        with pytest.raises(JournalError, match="already recorded"):
            store.open(new())
        assert store.record_voucher("0xabc", 20, "0xsig20").highest_signed == 20
        assert store.record_voucher("0xabc", 20, "0xother").voucher == "0xsig20"  # idempotent

        other = ChannelStore.for_journal(second)
        resumed = other.get("0xabc")
        assert resumed is not None
        assert (resumed.highest_signed, resumed.voucher) == (20, "0xsig20")
        with pytest.raises(VoucherRegression):
            other.record_voucher("0xabc", 15, "0xsig15")  # below what the first signed
        with pytest.raises(JournalError, match="above the deposit"):
            other.record_voucher("0xabc", 2_000_000, "0xbig")
        assert other.record_voucher("0xabc", 30, "0xsig30").highest_signed == 30
        assert store.get("0xabc").voucher == "0xsig30"  # type: ignore[union-attr]

        store.accept("0xabc", 50)  # never above what was signed
        store.accept("0xabc", 5)  # never down
        record = other.get("0xabc")
        assert record is not None and record.highest_accepted == 30 and record.state == "open"
        assert [r.id for r in other.find("tempo", "k")] == ["0xabc"]
        other.topped_up("0xabc", 2_000_000, "0xtopup")
        other.note("0xabc", overclaimed=True)
        store.set_secret("0xabc", "preimage-" + "ab" * 16)
        record = store.get("0xabc")
        assert record is not None and record.deposit == 2_000_000
        assert record.deposit_refs == ("0xopen", "0xtopup")
        assert record.details == {"escrow": "0xescrow", "overclaimed": True}
        shown = repr(record) + repr(record.to_dict()) + repr(store.channels())
        assert "preimage" not in shown and "0xsig30" not in shown
        secret = other.secret("0xabc")
        assert secret is not None and secret.reveal().startswith("preimage-")
        with pytest.raises(JournalError):
            other.note("0xmissing", overclaimed=True)
    finally:
        first.close()
        second.close()


def _race(url: str, start: int, results: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    journal = PostgresJournal(url, heartbeat=False)
    store = ChannelStore.for_journal(journal)
    won = 0
    for amount in range(start, 300, 2):
        try:
            if store.record_voucher("0xabc", amount, f"0x{amount}").highest_signed == amount:
                won += 1
        except VoucherRegression:
            pass
    journal.close()
    results.put(won)


def test_one_writer_per_channel_across_processes_and_threads(pg_url: str) -> None:
    journal = PostgresJournal(pg_url, heartbeat=False, pool_size=4)
    store = ChannelStore.for_journal(journal)
    store.open(new())
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    procs = [context.Process(target=_race, args=(pg_url, s, results)) for s in (11, 12)]
    for proc in procs:
        proc.start()
    seen: list[int] = []
    lock = threading.Lock()

    def thread(start: int) -> None:
        last = 0
        for amount in range(start, 300, 3):
            try:
                got = store.record_voucher("0xabc", amount, f"0x{amount}").highest_signed
            except VoucherRegression:
                continue
            assert got >= last  # what one writer sees never goes down
            last = got
            with lock:
                seen.append(got)

    threads = [threading.Thread(target=thread, args=(s,)) for s in (13, 14)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    final = store.get("0xabc")
    assert final is not None
    assert final.highest_signed == 299 and final.voucher == "0x299"
    journal.close()


def _entry(amount: int, reference: str | None) -> object:
    from mpp_client.methods.base import Payee
    from mpp_client.money import SAT, Money
    from mpp_client.wallet.journal import NewPayment

    return NewPayment(
        call_id="call", challenge_id="ch", realm=None, origin="http://127.0.0.1:1",
        url="http://127.0.0.1:1/x", http_method="GET", method="lightning", intent="session",
        amount=Money(amount, SAT), exposure=amount, max_fee=None, network=None,
        payees=(Payee("0xpayee", amount),), expires=None, label=None, reference=reference,
    )  # fmt: skip


def test_the_refund_of_a_close_leaves_the_running_totals(pg_url: str) -> None:
    journal = PostgresJournal(pg_url, heartbeat=False)
    with journal.atomic() as ledger:
        deposit = ledger.insert(_entry(1_000, "0xopen"))  # type: ignore[arg-type]
    store = ChannelStore.for_journal(journal)
    store.open(new(deposit=1_000))
    closed = store.settle_close("0xabc", paid=400, refund=600)
    assert (closed.state, closed.refund, closed.highest_accepted) == ("closed", 600, 400)
    assert store.settle_close("0xabc", paid=400, refund=600) == closed  # once only
    entry = journal.get(deposit)
    assert entry is not None and entry.exposure == 400
    reads = journal.ledger()
    assert [amount for _, amount in reads.held_totals()] == [400]
    assert [amount for _, amount in reads.held_totals(since=0.0)] == [400]
    assert [a for _, a in reads.held_totals(origin="http://127.0.0.1:1")] == [400]
    journal.close()


def _never(invoice: str, amount: int) -> Any:
    raise AssertionError("nothing may be paid")


def test_a_wallet_on_postgresql_gives_sessions_their_records(pg_url: str) -> None:
    tempo = TempoSession(
        LocalKeySigner.generate(), max_deposit=1_000, chain_id=31337,
        rpc_url="http://127.0.0.1:9",
    )  # fmt: skip
    lightning = LightningSession(RecordingPayer(_never))
    wallet = Wallet([tempo, lightning], journal=pg_url)
    try:
        assert isinstance(tempo.channels, PostgresChannelStore)
        assert isinstance(lightning.store, PostgresChannelStore)
    finally:
        wallet.close()


def test_a_journal_of_schema_1_is_refused_until_migrated(empty_url: str) -> None:
    with psycopg.connect(empty_url, autocommit=True) as conn, conn.transaction():
        for statement in _VERSION_1:
            conn.execute(statement)
    with pytest.raises(JournalError, match=r"schema version 1, older.*journal migrate"):
        PostgresJournal(empty_url, heartbeat=False)
    with psycopg.connect(empty_url, autocommit=True) as conn:
        with pytest.raises(JournalError, match="--yes"):
            migrate(conn, empty_url, consent=False)  # a journal in use: never silently
        plan = migrate(conn, empty_url, consent=True)
    assert plan.current == 1 and [v for v, _ in plan.steps] == [2] == [SCHEMA_VERSION]
    journal = PostgresJournal(empty_url, heartbeat=False)
    store = ChannelStore.for_journal(journal)
    store.open(new())
    assert store.record_voucher("0xabc", 11, "0xsig11").highest_signed == 11
    journal.close()


def test_copy_moves_channel_records_both_ways(
    tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from mpp_client.wallet import SqliteJournal

    from ..wallet.conftest import pay, quote

    path = tmp_path / "one.sqlite3"
    wallet = Wallet(journal=SqliteJournal(path))
    pay(wallet, quote(1_000, payee="0xpinned"))
    wallet.close()
    source = ChannelStore(path)
    source.open(new())
    source.record_voucher("0xabc", 42, "0xsig42")
    source.set_secret("0xabc", "preimage-" + "cd" * 16)
    before = [(r, r.voucher) for r in source.channels()]
    source.close()

    assert main(["--json", "journal", "copy", str(path), pg_url]) == 0
    assert '"channels": 1' in capsys.readouterr().out
    journal = PostgresJournal(pg_url, heartbeat=False)
    store = ChannelStore.for_journal(journal)
    assert [(r, r.voucher) for r in store.channels()] == before
    assert store.secret("0xabc").reveal().startswith("preimage-cd")  # type: ignore[union-attr]
    journal.close()

    back = tmp_path / "back.sqlite3"
    assert main(["journal", "copy", pg_url, str(back)]) == 0
    copied = ChannelStore(back)
    assert [(r, r.voucher) for r in copied.channels()] == before
    copied.close()
