"""Prepaid vouchers on a metered stream (``max_prepaid_units`` above 1): the client pays ahead
of the server's asks, within the deposit and the wallet's per-call cap, and journals every
voucher before the server can see it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from mpp_client import PaymentTransport, Wallet
from mpp_client.session import session_of
from mpp_client.wallet.policy import USD_PEGGED, Limit, SpendPolicy
from mpp_client.wallet.prices import usd
from tests.tempo.session.conftest import Session
from tests.tempo.session.test_session_e2e import method_for, onchain


def watch_vouchers(s: Session, journal: Any) -> list[tuple[int, int]]:
    """Make the server note, for every voucher it receives, its cumulative amount and the
    client journal's highest signed cumulative at that moment."""
    seen: list[tuple[int, int]] = []
    original = s.server._voucher

    def voucher(channel_id: str, payload: Any) -> str:
        record = journal.get(channel_id)
        seen.append((int(payload["cumulativeAmount"]), record.highest_signed if record else -1))
        return original(channel_id, payload)

    s.server._voucher = voucher  # type: ignore[method-assign]
    return seen


def test_prepaid_vouchers_are_journaled_first_and_settle(
    session_server: Session, tmp_path: Path
) -> None:
    s = session_server
    s.server.price, s.server.units_per_voucher = 100, 5  # the server asks 5 units at a time
    method = method_for(s, max_prepaid_units=60)
    wallet = Wallet([method], journal=tmp_path / "journal.sqlite3")
    seen = watch_vouchers(s, method.channels)
    with (
        httpx.Client(transport=PaymentTransport(wallet=wallet)) as client,
        client.stream("GET", s.url + "/stream?n=300") as response,
    ):
        count = sum(1 for line in response.iter_lines() if line.startswith("data: chunk"))
    assert count == 300
    state = session_of(response)
    assert state is not None and state.receipt is not None
    [record] = method.channels.channels()
    # The journal held every voucher before the server saw it, and never one below it.
    assert seen and all(cumulative <= journaled for cumulative, journaled in seen)
    assert max(cumulative for cumulative, _ in seen) <= record.highest_signed
    # Cumulative, never lower, never more than 60 units ahead of what was received.
    amounts = [cumulative for cumulative, _ in seen]
    assert amounts == sorted(amounts)
    assert 300 * s.server.price <= record.highest_signed <= 360 * s.server.price
    # Far fewer vouchers than the server's own pace (one per 5 units: 60).
    assert s.server.actions.count("voucher") <= 30
    assert state.spent == record.highest_signed  # a prepaid voucher counts once signed
    assert record.highest_accepted == record.highest_signed
    # The merchant is paid exactly the final voucher.
    payee_before = s.chain.balance_of(s.payee.address)
    method.close(s.url + "/stream")
    assert onchain(s, record.id).settled == record.highest_signed
    fee = payee_before + record.highest_signed - s.chain.balance_of(s.payee.address)
    assert 0 <= fee < 5_000


def test_prepaying_never_passes_the_deposit(session_server: Session, tmp_path: Path) -> None:
    s = session_server
    s.server.price, s.server.units_per_voucher = 100, 5
    s.server.suggested_deposit = 6_000  # 60 units: the stream of 50 fits, its prepay does not
    method = method_for(s, max_prepaid_units=40)
    wallet = Wallet([method], journal=tmp_path / "journal.sqlite3")
    seen = watch_vouchers(s, method.channels)
    with (
        httpx.Client(transport=PaymentTransport(wallet=wallet)) as client,
        client.stream("GET", s.url + "/stream?n=50") as response,
    ):
        assert sum(1 for line in response.iter_lines() if line.startswith("data: chunk")) == 50
    [record] = method.channels.channels()
    assert record.deposit == 6_000 and "topUp" not in s.server.actions  # no top-up to prepay
    assert max(cumulative for cumulative, _ in seen) <= record.deposit
    assert 50 * s.server.price <= record.highest_signed <= record.deposit


def test_prepaying_stays_within_the_per_call_cap(session_server: Session, tmp_path: Path) -> None:
    s = session_server
    s.server.price, s.server.units_per_voucher = 100, 5
    method = method_for(s, max_prepaid_units=200)  # 200 units ahead would be 20,000
    wallet = Wallet([method], journal=tmp_path / "journal.sqlite3")
    with httpx.Client(transport=PaymentTransport(wallet=wallet)) as client:
        assert client.get(s.url + "/paid").status_code == 200  # opens the channel
        [opened] = method.channels.channels()
        # Now each call may sign at most $0.005 (5,000 base units) more.
        wallet.policy = SpendPolicy(
            limits=(
                Limit(usd("1.00"), "payment", currency=USD_PEGGED),
                Limit(usd("0.005"), "call", currency=USD_PEGGED),
            )
        )
        seen = watch_vouchers(s, method.channels)
        with client.stream("GET", s.url + "/stream?n=30") as response:
            lines = [line for line in response.iter_lines() if line.startswith("data: chunk")]
    assert len(lines) == 30
    [record] = method.channels.channels()
    base = opened.highest_signed  # signed before the streaming call
    assert seen and max(cumulative for cumulative, _ in seen) <= base + 5_000
    assert base + 30 * s.server.price <= record.highest_signed <= base + 5_000


async def test_prepaid_vouchers_through_the_async_transport(
    session_server: Session, tmp_path: Path
) -> None:
    import mpp_client

    s = session_server
    s.server.price, s.server.units_per_voucher = 100, 5
    method = method_for(s, max_prepaid_units=40)
    wallet = Wallet([method], journal=tmp_path / "journal.sqlite3")
    seen = watch_vouchers(s, method.channels)
    async with (
        httpx.AsyncClient(transport=mpp_client.AsyncPaymentTransport(wallet=wallet)) as client,
        client.stream("GET", s.url + "/stream?n=100") as response,
    ):
        lines = [line async for line in response.aiter_lines() if line.startswith("data:")]
    assert len(lines) == 100
    [record] = method.channels.channels()
    assert all(cumulative <= journaled for cumulative, journaled in seen)
    assert 100 * s.server.price <= record.highest_signed <= 140 * s.server.price
    assert s.server.actions.count("voucher") <= 12  # the server alone would ask 20 times
    closed = await method.aclose(s.url + "/stream")
    assert onchain(s, closed.id).settled == record.highest_signed


def test_prepaid_vouchers_through_requests(session_server: Session, tmp_path: Path) -> None:
    from mpp_client import PaymentSession

    s = session_server
    s.server.price, s.server.units_per_voucher = 100, 5
    method = method_for(s, max_prepaid_units=40)
    wallet = Wallet([method], journal=tmp_path / "journal.sqlite3")
    seen = watch_vouchers(s, method.channels)
    with PaymentSession(wallet=wallet) as session:
        response = session.get(s.url + "/stream?n=100", stream=True)
        lines = [line for line in response.iter_lines() if line.startswith(b"data:")]
    assert len(lines) == 100
    [record] = method.channels.channels()
    assert all(cumulative <= journaled for cumulative, journaled in seen)
    assert 100 * s.server.price <= record.highest_signed <= 140 * s.server.price
    assert s.server.actions.count("voucher") <= 12


def test_the_paid_request_prepays_the_allowance(session_server: Session, tmp_path: Path) -> None:
    s = session_server
    s.server.price, s.server.units_per_voucher = 100, 5
    method = method_for(s, max_prepaid_units=60)
    wallet = Wallet([method], journal=tmp_path / "journal.sqlite3")
    with httpx.Client(transport=PaymentTransport(wallet=wallet)) as client:
        with client.stream("GET", s.url + "/stream?n=50") as response:
            assert sum(1 for line in response.iter_lines() if line.startswith("data:")) == 50
        [first] = method.channels.channels()
        spent = s.server.channel(first.id).spent  # type: ignore[union-attr]
        seen = watch_vouchers(s, method.channels)
        posts = len([r for r in s.server.requests if r.method == "POST"])
        with client.stream("GET", s.url + "/stream?n=50") as response:
            assert sum(1 for line in response.iter_lines() if line.startswith("data:")) == 50
        # The cap now leaves 20 units (2,000 base units) per call: the paid voucher keeps to it.
        wallet.policy = SpendPolicy(limits=(Limit(usd("0.002"), "call", currency=USD_PEGGED),))
        [second] = method.channels.channels()
        with client.stream("GET", s.url + "/stream?n=15") as response:
            assert sum(1 for line in response.iter_lines() if line.startswith("data:")) == 15
    [third] = method.channels.channels()
    # The second stream's only voucher was its paid request's: the allowance beyond what the
    # server had spent, journaled before the server saw it; no voucher posted in the stream.
    assert seen[0] == (spent + 60 * 100, spent + 60 * 100)
    assert all(cumulative <= journaled for cumulative, journaled in seen)
    assert len([r for r in s.server.requests if r.method == "POST"]) == posts
    assert second.highest_signed == spent + 60 * 100 <= first.highest_signed + 60 * 100
    # The third: within its per-call cap (the server's 15 units were paid ahead already).
    assert len(seen) == 2 and third.highest_signed == seen[1][0]
    assert second.highest_signed + 100 <= seen[1][0] <= second.highest_signed + 2_000


def _prepaying(s: Session, tmp_path: Path) -> tuple[Any, Wallet]:
    """A method prepaying up to 60 units of 100 each (5 per voucher), its wallet on a file."""
    s.server.price, s.server.units_per_voucher = 100, 5
    method = method_for(s, max_prepaid_units=60)
    return method, Wallet([method], journal=tmp_path / "journal.sqlite3")


def test_only_the_flows_voucher_leaves_its_fsync_to_the_sent_step(
    session_server: Session, tmp_path: Path
) -> None:
    s = session_server
    method, wallet = _prepaying(s, tmp_path)
    store = method.channels
    assert store.wal_shared_with_journal  # the wallet journal's own file
    fsyncs: list[bool] = []
    sign_next = store.sign_next

    def spy(*args: Any, fsync: bool = True) -> Any:
        fsyncs.append(fsync)
        return sign_next(*args, fsync=fsync)

    store.sign_next = spy  # type: ignore[method-assign]
    with httpx.Client(transport=PaymentTransport(wallet=wallet)) as client:
        assert client.get(s.url + "/paid").status_code == 200  # the open: its own fsync
        with client.stream("GET", s.url + "/stream?n=20") as response:
            assert sum(1 for line in response.iter_lines() if line.startswith("data:")) == 20
    # The paid request's voucher (the flow fsyncs ``sent`` in the same WAL before sending it),
    # then the stream's own prepaid voucher, posted by the handler: with its fsync.
    assert fsyncs == [False, True]
    own = method_for(s, max_prepaid_units=60, channels=str(tmp_path / "own.sqlite3"))
    assert not own.channels.wal_shared_with_journal  # a file of its own: every fsync kept


def test_a_stream_writes_what_was_accepted_only_when_it_moved(
    session_server: Session, tmp_path: Path
) -> None:
    s = session_server
    method, wallet = _prepaying(s, tmp_path)
    store = method.channels
    accepts: list[int] = []
    accept = store.accept

    def spy(channel_id: str, accepted: int, **kwargs: Any) -> None:
        accepts.append(accepted)
        accept(channel_id, accepted, **kwargs)

    store.accept = spy  # type: ignore[method-assign]
    with httpx.Client(transport=PaymentTransport(wallet=wallet)) as client:
        assert client.get(s.url + "/paid").status_code == 200  # the open
        streams = []
        for _ in range(2):
            accepts.clear()
            with client.stream("GET", s.url + "/stream?n=20") as response:
                assert sum(1 for line in response.iter_lines() if line.startswith("data:")) == 20
            state = session_of(response)
            assert state is not None and state.receipt is not None
            [record] = store.channels()
            final = int(state.receipt.extra["acceptedCumulative"])
            assert record.highest_accepted == final == record.highest_signed
            streams.append(list(accepts))
    # The first stream prepaid with a voucher of its own: its final receipt moved what was
    # accepted past the paid answer's, so it is written. The second stream's paid request
    # prepaid everything: the final receipt says what the paid answer said, nothing to write.
    first, second = streams
    assert len(first) == 2 and first[0] < first[1]
    assert len(second) == 1
