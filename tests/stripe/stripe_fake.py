"""A fake of the Stripe API parts used by shared payment tokens, speaking Stripe's wire format.

Payer side: ``POST /v1/shared_payment/issued_tokens`` (live), ``POST
/v1/test_helpers/shared_payment/granted_tokens`` (test helper), their ``/{id}/revoke``, and
token retrieval. Seller side (what pympp's server calls): ``POST /v1/payment_intents`` with
``shared_payment_granted_token``.

It enforces what real Stripe enforces and a payer can get wrong: Basic auth with a known key,
the preview ``Stripe-Version``, form encoding, unknown parameters, an ``Idempotency-Key`` on
every POST with replay (``Idempotent-Replayed: true``) and a mismatch error, and for tokens:
currency, max amount, expiry, single use (``deactivated_reason: consumed``) and revocation.

Parameters and objects follow ONE fixture, ``tests/stripe/shapes.json`` (facts read from the
stripe-python 16.1.0b1 preview types): a parameter the published API does not list is refused
with Stripe's ``Received unknown parameter`` error, a missing required one with ``Missing
required param``, and every token has exactly the fields listed there. So an issued token has
``status`` and ``next_action`` and takes no ``customer``; the test helper takes ``customer`` but
no ``seller_details``; a granted token has no ``status`` and shows ``payment_method_details``
instead of ``payment_method``; ``usage_details.amount_captured`` is ``{currency, value}``
(``null`` before any capture). ``tests/stripe/test_stripe_shapes.py`` checks the fake and the
client against the fixture. A declined card (``pm_card_chargeDeclined``)
fails the PaymentIntent with a 402 ``card_error`` and leaves the token active and unused.

Knobs: ``revoke_fails_with`` / ``retrieve_fails_with`` answer revoke / retrieve with that error
status instead.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

PREVIEW_VERSION = "2026-07-29.preview"

SHAPES: dict[str, Any] = json.loads(Path(__file__).with_name("shapes.json").read_text())
ISSUE = "issued_token.create"
TEST_GRANT = "test_helpers.granted_token.create"


def param_allowed(name: str, request: str) -> bool:
    """Whether the published API lists form parameter ``name`` for ``request`` (a shapes key).

    ``a[*]`` in the fixture stands for any key of a map (or index of a list) ``a``."""
    for listed in SHAPES["requests"][request]["params"]:
        if listed == name:
            return True
        if listed.endswith("[*]") and re.fullmatch(re.escape(listed[:-3]) + r"\[[^\[\]]*\]", name):
            return True
    return False


def shape_problem(form: list[tuple[str, str]], request: str) -> tuple[str, str] | None:
    """The error Stripe would give ``form`` for ``request``: ``(message, param)`` or ``None``."""
    names = [name for name, _ in form]
    for name in names:
        if not param_allowed(name, request):
            return f"Received unknown parameter: {name}", name
    shape = SHAPES["requests"][request]
    present = {name for name, value in form if value != ""}
    for name, need in shape["params"].items():
        if need == "required" and name not in present:
            return f"Missing required param: {name}.", name
    for obj in shape["required_objects"]:
        if not any(name.startswith(obj + "[") for name in present):
            return f"Missing required param: {obj}.", obj
    return None


@dataclass
class Call:
    method: str
    path: str
    headers: dict[str, str]
    form: list[tuple[str, str]]
    status: int = 0

    def field(self, name: str) -> str | None:
        return dict(self.form).get(name)


@dataclass
class FakeStripe:
    """State and behaviour knobs of the fake. ``keys`` are the accepted secret keys."""

    keys: set[str] = field(default_factory=lambda: {"sk_test_fake_payer_and_seller"})
    clock: Any = time.time
    revoke_fails_with: int | None = None
    retrieve_fails_with: int | None = None
    calls: list[Call] = field(default_factory=list)
    tokens: dict[str, dict[str, Any]] = field(default_factory=dict)
    intents: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: The payment method behind each token (a granted token does not show it).
    payment_methods: dict[str, str] = field(default_factory=dict)
    _idempotency: dict[tuple[str, str], tuple[str, int, bytes]] = field(default_factory=dict)
    _ids: Any = field(default_factory=lambda: itertools.count(1))
    _lock: Any = field(default_factory=threading.Lock)

    # -- helpers -----------------------------------------------------------------------------

    def calls_to(self, suffix: str, method: str = "POST") -> list[Call]:
        return [c for c in self.calls if c.method == method and c.path.endswith(suffix)]

    def token_creations(self) -> list[Call]:
        return [
            c
            for c in self.calls
            if c.method == "POST" and c.path.endswith(("/issued_tokens", "/granted_tokens"))
        ]

    def _id(self, prefix: str) -> str:
        return f"{prefix}_fake{next(self._ids):06d}"

    @staticmethod
    def error(
        status: int, message: str, *, type_: str = "invalid_request_error", **extra: str
    ) -> JSONResponse:
        return JSONResponse(
            {"error": {"type": type_, "message": message, **extra}},
            status_code=status,
            headers={"request-id": "req_fake"},
        )

    # -- app ---------------------------------------------------------------------------------

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/shared_payment/issued_tokens", self._endpoint, methods=["POST"]),
                Route(
                    "/v1/test_helpers/shared_payment/granted_tokens",
                    self._endpoint,
                    methods=["POST"],
                ),
                Route(
                    "/v1/shared_payment/issued_tokens/{id}/revoke",
                    self._endpoint,
                    methods=["POST"],
                ),
                Route(
                    "/v1/test_helpers/shared_payment/granted_tokens/{id}/revoke",
                    self._endpoint,
                    methods=["POST"],
                ),
                Route("/v1/shared_payment/issued_tokens/{id}", self._endpoint, methods=["GET"]),
                Route("/v1/shared_payment/granted_tokens/{id}", self._endpoint, methods=["GET"]),
                Route("/v1/payment_intents", self._endpoint, methods=["POST"]),
            ]
        )

    async def _endpoint(self, request: Request) -> Response:
        raw = await request.body()
        try:
            form = parse_qsl(raw.decode(), keep_blank_values=True, strict_parsing=bool(raw))
        except (UnicodeDecodeError, ValueError):
            return self.error(400, "Invalid form body")
        call = Call(request.method, request.url.path, dict(request.headers), form)
        with self._lock:
            self.calls.append(call)
            response = self._handle(request, call, raw)
        call.status = response.status_code
        return response

    def _handle(self, request: Request, call: Call, raw: bytes) -> Response:
        auth = call.headers.get("authorization", "")
        key = None
        if auth.startswith("Basic "):
            try:
                key = base64.b64decode(auth[6:]).decode().split(":", 1)[0]
            except ValueError:
                key = None
        if key not in self.keys:
            return self.error(401, "Invalid API Key provided: sk_test_****")
        if call.headers.get("stripe-version") != PREVIEW_VERSION:
            return self.error(400, "Shared payment tokens need a preview Stripe-Version")
        if call.method == "GET":
            return self._retrieve(request.path_params["id"])
        if call.headers.get("content-type", "").split(";")[0] != (
            "application/x-www-form-urlencoded"
        ):
            return self.error(400, "Expected a form-encoded body")
        idem = call.headers.get("idempotency-key")
        if not idem:
            # Real Stripe accepts a POST without one; the fake insists, as our client must.
            return self.error(400, "fake: every POST must carry an Idempotency-Key")
        fingerprint = hashlib.sha256(call.path.encode() + b"\n" + raw).hexdigest()
        seen = self._idempotency.get((key, idem))
        if seen is not None:
            if seen[0] != fingerprint:
                return self.error(
                    400,
                    "Keys for idempotent requests can only be used with the same parameters "
                    "they were first used with.",
                    type_="idempotency_error",
                )
            return Response(
                seen[2],
                status_code=seen[1],
                media_type="application/json",
                headers={"idempotent-replayed": "true", "request-id": "req_fake"},
            )
        response = self._post(request, call)
        if response.status_code < 500:
            self._idempotency[(key, idem)] = (fingerprint, response.status_code, response.body)
        return response

    def _post(self, request: Request, call: Call) -> Response:
        path = call.path
        if path.endswith("/revoke"):
            return self._revoke(request.path_params["id"])
        if path.endswith("/issued_tokens"):
            return self._create_token(call, ISSUE, "shared_payment.issued_token")
        if path.endswith("/granted_tokens"):
            return self._create_token(call, TEST_GRANT, "shared_payment.granted_token")
        return self._payment_intent(call)

    def _create_token(self, call: Call, request: str, object_name: str) -> Response:
        form = dict(call.form)
        problem = shape_problem(call.form, request)
        if problem is not None:
            return self.error(400, problem[0], param=problem[1])
        try:
            max_amount = int(form["usage_limits[max_amount]"])
            expires_at = int(form.get("usage_limits[expires_at]") or self.clock() + 3600)
        except ValueError:
            return self.error(400, "Invalid integer", param="usage_limits")
        if expires_at <= self.clock():
            return self.error(400, "expires_at must be in the future", param="usage_limits")
        payment_method = form["payment_method"]
        token_id = self._id("spt")
        token: dict[str, Any] = {
            "id": token_id,
            "object": object_name,
            "created": int(self.clock()),
            "livemode": False,
            "usage_limits": {
                "currency": form["usage_limits[currency]"],
                "max_amount": max_amount,
                "expires_at": expires_at,
            },
            "usage_details": {"amount_captured": None},
            "deactivated_at": None,
            "deactivated_reason": None,
            "shared_metadata": {
                name[len("shared_metadata[") : -1]: value
                for name, value in call.form
                if name.startswith("shared_metadata[")
            },
            "risk_details": None,
        }
        if object_name.endswith("issued_token"):
            token |= {
                "payment_method": payment_method,
                "status": "active",
                "next_action": None,
                "return_url": form.get("return_url"),
                "setup_future_usage": form.get("setup_future_usage"),
                "use_stripe_sdk": form.get("use_stripe_sdk") == "true" or None,
                "seller_details": {
                    "network_business_profile": form.get(
                        "seller_details[network_business_profile]"
                    ),
                    "external_id": form.get("seller_details[external_id]"),
                },
            }
            if payment_method == "pm_card_authenticationRequired":
                token["status"] = "requires_action"
                token["next_action"] = {
                    "type": "redirect_to_url",
                    "redirect_to_url": {
                        "url": "https://hooks.stripe.com/3d_secure/fake",
                        "return_url": form.get("return_url") or "",
                    },
                    "use_stripe_sdk": None,
                }
        else:
            token["payment_method_details"] = {"type": "card", "card": {"brand": "visa"}}
            token["agent_details"] = None
        # The fixture is the contract: a field it does not list must never be invented here.
        assert set(token) == set(SHAPES["objects"][object_name]["fields"]), sorted(token)
        self.tokens[token_id] = token
        self.payment_methods[token_id] = payment_method
        return JSONResponse(token, headers={"request-id": "req_fake"})

    def _revoke(self, token_id: str) -> Response:
        if self.revoke_fails_with is not None:
            return self.error(self.revoke_fails_with, "Injected revoke failure", type_="api_error")
        token = self.tokens.get(token_id)
        if token is None:
            return self.error(404, f"No such token: '{token_id}'", code="resource_missing")
        self._expire(token)
        if token["deactivated_reason"] is None:
            self._deactivate(token, "revoked")
        return JSONResponse(token)

    def _expire(self, token: dict[str, Any]) -> None:
        # Stripe deactivates a token at its expires_at (here: when it is next looked at).
        if (
            token["deactivated_reason"] is None
            and self.clock() >= token["usage_limits"]["expires_at"]
        ):
            self._deactivate(token, "expired")

    def _deactivate(self, token: dict[str, Any], reason: str) -> None:
        if "status" in token:
            token["status"] = "deactivated"
        token["deactivated_reason"] = reason
        token["deactivated_at"] = int(self.clock())

    def _retrieve(self, token_id: str) -> Response:
        if self.retrieve_fails_with is not None:
            return self.error(
                self.retrieve_fails_with, "Injected retrieve failure", type_="api_error"
            )
        token = self.tokens.get(token_id)
        if token is None:
            return self.error(404, f"No such token: '{token_id}'", code="resource_missing")
        self._expire(token)
        return JSONResponse(token)

    def _payment_intent(self, call: Call) -> Response:
        form = dict(call.form)
        spt = form.get("shared_payment_granted_token") or form.get(
            "payment_method_data[shared_payment_granted_token]"
        )
        if form.get("confirm") != "true" or not spt:
            return self.error(400, "fake: expected confirm=true and a shared payment token")
        try:
            amount = int(form["amount"])
        except (KeyError, ValueError):
            return self.error(400, "Invalid amount", param="amount")
        currency = form.get("currency")
        token = self.tokens.get(spt)
        if token is None:
            return self.error(400, f"No such token: '{spt}'", code="resource_missing")
        limits = token["usage_limits"]
        if token.get("status") == "requires_action":
            intent = self._intent(amount, currency, spt, "requires_action")
            return JSONResponse(intent)
        if token["deactivated_reason"] is not None:
            return self.error(
                400,
                f"The shared payment token is deactivated ({token['deactivated_reason']}).",
                code="shared_payment_token_deactivated",
            )
        if self.clock() >= limits["expires_at"]:
            return self.error(400, "The shared payment token has expired.", code="token_expired")
        if currency != limits["currency"]:
            return self.error(400, "Currency does not match the token's usage limits.")
        if amount > limits["max_amount"]:
            return self.error(400, "Amount exceeds the token's max_amount usage limit.")
        if self.payment_methods.get(spt) == "pm_card_chargeDeclined":
            # The charge fails; the token stays active and unused.
            return self.error(
                402,
                "Your card was declined.",
                type_="card_error",
                code="card_declined",
                decline_code="generic_decline",
            )
        self._deactivate(token, "consumed")
        token["usage_details"]["amount_captured"] = {"currency": currency, "value": amount}
        return JSONResponse(self._intent(amount, currency, spt, "succeeded"))

    def _intent(self, amount: int, currency: str | None, spt: str, status: str) -> dict[str, Any]:
        intent_id = self._id("pi")
        intent = {
            "id": intent_id,
            "object": "payment_intent",
            "amount": amount,
            "currency": currency,
            "status": status,
            "shared_payment_granted_token": spt,
        }
        self.intents[intent_id] = intent
        return intent


def form_json(call: Call) -> str:
    return json.dumps(call.form)
