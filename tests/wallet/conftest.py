"""Shared builders for wallet tests: quotes, contexts and a controllable journal clock."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest

from mpp_client.guard import PaymentOptions
from mpp_client.methods.base import Payee, PaymentContext, Quote
from mpp_client.money import SAT, Currency, Money
from mpp_client.protocol import Challenge
from mpp_client.runner import run_sync
from mpp_client.wallet import SpendPolicy, SqliteJournal, Wallet

PATH_USD = Currency("0x20c0000000000000000000000000000000000000", 6, network="eip155:4217",
                    symbol="pathUSD", usd_pegged=True)  # fmt: skip
VOLATILE = Currency("0xbeef", 18, network="eip155:1", symbol="VOL")
ORIGIN = "https://api.example.com"
_ids = itertools.count()


def challenge(method: str = "tempo", intent: str = "charge") -> Challenge:
    return Challenge(
        id=f"ch-{next(_ids)}",
        realm="api.example.com",
        method=method,
        intent=intent,
        request="e30",
        request_data={},
    )


def quote(
    amount: int = 100_000,
    *,
    currency: Currency = PATH_USD,
    payee: str = "0xmerchant",
    payees: tuple[Payee, ...] | None = None,
    method: str = "tempo",
    network: str | None = "eip155:4217",
    max_fee: Money | None = None,
) -> Quote:
    if currency == SAT and network == "eip155:4217":
        network = "mainnet"
    return Quote(
        challenge=challenge(method),
        method=method,
        intent="charge",
        amount=Money(amount, currency),
        payees=payees if payees is not None else (Payee(payee, amount),),
        expires=None,
        network=network,
        max_fee=max_fee,
    )


def context(origin: str = ORIGIN, call_id: str | None = None) -> PaymentContext:
    return PaymentContext(
        origin=origin,
        url=origin + "/paid",
        http_method="GET",
        now=datetime.now(UTC),
        call_id=call_id if call_id is not None else f"call-{next(_ids)}",
    )


def pay(wallet: Wallet, q: Quote, ctx: PaymentContext | None = None,
        options: PaymentOptions | None = None, *, settle: bool = True):  # fmt: skip
    """Reserve and (by default) settle one payment, like the flow does."""
    reservation = run_sync(wallet.reserve(q, ctx or context(), options or PaymentOptions()))
    if settle:
        reservation.signed("0xtx")
        reservation.sent("fp", "0xtx")
        reservation.settled(None, "0xtx")
    return reservation


class Clock:
    """A journal clock tests move by hand (Unix seconds)."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def journal_path(tmp_path):
    return tmp_path / "journal.sqlite3"


@pytest.fixture
def make_wallet(tmp_path, clock):
    made: list[Wallet] = []

    def make(policy: SpendPolicy | None = None, **kwargs) -> Wallet:
        journal = kwargs.pop("journal", None) or SqliteJournal(
            tmp_path / "journal.sqlite3", clock=clock
        )
        wallet = Wallet(policy=policy, journal=journal, **kwargs)
        made.append(wallet)
        return wallet

    yield make
    for wallet in made:
        wallet.close()
