"""``HandCashCharge``: pay ``handcash``/``charge`` challenges from a HandCash wallet (push).

The payer's own HandCash app (app id + secret) holds an auth token the user issued to it.
For each challenge it sends one ``POST /v3/connect/wallet/pay`` whose receivers add up to the
charged amount and whose attachment binds the payment to the challenge id and realm, then hands
the server the transaction id. See ``docs/methods/handcash.md`` for the method's wire format.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Generator, Iterable, Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from mpp_client.effects import Checkpoint, Effect, HttpReply
from mpp_client.errors import (
    EffectFailed,
    MethodError,
    NothingSent,
    PaymentOutcomeUnknown,
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
from mpp_client.methods.config import MethodConfigError, SecretField, SecretLoader, Settings
from mpp_client.methods.handcash.api import (
    DEFAULT_BASE_URL,
    HandCashConnect,
    handcash_error_text,
)
from mpp_client.methods.handcash.compat import (
    COMPAT_INTENT,
    CompatMode,
    HandCashCompatSite,
    HostedPay,
)
from mpp_client.methods.handcash.request import HandCashChargeRequest, parse_charge_request
from mpp_client.methods.handcash.signing import ConnectSigner, random_nonce
from mpp_client.money import Money
from mpp_client.protocol import Challenge
from mpp_client.secret import Secret

__all__ = ["HandCashCharge"]

_TXID = re.compile(r"[0-9a-f]{64}")
#: Statuses with which HandCash Cloud itself refuses a pay request it did not carry out
#: (validation, authentication, permission, spending limit, unknown receiver). Anything else
#: after the request may have arrived (5xx, 408, 409, 429, a proxy's page) proves nothing.
_REFUSED = frozenset({400, 401, 403, 404, 422})
#: Exchange-rate slack allowed between what was asked and what HandCash reports as sent.
FX_TOLERANCE = Decimal("0.02")


class HandCashCharge(PaymentMethod):
    """Pays ``handcash``/``charge`` challenges with HandCash Connect, and (opt-in, per site)
    the 402s of ``handcash-mpp`` servers.

    ``app_id``/``app_secret`` identify *your* HandCash developer app; ``auth_token`` is the
    token the wallet owner issued to it (a secp256k1 private key: it signs requests and is
    never sent). Quotes are in minor units of the challenge currency (US cents for ``usd``);
    HandCash converts to BSV at its rate. ``check_spendable`` first reads the app's remaining
    spending limit and refuses, paying nothing, when the charge does not fit. ``compat_sites``
    lists the ``handcash-mpp`` sites whose non-MPP 402s may be paid (see ``HandCashCompatSite``);
    ``hosted_pay`` (a ``HostedPay``) lets their ``hosted_pay`` 402s be paid by a person through
    an approval hook (or, opt-in and unverified, by a business wallet), waiting for the receipt.

    Outcomes of ``pay``: ``NothingSent`` only when nothing can have been debited (the spending
    limit did not fit, HandCash could not be reached, or HandCash answered the pay request with
    its own 400/401/403/404/422 error); ``PaymentOutcomeUnknown`` when the pay request may have
    been carried out without a usable answer (a lost answer, a 5xx, a 2xx without a transaction
    id): the amount stays held, ``lookup`` resolves it when a transaction id is known.
    """

    name = "handcash"
    intents = frozenset({"charge", COMPAT_INTENT})

    def __init__(
        self,
        *,
        app_id: str,
        app_secret: str | Secret[str],
        auth_token: str | Secret[str],
        base_url: str = DEFAULT_BASE_URL,
        check_spendable: bool = True,
        compat_sites: Iterable[HandCashCompatSite] = (),
        hosted_pay: HostedPay | None = None,
        expiry_margin: float = 10.0,
        timeout: float = 20.0,
        clock: Callable[[], datetime] | None = None,
        nonces: Callable[[], str] = random_nonce,
    ) -> None:
        signer = ConnectSigner(auth_token, clock=clock, nonces=nonces)
        self._connect = HandCashConnect(
            app_id=app_id, app_secret=app_secret, signer=signer, base_url=base_url, timeout=timeout
        )
        self.check_spendable = check_spendable
        self.expiry_margin = expiry_margin
        self._compat = CompatMode(compat_sites, hosted=hosted_pay, connect=self._connect)

    config_summary = "HandCash Connect"

    @classmethod
    def config_secrets(cls, settings: Mapping[str, object]) -> tuple[SecretField, ...]:
        """Two secrets: ``app-secret`` (your app's) and ``auth-token`` (the owner's)."""
        from mpp_client.wallet.keystore import SecretKind

        return (
            SecretField("app-secret", "HandCash app secret", SecretKind.HANDCASH_TOKEN),
            SecretField("auth-token", "HandCash auth token", SecretKind.HANDCASH_TOKEN),
        )

    @classmethod
    def from_config(cls, settings: Mapping[str, object], secrets: SecretLoader) -> HandCashCharge:
        """From settings ``app_id`` (required) and ``base_url``."""
        read = Settings(settings)
        app_id = read.required_text("app_id", "app_id")
        try:
            return cls(
                app_id=app_id,
                app_secret=secrets("app-secret").reveal(),
                auth_token=secrets("auth-token").reveal(),
                base_url=read.text("base_url") or DEFAULT_BASE_URL,
            )
        except ValueError:
            raise MethodConfigError("the HandCash settings are not valid") from None

    def __repr__(self) -> str:
        return (
            f"HandCashCharge(app_id={self._connect.app_id!r}, "
            f"public_key={self._connect.signer.public_key!r}, secrets=<redacted>)"
        )

    # -- challenges ------------------------------------------------------------------------

    def synthesize_challenges(
        self, origin: str, headers: Mapping[str, str], body: bytes
    ) -> list[Challenge]:
        """``handcash-mpp`` 402s of the configured ``compat_sites`` as ``compat-charge``
        challenges (never MPP ones); nothing for any other site."""
        return self._compat.synthesize(origin, headers, body)

    def can_pay(self, challenge: Challenge) -> bool:
        if challenge.method != self.name:
            return False
        if challenge.intent == COMPAT_INTENT:
            # Only challenges this instance synthesized: a server cannot send one itself.
            return self._compat.knows(challenge)
        return challenge.intent == "charge"

    def quote(self, challenge: Challenge, context: PaymentContext) -> Quote:
        """Check the challenge and price it in minor units of its currency (no I/O)."""
        if not self.can_pay(challenge):
            raise PaymentRefused("not a handcash challenge this wallet pays", challenge=challenge)
        if challenge.intent == COMPAT_INTENT:
            return self._compat.quote(challenge, context)
        request = parse_charge_request(challenge.request_data, challenge=challenge)
        expires = challenge.expires_at
        refuse_if_expiring(expires, context.now, self.expiry_margin, challenge)
        return Quote(
            challenge=challenge,
            method=self.name,
            intent=challenge.intent,
            amount=Money(request.amount, request.currency),
            payees=tuple(Payee(r.destination, r.amount) for r in request.receivers),
            expires=expires,
            network=f"handcash:{request.instrument.lower()}",
            details={"request": request},
        )

    # -- pay -------------------------------------------------------------------------------

    def pay(self, quote: Quote, context: PaymentContext) -> Generator[Effect, Any, PaymentProof]:
        """Send one HandCash payment for ``quote`` and return ``{"transactionId": ...}``."""
        if quote.intent == COMPAT_INTENT:
            return (yield from self._compat.pay(quote, context))
        request = quote.details["request"]
        if not isinstance(request, HandCashChargeRequest):
            raise TypeError("quote was not made by HandCashCharge.quote")
        challenge = quote.challenge
        refuse_if_expiring(quote.expires, context.now, self.expiry_margin, challenge)
        total = request.send_amount(request.amount)
        if self.check_spendable:
            yield from self._check_limit(request, total, challenge)
        body = self._pay_body(request, challenge)
        note = body["note"]
        # A pay request cannot be deduplicated by HandCash: from here value may move.
        yield Checkpoint("broadcast", None)
        try:
            reply: HttpReply = yield self._connect.pay(body)
        except EffectFailed as failed:
            if not failed.delivered:
                raise NothingSent(
                    "HandCash could not be reached; nothing was paid", challenge_id=challenge.id
                ) from failed
            raise PaymentOutcomeUnknown(
                f"no answer from HandCash to the payment (note {note!r}): it may have been "
                "paid; check the wallet's history",
                challenge_id=challenge.id,
            ) from failed
        # Only what is needed is kept in this frame, never the parsed body: a traceback with
        # captured locals would show it, and an error body may echo the app-secret header.
        is_json, txid, fiat = _pay_answer(reply)
        if reply.status in _REFUSED and is_json and txid is None:
            # HandCash's own answer (a JSON error) that it refused: nothing was debited.
            raise NothingSent(
                f"HandCash declined the payment: {self._error_text(reply)}",
                challenge_id=challenge.id,
            )
        if not 200 <= reply.status < 300:
            # A 5xx (or an unexpected 4xx) may come after HandCash debited the wallet.
            raise PaymentOutcomeUnknown(
                f"HandCash failed while paying ({self._error_text(reply)}, note {note!r}): "
                "the payment may have gone through",
                challenge_id=challenge.id,
                reference=txid,
            )
        if not is_json or txid is None:
            raise PaymentOutcomeUnknown(
                f"HandCash accepted the payment (note {note!r}) but sent no transaction id",
                challenge_id=challenge.id,
            )
        self._check_sent(fiat, request, total, txid, challenge)
        payload: dict[str, Any] = {"transactionId": txid}
        if request.external_id is not None:
            payload["externalId"] = request.external_id
        return PaymentProof(payload=payload, reference=txid, money_moved=True)

    def _check_limit(
        self, request: HandCashChargeRequest, total: Decimal, challenge: Challenge
    ) -> Generator[Effect, Any, None]:
        reply: HttpReply = yield self._connect.spendable_balances()
        if not 200 <= reply.status < 300:
            raise MethodError(
                f"HandCash did not report the spendable balance: {self._error_text(reply)}",
                challenge_id=challenge.id,
            )
        body = _json_object(reply)
        items = body.get("items") if body is not None else None
        wanted = request.currency.code.upper()
        for item in items if isinstance(items, list) else []:
            if isinstance(item, Mapping) and item.get("currencyCode") == wanted:
                left = _decimal(item.get("spendableBalance"))
                if left is not None and left < total:
                    # Checked before anything was sent: nothing can have been debited.
                    raise NothingSent(
                        f"the HandCash app may spend {left} {wanted} more, less than the "
                        f"{total} {wanted} asked",
                        challenge_id=challenge.id,
                    )

    def _pay_body(self, request: HandCashChargeRequest, challenge: Challenge) -> dict[str, Any]:
        body: dict[str, Any] = {"instrumentCurrencyCode": request.instrument}
        if request.instrument == "BSV":
            # BSV amounts are denominated in the fiat currency; MNEE is itself dollars.
            body["denominationCurrencyCode"] = request.currency.code.upper()
        body["note"] = f"mpp:{challenge.id[:24]}"
        body["receivers"] = [
            {"sendAmount": request.send_amount(r.amount), "destination": r.destination}
            for r in request.receivers
        ]
        # On-chain binding: the server (or anyone) can see which challenge this pays for.
        body["attachment"] = {
            "format": "json",
            "value": {"mpp": {"id": challenge.id, "realm": challenge.realm}},
        }
        return body

    def _check_sent(
        self,
        fiat: object,
        request: HandCashChargeRequest,
        total: Decimal,
        txid: str,
        challenge: Challenge,
    ) -> None:
        if not isinstance(fiat, Mapping) or fiat.get("currencyCode") != (
            request.currency.code.upper()
        ):
            return
        sent = _decimal(fiat.get("units"))
        unit = Decimal(1).scaleb(-request.currency.decimals)
        if sent is not None and abs(sent) > total * (1 + FX_TOLERANCE) + unit:
            raise MethodError(
                f"HandCash reports {abs(sent)} {fiat['currencyCode']} sent for a charge of {total}",
                money_moved=True,
                challenge_id=challenge.id,
                reference=txid,
            )

    # -- lookup ----------------------------------------------------------------------------

    def payer(self, network: str | None) -> str | None:
        """``"handcash:<app id>:<auth token's public key>"``: the app and the wallet
        authorization that pay (both public; the app secret and the token stay out)."""
        return f"handcash:{self._connect.app_id}:{self._connect.signer.public_key}"

    def lookup(
        self, reference: str, *, void_after: datetime | None = None
    ) -> Generator[Effect, Any, LookupResult]:
        """Look the transaction ``reference`` up with ``GET /v3/connect/wallet/payment``.

        ``settled`` when HandCash returns that transaction; ``pending`` otherwise. It never
        answers ``failed``: HandCash offers no way to prove a payment did not happen ("no such
        payment" may be a payment of another wallet or app, or one not indexed yet), and a pay
        request that got no answer has no transaction id to look up at all: find it by its
        note (``mpp:<challenge id>``) in the wallet's history and resolve it by hand.
        """
        if not _TXID.fullmatch(reference):
            return LookupResult("pending", reference, detail="not a HandCash transaction id")
        reply: HttpReply = yield self._connect.payment(reference)
        record = _json_object(reply) if 200 <= reply.status < 300 else None
        if record is not None and record.get("transactionId") == reference:
            return LookupResult("settled", reference, detail="HandCash has the transaction")
        if reply.status == 404:
            return LookupResult("pending", reference, detail="HandCash does not know it (yet)")
        return LookupResult("pending", reference, detail=self._error_text(reply))

    def _error_text(self, reply: HttpReply) -> str:
        # The one way HandCash's words enter a message or the journal: scrubbed, capped.
        return handcash_error_text(reply, self._connect.secrets)


def _pay_answer(reply: HttpReply) -> tuple[bool, str | None, object]:
    """Whether the pay answer is a JSON object, its transaction id (when well formed) and its
    ``fiatEquivalent``."""
    record = _json_object(reply)
    if record is None:
        return False, None, None
    txid = record.get("transactionId")
    txid = txid if isinstance(txid, str) and _TXID.fullmatch(txid) else None
    return True, txid, record.get("fiatEquivalent")


def _json_object(reply: HttpReply) -> Mapping[str, Any] | None:
    try:
        body = json.loads(reply.content, parse_float=Decimal)
    except ValueError:
        return None
    return body if isinstance(body, Mapping) else None


def _decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | Decimal | str):
        return None
    try:
        number = Decimal(value)
    except InvalidOperation:
        return None
    return number if number.is_finite() else None
