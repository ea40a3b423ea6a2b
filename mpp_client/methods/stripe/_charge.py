"""``StripeCharge``: pay ``stripe``/``charge`` challenges with a Shared Payment Token (SPT).

For each challenge the payer mints one SPT with its own Stripe account, limited to exactly
the charged amount and currency, expiring no later than the challenge, and granted to the
seller's Business Network profile named in the challenge. The seller then confirms a
PaymentIntent with it. Nothing else of the payer's card can be charged through the token.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Generator, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal

from mpp_client.effects import Checkpoint, Effect, HttpReply
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
from mpp_client.methods.stripe._api import (
    DEFAULT_API_BASE,
    STRIPE_PREVIEW_VERSION,
    StripeApi,
    object_path,
    stripe_error_text,
)
from mpp_client.methods.stripe._currency import stripe_currency
from mpp_client.methods.stripe._request import StripeChargeRequest, parse_charge_request
from mpp_client.money import Money

if TYPE_CHECKING:
    from mpp_client.protocol import Challenge

__all__ = ["StripeCharge"]

_ISSUED = "/v1/shared_payment/issued_tokens"
_GRANTED = "/v1/shared_payment/granted_tokens"
_TEST_GRANT = "/v1/test_helpers/shared_payment/granted_tokens"
_TOKEN_ID = re.compile(r"spt_[A-Za-z0-9_]{1,250}")
_TEST_KEY = re.compile(r"(?:sk|rk)_test_")


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

    Quotes are in Stripe minor units of the challenge currency (``usd`` cents, ``jpy`` yen).
    ``payment_method_type`` (default ``"card"``) must be among the challenge's accepted types;
    ``None`` skips that check. Tokens expire at the challenge's ``expires`` or after
    ``token_lifetime``, whichever is first; challenges expiring within ``expiry_margin`` are
    refused.
    """

    name = "stripe"
    intents = frozenset({"charge"})

    def __init__(
        self,
        secret_key: str,
        *,
        payment_method: str,
        customer: str | None = None,
        test_mode: bool | None = None,
        payment_method_type: str | None = "card",
        stripe_version: str = STRIPE_PREVIEW_VERSION,
        api_base: str = DEFAULT_API_BASE,
        token_lifetime: timedelta = timedelta(hours=1),
        expiry_margin: timedelta = timedelta(seconds=10),
        timeout: float = 20.0,
    ) -> None:
        if not secret_key or any(c.isspace() for c in secret_key):
            raise ValueError("secret_key must be a Stripe secret or restricted key")
        if not payment_method:
            raise ValueError("payment_method (pm_...) is required")
        if token_lifetime <= timedelta(0):
            raise ValueError("token_lifetime must be positive")
        self._api = StripeApi(
            secret_key, api_base=api_base, stripe_version=stripe_version, timeout=timeout
        )
        self.test_mode = bool(_TEST_KEY.match(secret_key)) if test_mode is None else test_mode
        self.payment_method = payment_method
        self.customer = customer
        self.payment_method_type = payment_method_type
        self.token_lifetime = token_lifetime
        self.expiry_margin = expiry_margin

    def __repr__(self) -> str:
        mode = "test" if self.test_mode else "live"
        return f"StripeCharge({mode}, api_base={self._api.api_base!r}, secret_key=<redacted>)"

    @property
    def network(self) -> str:
        """``"stripe:test"`` or ``"stripe:live"``: which Stripe mode the tokens come from."""
        return "stripe:test" if self.test_mode else "stripe:live"

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
        """Mint one SPT limited to the quote, yield ``Checkpoint("signed", spt_id)``, and
        return the payload ``{"spt": ..., "externalId"?: ...}``."""
        request = quote.details["request"]
        if not isinstance(request, StripeChargeRequest):
            raise TypeError("quote was not made by StripeCharge.quote")
        challenge = quote.challenge
        refuse_if_expiring(quote.expires, context.now, self.expiry_margin, challenge)
        expires_at = context.now + self.token_lifetime
        if quote.expires is not None:
            expires_at = min(expires_at, quote.expires)
        fields = self._token_fields(request, math.floor(expires_at.timestamp()))
        path = _TEST_GRANT if self.test_mode else _ISSUED
        key = _idempotency_key("spt", challenge)
        reply: HttpReply = yield self._api.post(path, fields, idempotency_key=key)
        if self.test_mode and reply.status == 400 and _unknown_parameter(reply):
            # Older test helpers do not know seller_details; the token is then granted to this
            # same test account anyway. Different parameters need a different key.
            plain = [f for f in fields if not f[0].startswith("seller_details[")]
            reply = yield self._api.post(
                path, plain, idempotency_key=_idempotency_key("spt-plain", challenge)
            )
        if not 200 <= reply.status < 300:
            raise MethodError(
                f"Stripe did not create a shared payment token: {stripe_error_text(reply)}",
                challenge_id=challenge.id,
            )
        token = _json_object(reply, "the shared payment token")
        token_id = token.get("id")
        if not isinstance(token_id, str) or not _TOKEN_ID.fullmatch(token_id):
            raise MethodError(
                "Stripe answered without a shared payment token id", challenge_id=challenge.id
            )
        yield Checkpoint("signed", token_id)
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
        return PaymentProof(payload=payload, reference=token_id, money_moved=False)

    def _token_fields(self, request: StripeChargeRequest, expires_at: int) -> list[tuple[str, str]]:
        fields = [("payment_method", self.payment_method)]
        if self.customer is not None:
            fields.append(("customer", self.customer))
        fields += [
            ("usage_limits[currency]", request.currency),
            ("usage_limits[max_amount]", str(request.amount)),
            ("usage_limits[expires_at]", str(expires_at)),
        ]
        if self.test_mode:
            fields.append(("seller_details[network_id]", request.network_id))
        else:
            fields.append(("seller_details[network_business_profile]", request.network_id))
            if request.external_id is not None:
                fields.append(("seller_details[external_id]", request.external_id))
        return fields

    # -- abandon / lookup ------------------------------------------------------------------

    def abandon(self, quote: Quote, proof: PaymentProof) -> Generator[Effect, Any, None]:
        """Revoke the token of a proof the server did not accept (best effort: a token that
        cannot be revoked still expires at its ``expires_at``)."""
        if proof.reference is not None and _TOKEN_ID.fullmatch(proof.reference):
            yield from self._revoke(proof.reference, quote.challenge)

    def _revoke(self, token_id: str, challenge: Challenge) -> Generator[Effect, Any, None]:
        prefix = _TEST_GRANT if self.test_mode else _ISSUED
        call = self._api.post(
            object_path(prefix, token_id, "/revoke"),
            [],
            idempotency_key=_idempotency_key("revoke", challenge),
        )
        try:
            yield call
        except MethodError:
            return  # revoking is clean-up; the token's own expiry is the backstop

    def lookup(self, reference: str) -> Generator[Effect, Any, LookupResult]:
        """Read the token ``reference`` back: ``settled`` once the seller captured with it,
        ``failed`` if it was revoked or expired unused, ``pending`` while still usable."""
        if not _TOKEN_ID.fullmatch(reference):
            return LookupResult("failed", reference, detail="not a shared payment token id")
        prefix = _GRANTED if self.test_mode else _ISSUED
        reply: HttpReply = yield self._api.get(object_path(prefix, reference))
        if reply.status == 404:
            return LookupResult("failed", reference, detail="Stripe does not know this token")
        if not 200 <= reply.status < 300:
            return LookupResult("pending", reference, detail=stripe_error_text(reply))
        token = _json_object(reply, "the shared payment token")
        usage = token.get("usage_details")
        captured = usage.get("amount_captured") if isinstance(usage, Mapping) else None
        reason = token.get("deactivated_reason")
        if (isinstance(captured, int) and captured > 0) or reason == "consumed":
            amount = captured if isinstance(captured, int) else None
            return LookupResult("settled", reference, amount=amount)
        if reason is not None or token.get("status") == "deactivated":
            return LookupResult("failed", reference, detail=f"token deactivated: {reason}")
        return LookupResult("pending", reference, detail="token still active and unused")


def _idempotency_key(purpose: str, challenge: Challenge) -> str:
    # One key per (challenge, purpose): a resend of the same POST replays Stripe's first
    # answer, and a second payment attempt of the same challenge cannot mint a second token.
    digest = hashlib.sha256(f"{challenge.realm}\n{challenge.id}".encode()).hexdigest()
    return f"mpp-client-{purpose}-{digest[:40]}"


def _json_object(reply: HttpReply, what: str) -> Mapping[str, Any]:
    try:
        body = reply.json()
    except ValueError as exc:
        raise MethodError(f"Stripe answered {what} with invalid JSON") from exc
    if not isinstance(body, Mapping):
        raise MethodError(f"Stripe answered {what} with a non-object")
    return body


def _unknown_parameter(reply: HttpReply) -> bool:
    try:
        error = reply.json().get("error", {})
    except (ValueError, AttributeError):
        return False
    message = error.get("message") if isinstance(error, Mapping) else None
    return isinstance(message, str) and "Received unknown parameter" in message


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
