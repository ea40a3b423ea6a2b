"""``TestMethod``: a payment method that moves no money, for exercising every flow.

It pays challenges of its ``name`` (``"test"`` by default) with a proof the fake server can
check: an HMAC of the challenge id under a secret both share. It records every quote and every
payment it made, so tests can assert what was (and was not) signed.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections.abc import Callable, Generator, Mapping
from typing import TYPE_CHECKING, Any

from mpp_client.effects import Checkpoint, Effect
from mpp_client.errors import PaymentRefused
from mpp_client.methods.base import Payee, PaymentContext, PaymentMethod, PaymentProof, Quote
from mpp_client.money import Currency, Money

if TYPE_CHECKING:
    from mpp_client.protocol import Challenge

__all__ = ["TEST_CURRENCY", "TEST_SECRET", "TestMethod", "test_proof"]

#: The secret the fake server and ``TestMethod`` share by default (test use only).
TEST_SECRET = b"mpp-client-test-secret-0123456789abcdef"
#: The currency of test challenges: a USD-pegged unit with 6 decimals, like TIP-20 tokens.
TEST_CURRENCY = Currency("usd-test", 6, network="test", symbol="tUSD", usd_pegged=True)


def test_proof(challenge_id: str, secret: bytes = TEST_SECRET) -> str:
    """The proof ``TestMethod`` sends for a challenge: hex HMAC-SHA256 of its id."""
    return hmac.new(secret, challenge_id.encode(), hashlib.sha256).hexdigest()


test_proof.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


class TestMethod(PaymentMethod):
    """Pays ``name`` challenges whose request has ``amount`` (base units, digits) and
    ``recipient``; the currency is ``TEST_CURRENCY`` unless ``currencies`` maps the request's
    ``currency`` field to another ``Currency``.

    ``payload``: a fixed payload to send instead of the HMAC proof (conformance flows).
    ``money_moved``: report value as gone once paid (like push mode or Lightning).
    ``fail``: an exception to raise from ``pay`` after the ``signed`` checkpoint.
    ``revocable``: a refused credential can be proven void (like a revoked, unused token), so
    its hold is released and a fresh challenge may be paid; by default it cannot (like a
    signed transaction the server may still broadcast), and the hold stays.
    """

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        name: str = "test",
        *,
        secret: bytes = TEST_SECRET,
        payload: Mapping[str, Any] | None = None,
        currencies: Mapping[str, Currency] | None = None,
        money_moved: bool = False,
        fail: Callable[[], BaseException] | None = None,
        intents: frozenset[str] = frozenset({"charge"}),
        revocable: bool = False,
    ) -> None:
        self.name = name
        self.intents = intents
        self._secret = secret
        self._payload = dict(payload) if payload is not None else None
        self._currencies = dict(currencies or {})
        self._money_moved = money_moved
        self._fail = fail
        self._revocable = revocable
        self._lock = threading.Lock()
        #: Every reference ``abandon`` was asked to void, in order.
        self.abandoned: list[str | None] = []
        #: Every quote made, in order.
        self.quotes: list[Quote] = []
        #: Every challenge id a proof was made for, in order.
        self.paid: list[str] = []

    def __repr__(self) -> str:
        return f"TestMethod(name={self.name!r})"

    def quote(self, challenge: Challenge, context: PaymentContext) -> Quote:
        data = challenge.request_data
        amount = data.get("amount")
        if (
            not isinstance(amount, str)
            or not amount.isdigit()
            or (len(amount) > 1 and amount[0] == "0")
        ):
            raise PaymentRefused(
                "amount must be a decimal string of base units", challenge=challenge
            )
        recipient = data.get("recipient")
        if not isinstance(recipient, str) or not recipient:
            raise PaymentRefused("recipient is missing", challenge=challenge)
        currency = self._currencies.get(str(data.get("currency")), TEST_CURRENCY)
        quote = Quote(
            challenge=challenge,
            method=self.name,
            intent=challenge.intent,
            amount=Money(int(amount), currency),
            payees=(Payee(recipient, int(amount)),),
            expires=challenge.expires_at,
            network=currency.network,
        )
        with self._lock:
            self.quotes.append(quote)
        return quote

    def abandon(self, quote: Quote, proof: PaymentProof) -> Generator[Effect, Any, bool]:
        with self._lock:
            self.abandoned.append(proof.reference)
        return self._revocable
        yield  # pragma: no cover - a generator like every method's abandon

    def pay(self, quote: Quote, context: PaymentContext) -> Generator[Effect, Any, PaymentProof]:
        challenge_id = quote.challenge.id
        proof = test_proof(challenge_id, self._secret)
        reference = "test-" + proof[:16]
        with self._lock:
            self.paid.append(challenge_id)
        yield Checkpoint("signed", reference)
        if self._fail is not None:
            raise self._fail()
        if self._money_moved:
            yield Checkpoint("broadcast", reference)
        payload = self._payload if self._payload is not None else {"proof": proof}
        return PaymentProof(
            payload=payload,
            source="did:example:test-payer",
            reference=reference,
            money_moved=self._money_moved,
        )
