"""Session records: the voucher compare-and-set, across threads and processes, and secrets."""

from __future__ import annotations

import multiprocessing
import threading
from pathlib import Path
from typing import Any

import pytest

from mpp_client.errors import JournalError
from mpp_client.wallet.channels import ChannelRecord, ChannelStore, NewChannel, VoucherRegression
from mpp_client.wallet.journal import SqliteJournal


def new(channel_id: str = "0xabc", deposit: int = 1_000_000) -> NewChannel:
    return NewChannel(
        id=channel_id, method="tempo", origin="http://127.0.0.1:1", payee="0xpayee",
        currency="0xtoken", network="eip155:31337", lookup_key="k",
        details={"escrow": "0xescrow"}, deposit=deposit, highest_signed=10, voucher="0xsig10",
        deposit_ref="0xopen",
    )  # fmt: skip


def test_vouchers_only_go_up_and_equal_is_idempotent(tmp_path: Path) -> None:
    store = ChannelStore(tmp_path / "j.sqlite3")
    store.open(new())
    assert store.record_voucher("0xabc", 20, "0xsig20").highest_signed == 20
    again = store.record_voucher("0xabc", 20, "0xother")
    assert again.voucher == "0xsig20"  # the stored signature wins: never two for one amount
    with pytest.raises(VoucherRegression):
        store.record_voucher("0xabc", 15, "0xsig15")
    with pytest.raises(JournalError):
        store.record_voucher("0xabc", 2_000_000, "0xbig")  # above the deposit
    record = store.get("0xabc")
    assert record is not None and record.highest_signed == 20
    store.accept("0xabc", 50)  # never above what was signed
    record = store.get("0xabc")
    assert record is not None and record.highest_accepted == 20 and record.state == "open"
    store.accept("0xabc", 5)  # never down
    assert store.get("0xabc").highest_accepted == 20  # type: ignore[union-attr]
    assert [r.id for r in store.find("tempo", "k")] == ["0xabc"]


def test_secrets_are_never_listed(tmp_path: Path) -> None:
    store = ChannelStore(tmp_path / "j.sqlite3")
    store.open(new())
    store.set_secret("0xabc", "preimage-" + "ab" * 16)
    record = store.get("0xabc")
    assert record is not None
    shown = repr(record) + repr(record.to_dict()) + repr(store.channels())
    assert "preimage" not in shown and "0xsig10" not in shown
    secret = store.secret("0xabc")
    assert secret is not None and "preimage" not in repr(secret)
    assert secret.reveal().startswith("preimage-")


def test_a_journal_in_memory_shares_its_database() -> None:
    journal = SqliteJournal(":memory:")
    store = ChannelStore.for_journal(journal)
    store.open(new())
    assert store.get("0xabc") is not None
    tables = journal._conn().execute("SELECT name FROM sqlite_master").fetchall()
    assert "channels" in {row[0] for row in tables}


def _race(path: str, start: int, results: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    store = ChannelStore(path)
    won = 0
    for amount in range(start, 400, 2):
        try:
            if store.record_voucher("0xabc", amount, f"0x{amount}").highest_signed == amount:
                won += 1
        except VoucherRegression:
            pass
    results.put(won)


def test_one_writer_per_channel_across_threads_and_processes(tmp_path: Path) -> None:
    path = str(tmp_path / "j.sqlite3")
    ChannelStore(path).open(new())
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    procs = [context.Process(target=_race, args=(path, s, results)) for s in (11, 12)]
    for proc in procs:
        proc.start()
    store = ChannelStore(path)
    seen: list[int] = []
    lock = threading.Lock()

    def thread(start: int) -> None:
        for amount in range(start, 400, 3):
            try:
                got = store.record_voucher("0xabc", amount, f"0x{amount}").highest_signed
            except VoucherRegression:
                continue
            with lock:
                seen.append(got)

    threads = [threading.Thread(target=thread, args=(s,)) for s in (13, 14)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for proc in procs:
        proc.join(30)
        assert proc.exitcode == 0
    final = store.get("0xabc")
    assert final is not None
    assert final.highest_signed == 399 and final.voucher == "0x399"


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


def test_the_refund_is_cut_only_from_entries_still_exposing_money(tmp_path: Path) -> None:
    journal = SqliteJournal(str(tmp_path / "j.sqlite3"))
    with journal.atomic() as ledger:
        deposit = ledger.insert(_entry(1_000, "0xopen"))  # type: ignore[arg-type]
        # A later zero-amount entry with the same reference (a bearer request on the session).
        bearer = ledger.insert(_entry(0, None))  # type: ignore[arg-type]
    journal._conn().execute("UPDATE payments SET reference='0xopen' WHERE id=?", (bearer,))
    store = ChannelStore.for_journal(journal)
    store.open(new(deposit=1_000))
    store.settle_close("0xabc", paid=400, refund=600)
    by_id = {p.id: p for p in journal.payments()}
    assert by_id[deposit].exposure == 400  # the refund came off the deposit entry
    assert by_id[bearer].exposure == 0


def test_notes_are_durable_facts_of_a_session(tmp_path: Path) -> None:
    store = ChannelStore(tmp_path / "j.sqlite3")
    store.open(new())
    store.note("0xabc", overclaimed=True)
    store.close()
    again = ChannelStore(tmp_path / "j.sqlite3").get("0xabc")
    assert again is not None
    assert again.details == {"escrow": "0xescrow", "overclaimed": True}
    with pytest.raises(JournalError):
        ChannelStore(tmp_path / "j.sqlite3").note("0xmissing", overclaimed=True)


def test_a_voucher_costs_one_fsync_and_an_accept_none(tmp_path: Path) -> None:
    store = ChannelStore(tmp_path / "j.sqlite3")
    store.open(new())
    conn = store._conn()
    seen: list[str] = []
    conn.set_trace_callback(seen.append)
    store.record_voucher("0xabc", 20, "0xsig20")
    voucher, seen[:] = list(seen), []
    store.accept("0xabc", 20)
    accept = list(seen)
    conn.set_trace_callback(None)
    # The voucher commits at FULL (its fsync, before it may be sent) ...
    assert voucher.index("PRAGMA synchronous=FULL") < voucher.index("COMMIT")
    # ... what the server acknowledged commits at the connection's NORMAL: no second fsync.
    assert not any("synchronous" in statement for statement in accept)
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL


def test_only_a_store_sharing_the_journals_wal_may_skip_a_flow_vouchers_fsync(
    tmp_path: Path,
) -> None:
    def statements(store: ChannelStore, cumulative: int, **options: bool) -> list[str]:
        conn = store._conn()
        seen: list[str] = []
        conn.set_trace_callback(seen.append)
        store.record_voucher("0xabc", cumulative, f"0xsig{cumulative}", **options)
        conn.set_trace_callback(None)
        return seen

    # Its own file: nothing else fsyncs it before the voucher leaves; fsync=False is ignored.
    own = ChannelStore(tmp_path / "own.sqlite3")
    own.open(new())
    assert not own.wal_shared_with_journal
    assert "PRAGMA synchronous=FULL" in statements(own, 20, fsync=False)
    # The wallet journal's file: the flow's ``sent`` step (FULL) fsyncs the same WAL after it.
    shared = ChannelStore.for_journal(SqliteJournal(tmp_path / "journal.sqlite3"))
    shared.open(new())
    assert shared.wal_shared_with_journal
    skipped = statements(shared, 20, fsync=False)
    assert "COMMIT" in skipped and not any("synchronous" in s for s in skipped)
    assert "PRAGMA synchronous=FULL" in statements(shared, 30)  # the default keeps it
    record = shared.get("0xabc")
    assert record is not None and record.highest_signed == 30
    with pytest.raises(VoucherRegression):  # the compare-and-set holds without the fsync
        shared.record_voucher("0xabc", 25, "0xsig25", fsync=False)


def _sign_next_race(path: str, rounds: int, results: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    store = ChannelStore(path)
    got = [
        store.sign_next("0xabc", lambda h, d: h + 1, lambda c: f"0x{c}")[0] for _ in range(rounds)
    ]
    results.put(got)


def test_sign_next_reads_signs_and_records_in_one_transaction(tmp_path: Path) -> None:
    store = ChannelStore(tmp_path / "j.sqlite3")
    store.open(new(deposit=100))
    signed: list[int] = []

    def sign(cumulative: int) -> str:
        signed.append(cumulative)
        return f"0xsig{cumulative}"

    assert store.sign_next("0xabc", lambda h, d: h + 5, sign) == (15, "0xsig15", 100)
    # The same amount again: the stored voucher, nothing signed.
    assert store.sign_next("0xabc", lambda h, d: h, sign) == (15, "0xsig15", 100)
    assert signed == [15]
    with pytest.raises(VoucherRegression):
        store.sign_next("0xabc", lambda h, d: h - 1, sign)
    with pytest.raises(JournalError, match="above the deposit"):
        store.sign_next("0xabc", lambda h, d: d + 1, sign)

    def refuse(highest: int, deposit: int) -> int:
        raise RuntimeError("no")

    with pytest.raises(RuntimeError):
        store.sign_next("0xabc", refuse, sign)
    assert signed == [15]  # neither a lower one nor one above the deposit was signed
    record = store.get("0xabc")
    assert record is not None and (record.highest_signed, record.voucher) == (15, "0xsig15")
    store.set_state("0xabc", "evicted")
    with pytest.raises(JournalError, match="evicted"):
        store.sign_next("0xabc", lambda h, d: h + 1, sign)
    with pytest.raises(JournalError, match="no session record"):
        store.sign_next("0xnone", lambda h, d: h + 1, sign)


def test_sign_next_never_signs_one_amount_twice_across_processes(tmp_path: Path) -> None:
    path = str(tmp_path / "j.sqlite3")
    ChannelStore(path).open(new())
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    procs = [context.Process(target=_sign_next_race, args=(path, 60, results)) for _ in range(2)]
    for proc in procs:
        proc.start()
    store = ChannelStore(path)
    mine = [store.sign_next("0xabc", lambda h, d: h + 1, lambda c: f"0x{c}")[0] for _ in range(60)]
    got = [*mine, *results.get(timeout=60), *results.get(timeout=60)]
    for proc in procs:
        proc.join(30)
        assert proc.exitcode == 0
    # Every writer read the highest under the write lock: 180 distinct amounts, none lost.
    assert sorted(got) == list(range(11, 191))
    final = store.get("0xabc")
    assert final is not None and final.highest_signed == 190 and final.voucher == "0x190"


class _OtherStore(ChannelStore):
    """A store whose vouchers are written by its own ``record_voucher`` (as PostgreSQL's)."""

    calls = 0

    def record_voucher(self, *args: Any, **kwargs: Any) -> ChannelRecord:
        type(self).calls += 1
        return super().record_voucher(*args, **kwargs)


def test_sign_next_goes_through_a_subclass_s_own_voucher_write(tmp_path: Path) -> None:
    store = _OtherStore(tmp_path / "j.sqlite3")
    store.open(new(deposit=100))
    assert store.sign_next("0xabc", lambda h, d: h + 5, lambda c: f"0xsig{c}") == (
        15, "0xsig15", 100,
    )  # fmt: skip
    assert store.sign_next("0xabc", lambda h, d: h, lambda c: "0xother") == (15, "0xsig15", 100)
    assert _OtherStore.calls == 1
    with pytest.raises(JournalError, match="above the deposit"):
        store.sign_next("0xabc", lambda h, d: d + 1, lambda c: "0xbig")
