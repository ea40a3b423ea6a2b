"""Real payments on a local Tempo chain (anvil) to real MPP servers (pympp 0.16, mppx 0.11).

Every test pays (or refuses to pay) through one of the three drivers (httpx sync, httpx async,
requests) and then checks the chain: balances moved exactly as charged, or nothing moved.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from mpp_client import (
    AsyncPaymentTransport,
    BudgetExceeded,
    ChallengeExpired,
    NotAllowed,
    PaymentOptions,
    PaymentTransport,
    payment_of,
)
from mpp_client.guard import OpenGuard
from mpp_client.methods.tempo import PATH_USD, InvalidChargeRequest, LocalKeySigner, TempoCharge
from mpp_client.money import Currency, Money
from mpp_client.requests_session import PaymentSession
from mpp_client.testing import FakeMppServer, Offer, Route
from mpp_client.testing.anvil import AnvilChain

pytestmark = [pytest.mark.chain, pytest.mark.peer]

FUNDING = 1_000_000  # 1.00 pathUSD per fresh wallet
CHARGE = 10_000  # every paid route charges 0.01
SPLIT = 2_500


class Recorder(httpx.HTTPTransport):
    """The real network transport, remembering the credentials it sent."""

    def __init__(self) -> None:
        super().__init__()
        self.credentials: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        value = request.headers.get("authorization", "")
        if value.startswith("Payment "):
            self.credentials.append(value)
        return super().handle_request(request)


@dataclass
class Wallet:
    signer: LocalKeySigner
    method: TempoCharge
    guard: OpenGuard


def fresh_wallet(
    anvil: AnvilChain, *, modes: tuple[str, ...] = ("pull",), **options: Any
) -> Wallet:
    signer = LocalKeySigner.generate()
    anvil.fund(signer.address, FUNDING)
    method = TempoCharge(
        signer, chain_id=anvil.chain_id, rpc_url=anvil.rpc_url, modes=modes, **options
    )
    return Wallet(signer, method, OpenGuard())


def get_sync(wallet: Wallet, url: str, options: PaymentOptions | None = None) -> httpx.Response:
    recorder = Recorder()
    transport = PaymentTransport(recorder, methods=[wallet.method], guard=wallet.guard)
    with httpx.Client(transport=transport, timeout=60) as client:
        response = client.get(url, extensions={"mpp": options} if options else {})
    response.credentials = recorder.credentials  # type: ignore[attr-defined]
    return response


async def get_async(wallet: Wallet, url: str) -> httpx.Response:
    transport = AsyncPaymentTransport(methods=[wallet.method], guard=wallet.guard)
    async with httpx.AsyncClient(transport=transport, timeout=60) as client:
        return await client.get(url)


def get_requests(wallet: Wallet, url: str) -> Any:
    with PaymentSession(methods=[wallet.method], guard=wallet.guard) as session:
        return session.get(url, timeout=60)


def fee_of(anvil: AnvilChain, tx: str) -> int:
    """What a mined transaction cost its fee payer, in pathUSD base units."""
    receipt = anvil.receipt(tx)
    assert receipt is not None and receipt["status"] == "0x1"
    cost = int(receipt["gasUsed"], 16) * int(receipt["effectiveGasPrice"], 16)
    return -(-cost // 10**12)  # the chain rounds the fee up to whole base units


def balances(anvil: AnvilChain, *addresses: str) -> list[int]:
    return [anvil.balance_of(address) for address in addresses]


# --- paying ------------------------------------------------------------------------------------


@pytest.mark.parametrize("server", ["pympp", "mppx"])
@pytest.mark.parametrize("driver", ["httpx", "httpx-async", "requests"])
async def test_pull_payment_settles_exactly_the_charge(anvil, request, server, driver):
    peer = request.getfixturevalue(f"{server}_server")
    merchant = request.getfixturevalue(f"{server}_merchant")
    wallet = fresh_wallet(anvil)
    before_payer, before_merchant = balances(anvil, wallet.signer.address, merchant.recipient)

    url = peer.url + "/paid"
    if driver == "httpx":
        response = get_sync(wallet, url)
    elif driver == "httpx-async":
        response = await get_async(wallet, url)
    else:
        response = get_requests(wallet, url)

    assert response.status_code == 200, response.text
    payment = payment_of(response)
    assert payment is not None and payment.status == "paid"
    assert payment.quote.amount == Money(
        CHARGE,
        Currency(PATH_USD.address, 6, network="eip155:31337", symbol="pathUSD", usd_pegged=True),
    )
    receipt = payment.receipt
    assert receipt is not None and receipt.status == "success" and receipt.method == "tempo"
    assert receipt.reference == payment.reference  # the server mined exactly what we signed
    after_payer, after_merchant = balances(anvil, wallet.signer.address, merchant.recipient)
    assert after_merchant - before_merchant == CHARGE
    assert before_payer - after_payer == CHARGE + fee_of(anvil, receipt.reference)
    assert [entry.state for entry in wallet.guard.entries] == ["settled"]


@pytest.mark.parametrize("server", ["pympp", "mppx"])
def test_push_payment_broadcasts_and_sends_the_hash(anvil, request, server):
    peer = request.getfixturevalue(f"{server}_server")
    merchant = request.getfixturevalue(f"{server}_merchant")
    wallet = fresh_wallet(anvil, modes=("push",))
    before_payer, before_merchant = balances(anvil, wallet.signer.address, merchant.recipient)

    response = get_sync(wallet, peer.url + "/paid")

    assert response.status_code == 200, response.text
    payment = payment_of(response)
    assert payment.status == "paid" and payment.receipt.reference == payment.reference
    after_payer, after_merchant = balances(anvil, wallet.signer.address, merchant.recipient)
    assert after_merchant - before_merchant == CHARGE
    assert before_payer - after_payer == CHARGE + fee_of(anvil, payment.reference)
    from mpp_client.protocol import parse_credential

    [sent] = response.credentials
    assert parse_credential(sent).payload == {"type": "hash", "hash": payment.reference}


@pytest.mark.parametrize("server", ["pympp", "mppx"])
def test_sponsored_payment_costs_the_payer_only_the_charge(anvil, request, server):
    peer = request.getfixturevalue(f"{server}_server")
    merchant = request.getfixturevalue(f"{server}_merchant")
    wallet = fresh_wallet(anvil)
    before_payer, before_merchant = balances(anvil, wallet.signer.address, merchant.recipient)

    response = get_sync(wallet, peer.url + "/sponsored")

    assert response.status_code == 200, response.text
    payment = payment_of(response)
    assert payment.status == "paid" and payment.receipt.status == "success"
    after_payer, after_merchant = balances(anvil, wallet.signer.address, merchant.recipient)
    assert after_merchant - before_merchant == CHARGE
    assert before_payer - after_payer == CHARGE  # the sponsor paid the fee


@pytest.mark.parametrize("server", ["pympp", "mppx"])
def test_split_payment_pays_every_payee_its_share(anvil, request, server):
    peer = request.getfixturevalue(f"{server}_server")
    merchant = request.getfixturevalue(f"{server}_merchant")
    wallet = fresh_wallet(anvil)
    before = balances(anvil, merchant.recipient, merchant.split_recipient)

    response = get_sync(wallet, peer.url + "/split")

    assert response.status_code == 200, response.text
    payees = payment_of(response).quote.payees
    assert [(p.address, p.amount) for p in payees] == [
        (merchant.recipient.lower(), CHARGE - SPLIT),
        (merchant.split_recipient.lower(), SPLIT),
    ]
    after = balances(anvil, merchant.recipient, merchant.split_recipient)
    assert [a - b for a, b in zip(after, before, strict=True)] == [CHARGE - SPLIT, SPLIT]


def test_zero_amount_proof_is_accepted_by_mppx(anvil, mppx_server):
    wallet = fresh_wallet(anvil)
    before = anvil.balance_of(wallet.signer.address)
    response = get_sync(wallet, mppx_server.url + "/proof")
    assert response.status_code == 200, response.text
    assert payment_of(response).quote.amount.amount == 0
    assert anvil.balance_of(wallet.signer.address) == before


@pytest.mark.parametrize("server", ["pympp", "mppx"])
def test_a_replayed_credential_is_rejected_and_moves_nothing(anvil, request, server):
    peer = request.getfixturevalue(f"{server}_server")
    merchant = request.getfixturevalue(f"{server}_merchant")
    wallet = fresh_wallet(anvil)
    response = get_sync(wallet, peer.url + "/paid")
    assert response.status_code == 200
    [credential] = response.credentials
    before = balances(anvil, wallet.signer.address, merchant.recipient)

    replay = httpx.get(peer.url + "/paid", headers={"Authorization": credential})

    assert replay.status_code in (402, 403)
    assert balances(anvil, wallet.signer.address, merchant.recipient) == before


# --- refusing before anything is signed ----------------------------------------------------------


def assert_nothing_happened(anvil: AnvilChain, wallet: Wallet, block: int, balance: int) -> None:
    assert anvil.block_number() == block  # no transaction was mined
    assert anvil.balance_of(wallet.signer.address) == balance
    assert wallet.guard.entries == []  # nothing was even reserved


@pytest.mark.parametrize(
    ("path", "error"),
    [
        ("/paid?chain=4217", NotAllowed),  # another chain
        ("/paid?currency=0x20c0000000000000000000000000000000000001", NotAllowed),  # token
        ("/paid?expires_in=2", ChallengeExpired),
    ],
)
def test_pympp_challenges_we_must_not_pay_are_refused_with_nothing_signed(
    anvil, pympp_server, path, error
):
    wallet = fresh_wallet(anvil, tokens=[PATH_USD])
    block, balance = anvil.block_number(), anvil.balance_of(wallet.signer.address)
    with pytest.raises(error):
        get_sync(wallet, pympp_server.url + path)
    assert_nothing_happened(anvil, wallet, block, balance)


@pytest.mark.parametrize("server", ["pympp", "mppx"])
def test_an_amount_over_the_request_budget_is_refused(anvil, request, server):
    peer = request.getfixturevalue(f"{server}_server")
    wallet = fresh_wallet(anvil)
    block, balance = anvil.block_number(), anvil.balance_of(wallet.signer.address)
    currency = Currency(
        PATH_USD.address, 6, network="eip155:31337", symbol="pathUSD", usd_pegged=True
    )
    with pytest.raises(BudgetExceeded):
        get_sync(wallet, peer.url + "/paid", PaymentOptions(max_amount=Money(CHARGE - 1, currency)))
    assert_nothing_happened(anvil, wallet, block, balance)


@pytest.mark.parametrize(
    "splits",
    [
        [{"amount": "10000", "recipient": "0x" + "11" * 20}],  # the whole amount to a split
        [{"amount": "6000", "recipient": "0x" + "11" * 20}] * 2,  # more than the amount
        [{"amount": "0", "recipient": "0x" + "11" * 20}],
    ],
)
def test_tampered_splits_are_refused_before_anything_is_sent(anvil, splits):
    wallet = fresh_wallet(anvil)
    offer = Offer(
        amount=str(CHARGE),
        currency=PATH_USD.address,
        recipient="0x" + "22" * 20,
        method="tempo",
        extra={"methodDetails": {"chainId": anvil.chain_id, "splits": splits}},
    )
    server = FakeMppServer({"/paid": Route(offers=[offer])})
    block, balance = anvil.block_number(), anvil.balance_of(wallet.signer.address)
    transport = PaymentTransport(
        server.mock_transport(), methods=[wallet.method], guard=wallet.guard
    )
    with httpx.Client(transport=transport) as client, pytest.raises(InvalidChargeRequest):
        client.get("http://127.0.0.1/paid")
    assert [r.credential() for r in server.requests] == [None]  # no credential ever left
    assert_nothing_happened(anvil, wallet, block, balance)


def test_lookup_finds_a_settled_payment(anvil, pympp_server):
    wallet = fresh_wallet(anvil)
    response = get_sync(wallet, pympp_server.url + "/paid")
    from mpp_client.runner import run_sync

    result = run_sync(wallet.method.lookup(payment_of(response).reference))
    assert result.status == "settled"


@pytest.mark.parametrize("server", ["pympp", "mppx"])
def test_an_access_key_pays_for_its_root_account(anvil, request, server):
    peer = request.getfixturevalue(f"{server}_server")
    merchant = request.getfixturevalue(f"{server}_merchant")
    root = LocalKeySigner.generate()
    anvil.fund(root.address, FUNDING)
    access = anvil.authorize_access_key(root, LocalKeySigner.generate(), limit=100_000)
    method = TempoCharge(access, chain_id=anvil.chain_id, rpc_url=anvil.rpc_url)
    wallet = Wallet(root, method, OpenGuard())
    before_root, before_merchant = balances(anvil, root.address, merchant.recipient)

    response = get_sync(wallet, peer.url + "/paid")

    assert response.status_code == 200, response.text
    payment = payment_of(response)
    assert payment.status == "paid"
    after_root, after_merchant = balances(anvil, root.address, merchant.recipient)
    assert after_merchant - before_merchant == CHARGE
    assert before_root - after_root == CHARGE + fee_of(anvil, payment.reference)
    from mpp_client.protocol import parse_credential

    assert parse_credential(response.credentials[0]).source == (
        f"did:pkh:eip155:{anvil.chain_id}:{root.address}"
    )
