"""The PostgreSQL journal keeps the SQLite journal's promises in one process: the lifecycle and
its proof rule, exact windows from running totals, pins, references, and explicit schemas."""

from __future__ import annotations

import psycopg
import pytest

from mpp_client.errors import AlreadyPaid, BudgetExceeded, JournalError, PayeeChanged
from mpp_client.guard import PaymentOptions
from mpp_client.methods.base import Payee
from mpp_client.runner import run_sync
from mpp_client.wallet import Limit, SpendPolicy, Wallet, usd
from mpp_client.wallet.journal import open_journal
from mpp_client.wallet.postgres import PostgresJournal, shown_url

from ..wallet.conftest import ORIGIN, Clock, context, pay, quote


@pytest.fixture
def journal(pg_url):
    made = PostgresJournal(pg_url, clock=Clock(), heartbeat=False)
    yield made
    made.close()


def wallet_on(journal, **limits) -> Wallet:
    policy = SpendPolicy(limits=tuple(Limit(usd(v), k) for k, v in limits.items()) or None,
                         pin_payees=False)  # fmt: skip
    return Wallet(policy=policy, journal=journal)


def test_every_step_is_recorded_and_final_states_do_not_move_back(journal):
    wallet = Wallet(journal=journal)
    reservation = pay(wallet, quote(25_000), settle=False)
    reservation.signed("0xabc")
    reservation.sent("fp", "0xabc")
    reservation.settled({"status": "success", "reference": "0xabc"}, "0xabc")
    entry = journal.get(reservation.id)
    assert (entry.state, entry.reference, entry.fingerprint) == ("settled", "0xabc", "fp")
    assert entry.receipt == {"reference": "0xabc", "status": "success"}
    assert entry.amount.amount == 25_000 and entry.held
    assert journal.advance(reservation.id, "unknown", reason="late") is False
    assert journal.get(reservation.id).state == "settled"
    # A step before value moves that cannot be recorded stops the flow instead.
    with pytest.raises(JournalError, match="cannot record it as sent"):
        journal.advance(reservation.id, "sent", fingerprint="fp2")


def test_a_hold_the_server_forgot_stops_the_payment_before_its_credential_leaves(journal, pg_url):
    # Holds commit without waiting for the WAL flush: a server crash may forget the last ones
    # (simulated by deleting the row). The next step, written before anything is sent, finds
    # no entry and raises, so the flow stops with nothing sent.
    wallet = Wallet(journal=journal)
    reservation = pay(wallet, quote(1_000), settle=False)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("DELETE FROM mpp_payment_payees WHERE payment_id = %s", (reservation.id,))
        conn.execute("DELETE FROM mpp_payments WHERE id = %s", (reservation.id,))
    with pytest.raises(JournalError, match="cannot record it as signed"):
        reservation.signed("0xabc")
    with pytest.raises(JournalError, match="cannot record it as sent"):
        reservation.sent("fp", "0xabc")


def test_sent_returns_only_once_the_wal_is_flushed_past_it(journal, pg_url):
    # ``sent`` is one autocommit statement that turns ``synchronous_commit`` on for its own
    # transaction (the connection keeps it off for every other step).
    wallet = Wallet(journal=journal)
    reservation = pay(wallet, quote(1_000), settle=False)
    reservation.signed("0xabc")
    reservation.sent("fp", "0xabc")
    with psycopg.connect(pg_url, autocommit=True) as conn:
        flushed = conn.execute(
            "SELECT pg_current_wal_flush_lsn() >= pg_current_wal_insert_lsn()"
        ).fetchone()
        assert flushed == (True,)
    with journal._connection() as conn:
        assert conn.execute("SHOW synchronous_commit").fetchone() == {"synchronous_commit": "off"}


def test_a_check_told_its_request_reads_the_request_count_with_the_other_reads(journal):
    wallet = Wallet(journal=journal)
    pay(wallet, quote(1_000), context(call_id="request-1"))
    wallet.check(quote(1_000), context(call_id="request-2"), PaymentOptions())  # learns reads
    ledger = journal.ledger(call_id="request-1")
    assert ledger.pin(ORIGIN, "tempo") is not None  # the first round trip
    assert ("count", "request-1") in ledger._prefetched  # went with it
    assert ledger.held_count("request-1") == 1
    assert ledger.held_count("request-3") == 0  # not foreseen: asked on its own


def test_a_release_after_the_credential_left_needs_a_proof(journal):
    wallet = wallet_on(journal, day="1")
    reservation = pay(wallet, quote(400_000), settle=False)
    reservation.sent("fp", "0x1")
    reservation.failed("server said no", money_moved=False)  # no proof: stays held
    entry = journal.get(reservation.id)
    assert (entry.state, entry.held, entry.money_moved) == ("unknown", True, None)
    with pytest.raises(BudgetExceeded):
        wallet.check(quote(600_001), context(), PaymentOptions())
    assert journal.unresolved() == [reservation.id]
    reservation.failed("void", money_moved=False, proof="credential-void")
    entry = journal.get(reservation.id)
    assert (entry.state, entry.held, entry.proof) == ("failed", False, "credential-void")
    assert journal.unresolved() == []
    wallet.check(quote(1_000_000), context(), PaymentOptions())  # the hold was released


def test_a_payment_that_never_left_is_released_without_proof(journal):
    wallet = wallet_on(journal, day="1")
    reservation = pay(wallet, quote(1_000_000), settle=False)
    with pytest.raises(BudgetExceeded):
        wallet.check(quote(1), context(), PaymentOptions())
    reservation.failed("method refused before signing", money_moved=False)
    assert journal.get(reservation.id).held is False
    wallet.check(quote(1_000_000), context(), PaymentOptions())


def test_already_paid_and_references_are_never_paid_twice(journal):
    wallet = Wallet(journal=journal)
    first = quote(1_000)
    first = type(first)(**{**{f: getattr(first, f) for f in first.__dataclass_fields__},
                           "reference": "hash-1"})  # fmt: skip
    reservation = run_sync(wallet.reserve(first, context(), PaymentOptions()))
    assert not journal.already_paid("hash-1")
    reservation.sent("fp", "hash-1")
    assert journal.already_paid("hash-1")
    again = type(first)(**{**{f: getattr(first, f) for f in first.__dataclass_fields__}})
    with pytest.raises(AlreadyPaid):
        run_sync(wallet.reserve(again, context(), PaymentOptions()))


def test_windows_lifetimes_origins_and_payees_are_exact_at_the_edge(pg_url):
    clock = Clock(1_800_000_000.5)
    journal = PostgresJournal(pg_url, clock=clock, heartbeat=False)
    policy = SpendPolicy(
        limits=(
            Limit(usd("1"), "day"),
            Limit(usd("3"), "lifetime"),
        ),
        pin_payees=False,
    )
    wallet = Wallet(policy=policy, journal=journal)
    pay(wallet, quote(900_000))  # at t
    clock.now += 86_399.9  # one tenth of a second before it leaves the window
    with pytest.raises(BudgetExceeded, match="day"):
        wallet.check(quote(100_001), context(), PaymentOptions())
    wallet.check(quote(100_000), context(), PaymentOptions())
    clock.now += 0.2  # it left the window
    wallet.check(quote(1_000_000), context(), PaymentOptions())
    pay(wallet, quote(1_000_000))
    clock.now += 86_401
    pay(wallet, quote(1_000_000))
    clock.now += 86_401
    with pytest.raises(BudgetExceeded, match="lifetime"):
        wallet.check(quote(100_001), context(), PaymentOptions())
    wallet.check(quote(100_000), context(), PaymentOptions())  # exactly $3 in all
    journal.close()


def test_origin_and_payee_scopes_use_their_own_totals(journal):
    policy = SpendPolicy(
        limits=(
            Limit(usd("100"), "day"),
            Limit(usd("0.5"), "day", origin="https://b.example"),
            Limit(usd("0.7"), "day", payee="0xsplit"),
        ),
        pin_payees=False,
    )
    wallet = Wallet(policy=policy, journal=journal)
    pay(wallet, quote(400_000), context("https://b.example"))
    with pytest.raises(BudgetExceeded):
        wallet.check(quote(100_001), context("https://b.example"), PaymentOptions())
    wallet.check(quote(400_000), context("https://c.example"), PaymentOptions())
    split = quote(600_000, payees=(Payee("0xsplit", 500_000), Payee("0xother", 100_000)))
    pay(wallet, split, context("https://c.example"))
    with pytest.raises(BudgetExceeded):
        wallet.check(quote(200_001, payee="0xsplit"), context("https://c.example"),
                     PaymentOptions())  # fmt: skip
    wallet.check(quote(200_000, payee="0xsplit"), context("https://c.example"), PaymentOptions())


def test_payee_pins_are_shared(pg_url):
    first = Wallet(journal=PostgresJournal(pg_url, heartbeat=False))
    pay(first, quote(1_000, payee="0xfirst"))
    second = Wallet(journal=PostgresJournal(pg_url, heartbeat=False))
    with pytest.raises(PayeeChanged):
        second.check(quote(1_000, payee="0xsomeone-else"), context(), PaymentOptions())
    first.close()
    second.close()


def test_a_database_without_the_journal_or_with_another_version_is_refused(pg, pg_url):
    with pytest.raises(JournalError, match="mpp journal migrate") as refused:
        PostgresJournal(pg.create_schema("never_migrated"))
    assert "no payment journal" in str(refused.value)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE mpp_meta SET value = '99' WHERE key = 'schema'")
    with pytest.raises(JournalError, match="newer than this mpp-client"):
        PostgresJournal(pg_url)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE mpp_meta SET value = '0' WHERE key = 'schema'")
    with pytest.raises(JournalError, match=r"older than this.*mpp journal migrate"):
        PostgresJournal(pg_url)


def test_urls_select_the_journal_and_passwords_are_never_shown(pg, pg_url, monkeypatch):
    journal = open_journal(pg_url.replace("postgresql://", "postgres://"))
    assert isinstance(journal, PostgresJournal)
    journal.close()
    monkeypatch.setenv("MPP_JOURNAL_URL", pg_url)
    wallet = Wallet()
    assert isinstance(wallet.journal, PostgresJournal)
    wallet.close()
    secret = f"postgresql://bob:hunter2@127.0.0.1:{pg.port}/nowhere?sslmode=disable"
    assert shown_url(secret) == f"postgresql://bob@127.0.0.1:{pg.port}/nowhere"
    with pytest.raises(JournalError) as refused:
        PostgresJournal(secret, connect_timeout=2)
    assert "hunter2" not in str(refused.value) and "hunter2" not in repr(refused.value)
    assert refused.value.__cause__ is None
    assert "hunter2" not in str(refused.value.__context__)


def test_the_hot_queries_read_indexes_not_every_payment(pg_url):
    """Window and lifetime totals, the breaker's unresolved list and the lease claim stay index
    reads with 100,000 payments in the journal: the plans say so (speed is for benchmarks; a
    million rows take this machine minutes to insert and give the same plans)."""
    from mpp_client.wallet.postgres import _PgLedger
    from mpp_client.wallet.postgres_schema import IN_FLIGHT_SQL, RESOLVED_SQL

    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO mpp_currencies (key, code, decimals, usd_pegged) VALUES ('k', 'c', 6, 1)"
        )
        conn.execute(
            "INSERT INTO mpp_payments (id, state, held, created_at, updated_at, call_id, "
            "challenge_id, origin, url, http_method, method, intent, amount, exposure, "
            "currency_code, currency_decimals, usd_pegged, currency_id, payees, owner) "
            "SELECT 'id' || g, 'settled', 1, 1.8e9 + g / 10.0, 1.8e9, 'c' || g, 'ch' || g, 'o', "
            "'u', 'GET', 'm', 'charge', 10, 10, 'c', 6, 1, 1, '[]', 'gone' "
            "FROM generate_series(1, 100000) g"
        )
        conn.execute("ANALYZE")
        window, args = _PgLedger._windowed("", 1.8e9 + 10_000.5, None, None, None)
        queries = [
            (f"SELECT c.id, {window} FROM mpp_currencies c", args),
            ("SELECT c.id, (SELECT total FROM mpp_held_buckets WHERE scope = '' AND "
             "currency_id = c.id AND span = 0 AND start = 0) FROM mpp_currencies c", {}),
            (f"SELECT id FROM mpp_payments WHERE state NOT IN {RESOLVED_SQL} ORDER BY seq", {}),
            (f"SELECT DISTINCT owner FROM mpp_payments WHERE state IN {IN_FLIGHT_SQL}", {}),
            ("SELECT count(*) FROM mpp_payments WHERE call_id = 'c7' AND held = 1", {}),
        ]  # fmt: skip
        for sql, params in queries:
            plan = "\n".join(row[0] for row in conn.execute("EXPLAIN " + sql, params))
            assert "Seq Scan on mpp_payments" not in plan, plan


def test_windows_reaching_before_pruned_totals_are_summed_exactly(pg_url):
    clock = Clock(1_800_000_000.0)
    journal = PostgresJournal(pg_url, clock=clock, heartbeat=False)
    wallet = wallet_on(journal, day="1")
    pay(wallet, quote(600_000))
    clock.now += 3 * 86_400  # the next hold prunes running totals older than two days
    pay(wallet, quote(1))
    with psycopg.connect(pg_url, autocommit=True) as conn:
        left = conn.execute("SELECT count(*) FROM mpp_held_buckets WHERE span > 0 AND start "
                            "< 1800003600").fetchone()[0]  # fmt: skip
    assert left == 0
    clock.now = 1_800_000_000.0 + 3600  # the clock set back: the first payment is in the day
    with pytest.raises(BudgetExceeded):
        wallet.check(quote(400_000), context(), PaymentOptions())
    wallet.check(quote(399_999), context(), PaymentOptions())
    journal.close()


def test_a_hold_answered_from_its_foreseen_reads_sees_every_other_hold(pg_url):
    # Each hold sends the reads its last check and hold made with the lock; those answers must
    # include what another process held since, or the shared cap would be overrun.
    clock = Clock()
    first = PostgresJournal(pg_url, clock=clock, heartbeat=False)
    second = PostgresJournal(pg_url, clock=clock, heartbeat=False)
    ours, theirs = wallet_on(first, day="0.003"), wallet_on(second, day="0.003")
    for n in range(2):  # the first wallet learns what its holds read
        ctx = context(call_id=f"ours-{n}")
        ours.check(quote(1_000), ctx, PaymentOptions())
        pay(ours, quote(1_000), ctx)
    assert first._templates  # the next hold sends the policy's reads with the lock
    ctx = context(call_id="ours-2")
    ours.check(quote(1_000), ctx, PaymentOptions())  # passes: 2,000 of 3,000 held
    pay(theirs, quote(1_000), context(call_id="theirs-0"))  # between our check and our hold
    with pytest.raises(BudgetExceeded):
        pay(ours, quote(1_000), ctx)
    theirs.close()  # writes its settled mark (each process reads what it wrote at once)
    assert [p.state for p in first.payments()] == ["settled"] * 3
    ours.close()
