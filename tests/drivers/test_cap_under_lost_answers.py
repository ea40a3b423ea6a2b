"""A daily cap holds when the server loses answers after taking the payment: every payment it
took is still held in the journal (settled or unknown), so the wallet refuses before the
server could have taken more than the cap."""

from __future__ import annotations

import random

import httpx

from mpp_client import PaymentOutcomeUnknown, PaymentTransport
from mpp_client.errors import BudgetExceeded, UnresolvedPayments
from mpp_client.money import Money
from mpp_client.testing import TEST_CURRENCY, FakeMppServer, Offer, Route, TestMethod
from mpp_client.wallet import Limit, SpendPolicy, Wallet

PRICE = 1000
CAP = 20 * PRICE


def test_the_daily_cap_holds_when_the_server_loses_paid_answers(tmp_path):
    server = FakeMppServer(
        {
            "/paid": Route(
                offers=(Offer(amount=str(PRICE)),),
                lose_ratio=0.1,
                lose_rng=random.Random(3),  # 3 of the ~20 answers are lost
            )
        }
    )
    policy = SpendPolicy(limits=(Limit(Money(CAP, TEST_CURRENCY), "day"),), pin_payees=False)
    # The breaker is off: the cap alone must stop the spending.
    wallet = Wallet([TestMethod()], journal=tmp_path / "j.sqlite3", policy=policy, max_unknown=None)
    outcomes: list[str] = []
    refusal: Exception | None = None
    try:
        with server.serve() as base, httpx.Client(transport=PaymentTransport(wallet=wallet)) as c:
            for _ in range(3 * CAP // PRICE):
                try:
                    response = c.get(base + "/paid")
                except PaymentOutcomeUnknown:
                    outcomes.append("unknown")
                    continue
                except (BudgetExceeded, UnresolvedPayments) as refused:
                    refusal = refused
                    break
                assert response.status_code == 200
                outcomes.append("paid")
        entries = wallet.payments()
    finally:
        wallet.close()

    assert isinstance(refusal, BudgetExceeded), outcomes  # the cap stopped it, nothing else
    assert server.lost, "the seed lost no answer: the test proves nothing"
    assert outcomes.count("unknown") == len(server.lost)

    accepted = [int(c.challenge.request_data["amount"]) for c in server.accepted]
    assert len({c.challenge.id for c in server.accepted}) == len(server.accepted)
    assert sum(accepted) <= CAP

    held = [e for e in entries if e.held]
    assert sum(e.exposure for e in held) >= sum(accepted)
    assert sum(e.exposure for e in held) <= CAP
    # each payment the server took is one held entry: settled if its answer came, else unknown
    by_challenge = {e.challenge_id: e for e in entries}
    lost_ids = {c.challenge.id for c in server.lost}
    for credential in server.accepted:
        entry = by_challenge[credential.challenge.id]
        assert entry.held
        assert entry.state == ("unknown" if credential.challenge.id in lost_ids else "settled")
