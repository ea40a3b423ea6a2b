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
Fulfilment ``hosted_pay``: a person must pay at ``paymentRequestUrl``. Without a ``HostedPay``
option that is reported as ``HandCashPaymentRequired`` (a ``HumanActionRequired`` carrying the
payment URL, QR URL and challenge binding). With one, the method hands the URL to an approval
hook, waits for the person (or, opt-in and unverified, pays the request from a business wallet),
then fetches the receipt from the site's receipt route and retries with it.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Generator, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any
from urllib.parse import quote as url_quote
from urllib.parse import urlsplit

from mpp_client.effects import Await, Checkpoint, Effect, HttpCall, HttpReply, Sleep
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

if TYPE_CHECKING:
    from mpp_client.methods.handcash.api import HandCashConnect

__all__ = [
    "COMPAT_ID_PREFIX",
    "ApprovalHook",
    "COMPAT_INTENT",
    "DEFAULT_RECEIPT_PATH",
    "CompatMode",
    "HandCashCompatSite",
    "HandCashPaymentRequired",
    "HostedPay",
    "HostedPayment",
]

COMPAT_INTENT = "compat-charge"
COMPAT_ID_PREFIX = "handcash-compat:"
USD = Currency.fiat("usd")
_CHALLENGE_ID = re.compile(r"[A-Za-z0-9_\-.:~]{1,200}")
_ORIGIN = re.compile(r"https?://[A-Za-z0-9.\-\[\]:]+")
_HEADER = re.compile(r"[A-Za-z0-9\-]{1,64}")
_JWT = re.compile(r"[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*")
_TXID = re.compile(r"[0-9a-f]{64}")
_REMEMBERED = 256
#: The handcash-mpp demo's poll route: 404 ``{ready: false}`` until paid, then
#: ``{ready: true, receiptJwt}``. ``{paymentRequestId}`` is replaced (percent-encoded).
DEFAULT_RECEIPT_PATH = "/api/receipt?paymentRequestId={paymentRequestId}"


@dataclass(frozen=True, slots=True)
class HostedPayment:
    """What a person needs to pay one hosted payment request (given to the approval hook).

    ``payment_url`` and ``qr_url`` are the site's HandCash payment page and its QR image (https
    only, else ``None``); ``challenge_binding`` is the site's binding of the challenge to the
    resource (opaque to the client); ``amount`` is what the spend policy holds for it;
    ``timeout`` the seconds the method waits for the receipt in all."""

    origin: str
    challenge_id: str
    payment_request_id: str
    payment_url: str | None
    qr_url: str | None
    challenge_binding: str | None
    amount: Money
    timeout: float


#: The approval hook: called once the URL may be shown, returns (or resolves to) ``True`` when
#: the person says they paid, ``False`` when they gave up. It may block or be async; it may
#: also return ``None`` (= go and look for the receipt).
ApprovalHook = Callable[[HostedPayment], "bool | Awaitable[bool | None] | None"]


@dataclass(frozen=True)
class HostedPay:
    """Opt-in handling of ``hosted_pay`` 402s (``HandCashCharge(hosted_pay=...)``).

    ``approve`` hands the payment URL to a person (see ``ApprovalHook``) and waits for them.
    ``programmatic=True`` instead pays the payment request from the configured wallet with
    ``POST /v3/wallet/transactions/send/paymentRequest`` (business wallets only; UNVERIFIED
    against the live HandCash service, in particular for another app's request). Then the
    receipt is polled from the site's ``receipt_path`` every ``poll_interval`` seconds until
    ``timeout`` (counted from when the URL is handed out). A wait that ends without a receipt
    leaves the amount held as unknown: the person may still pay."""

    approve: ApprovalHook | None = None
    programmatic: bool = False
    timeout: float = 600.0
    poll_interval: float = 2.0
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)

    def __post_init__(self) -> None:
        if self.approve is None and not self.programmatic:
            raise ValueError("HostedPay needs an approval hook or programmatic=True")
        if self.timeout <= 0 or self.poll_interval <= 0:
            raise ValueError("timeout and poll_interval must be positive")


class HandCashPaymentRequired(HumanActionRequired):
    """A ``hosted_pay`` site needs a person to pay on its HandCash page (nothing was paid).

    ``action`` is the payment URL; ``payment_url``, ``qr_url``, ``challenge_binding`` and
    ``payment_request_id`` say what to show and what it is bound to."""

    def __init__(self, reason: str, payment: HostedPayment) -> None:
        super().__init__(
            reason, action=payment.payment_url or "pay on the site's HandCash payment page"
        )
        self.payment = payment
        self.payment_url = payment.payment_url
        self.qr_url = payment.qr_url
        self.challenge_binding = payment.challenge_binding
        self.payment_request_id = payment.payment_request_id


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
    #: The site's receipt route for hosted payments (a path template, see
    #: ``DEFAULT_RECEIPT_PATH``); the answer must be ``{"ready": true, "receiptJwt": ...}``.
    receipt_path: str = DEFAULT_RECEIPT_PATH

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
        if not _HEADER.fullmatch(self.receipt_header) or self.receipt_header.lower() in (
            "authorization",
            "cookie",
        ):
            raise ValueError("receipt_header must be an HTTP header name (not authorization)")
        if not self.receipt_path.startswith("/") or "{paymentRequestId}" not in (self.receipt_path):
            raise ValueError("receipt_path must be an absolute path with {paymentRequestId}")


@dataclass(frozen=True, slots=True)
class _Offer:
    origin: str
    challenge_id: str
    fulfillment: str
    price: int | None
    payment_request_url: str | None
    payment_request_id: str | None = None
    qr_url: str | None = None
    challenge_binding: str | None = None


class CompatMode:
    """Recognises, prices and pays ``handcash-mpp`` 402s of the configured sites."""

    def __init__(
        self,
        sites: Iterable[HandCashCompatSite],
        *,
        hosted: HostedPay | None = None,
        connect: HandCashConnect | None = None,
    ) -> None:
        self.sites = {site.origin: site for site in sites}
        self.hosted = hosted
        self._connect = connect
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
        url = _https(handcash.get("paymentRequestUrl"))
        qr_url = _https(handcash.get("paymentRequestQrCodeUrl"))
        request_id = handcash.get("paymentRequestId")
        request_id = (
            request_id
            if isinstance(request_id, str) and _CHALLENGE_ID.fullmatch(request_id)
            else None
        )
        binding = handcash.get("challengeBinding")
        binding = binding if isinstance(binding, str) and len(binding) <= 512 else None
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
        offer = _Offer(
            origin, challenge_id, str(fulfillment), price, url, request_id, qr_url, binding
        )
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
        problem = _uncomparable_path(urlsplit(context.url).path)
        if problem is not None:
            # The site binds its receipt to the request path; refuse before anything is paid
            # when what it will compare cannot be predicted.
            raise PaymentRefused(
                f"the request path cannot be matched by a handcash-mpp receipt: {problem}",
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
            return (yield from self._hosted(quote, context, offer, site))
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
        self._check_receipt(jwt, offer, quote, context)
        txid = answer.get("transactionId") if isinstance(answer, Mapping) else None
        reference = txid if isinstance(txid, str) and len(txid) <= 128 else offer.challenge_id
        return _proof(site, jwt, reference)

    # -- hosted pay ---------------------------------------------------------------------------

    def _hosted(
        self, quote: Quote, context: PaymentContext, offer: _Offer, site: HandCashCompatSite
    ) -> Generator[Effect, Any, PaymentProof]:
        hosted = self.hosted
        challenge_id = quote.challenge.id
        payment = HostedPayment(
            origin=offer.origin,
            challenge_id=offer.challenge_id,
            payment_request_id=offer.payment_request_id or "",
            payment_url=offer.payment_request_url,
            qr_url=offer.qr_url,
            challenge_binding=offer.challenge_binding,
            amount=quote.amount,
            timeout=hosted.timeout if hosted is not None else 0.0,
        )
        if hosted is None or offer.payment_request_id is None:
            raise HandCashPaymentRequired(
                "this site takes HandCash payments only through its payment page", payment
            )
        request_id = offer.payment_request_id
        deadline = hosted.clock() + hosted.timeout
        # From the moment the URL is handed out (or the request is paid) value may move: the
        # amount is held as unknown if the wait is abandoned, until a receipt proves payment.
        yield Checkpoint("broadcast", request_id)
        if hosted.programmatic:
            yield from self._pay_request(request_id, challenge_id)
        else:
            approve = hosted.approve
            assert approve is not None  # checked by HostedPay
            try:
                answer = yield Await(
                    lambda: approve(payment), blocking=True, timeout=hosted.timeout
                )
            except Exception as failure:
                raise PaymentOutcomeUnknown(
                    f"the approval hook failed ({type(failure).__name__}) after the payment URL "
                    f"was handed out: the person may still pay request {request_id!r}",
                    challenge_id=challenge_id,
                    reference=request_id,
                ) from None
            if answer is False:
                raise PaymentOutcomeUnknown(
                    "the person did not confirm the payment, but the payment URL is out: "
                    f"request {request_id!r} may still be paid; held until resolved",
                    challenge_id=challenge_id,
                    reference=request_id,
                )
        jwt = yield from self._poll_receipt(site, request_id, deadline, hosted, challenge_id)
        self._check_receipt(jwt, offer, quote, context)
        return _proof(site, jwt, request_id)

    def _pay_request(self, request_id: str, challenge_id: str) -> Generator[Effect, Any, None]:
        if self._connect is None:
            raise MethodError("programmatic hosted pay needs a HandCash Connect client")
        try:
            reply: HttpReply = yield self._connect.pay_payment_request(request_id)
        except EffectFailed as failed:
            if not failed.delivered:
                raise NothingSent(
                    "HandCash could not be reached; the payment request was not paid",
                    challenge_id=challenge_id,
                ) from failed
            raise PaymentOutcomeUnknown(
                f"no answer from HandCash paying request {request_id!r}: it may have been paid",
                challenge_id=challenge_id,
                reference=request_id,
            ) from failed
        if not 200 <= reply.status < 300:
            # Unverified endpoint: no answer of it is known to prove that nothing was paid.
            raise PaymentOutcomeUnknown(
                f"HandCash answered HTTP {reply.status} paying request {request_id!r} "
                "(an unverified endpoint): it may have been paid",
                challenge_id=challenge_id,
                reference=request_id,
            )

    def _poll_receipt(
        self,
        site: HandCashCompatSite,
        request_id: str,
        deadline: float,
        hosted: HostedPay,
        challenge_id: str,
    ) -> Generator[Effect, Any, str]:
        url = site.origin + site.receipt_path.replace(
            "{paymentRequestId}", url_quote(request_id, safe="")
        )
        while True:
            try:
                reply: HttpReply | None = yield HttpCall(
                    "GET", url, {"accept": "application/json"}, b"", 20.0, True
                )
            except EffectFailed:
                reply = None  # a read: try again until the deadline
            jwt = _ready_receipt(reply)
            if jwt is not None:
                return jwt
            left = deadline - hosted.clock()
            if left <= 0:
                raise PaymentOutcomeUnknown(
                    f"no receipt for payment request {request_id!r} within {hosted.timeout:g} s: "
                    "the person may have paid (or may still pay); held until resolved",
                    challenge_id=challenge_id,
                    reference=request_id,
                )
            yield Sleep(min(hosted.poll_interval, left))

    # -- receipts -----------------------------------------------------------------------------

    @staticmethod
    def _check_receipt(jwt: str, offer: _Offer, quote: Quote, context: PaymentContext) -> None:
        """The receipt's claims (decoded without verification) must be for this challenge
        and for the resource the paid retry asks for, compared the way the site compares."""
        claims = _claims(jwt)
        path = urlsplit(context.url).path or "/"
        claimed_path = claims.get("p", path)
        claimed_method = claims.get("m", context.http_method)
        # ``pr`` is in hosted receipts only; a connect receipt need not name the request.
        claimed_request = claims.get("pr", offer.payment_request_id)
        if offer.fulfillment != "hosted_pay":
            claimed_request = offer.payment_request_id
        if (
            claims.get("ch", offer.challenge_id) != offer.challenge_id
            or not isinstance(claimed_path, str)
            or not _same_resource(claimed_path, path)
            or not isinstance(claimed_method, str)
            or claimed_method.upper() != context.http_method.upper()
            or (
                offer.payment_request_id is not None and claimed_request != offer.payment_request_id
            )
        ):
            raise MethodError(
                "the site's receipt is for another challenge or resource",
                money_moved=True,
                challenge_id=quote.challenge.id,
            )


def _proof(site: HandCashCompatSite, jwt: str, reference: str) -> PaymentProof:
    # handcash-mpp's gate reads ``Authorization: Bearer`` BEFORE ``x-handcash-receipt``: a
    # caller's own Bearer header would make it read the wrong token and refuse a paid request.
    # The retry headers replace that header with the same receipt, so both say the same.
    return PaymentProof(
        payload={},
        reference=reference,
        money_moved=True,
        retry_headers={site.receipt_header: jwt, "authorization": f"Bearer {jwt}"},
    )


def _ready_receipt(reply: HttpReply | None) -> str | None:
    if reply is None or reply.status != 200:
        return None
    try:
        answer = reply.json()
    except ValueError:
        return None
    if not isinstance(answer, Mapping) or answer.get("ready") is not True:
        return None
    jwt = answer.get("receiptJwt")
    if not isinstance(jwt, str) or len(jwt) > 8192 or not _JWT.fullmatch(jwt):
        return None
    return jwt


def _https(value: Any) -> str | None:
    return value if isinstance(value, str) and value.startswith("https://") else None


def _uncomparable_path(path: str) -> str | None:
    """Why a receipt's path claim could not be matched reliably for ``path`` (or ``None``):
    encoded slashes or dots and dot segments are decoded or resolved differently by proxies
    and frameworks, so the path the site binds could differ from the one it checks."""
    lowered = path.lower()
    if "%2f" in lowered or "%5c" in lowered or "%2e" in lowered or "\\" in path:
        return "it contains an encoded slash or dot"
    if any(segment in (".", "..") for segment in path.split("/")):
        return "it contains a dot segment"
    if "//" in path:
        return "it contains an empty segment"
    return None


def _same_resource(claimed: str, requested: str) -> bool:
    """Whether the site will find its path claim ``p`` equal to the path it sees for the paid
    retry of ``requested``. The site compares the exact path it sees, which is the request
    path minus any prefix the app is mounted under; a trailing slash is matched as it is
    routed (``/paid`` and ``/paid/`` reach the same route)."""
    if not claimed.startswith("/"):
        return False

    def norm(p: str) -> str:
        return p.rstrip("/") or "/"

    claimed, requested = norm(claimed), norm(requested)
    if claimed == requested:
        return True
    # A mounted app sees the path below its mount point: /shop/paid -> /paid.
    return claimed != "/" and requested.endswith(claimed) and requested[: -len(claimed)] != ""


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
