"""``StripeCharge``: pay ``stripe``/``charge`` challenges with a Shared Payment Token (SPT).

For each challenge the payer mints one SPT with its own Stripe account, limited to exactly
the charged amount and currency, expiring no later than the challenge, and granted to the
seller's Business Network profile named in the challenge. The seller then confirms a
PaymentIntent with it. Nothing else of the payer's card can be charged through the token.

A token the seller did not accept is void only once it is revoked AND read back unused
(``abandon``); until then it may still be charged and its amount stays held. A seller that
declines a card answers like one that refuses the token for any other reason (402 and a fresh
challenge, the token unused), so one logical request never gets a second token: a declined
card is never charged again on its own.
"""

from __future__ import annotations

import hashlib
import math
import re
import threading
from collections import OrderedDict
from collections.abc import Generator, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from mpp_client.effects import Checkpoint, Effect, HttpCall, HttpReply
from mpp_client.errors import (
    HumanActionRequired,
    MethodError,
    PaymentRefused,
)
from mpp_client.methods.base import (
    LookupResult,
    Payee,
    PaymentContext,
    PaymentMethod,
    PaymentProof,
    Quote,
    refuse_if_expiring,
)
from mpp_client.methods.config import MethodConfigError, SecretField, Settings
from mpp_client.methods.stripe.api import (
    DEFAULT_API_BASE,
    STRIPE_PREVIEW_VERSION,
    StripeApi,
    object_path,
    stripe_error_text,
)
from mpp_client.methods.stripe.currency import stripe_currency
from mpp_client.methods.stripe.request import StripeChargeRequest, parse_charge_request
from mpp_client.money import Money
from mpp_client.secret import Secret, reveal

if TYPE_CHECKING:
    from mpp_client.methods.config import SecretLoader
    from mpp_client.protocol import Challenge

__all__ = ["StripeCharge", "StripeRetryRefused"]

_ISSUED = "/v1/shared_payment/issued_tokens"
_GRANTED = "/v1/shared_payment/granted_tokens"
_TEST_GRANT = "/v1/test_helpers/shared_payment/granted_tokens"
_TOKEN_ID = re.compile(r"spt_[A-Za-z0-9_]{1,250}")
_TEST_KEY = re.compile(r"(?:sk|rk)_test_")
_ACCOUNT_ID = re.compile(r"acct_[A-Za-z0-9]{1,64}")
#: Logical requests remembered for the one-token rule (oldest forgotten first).
_REMEMBERED_CALLS = 4096

TokenState = Literal["used", "void", "usable", "unclear"]


class StripeRetryRefused(PaymentRefused):
    """A second shared payment token for the same logical request was refused.

    The seller did not accept the first token. To the payer a card decline looks exactly like
    any other refusal (a 402 with a fresh challenge, the token unused), so paying the fresh
    challenge could charge a declined card again, or pay twice. Nothing was minted for this
    attempt; retry the request as a new call if the refusal was not a decline.
    """


class StripeCharge(PaymentMethod):
    """Pays ``stripe``/``charge`` challenges with Shared Payment Tokens from your Stripe account.

    ``secret_key`` is the payer's (agent's) Stripe secret or restricted key; it is only sent to
    ``api_base`` and never shown in reprs or errors. ``payment_method`` is the saved payment
    method (``pm_...``) the tokens draw on, owned by ``customer`` when given.

    Live keys mint tokens with ``POST /v1/shared_payment/issued_tokens`` and the seller's
    network business profile. Test keys (``sk_test_``/``rk_test_``, or ``test_mode=True``) use
    Stripe's test helper ``POST /v1/test_helpers/shared_payment/granted_tokens``, which grants
    the token to the calling account itself (seller and payer are the same test account, e.g.
    ``payment_method="pm_card_visa"``).

    ``customer`` is sent only to the test helper (issued tokens take none). ``account`` (the
    payer's ``acct_...``, optional) names the paying account in ``payer``; without it a one-way
    fingerprint of the key stands in.

    Quotes are in Stripe minor units of the challenge currency (``usd`` cents, ``jpy`` yen).
    ``payment_method_type`` (default ``"card"``) must be among the challenge's accepted types;
    ``None`` skips that check. Tokens expire at the challenge's ``expires`` or after
    ``token_lifetime``, whichever is first; challenges expiring within ``expiry_margin`` are
    refused. One logical request (``PaymentContext.call_id``) gets at most one token, whatever
    ``max_payments`` allows (see ``StripeRetryRefused``).
    """

    name = "stripe"
    intents = frozenset({"charge"})

    def __init__(
        self,
        secret_key: str | Secret[str],
        *,
        payment_method: str,
        customer: str | None = None,
        account: str | None = None,
        test_mode: bool | None = None,
        payment_method_type: str | None = "card",
        stripe_version: str = STRIPE_PREVIEW_VERSION,
        api_base: str = DEFAULT_API_BASE,
        token_lifetime: timedelta = timedelta(hours=1),
        expiry_margin: float = 10.0,
        timeout: float = 20.0,
    ) -> None:
        secret_key = reveal(secret_key)
        if not isinstance(secret_key, str) or not secret_key or any(map(str.isspace, secret_key)):
            raise ValueError("secret_key must be a Stripe secret or restricted key")
        if not payment_method:
            raise ValueError("payment_method (pm_...) is required")
        if token_lifetime <= timedelta(0):
            raise ValueError("token_lifetime must be positive")
        if account is not None and not _ACCOUNT_ID.fullmatch(account):
            raise ValueError("account must be a Stripe account id (acct_...)")
        self._api = StripeApi(
            secret_key, api_base=api_base, stripe_version=stripe_version, timeout=timeout
        )
        self.test_mode = bool(_TEST_KEY.match(secret_key)) if test_mode is None else test_mode
        self.payment_method = payment_method
        self.customer = customer
        self.account = account
        # A one-way fingerprint names the key's account when no account id is configured.
        digest = hashlib.sha256(b"mpp-client stripe payer\0" + secret_key.encode())
        self._key_fingerprint = digest.hexdigest()[:16]
        # call key -> (challenge key, token id): the token each logical request was given.
        # The key is PaymentContext.call_id, or the request's method and URL without one.
        self._given: OrderedDict[str, tuple[str, str]] = OrderedDict()
        self._lock = threading.Lock()
        self.payment_method_type = payment_method_type
        self.token_lifetime = token_lifetime
        self.expiry_margin = expiry_margin

    config_summary = "cards through Stripe shared payment tokens"

    @classmethod
    def config_secrets(cls, settings: Mapping[str, object]) -> tuple[SecretField, ...]:
        """One secret, ``secret-key``: the payer's Stripe secret or restricted key."""
        from mpp_client.wallet.keystore import SecretKind

        return (SecretField("secret-key", "Stripe secret key (sk_...)", SecretKind.STRIPE_KEY),)

    @classmethod
    def from_config(cls, settings: Mapping[str, object], secrets: SecretLoader) -> StripeCharge:
        """From settings ``payment_method`` (required, ``pm_...``), ``customer``, ``account``
        and ``api_base``; the key is read now (every quote needs its test/live mode)."""
        read = Settings(settings)
        payment_method = read.required_text("payment_method", 'payment_method = "pm_..."')
        options: dict[str, Any] = {}
        if api_base := read.text("api_base"):
            options["api_base"] = api_base
        try:
            return cls(
                secrets("secret-key").reveal(),
                payment_method=payment_method,
                customer=read.text("customer"),
                account=read.text("account"),
                **options,
            )
        except ValueError:
            raise MethodConfigError("the Stripe settings are not valid") from None

    def __repr__(self) -> str:
        mode = "test" if self.test_mode else "live"
        return f"StripeCharge({mode}, api_base={self._api.api_base!r}, secret_key=<redacted>)"

    @property
    def network(self) -> str:
        """``"stripe:test"`` or ``"stripe:live"``: which Stripe mode the tokens come from."""
        return "stripe:test" if self.test_mode else "stripe:live"

    def payer(self, network: str | None) -> str | None:
        """``"stripe:<test|live>:<acct_...>"``, or ``"stripe:<mode>:key-<fingerprint>"`` (16 hex
        digits of a one-way hash of the key) when no ``account`` was given: tokens live in the
        account and mode of the key that minted them, and only that key can read them back."""
        mode = "test" if self.test_mode else "live"
        return f"stripe:{mode}:{self.account or 'key-' + self._key_fingerprint}"

    # -- quote -----------------------------------------------------------------------------

    def quote(self, challenge: Challenge, context: PaymentContext) -> Quote:
        """Check the challenge and price it in Stripe minor units of its currency (no I/O)."""
        if not self.can_pay(challenge):
            raise PaymentRefused("not a stripe charge challenge", challenge=challenge)
        request = parse_charge_request(challenge.request_data, challenge=challenge)
        if (
            self.payment_method_type is not None
            and self.payment_method_type not in request.payment_method_types
        ):
            raise PaymentRefused(
                f"the seller does not accept payment method type {self.payment_method_type!r}",
                challenge=challenge,
            )
        expires = challenge.expires_at
        refuse_if_expiring(expires, context.now, self.expiry_margin, challenge)
        return Quote(
            challenge=challenge,
            method=self.name,
            intent=challenge.intent,
            amount=Money(request.amount, stripe_currency(request.currency)),
            payees=(Payee(request.network_id, request.amount),),
            expires=expires,
            network=self.network,
            details={"request": request},
        )

    # -- pay -------------------------------------------------------------------------------

    def pay(self, quote: Quote, context: PaymentContext) -> Generator[Effect, Any, PaymentProof]:
        """Mint one SPT limited to the quote, yield ``Checkpoint("signed", spt_id,
        void_after=<its expiry>)``, and return the payload ``{"spt": ..., "externalId"?: ...}``.

        Raises ``StripeRetryRefused`` (minting nothing) when this logical request was already
        given a token for another challenge."""
        request = quote.details["request"]
        if not isinstance(request, StripeChargeRequest):
            raise TypeError("quote was not made by StripeCharge.quote")
        challenge = quote.challenge
        refuse_if_expiring(quote.expires, context.now, self.expiry_margin, challenge)
        call_key = context.call_id or f"{context.http_method} {context.url}"
        challenge_key = f"{challenge.realm}\n{challenge.id}"
        self._refuse_second_token(call_key, challenge_key, challenge)
        expires_at = context.now + self.token_lifetime
        if quote.expires is not None:
            expires_at = min(expires_at, quote.expires)
        expires_unix = math.floor(expires_at.timestamp())
        fields = self._token_fields(request, expires_unix)
        path = _TEST_GRANT if self.test_mode else _ISSUED
        key = _idempotency_key("spt", challenge)
        reply: HttpReply = yield self._api.post(path, fields, idempotency_key=key)
        if not 200 <= reply.status < 300:
            raise MethodError(
                "Stripe did not create a shared payment token: "
                f"{stripe_error_text(reply, self._api.secrets)}",
                challenge_id=challenge.id,
            )
        token = _json_object(reply, "the shared payment token")
        token_id = token.get("id")
        if not isinstance(token_id, str) or not _TOKEN_ID.fullmatch(token_id):
            raise MethodError(
                "Stripe answered without a shared payment token id", challenge_id=challenge.id
            )
        # Past usage_limits.expires_at the token can no longer confirm a PaymentIntent.
        void_after = datetime.fromtimestamp(expires_unix, UTC)
        yield Checkpoint("signed", token_id, void_after=void_after)
        problem = _token_problem(token, request)
        if problem is not None:
            yield from self._revoke(token_id, challenge)
            kind, reason = problem
            if kind == "action":
                raise HumanActionRequired(reason, action=_next_action_text(token))
            raise MethodError(reason, challenge_id=challenge.id, reference=token_id)
        payload: dict[str, Any] = {"spt": token_id}
        if request.external_id is not None:
            # Servers bind attribution to the request's externalId and reject a credential
            # that does not echo it (pympp 0.16, mppx; conformance stripe-external-id-binding).
            payload["externalId"] = request.external_id
        with self._lock:
            self._given[call_key] = (challenge_key, token_id)
            self._given.move_to_end(call_key)
            while len(self._given) > _REMEMBERED_CALLS:
                self._given.popitem(last=False)
        return PaymentProof(payload=payload, reference=token_id, money_moved=False)

    def _refuse_second_token(self, call_key: str, challenge_key: str, challenge: Challenge) -> None:
        with self._lock:
            given = self._given.get(call_key)
        # Paying the same challenge again replays the same token (same idempotency key); a
        # different challenge in the same logical request would be a second token.
        if given is not None and given[0] != challenge_key:
            # The message leaves the token id out: it is a bearer credential for the seller.
            raise StripeRetryRefused(
                "this request was already given a shared payment token, which the seller did "
                "not accept; a second token could charge a declined card again",
                challenge=challenge,
            )

    def _token_fields(self, request: StripeChargeRequest, expires_at: int) -> list[tuple[str, str]]:
        """Exactly the parameters the published API lists (stripe-python 16.1.0b1 types,
        ``tests/stripe/shapes.json``), so the first call is accepted.

        Issued tokens (live): ``payment_method``, ``usage_limits[...]`` and the required
        ``seller_details`` (``network_business_profile``, ``external_id``); no ``customer``.
        The test helper: ``payment_method``, ``customer`` (optional), ``usage_limits[...]``;
        it has no ``seller_details`` at all (it grants the token to the calling account)."""
        fields = [("payment_method", self.payment_method)]
        if self.customer is not None and self.test_mode:
            fields.append(("customer", self.customer))
        fields += [
            ("usage_limits[currency]", request.currency),
            ("usage_limits[max_amount]", str(request.amount)),
            ("usage_limits[expires_at]", str(expires_at)),
        ]
        if not self.test_mode:
            fields.append(("seller_details[network_business_profile]", request.network_id))
            if request.external_id is not None:
                fields.append(("seller_details[external_id]", request.external_id))
        return fields

    # -- abandon / lookup ------------------------------------------------------------------

    def abandon(self, quote: Quote, proof: PaymentProof) -> Generator[Effect, Any, bool]:
        """Revoke the token of a proof the seller did not accept and read it back.

        ``True`` only when the revoke answer AND a fresh read both show the token deactivated
        (revoked or expired) with nothing captured: it can no longer be charged and never was.
        ``False`` (the amount stays held) when the seller used it (a charge, then a 402), or
        when either call fails or answers anything else.
        """
        token_id = proof.reference
        if token_id is None or not _TOKEN_ID.fullmatch(token_id):
            return False
        revoked = yield from self._call(self._revoke_call(token_id, quote.challenge))
        if revoked is None or _token_state(revoked, token_id) != "void":
            return False
        # The revoke answer may be an idempotent replay of an earlier one: read the token now.
        read = yield from self._call(self._api.get(object_path(self._read_prefix, token_id)))
        return read is not None and _token_state(read, token_id) == "void"

    def _revoke(self, token_id: str, challenge: Challenge) -> Generator[Effect, Any, None]:
        # Clean-up of a token that was never handed out; its own expiry is the backstop.
        yield from self._call(self._revoke_call(token_id, challenge))

    def _revoke_call(self, token_id: str, challenge: Challenge) -> HttpCall:
        prefix = _TEST_GRANT if self.test_mode else _ISSUED
        return self._api.post(
            object_path(prefix, token_id, "/revoke"),
            [],
            idempotency_key=_idempotency_key("revoke", challenge),
        )

    @property
    def _read_prefix(self) -> str:
        # Test-helper tokens are read back as granted tokens (the calling account holds both).
        return _GRANTED if self.test_mode else _ISSUED

    def _call(self, call: HttpCall) -> Generator[Effect, Any, Mapping[str, Any] | None]:
        """The JSON object of a 2xx answer to ``call``, or ``None`` for any failure."""
        try:
            reply: HttpReply = yield call
        except MethodError:
            return None
        if not 200 <= reply.status < 300:
            return None
        try:
            body = reply.json()
        except ValueError:
            return None
        return body if isinstance(body, Mapping) else None

    def lookup(
        self, reference: str, *, void_after: datetime | None = None
    ) -> Generator[Effect, Any, LookupResult]:
        """Read the token ``reference`` back: ``settled`` once the seller used it (an amount
        captured, or ``deactivated_reason: consumed``), ``failed`` only when it is revoked or
        expired with nothing captured (it can never be charged), ``pending`` otherwise (still
        usable, unreadable, or unknown to this key: "not found" proves nothing)."""
        if not _TOKEN_ID.fullmatch(reference):
            return LookupResult("pending", reference, detail="not a shared payment token id")
        reply: HttpReply = yield self._api.get(object_path(self._read_prefix, reference))
        if not 200 <= reply.status < 300:
            return LookupResult(
                "pending", reference, detail=stripe_error_text(reply, self._api.secrets)
            )
        token = _json_object(reply, "the shared payment token")
        state = _token_state(token, reference)
        reason = token.get("deactivated_reason")
        if state == "used":
            amount = _captured(token)
            return LookupResult(
                "settled", reference, amount=amount or None, detail="the seller used the token"
            )
        if state == "void":
            return LookupResult("failed", reference, detail=f"token {reason} unused")
        if state == "usable":
            return LookupResult("pending", reference, detail="token still usable, not used yet")
        return LookupResult("pending", reference, detail=f"token state unclear ({reason!s:.40})")


def _captured(token: Mapping[str, Any]) -> int | None:
    """``usage_details.amount_captured`` in minor units: ``0`` when Stripe shows nothing
    captured (``null``), ``None`` when the field is missing or not readable."""
    if "usage_details" not in token:
        return None  # Stripe always sends the field; without it nothing is shown
    usage = token["usage_details"]
    if usage is None:
        return 0
    if not isinstance(usage, Mapping):
        return None
    captured = usage.get("amount_captured")
    if captured is None:
        return 0
    if isinstance(captured, Mapping):
        # The documented shape: {"currency": "usd", "value": 2500}.
        captured = captured.get("value")
    if isinstance(captured, bool) or not isinstance(captured, int) or captured < 0:
        return None
    return captured


def _token_state(token: Mapping[str, Any], token_id: str) -> TokenState:
    """What a token object (issued or granted) says about its use.

    ``used``: something was captured or Stripe consumed it (money moved). ``void``: revoked or
    expired with nothing captured (it can never be charged). ``usable``: active and unused.
    ``unclear``: anything else (another object, ``resolved``, an unreadable amount).
    """
    if token.get("id") != token_id:
        return "unclear"
    captured = _captured(token)
    reason = token.get("deactivated_reason")
    status = token.get("status")  # issued tokens only
    if (captured is not None and captured > 0) or reason == "consumed":
        return "used"
    if captured is None:
        return "unclear"
    if reason in ("revoked", "expired") and status in (None, "deactivated"):
        return "void"
    if reason is None and status in (None, "active", "requires_action"):
        return "usable"
    return "unclear"


def _idempotency_key(purpose: str, challenge: Challenge) -> str:
    # One key per (challenge, purpose): a resend of the same POST replays Stripe's first
    # answer, and a second payment attempt of the same challenge cannot mint a second token.
    digest = hashlib.sha256(f"{challenge.realm}\n{challenge.id}".encode()).hexdigest()
    return f"mpp-client-{purpose}-{digest[:40]}"


def _json_object(reply: HttpReply, what: str) -> Mapping[str, Any]:
    try:
        body = reply.json()
        readable = True
    except ValueError:
        body, readable = None, False
    if not readable:
        # Raised outside the handler: the JSON error (its ``.doc`` and the decoder's locals
        # hold the whole body, which may echo our Authorization header) is not chained.
        raise MethodError(f"Stripe answered {what} with invalid JSON")
    if not isinstance(body, Mapping):
        raise MethodError(f"Stripe answered {what} with a non-object")
    return body


def _token_problem(
    token: Mapping[str, Any], request: StripeChargeRequest
) -> tuple[Literal["action", "error"], str] | None:
    status = token.get("status")
    if status == "requires_action" or token.get("next_action"):
        return "action", "the payment method needs the customer to act (e.g. 3-D Secure)"
    if status is not None and status != "active":
        return "error", f"Stripe created the token in state {str(status)[:40]!r}, not active"
    limits = token.get("usage_limits")
    if isinstance(limits, Mapping):
        # Stripe echoes the limits; a token wider than the quote must never be handed out.
        max_amount = limits.get("max_amount")
        if limits.get("currency") not in (None, request.currency) or (
            max_amount is not None and max_amount != request.amount
        ):
            return "error", "Stripe created a token with other usage limits than requested"
    return None


def _next_action_text(token: Mapping[str, Any]) -> str:
    action = token.get("next_action")
    if not isinstance(action, Mapping):
        return "customer action required"
    kind = action.get("type")
    redirect = action.get("redirect_to_url")
    url = redirect.get("url") if isinstance(redirect, Mapping) else None
    text = str(kind)[:60] if isinstance(kind, str) else "customer action required"
    if isinstance(url, str) and url.startswith("https://"):
        text += f": {url[:500]}"
    return text
