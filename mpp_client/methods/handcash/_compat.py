"""Compatibility with servers built on ``handcash-mpp`` (opt-in, per site).

Those servers do not speak MPP: their 402 has no ``WWW-Authenticate: Payment`` and a JSON body
``{"type": ".../payment-required", "challengeId": ..., "handcash": {"fulfillment": ...,
"paymentRequestId"?, "paymentRequestUrl"?}}``, usually without any amount. The paid retry
carries a receipt JWT in ``x-handcash-receipt`` instead of a credential.

We turn such a 402 into a ``Challenge`` with method ``handcash`` and intent ``compat-charge``
and an id ``handcash-compat:<their challengeId>``: it is NOT an MPP challenge and is only ever
made here, for a site the owner listed. Because the 402 carries no trustworthy amount, every
site needs a ``max_price``; the quote is that maximum unless the body names a lower price.

Fulfilment ``connect`` (pull): the site's connect-pay route receives ``{"authToken",
"challengeId"}`` and its server charges the payer's wallet through HandCash, answering with the
receipt JWT. The token sent is one the user issued to *that merchant's* app (HandCash enforces
the per-app spending limit the user set for it); the payer's own app token is never sent.
Fulfilment ``hosted_pay``: a person must pay at ``paymentRequestUrl``; that is reported as
``HumanActionRequired``.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
from collections import OrderedDict
from collections.abc import Generator, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit

from mpp_client.effects import Checkpoint, Effect, HttpCall, HttpReply
from mpp_client.errors import (
    EffectFailed,
    HumanActionRequired,
    MethodError,
    NothingSent,
    PaymentOutcomeUnknown,
    PaymentRefused,
)
from mpp_client.methods.base import Payee, PaymentContext, PaymentProof, Quote
from mpp_client.money import Currency, Money
from mpp_client.protocol import Challenge
from mpp_client.secret import Secret, reveal

__all__ = ["COMPAT_ID_PREFIX", "COMPAT_INTENT", "CompatMode", "HandCashCompatSite"]

COMPAT_INTENT = "compat-charge"
COMPAT_ID_PREFIX = "handcash-compat:"
USD = Currency.fiat("usd")
_CHALLENGE_ID = re.compile(r"[A-Za-z0-9_\-.:~]{1,200}")
_ORIGIN = re.compile(r"https?://[A-Za-z0-9.\-\[\]:]+")
_HEADER = re.compile(r"[A-Za-z0-9\-]{1,64}")
_JWT = re.compile(r"[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*")
_TXID = re.compile(r"[0-9a-f]{64}")
_REMEMBERED = 256


@dataclass(frozen=True)
class HandCashCompatSite:
    """One site whose ``handcash-mpp`` 402s may be paid.

    ``origin`` is ``scheme://host[:port]`` exactly as requested. ``max_price`` (US cents, e.g.
    ``Money(25, Currency.fiat("usd"))``) is the most one request may cost, and what the spend
    policy is charged when the 402 names no price. ``merchant_auth_token`` is the auth token the
    user issued to this merchant's HandCash app (needed for ``connect`` fulfilment; it is sent
    to the site). ``connect_pay_path`` is the site's route that takes it; ``receipt_header``
    the header the receipt JWT is retried in.
    """

    origin: str
    max_price: Money
    merchant_auth_token: str | Secret[str] | None = field(default=None, repr=False)
    connect_pay_path: str = "/api/connect-pay"
    receipt_header: str = "x-handcash-receipt"

    def __post_init__(self) -> None:
        if self.merchant_auth_token is not None and not isinstance(
            self.merchant_auth_token, Secret
        ):
            # Held as a Secret so it shows in no repr, asdict, vars or captured locals.
            object.__setattr__(self, "merchant_auth_token", Secret(self.merchant_auth_token))
        if not _ORIGIN.fullmatch(self.origin) or self.origin.endswith("/"):
            raise ValueError("origin must be scheme://host[:port] with no path")
        if self.max_price.currency != USD or self.max_price.amount <= 0:
            raise ValueError("max_price must be a positive amount of US cents")
        if not self.connect_pay_path.startswith("/"):
            raise ValueError("connect_pay_path must be an absolute path")
        if not _HEADER.fullmatch(self.receipt_header):
            raise ValueError("receipt_header must be an HTTP header name")


@dataclass(frozen=True, slots=True)
class _Offer:
    origin: str
    challenge_id: str
    fulfillment: str
    price: int | None
    payment_request_url: str | None


class CompatMode:
    """Recognises, prices and pays ``handcash-mpp`` 402s of the configured sites."""

    def __init__(self, sites: Iterable[HandCashCompatSite]) -> None:
        self.sites = {site.origin: site for site in sites}
        self._offers: OrderedDict[str, _Offer] = OrderedDict()
        self._lock = threading.Lock()

    def knows(self, challenge: Challenge) -> bool:
        """Whether ``challenge`` was synthesized here (a server cannot forge one)."""
        with self._lock:
            return challenge.id in self._offers

    def synthesize(self, origin: str, headers: Mapping[str, str], body: bytes) -> list[Challenge]:
        site = self.sites.get(origin)
        if site is None or not body:
            return []
        try:
            data = json.loads(body, parse_float=Decimal)
        except ValueError:
            return []
        if not isinstance(data, Mapping) or not isinstance(data.get("handcash"), Mapping):
            return []
        kind = data.get("type")
        challenge_id = data.get("challengeId")
        handcash = data["handcash"]
        fulfillment = handcash.get("fulfillment")
        if (
            not isinstance(kind, str)
            or not kind.endswith("/payment-required")
            or not isinstance(challenge_id, str)
            or not _CHALLENGE_ID.fullmatch(challenge_id)
            or fulfillment not in ("connect", "hosted_pay")
        ):
            return []
        price = _cents(data.get("payAmountUsd"), data.get("payAmountCurrency"))
        url = handcash.get("paymentRequestUrl")
        url = url if isinstance(url, str) and url.startswith("https://") else None
        request: dict[str, Any] = {
            "compat": "handcash-mpp",
            "challengeId": challenge_id,
            "fulfillment": fulfillment,
        }
        if price is not None:
            request["amount"] = str(price)
            request["currency"] = "usd"
        if url is not None:
            request["paymentRequestUrl"] = url
        challenge = Challenge.create(
            id=COMPAT_ID_PREFIX + challenge_id,
            realm=urlsplit(origin).netloc,
            method="handcash",
            intent=COMPAT_INTENT,
            request=request,
        )
        offer = _Offer(origin, challenge_id, str(fulfillment), price, url)
        with self._lock:
            self._offers[challenge.id] = offer
            while len(self._offers) > _REMEMBERED:
                self._offers.popitem(last=False)
        return [challenge]

    def quote(self, challenge: Challenge, context: PaymentContext) -> Quote:
        with self._lock:
            offer = self._offers.get(challenge.id)
        site = self.sites.get(context.origin)
        if offer is None or site is None or offer.origin != context.origin:
            raise PaymentRefused(
                "handcash-mpp compatibility challenge was not made for this site",
                challenge=challenge,
            )
        price = site.max_price.amount if offer.price is None else offer.price
        if price <= 0 or price > site.max_price.amount:
            raise PaymentRefused(
                f"the site asks {Money(price, USD)}, above its maximum of {site.max_price}",
                challenge=challenge,
            )
        if offer.fulfillment == "connect" and site.merchant_auth_token is None:
            raise PaymentRefused(
                "this site needs a merchant_auth_token for HandCash connect payments",
                challenge=challenge,
            )
        return Quote(
            challenge=challenge,
            method="handcash",
            intent=COMPAT_INTENT,
            amount=Money(price, USD),
            payees=(Payee(context.origin, price),),
            expires=None,
            network="handcash:bsv",
            details={"compat": offer, "price_known": offer.price is not None},
        )

    def pay(self, quote: Quote, context: PaymentContext) -> Generator[Effect, Any, PaymentProof]:
        offer = quote.details["compat"]
        assert isinstance(offer, _Offer)
        site = self.sites[offer.origin]
        if offer.fulfillment == "hosted_pay":
            raise HumanActionRequired(
                "this site takes HandCash payments only through its payment page",
                action=offer.payment_request_url or "pay on the site's HandCash payment page",
            )
        token = site.merchant_auth_token
        assert token is not None  # checked by quote
        call = HttpCall.json_post(
            offer.origin + site.connect_pay_path,
            # Revealed only into the request body (this frame's locals keep the Secret).
            {"authToken": reveal(token), "challengeId": offer.challenge_id},
            timeout=60.0,
        )
        # From here the merchant holds a token that can pull money from the wallet.
        yield Checkpoint("broadcast", None)
        challenge_id = quote.challenge.id
        try:
            reply: HttpReply = yield call
        except EffectFailed as failed:
            if not failed.delivered:
                raise NothingSent(
                    "the site's connect-pay route could not be reached; nothing was paid",
                    challenge_id=challenge_id,
                ) from failed
            raise PaymentOutcomeUnknown(
                "no answer from the site's connect-pay route: it may have charged the wallet",
                challenge_id=challenge_id,
            ) from failed
        if reply.status != 200:
            # handcash-mpp servers answer 400 for ANY Connect.pay error, including an upstream
            # timeout after the wallet was debited, and other statuses prove nothing either:
            # only a receipt tells. The outcome stays unknown (held) until resolved by hand.
            raise PaymentOutcomeUnknown(
                f"the site's connect-pay route answered HTTP {reply.status}: the wallet may "
                "have been charged",
                challenge_id=challenge_id,
                reference=_transaction_id(reply),
            )
        try:
            answer = reply.json()
        except ValueError:
            answer = None
        jwt = answer.get("receiptJwt") if isinstance(answer, Mapping) else None
        if not isinstance(jwt, str) or len(jwt) > 8192 or not _JWT.fullmatch(jwt):
            raise MethodError(
                "the site charged but sent no usable receipt",
                money_moved=True,
                challenge_id=quote.challenge.id,
            )
        claims = _claims(jwt)
        if (
            claims.get("ch", offer.challenge_id) != offer.challenge_id
            or claims.get("p", urlsplit(context.url).path) != urlsplit(context.url).path
        ):
            raise MethodError(
                "the site's receipt is for another challenge or path",
                money_moved=True,
                challenge_id=quote.challenge.id,
            )
        txid = answer.get("transactionId") if isinstance(answer, Mapping) else None
        reference = txid if isinstance(txid, str) and len(txid) <= 128 else offer.challenge_id
        return PaymentProof(
            payload={},
            reference=reference,
            money_moved=True,
            retry_headers={site.receipt_header: jwt},
        )


def _transaction_id(reply: HttpReply) -> str | None:
    """A ``transactionId`` the site's answer names (even an error answer), for lookup."""
    try:
        answer = reply.json()
    except ValueError:
        return None
    txid = answer.get("transactionId") if isinstance(answer, Mapping) else None
    return txid if isinstance(txid, str) and _TXID.fullmatch(txid) else None


def _cents(amount: Any, currency: Any) -> int | None:
    """``payAmountUsd`` (dollars, number or string) in cents, or None when absent or unusable."""
    if currency not in (None, "USD", "usd") or amount is None or isinstance(amount, bool):
        return None
    try:
        dollars = Decimal(str(amount))
    except InvalidOperation:
        return None
    cents = dollars * 100
    if not cents.is_finite() or cents != cents.to_integral_value() or cents <= 0:
        return None
    return int(cents)


def _claims(jwt: str) -> Mapping[str, Any]:
    """The JWT's claims, decoded WITHOUT verification (only to check it is for this request)."""
    segment = jwt.split(".")[1]
    try:
        data = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (binascii.Error, ValueError):
        return {}
    return data if isinstance(data, Mapping) else {}
