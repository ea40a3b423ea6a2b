"""What TempoSession refuses before signing anything, and what its quotes say."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mpp_client.errors import BudgetExceeded, NotAllowed, PaymentRefused
from mpp_client.methods.base import PaymentContext
from mpp_client.methods.tempo import LocalKeySigner
from mpp_client.methods.tempo.escrow import CANONICAL_ESCROWS
from mpp_client.methods.tempo.session import SessionPlan, TempoSession
from mpp_client.methods.tempo.tip20 import PATH_USD
from mpp_client.protocol import Challenge
from mpp_client.wallet.channels import ChannelStore

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
TESTNET_ESCROW = next(iter(CANONICAL_ESCROWS[42431]))
PAYEE = "0x" + "ab" * 20


def challenge(**changes: Any) -> Challenge:
    details = {"chainId": 42431, "escrowContract": TESTNET_ESCROW, **changes.pop("details", {})}
    request = {
        "amount": "1000", "currency": PATH_USD.address, "recipient": PAYEE,
        "suggestedDeposit": "50000", "unitType": "llm_token", "methodDetails": details,
        **changes,
    }  # fmt: skip
    return Challenge.create(
        id="c1", realm="api.example.com", method="tempo", intent="session", request=request,
        expires=NOW + timedelta(minutes=5),
    )  # fmt: skip


CONTEXT = PaymentContext("https://api.example.com", "https://api.example.com/x", "GET", NOW)


def method(**options: Any) -> TempoSession:
    options.setdefault("max_deposit", 100_000)
    return TempoSession(
        LocalKeySigner.generate(), chain_id=42431, channels=ChannelStore(":memory:"), **options
    )


def test_an_open_quotes_the_deposit_and_shows_the_unit_price() -> None:
    quote = method().quote(challenge(), CONTEXT)
    plan = quote.details["session"]
    assert isinstance(plan, SessionPlan) and plan.action == "open"
    assert quote.amount.amount == 50_000 == quote.details["deposit"].amount
    assert quote.details["unit_price"].amount == 1_000
    assert quote.payees[0].address == PAYEE and quote.intent == "session"
    assert quote.max_fee is not None  # the open's network fee is held with the deposit
    # max_deposit caps what the server suggests.
    assert method(max_deposit=20_000).quote(challenge(), CONTEXT).amount.amount == 20_000


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"details": {"escrowContract": "0x" + "77" * 20}}, NotAllowed),  # not canonical
        ({"details": {"sessionProtocol": "v2"}}, NotAllowed),
        ({"details": {"chainId": 4217}}, NotAllowed),  # chain not allowed
        ({"currency": "0x" + "99" * 20}, NotAllowed),  # token not allowed
        ({"amount": "0"}, PaymentRefused),
        ({"amount": "1.5"}, PaymentRefused),
        ({"recipient": "0x" + "00" * 20}, PaymentRefused),
        ({"details": {"minVoucherDelta": "200000"}}, BudgetExceeded),  # a unit > max_deposit
    ],
)
def test_refused_before_signing(change: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        method().quote(challenge(**change), CONTEXT)


def test_another_escrow_only_by_opt_in() -> None:
    other = "0x" + "77" * 20
    quote = method(escrows={42431: [other]}).quote(
        challenge(details={"escrowContract": other}), CONTEXT
    )
    assert quote.details["session"].escrow == other
