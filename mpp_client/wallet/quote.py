"""Dry run: what paying for a request would cost, without paying.

``Wallet.quote(url)`` sends the request once through the payment transport with
``PaymentOptions(dry_run=True)``: the flow parses the 402, chooses a challenge exactly as it
would for a real payment (preference, method checks, expiry, the wallet's policy) and stops
before reserving or signing anything. When the policy refuses every challenge, the flow still
returns the price of the first one a method could pay, with the refusal, so the quote shows
what WOULD have been paid and why it is not allowed. Nothing is written to the journal.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from mpp_client.errors import PaymentRefused
from mpp_client.guard import PaymentOptions
from mpp_client.methods.base import Payee, Quote
from mpp_client.money import Money

if TYPE_CHECKING:
    import httpx

    from mpp_client.wallet.wallet import Wallet

__all__ = ["WalletQuote", "dry_run"]


@dataclass(frozen=True, slots=True)
class WalletQuote:
    """The answer to ``Wallet.quote``.

    ``status``: the HTTP status of the unpaid request. ``payment_required``: it was a 402 this
    wallet could consider. ``quote``: the chosen challenge's price (``quote.amount`` in base
    units, ``quote.exposure`` with the maximum fee, ``quote.payees``, ``quote.expires``,
    ``quote.challenge``), ``None`` when nothing could be paid. ``allowed``: the policy would pay
    it now; otherwise ``refusal`` says why and ``rule`` names the rule (when a policy rule).
    """

    url: str
    status: int
    payment_required: bool
    quote: Quote | None
    allowed: bool
    refusal: str | None = None
    rule: str | None = None

    @property
    def method(self) -> str | None:
        """The payment method that would pay (``"tempo"``, ...)."""
        return None if self.quote is None else self.quote.method

    @property
    def price(self) -> Money | None:
        """The most this payment can take (amount plus maximum fee), base units."""
        return None if self.quote is None else self.quote.exposure

    @property
    def payees(self) -> tuple[Payee, ...]:
        """Who would be paid, with amounts in base units."""
        return () if self.quote is None else self.quote.payees

    @property
    def expires(self) -> datetime | None:
        """When the offer stops being payable."""
        return None if self.quote is None else self.quote.expires

    @property
    def challenge_id(self) -> str | None:
        """The id of the chosen challenge."""
        return None if self.quote is None else self.quote.challenge.id

    @property
    def unit_price(self) -> Money | None:
        """For a session: the price of one unit (base units); ``None`` for a charge."""
        found = None if self.quote is None else self.quote.details.get("unit_price")
        return found if isinstance(found, Money) else None

    @property
    def deposit(self) -> Money | None:
        """For a session: the deposit it would open (or the open channel's deposit it would
        spend from; ``price`` is then zero); ``None`` for a charge."""
        found = None if self.quote is None else self.quote.details.get("deposit")
        return found if isinstance(found, Money) else None


def _send(
    wallet: Wallet,
    url: str,
    method: str,
    headers: Any,
    content: bytes | str | None,
    inner: httpx.BaseTransport | None,
) -> httpx.Response:
    import httpx

    from mpp_client.transport import PaymentTransport

    transport = PaymentTransport(inner, wallet=wallet)
    with httpx.Client(transport=transport) as client:
        request = client.build_request(method, url, headers=headers, content=content)
        request.extensions = {**request.extensions, "mpp": PaymentOptions(dry_run=True)}
        response = client.send(request)
        response.read()
        return response


def dry_run(
    wallet: Wallet,
    url: str,
    *,
    method: str = "GET",
    headers: Any = None,
    content: bytes | str | None = None,
    transport: httpx.BaseTransport | None = None,
) -> WalletQuote:
    """See ``Wallet.quote``."""
    from mpp_client import payment_of

    try:
        response = _send(wallet, url, method, headers, content, transport)
    except PaymentRefused as refused:
        # Not payable even before the policy: no method, expired, unsafe request.
        rule = getattr(refused, "rule", None)
        return WalletQuote(url, 402, True, None, allowed=False, refusal=refused.reason, rule=rule)
    payment = payment_of(response)
    if payment is not None and payment.quote is None:
        # No configured method recognises the challenges: the 402 came back untouched.
        return WalletQuote(url, response.status_code, True, None, allowed=False,
                           refusal=payment.refusal)  # fmt: skip
    if payment is None:
        return WalletQuote(url, response.status_code, False, None, allowed=False,
                           refusal=None if response.status_code != 402 else
                           "the 402 carries no challenge this wallet understands")  # fmt: skip
    # The flow prices the first payable challenge even when the policy refuses it.
    return WalletQuote(
        url,
        response.status_code,
        True,
        payment.quote,
        allowed=payment.allowed,
        refusal=payment.refusal,
        rule=getattr(payment.error, "rule", None),
    )
