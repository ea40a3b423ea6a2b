"""Tempo sessions end to end on anvil: our escrow, our server, the three drivers."""

from __future__ import annotations

from pathlib import Path

import httpx

import mpp_client
from mpp_client import PaymentTransport, Wallet
from mpp_client.methods.tempo.escrow import decode_channel, get_channel_data
from mpp_client.methods.tempo.session import TempoSession
from mpp_client.session import session_of
from tests.tempo.session.conftest import Session


def method_for(s: Session, **options: object) -> TempoSession:
    options.setdefault("max_deposit", 1_000_000)
    return TempoSession(
        s.payer, chain_id=s.chain.chain_id, rpc_url=s.chain.rpc_url,
        escrows={s.chain.chain_id: [s.escrow]}, **options,  # type: ignore[arg-type]
    )  # fmt: skip


def onchain(s: Session, channel_id: str):  # type: ignore[no-untyped-def]
    data = "0x" + get_channel_data(channel_id).hex()
    return decode_channel(s.chain.rpc("eth_call", {"to": s.escrow, "data": data}, "latest"))


def test_open_stream_vouchers_close_httpx_sync(session_server: Session, tmp_path: Path) -> None:
    s = session_server
    method = method_for(s)
    wallet = Wallet([method], journal=tmp_path / "journal.sqlite3")
    payee_before = s.chain.balance_of(s.payee.address)
    with (
        httpx.Client(transport=PaymentTransport(wallet=wallet)) as client,
        client.stream("GET", s.url + "/stream?n=5") as response,
    ):
        assert response.status_code == 200
        lines = [line for line in response.iter_lines() if line.startswith("data:")]
        assert lines == [f"data: chunk {i}" for i in range(5)]
        payment = mpp_client.payment_of(response)
        assert payment is not None and payment.status == "paid"
        state = session_of(response)
        assert state is not None and state.receipt is not None
        channel_id = state.details["channelId"]
        assert state.details["acceptedCumulative"] == 5 * s.server.price
    record = method.channels.get(channel_id)
    assert record is not None
    assert record.highest_signed == 5 * s.server.price == record.highest_accepted
    assert s.server.actions.count("voucher") == 4  # the open prepaid the first chunk
    # The deposit is one journal entry, held in full while the channel is open.
    [entry] = wallet.payments()
    assert entry.intent == "session" and entry.amount.amount == record.deposit
    assert entry.state == "settled" and entry.held
    closed = method.close(s.url + "/stream")
    assert closed.state == "closed" and closed.refund == record.deposit - 5 * s.server.price
    chain_state = onchain(s, channel_id)
    assert chain_state.finalized and chain_state.settled == 5 * s.server.price
    payee_after = s.chain.balance_of(s.payee.address)
    fee = payee_before + 5 * s.server.price - payee_after  # the payee paid its close tx fee
    assert 0 <= fee < 5_000
    # The unspent deposit went back to the budget: only the spent part stays counted.
    [entry] = wallet.payments()
    assert entry.exposure <= 5 * s.server.price + (entry.max_fee.amount if entry.max_fee else 0)


async def test_stream_through_the_async_transport(session_server: Session, tmp_path: Path) -> None:
    s = session_server
    method = method_for(s)
    wallet = Wallet([method], journal=tmp_path / "journal.sqlite3")
    transport = mpp_client.AsyncPaymentTransport(wallet=wallet)
    async with (
        httpx.AsyncClient(transport=transport) as client,
        client.stream("GET", s.url + "/stream?n=4") as response,
    ):
        lines = [line async for line in response.aiter_lines() if line.startswith("data:")]
    assert lines == [f"data: chunk {i}" for i in range(4)]
    state = session_of(response)
    assert state is not None and state.receipt is not None
    record = method.channels.get(state.details["channelId"])
    assert record is not None and record.highest_accepted == 4 * s.server.price
    closed = await method.aclose(s.url + "/stream")
    assert closed.state == "closed" and onchain(s, closed.id).settled == 4 * s.server.price


def test_stream_through_requests(session_server: Session, tmp_path: Path) -> None:
    from mpp_client import PaymentSession

    s = session_server
    method = method_for(s)
    wallet = Wallet([method], journal=tmp_path / "journal.sqlite3")
    with PaymentSession(wallet=wallet) as session:
        response = session.get(s.url + "/stream?n=4", stream=True)
        lines = [line for line in response.iter_lines() if line.startswith(b"data:")]
        assert lines == [f"data: chunk {i}".encode() for i in range(4)]
        # Without stream=True the body is read (and metered) before the call returns.
        again = session.get(s.url + "/stream?n=3")
        assert again.text.count("data: chunk") == 3
    first, second = session_of(response), session_of(again)
    assert first is not None and second is not None and second.receipt is not None
    assert first.details["channelId"] == second.details["channelId"]  # the channel is reused
    record = method.channels.get(first.details["channelId"])
    assert record is not None and record.highest_accepted == 7 * s.server.price
    assert s.server.actions.count("open") == 1


def test_plain_requests_pay_one_voucher_each(session_server: Session, tmp_path: Path) -> None:
    s = session_server
    method = method_for(s)
    wallet = Wallet([method], journal=tmp_path / "journal.sqlite3")
    with httpx.Client(transport=PaymentTransport(wallet=wallet)) as client:
        for _ in range(3):
            response = client.get(s.url + "/paid")
            assert response.status_code == 200 and response.text == "paid content"
    [record] = method.channels.channels()
    assert record.highest_signed == 3 * s.server.price == record.highest_accepted
    assert s.server.actions == ["open", "voucher", "voucher"]
    states = [(p.intent, p.amount.amount, p.state) for p in wallet.payments()]
    assert states == [("session", record.deposit, "settled"), ("session", 0, "settled"),
                      ("session", 0, "settled")]  # fmt: skip


def test_top_up_mid_stream(session_server: Session, tmp_path: Path) -> None:
    s = session_server
    s.server.suggested_deposit = 3 * s.server.price
    method = method_for(s)
    wallet = Wallet([method], journal=tmp_path / "journal.sqlite3")
    with (
        httpx.Client(transport=PaymentTransport(wallet=wallet)) as client,
        client.stream("GET", s.url + "/stream?n=10") as response,
    ):
        chunks = [line for line in response.iter_lines() if line.startswith("data:")]
    assert len(chunks) == 10
    [record] = method.channels.channels()
    # Deposit 3 units, then top-ups doubling it as the stream needed: 3 -> 6 -> 12 units.
    assert record.deposit == 12 * s.server.price and len(record.deposit_refs) == 3
    assert s.server.actions.count("topUp") == 2
    assert onchain(s, record.id).deposit == record.deposit
    entries = wallet.payments()
    assert [e.amount.amount for e in entries] == [3000, 3000, 6000]
    assert all(e.state == "settled" and e.held for e in entries)
    closed = method.close(s.url + "/stream")
    assert closed.refund == 2 * s.server.price
    assert onchain(s, record.id).settled == 10 * s.server.price
    # The refund came off the latest top-up's hold.
    exposures = [e.exposure - (e.max_fee.amount if e.max_fee else 0) for e in wallet.payments()]
    assert exposures == [3000, 3000, 4000]


def test_a_server_asking_above_the_agreed_price_is_refused(
    session_server: Session, tmp_path: Path
) -> None:
    from mpp_client.session import SessionStreamError

    s = session_server
    s.server.overcharge = 2  # advertises one price, charges twice that per chunk
    method = method_for(s)
    wallet = Wallet([method], journal=tmp_path / "journal.sqlite3")
    received = []
    with (
        httpx.Client(transport=PaymentTransport(wallet=wallet)) as client,
        client.stream("GET", s.url + "/stream?n=10") as response,
    ):
        try:
            for line in response.iter_lines():
                received.append(line)
        except SessionStreamError as refused:
            error = refused
        else:
            raise AssertionError("the overcharging stream was paid")
    assert "refused" in str(error)
    # The open prepaid one unit at the agreed price; the server wanted two for the first chunk.
    assert [line for line in received if line.startswith("data:")] == []
    [record] = method.channels.channels()
    assert record.highest_signed == s.server.price  # nothing signed after the open's voucher
    assert s.server.actions == ["open"]
    assert session_of(response).error is error  # type: ignore[union-attr]


def test_a_thousand_metered_chunks(session_server: Session, tmp_path: Path) -> None:
    s = session_server
    s.server.units_per_voucher = 25  # the server asks for 25 units ahead; the client allows it
    s.server.price = 100
    method = method_for(s, max_prepaid_units=25)
    wallet = Wallet([method], journal=tmp_path / "journal.sqlite3")
    with (
        httpx.Client(transport=PaymentTransport(wallet=wallet)) as client,
        client.stream("GET", s.url + "/stream?n=1000") as response,
    ):
        count = sum(1 for line in response.iter_lines() if line.startswith("data: chunk"))
    assert count == 1000
    state = session_of(response)
    assert state is not None and state.data_events == 1000 and state.receipt is not None
    [record] = method.channels.channels()
    # Every unit is paid for, and at most max_prepaid_units more: the client prepays ahead of
    # the server's asks (a voucher whenever the server's balance is down to half of 25).
    assert 1000 * s.server.price <= record.highest_signed <= 1025 * s.server.price
    assert record.highest_accepted == record.highest_signed
    assert s.server.actions.count("voucher") <= 1000 // 12 + 2
    payee_before = s.chain.balance_of(s.payee.address)
    method.close(s.url + "/stream")
    # The merchant's balance grew by the final voucher (less its own close fee).
    assert onchain(s, record.id).settled == record.highest_signed
    assert 0 <= payee_before + record.highest_signed - s.chain.balance_of(s.payee.address) < 5_000


def test_wallet_quote_shows_unit_price_and_deposit(session_server: Session, tmp_path: Path) -> None:
    s = session_server
    wallet = Wallet([method_for(s)], journal=tmp_path / "journal.sqlite3")
    quoted = wallet.quote(s.url + "/stream?n=3")
    assert quoted.payment_required and quoted.allowed
    assert quoted.unit_price is not None and quoted.unit_price.amount == s.server.price
    assert quoted.deposit is not None and quoted.deposit.amount == s.server.suggested_deposit
    assert wallet.payments() == [] and s.server.actions == []  # nothing was paid


def test_concurrent_requests_never_share_a_voucher(session_server: Session, tmp_path: Path) -> None:
    import threading

    s = session_server
    method = method_for(s)
    wallet = Wallet([method], journal=tmp_path / "journal.sqlite3")
    with httpx.Client(transport=PaymentTransport(wallet=wallet)) as client:
        assert client.get(s.url + "/paid").status_code == 200  # opens the channel

        def worker() -> None:
            for _ in range(3):
                client.get(s.url + "/paid")

        threads = [threading.Thread(target=worker) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    [record] = method.channels.channels()
    # 18 vouchers, each one unit above the last: none signed twice, none skipped.
    assert record.highest_signed == 19 * s.server.price
    assert s.server.actions.count("voucher") == 18
    # A voucher that arrived after a higher one was refused by the server (delta too small):
    # its zero-amount entry is released, the deposit entry stays held.
    states = {p.state for p in wallet.payments()}
    assert states <= {"settled", "failed"} and "unknown" not in states
    assert wallet.payments()[0].held
