"""A fault matrix for the paid retry, checked for httpx sync, httpx async and requests against a
real loopback server, with a real ``Wallet`` whose journal (a file in ``tmp_path``) must tell the
truth about the money after each fault.

The rules pinned here: once a credential may have left the process the outcome is unknown and
the amount stays held until something proves otherwise; an error is not a proof; the answer to
a RESEND says nothing about the first send (a single-use server answers a replay with 402
"already used" after it took the payment); one credential per logical request unless
``max_payments`` allows more, and never a second one while the first is not proven void.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from mpp_client import AsyncPaymentTransport, PaymentOptions, PaymentOutcomeUnknown
from mpp_client.errors import MethodError
from mpp_client.protocol import Credential, parse_challenges
from mpp_client.testing import FakeMppServer, Route, TestMethod, test_proof
from mpp_client.testing.server import DROP, RecordedRequest
from mpp_client.wallet import Wallet
from mpp_client.wallet.journal import PaymentRecord
from tests.drivers.harness import Driver, Result, carries_payment, interrupt_on_paid

# --- helpers -----------------------------------------------------------------------------------


@dataclass
class Sent:
    """What the server received carrying a credential."""

    headers: list[str]  # the raw credential header values, in order
    challenge_ids: list[str]

    @property
    def count(self) -> int:
        return len(self.headers)

    @property
    def distinct(self) -> int:
        return len(set(self.headers))


def sent(server: FakeMppServer) -> Sent:
    headers, ids = [], []
    for recorded in server.requests:
        if not carries_payment(recorded.headers):
            continue
        credential = recorded.credential()
        assert credential is not None
        headers.append(recorded.headers["authorization"])
        ids.append(credential.challenge.id)
    return Sent(headers, ids)


@pytest.fixture
def wallets(tmp_path: Path) -> Iterator[Any]:
    """Build a ``Wallet`` paying with ``method`` and journaling to a file in ``tmp_path``."""
    made: list[Wallet] = []

    def make(method: TestMethod, **kwargs: Any) -> Wallet:
        wallet = Wallet([method], journal=tmp_path / f"journal-{len(made)}.sqlite3", **kwargs)
        made.append(wallet)
        return wallet

    yield make
    for wallet in made:
        wallet.close()


def only_entry(wallet: Wallet) -> PaymentRecord:
    entries = wallet.payments()
    assert len(entries) == 1, [(e.state, e.reason) for e in entries]
    return entries[0]


def entry_of(wallet: Wallet, journal_id: str | None) -> PaymentRecord:
    assert journal_id is not None
    record = wallet.journal.get(journal_id)
    assert record is not None
    return record


def assert_unknown_held(record: PaymentRecord) -> None:
    assert (record.state, record.held, record.money_moved, record.proof) == (
        "unknown",
        True,
        None,
        None,
    ), record.reason


def pay(driver: Driver, url: str, **kwargs: Any) -> Result:
    return driver.send("GET", url, **kwargs)


# --- the fake server's single use -------------------------------------------------------------


def paid_headers(server: FakeMppServer) -> list[tuple[str, str]]:
    """Ask ``server`` for a challenge and build the credential ``TestMethod`` would send."""
    status, headers, _ = server.handle("GET", "/paid", [], b"")
    assert status == 402
    challenge = parse_challenges([v for k, v in headers if k == "www-authenticate"])[0]
    credential = Credential(challenge=challenge, payload={"proof": test_proof(challenge.id)})
    return [("authorization", credential.to_header())]


def test_a_replayed_credential_is_answered_already_used_and_accepted_once():
    server = FakeMppServer()
    paid = paid_headers(server)
    assert server.handle("GET", "/paid", paid, b"")[0] == 200
    status, _, body = server.handle("GET", "/paid", paid, b"")
    assert status == 402
    assert b"invalid-challenge" in body and b"already used" in body
    assert len(server.accepted) == 1


def test_lost_answers_are_accepted_first():
    server = FakeMppServer({"/paid": Route(lose_paid=1, lose_every=3)})
    statuses = [server.handle("GET", "/paid", paid_headers(server), b"")[0] for _ in range(6)]
    # the 1st (lose_paid) and every 3rd (lose_every) answer is lost, all six were taken
    assert statuses == [DROP, 200, DROP, 200, 200, DROP]
    assert len(server.accepted) == 6 and server.lost == [server.accepted[i] for i in (0, 2, 5)]


# --- connection failures on the paid retry -----------------------------------------------------


def test_reset_twice_is_an_unknown_outcome(driver_name, server, base_url, wallets):
    method = TestMethod()
    wallet = wallets(method)
    server.routes["/paid"] = Route(drop_paid=2)
    with pytest.raises(PaymentOutcomeUnknown) as caught:
        pay(Driver(driver_name, [], None, wallet=wallet), base_url + "/paid")
    got = sent(server)
    assert (got.count, got.distinct) == (2, 1)  # the same credential, resent once
    assert server.accepted == [] and len(method.paid) == 1
    record = entry_of(wallet, caught.value.journal_id)
    assert_unknown_held(record)
    assert [r.id for r in wallet.unknown_payments()] == [record.id]


def test_reset_once_then_success_is_paid(driver_name, server, base_url, wallets):
    method = TestMethod()
    wallet = wallets(method)
    server.routes["/paid"] = Route(drop_paid=1)
    result = pay(Driver(driver_name, [], None, wallet=wallet), base_url + "/paid")
    assert result.status == 200 and result.payment.status == "paid"
    got = sent(server)
    assert (got.count, got.distinct) == (2, 1)
    assert len(server.accepted) == 1 and len(method.paid) == 1
    record = entry_of(wallet, result.payment.journal_id)
    assert (record.state, record.held, record.proof) == ("settled", True, None)
    assert record.money_moved is not False


# --- the server took the payment, the answer was lost ------------------------------------------


@pytest.mark.parametrize("max_payments", [1, 3])
def test_lost_answer_then_already_used_is_an_unknown_outcome(
    driver_name, server, base_url, wallets, max_payments
):
    method = TestMethod()
    wallet = wallets(method)
    server.routes["/paid"] = Route(lose_paid=1)
    with pytest.raises(PaymentOutcomeUnknown) as caught:
        pay(
            Driver(driver_name, [], None, wallet=wallet),
            base_url + "/paid",
            mpp=PaymentOptions(max_payments=max_payments),
        )
    got = sent(server)
    assert (got.count, got.distinct) == (2, 1)
    # the server took the first send; the resend is a replay, answered 402 "already used"
    assert len(server.accepted) == 1 and server.lost == server.accepted
    problem = caught.value.problem  # type: ignore[attr-defined]
    assert problem is not None and problem.type.endswith("invalid-challenge")
    assert "already used" in (problem.detail or "")
    # the 402 carried a fresh challenge: it is never paid, whatever max_payments allows
    assert len(method.paid) == 1
    record = entry_of(wallet, caught.value.journal_id)
    assert_unknown_held(record)
    assert [r.id for r in wallet.unknown_payments()] == [record.id]


# --- what the paid retry's answer means for the money ------------------------------------------


def test_server_error_after_paying_is_unknown_and_held(driver_name, server, base_url, wallets):
    method = TestMethod()
    wallet = wallets(method)
    server.routes["/paid"] = Route(paid_status=500)
    result = pay(Driver(driver_name, [], None, wallet=wallet), base_url + "/paid")
    assert result.status == 500 and result.payment.status == "unknown"
    assert isinstance(result.payment.error, PaymentOutcomeUnknown)
    got = sent(server)
    assert (got.count, got.distinct) == (1, 1)
    assert_unknown_held(entry_of(wallet, result.payment.journal_id))


def test_402_on_the_first_send_keeps_an_irrevocable_credential_held(
    driver_name, server, base_url, wallets
):
    method = TestMethod()
    wallet = wallets(method)
    server.routes["/paid"] = Route(reject=True)
    result = pay(Driver(driver_name, [], None, wallet=wallet), base_url + "/paid")
    assert result.status == 402 and result.payment.status == "rejected"
    assert result.payment.error.money_moved is None
    got = sent(server)
    assert (got.count, got.distinct) == (1, 1)
    assert len(method.paid) == 1 and method.abandoned != []
    assert_unknown_held(entry_of(wallet, result.payment.journal_id))


def test_402_on_the_first_send_releases_a_credential_proven_void(
    driver_name, server, base_url, wallets
):
    method = TestMethod(revocable=True)
    wallet = wallets(method)
    server.routes["/paid"] = Route(reject=True)
    result = pay(Driver(driver_name, [], None, wallet=wallet), base_url + "/paid")
    assert result.payment.status == "rejected" and result.payment.error.money_moved is False
    got = sent(server)
    assert (got.count, got.distinct) == (1, 1)
    record = entry_of(wallet, result.payment.journal_id)
    assert (record.state, record.held, record.money_moved, record.proof) == (
        "failed",
        False,
        False,
        "credential-void",
    )


def test_a_void_credential_allows_a_second_distinct_one_with_max_payments(
    driver_name, server, base_url, wallets
):
    method = TestMethod(revocable=True)
    wallet = wallets(method)
    server.routes["/paid"] = Route(reject=True)
    result = pay(
        Driver(driver_name, [], None, wallet=wallet),
        base_url + "/paid",
        mpp=PaymentOptions(max_payments=2),
    )
    assert result.payment.status == "rejected" and result.payment.payments == 2
    got = sent(server)
    assert (got.count, got.distinct) == (2, 2)
    assert len(set(got.challenge_ids)) == 2 and len(set(method.paid)) == 2
    entries = wallet.payments()
    assert [(e.state, e.held, e.proof) for e in entries] == [
        ("failed", False, "credential-void")
    ] * 2


def test_403_after_paying_is_denied_and_spent(driver_name, server, base_url, wallets):
    method = TestMethod()
    wallet = wallets(method)
    server.routes["/paid"] = Route(paid_status=403)
    result = pay(
        Driver(driver_name, [], None, wallet=wallet),
        base_url + "/paid",
        mpp=PaymentOptions(max_payments=3),
    )
    assert result.status == 403 and result.payment.status == "denied"
    got = sent(server)
    assert (got.count, got.distinct) == (1, 1)
    record = entry_of(wallet, result.payment.journal_id)
    assert (record.state, record.held, record.money_moved) == ("failed", True, True)


def test_400_malformed_credential_keeps_an_irrevocable_credential_held(
    driver_name, server, base_url, wallets
):
    method = TestMethod()
    wallet = wallets(method)
    original = server.handle

    def handle(method_, target, headers, body):
        if any(k.lower() == "authorization" for k, _ in headers):
            with server._lock:
                lowered = {k.lower(): v for k, v in headers}
                server.requests.append(RecordedRequest(method_, target, lowered, body))
            problem = (
                b'{"type":"https://paymentauth.org/problems/malformed-credential","status":400}'
            )
            return 400, [("content-type", "application/problem+json")], problem
        return original(method_, target, headers, body)

    server.handle = handle  # type: ignore[method-assign]
    result = pay(Driver(driver_name, [], None, wallet=wallet), base_url + "/paid")
    assert result.status == 400 and result.payment.status == "rejected"
    assert result.payment.problem.type.endswith("malformed-credential")
    got = sent(server)
    assert (got.count, got.distinct) == (1, 1)
    assert_unknown_held(entry_of(wallet, result.payment.journal_id))


def test_redirect_after_paying_is_settled_and_followed_unpaid(
    driver_name, server, base_url, wallets
):
    method = TestMethod()
    wallet = wallets(method)
    server.routes["/result"] = Route(offers=(), body=b"the result")
    server.routes["/paid"] = Route(paid_redirect=base_url + "/result")
    result = pay(Driver(driver_name, [], None, wallet=wallet), base_url + "/paid")
    assert result.status == 200 and result.content == b"the result"
    assert result.payment.status == "paid"
    got = sent(server)
    assert (got.count, got.distinct) == (1, 1)
    landing = [r for r in server.requests if r.target == "/result"]
    assert len(landing) == 1 and not carries_payment(landing[0].headers)
    record = entry_of(wallet, result.payment.journal_id)
    assert (record.state, record.held, record.proof) == ("settled", True, None)


@pytest.mark.parametrize("fault", ["truncated", "bad-gzip"])
def test_unreadable_error_answer_is_a_failed_send(driver_name, server, base_url, wallets, fault):
    method = TestMethod()
    wallet = wallets(method)
    server.routes["/paid"] = Route(paid_status=500, paid_body_fault=fault)
    with pytest.raises(PaymentOutcomeUnknown) as caught:
        pay(Driver(driver_name, [], None, wallet=wallet), base_url + "/paid")
    got = sent(server)
    # the unreadable answer counts as a failed send: resent once, and the replay is refused
    assert (got.count, got.distinct) == (2, 1)
    assert len(server.accepted) == 1
    problem = caught.value.problem  # type: ignore[attr-defined]
    assert problem is not None and "already used" in (problem.detail or "")
    assert_unknown_held(entry_of(wallet, caught.value.journal_id))


# --- the caller goes away ----------------------------------------------------------------------


@pytest.fixture
def hold() -> Iterator[threading.Event]:
    """A release event for ``Route(hold_paid=...)``, always set at teardown."""
    release = threading.Event()
    yield release
    release.set()


def _async_get(wallet: Wallet, url: str) -> Any:
    async def get() -> httpx.Response:
        async with httpx.AsyncClient(transport=AsyncPaymentTransport(wallet=wallet)) as client:
            return await client.get(url)

    return get()


def test_async_timeout_while_the_server_holds_the_paid_request(server, base_url, wallets, hold):
    method = TestMethod()
    wallet = wallets(method)
    server.routes["/paid"] = Route(hold_paid=hold)

    async def main() -> None:
        with pytest.raises((TimeoutError, asyncio.CancelledError)):
            await asyncio.wait_for(_async_get(wallet, base_url + "/paid"), timeout=1.0)

    asyncio.run(main())
    assert server.holding.is_set(), "the paid retry never reached the server before the timeout"
    # at once, in this process: the entry is unknown and held
    unknown = wallet.unknown_payments()
    assert len(unknown) == 1
    assert_unknown_held(unknown[0])
    assert len(server.accepted) == 1 and sent(server).count == 1


def test_async_cancel_once_the_server_holds_the_paid_request(server, base_url, wallets, hold):
    method = TestMethod()
    wallet = wallets(method)
    server.routes["/paid"] = Route(hold_paid=hold)

    async def main() -> None:
        task = asyncio.ensure_future(_async_get(wallet, base_url + "/paid"))
        held = await asyncio.to_thread(server.holding.wait, 10)
        assert held, "the paid retry never reached the server"
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    unknown = wallet.unknown_payments()
    assert len(unknown) == 1
    assert_unknown_held(unknown[0])
    assert only_entry(wallet).id == unknown[0].id
    assert len(server.accepted) == 1 and sent(server).count == 1


@pytest.mark.parametrize("sync_driver", ["httpx", "requests"])
def test_keyboard_interrupt_on_the_paid_retry_reaches_the_caller(
    sync_driver, server, base_url, wallets
):
    method = TestMethod()
    wallet = wallets(method)
    driver = Driver(sync_driver, [], None, wallet=wallet)
    with pytest.raises(KeyboardInterrupt):
        pay(driver, base_url + "/paid", inner=interrupt_on_paid(sync_driver))
    got = sent(server)
    assert (got.count, got.distinct) == (1, 1)  # never resent: the caller is gone
    assert len(server.accepted) == 1
    unknown = wallet.unknown_payments()
    assert len(unknown) == 1
    assert_unknown_held(unknown[0])


# --- nothing left the process ------------------------------------------------------------------


def test_a_method_bug_before_sending_releases_the_hold(driver_name, server, base_url, wallets):
    method = TestMethod(fail=lambda: RuntimeError("bug"))
    wallet = wallets(method)
    with pytest.raises(MethodError) as caught:
        pay(Driver(driver_name, [], None, wallet=wallet), base_url + "/paid")
    assert caught.value.money_moved is False
    assert sent(server).count == 0
    record = only_entry(wallet)
    assert (record.state, record.held, record.money_moved) == ("failed", False, False)
    assert wallet.unknown_payments() == []


@pytest.mark.parametrize("fault", ["truncated", "bad-gzip"])
def test_body_faults_also_work_without_sockets(fault):
    from mpp_client import PaymentTransport
    from mpp_client.guard import OpenGuard

    server = FakeMppServer({"/paid": Route(paid_status=500, paid_body_fault=fault)})
    guard = OpenGuard()
    transport = PaymentTransport(server.mock_transport(), methods=[TestMethod()], guard=guard)
    with httpx.Client(transport=transport) as client, pytest.raises(PaymentOutcomeUnknown):
        client.get("https://fake.test/paid")
    assert sent(server).count == 2 and len(server.accepted) == 1
    assert [(e.state, e.held) for e in guard.entries] == [("unknown", True)]
