"""``lightning`` / ``charge``: pay the BOLT11 invoice in a challenge and prove it with the
preimage (protocol README §15).

Every check happens in ``quote`` before anything is paid: the invoice is decoded and its
signature verified; its amount, network, payment hash and expiry must agree with the challenge
and with this wallet's configuration; a payment hash that was paid before is refused. ``pay``
then announces the payment hash to the journal (``Checkpoint("broadcast")``), pays through the
configured ``LightningPayer`` and checks ``sha256(preimage) == payment_hash`` before the
preimage may leave the process.

The payment hash is the quote's ``reference``, so the wallet holds at most one live journal
entry per invoice (checked inside its reservation); ``already_paid`` is a second line.

Once the backend has been asked to pay, the invoice is never paid a second time by this method
and the amount stays held unless the backend PROVES nothing moved: ``NothingSent`` is raised
only for a definite refusal before any attempt (or a request that never reached the backend),
or for a failure the node reported AND a lookup on the same node confirmed. Every other error
becomes ``PaymentOutcomeUnknown``, which ``lookup(payment_hash)`` resolves later.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Generator, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from mpp_client.effects import Checkpoint, Effect
from mpp_client.errors import (
    BudgetExceeded,
    ChallengeExpired,
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
)
from mpp_client.methods.lightning.invoice import (
    Invoice,
    InvoiceError,
    LightningNetwork,
    decode_invoice,
)
from mpp_client.methods.lightning.payer import (
    LightningPayer,
    PaymentPending,
    PaymentReportedFailed,
    never_reached_backend,
    preimage_matches,
)
from mpp_client.money import SAT, Money

if TYPE_CHECKING:
    from mpp_client.protocol import Challenge

__all__ = ["LightningCharge"]

_NETWORKS: frozenset[str] = frozenset({"mainnet", "testnet", "signet", "regtest"})
_AMOUNT = re.compile(r"[1-9][0-9]{0,17}")
_HASH = re.compile(r"[0-9a-fA-F]{64}")


class LightningCharge(PaymentMethod):
    """Pays ``lightning``/``charge`` challenges through a ``LightningPayer``.

    ``network`` is the Lightning network this wallet is on (``"mainnet"``, ``"testnet"``,
    ``"signet"`` or ``"regtest"``). ``max_fee_sats`` is the most routing fee one payment may
    cost, in satoshis; it is passed to the backend and counted in the quote (``max_fee``) so the
    spend policy sees amount plus fee. ``expiry_margin_seconds`` is how long the invoice and
    the challenge must still be valid when the quote is made, so the payment can complete.
    ``already_paid(payment_hash)`` answers whether this wallet paid that hash before (the
    wallet's journal provides it); such an invoice is refused. ``max_amount_sats`` optionally
    caps one invoice (in satoshis, before fees) independently of any wallet policy.
    """

    name = "lightning"
    intents = frozenset({"charge"})

    def __init__(
        self,
        payer: LightningPayer,
        *,
        network: LightningNetwork = "mainnet",
        max_fee_sats: int = 100,
        expiry_margin_seconds: int = 30,
        already_paid: Callable[[str], bool] | None = None,
        max_amount_sats: int | None = None,
    ) -> None:
        if network not in _NETWORKS:
            raise ValueError(f"unknown Lightning network {network!r}")
        if isinstance(max_fee_sats, bool) or not isinstance(max_fee_sats, int) or max_fee_sats < 0:
            raise ValueError("max_fee_sats must be a non-negative int of satoshis")
        if expiry_margin_seconds < 0:
            raise ValueError("expiry_margin_seconds must not be negative")
        if max_amount_sats is not None and max_amount_sats <= 0:
            raise ValueError("max_amount_sats must be positive")
        self._payer = payer
        self.network: LightningNetwork = network
        self.max_fee_sats = max_fee_sats
        self.expiry_margin = timedelta(seconds=expiry_margin_seconds)
        self._already_paid = already_paid
        self.max_amount_sats = max_amount_sats

    def __repr__(self) -> str:
        return (
            f"LightningCharge(payer={self._payer!r}, network={self.network!r}, "
            f"max_fee_sats={self.max_fee_sats})"
        )

    # --- before paying ------------------------------------------------------------------------

    def payer(self, network: str | None) -> str | None:
        """``"lightning:<backend identity>"`` (e.g. ``"lightning:lnd:<node id>"``): the node
        or wallet that pays, never a secret. ``None`` when the backend names no identity."""
        identity = self._payer.identity
        return None if identity is None else f"lightning:{identity}"

    def use_history(self, already_paid: Callable[[str], bool]) -> None:
        """Take the wallet's journal as the record of paid hashes, unless one was given."""
        if self._already_paid is None:
            self._already_paid = already_paid

    def quote(self, challenge: Challenge, context: PaymentContext) -> Quote:
        """Check the challenge and its invoice; price it in satoshis. No I/O, nothing paid."""

        def refuse(reason: str) -> PaymentRefused:
            return PaymentRefused(reason, challenge=challenge)

        request = challenge.request_data
        currency = request.get("currency")
        if not isinstance(currency, str) or currency.lower() != "sat":
            raise refuse(f"lightning: currency must be 'sat', got {_short(currency)}")
        amount_text = request.get("amount")
        if not isinstance(amount_text, str) or not _AMOUNT.fullmatch(amount_text):
            raise refuse("lightning: amount must be a positive whole number of sats (a string)")
        amount_sats = int(amount_text)
        details = request.get("methodDetails")
        if not isinstance(details, Mapping):
            raise refuse("lightning: methodDetails is missing")
        invoice_text = details.get("invoice")
        if not isinstance(invoice_text, str):
            raise refuse("lightning: methodDetails.invoice is missing")
        try:
            invoice = decode_invoice(invoice_text)
        except InvoiceError as exc:
            raise refuse(f"lightning: {exc}") from None

        self._check_amount(invoice, amount_sats, refuse)
        self._check_network(invoice, details.get("network", "mainnet"), refuse)
        self._check_payment_hash(invoice, details.get("paymentHash"), refuse)
        expires = self._check_expiry(invoice, challenge, context.now)
        if self._already_paid is not None and self._already_paid(invoice.payment_hash):
            raise refuse(
                f"lightning: invoice {invoice.payment_hash} was already paid by this wallet"
            )
        if self.max_amount_sats is not None and amount_sats > self.max_amount_sats:
            raise BudgetExceeded(
                f"lightning: {amount_sats} sat exceeds the per-invoice cap of "
                f"{self.max_amount_sats} sat",
                rule="lightning.max_amount_sats",
                challenge=challenge,
            )

        amount = Money(amount_sats, SAT)
        return Quote(
            challenge=challenge,
            method=self.name,
            intent="charge",
            amount=amount,
            payees=(Payee(invoice.payee, amount_sats),),
            expires=expires,
            network=self.network,
            max_fee=Money(self.max_fee_sats, SAT),
            details={"invoice": invoice.text, "payment_hash": invoice.payment_hash},
            # Known before paying: the wallet keeps one live entry per payment hash, so two
            # concurrent requests for one invoice cannot both reach the backend.
            reference=invoice.payment_hash,
        )

    def _check_amount(
        self, invoice: Invoice, amount_sats: int, refuse: Callable[[str], PaymentRefused]
    ) -> None:
        if invoice.amount_msat is None:
            raise refuse("lightning: the invoice has no amount (amountless invoices are refused)")
        if invoice.amount_sat is None:
            raise refuse(
                f"lightning: the invoice amount {invoice.amount_msat} msat is not whole sats"
            )
        if invoice.amount_sat != amount_sats:
            raise refuse(
                f"lightning: the invoice asks {invoice.amount_sat} sat but the challenge "
                f"amount is {amount_sats} sat"
            )

    def _check_network(
        self, invoice: Invoice, declared: object, refuse: Callable[[str], PaymentRefused]
    ) -> None:
        if not isinstance(declared, str) or declared not in _NETWORKS:
            raise refuse(f"lightning: unknown methodDetails.network {_short(declared)}")
        if invoice.network != declared:
            raise refuse(
                f"lightning: the invoice is for {invoice.network} but the challenge says {declared}"
            )
        if invoice.network != self.network:
            raise refuse(
                f"lightning: the invoice is for {invoice.network} but this wallet pays on "
                f"{self.network}"
            )

    def _check_payment_hash(
        self, invoice: Invoice, declared: object, refuse: Callable[[str], PaymentRefused]
    ) -> None:
        if declared is None:
            return
        if not isinstance(declared, str) or not _HASH.fullmatch(declared):
            raise refuse("lightning: methodDetails.paymentHash is not 64 hex characters")
        if declared.lower() != invoice.payment_hash:
            raise refuse("lightning: methodDetails.paymentHash differs from the invoice's")

    def _check_expiry(self, invoice: Invoice, challenge: Challenge, now: datetime) -> datetime:
        now = now if now.tzinfo is not None else now.replace(tzinfo=UTC)
        expires = invoice.expires_at
        challenge_expires = _challenge_expires(challenge)
        if challenge_expires is not None and challenge_expires < expires:
            expires = challenge_expires
        if expires - now < self.expiry_margin:
            which = "challenge" if expires is challenge_expires else "invoice"
            raise ChallengeExpired(
                f"lightning: the {which} expires at {expires.isoformat()}, within the "
                f"{int(self.expiry_margin.total_seconds())} s safety margin",
                challenge=challenge,
            )
        return expires

    # --- paying -------------------------------------------------------------------------------

    def pay(self, quote: Quote, context: PaymentContext) -> Generator[Effect, Any, PaymentProof]:
        """Pay the quoted invoice; return ``{"preimage": <64 hex>}`` as the credential payload.

        Raises ``NothingSent`` only when the backend proves nothing was paid, and
        ``PaymentOutcomeUnknown`` (the amount stays held) whenever the payment may have left.
        """
        invoice_text = str(quote.details["invoice"])
        payment_hash = str(quote.details["payment_hash"])
        challenge_id = quote.challenge.id
        name = self._payer.name
        # Checked again right before paying: another request may have paid it since the quote.
        if self._already_paid is not None and self._already_paid(payment_hash):
            raise PaymentRefused(
                f"lightning: invoice {payment_hash} was already paid by this wallet",
                challenge=quote.challenge,
            )
        yield Checkpoint("broadcast", payment_hash)

        def unknown(reason: str) -> PaymentOutcomeUnknown:
            return PaymentOutcomeUnknown(
                f"lightning ({name}): {reason}", challenge_id=challenge_id, reference=payment_hash
            )

        def nothing_sent(reason: str) -> NothingSent:
            return NothingSent(
                f"lightning ({name}): nothing was paid: {reason}",
                challenge_id=challenge_id,
                reference=payment_hash,
            )

        # Every failure is decided inside the handlers and raised after them, so the backend's
        # own exception is neither ``__cause__`` nor ``__context__`` of what the caller gets:
        # its traceback's frames hold the backend's raw answer (and, for a transport error,
        # the request with its auth headers). Only its scrubbed ``reason`` is carried on.
        failure: Exception | None = None
        reported: str | None = None
        try:
            result = yield from self._payer.pay(invoice_text, self.max_fee_sats)
        except NothingSent as exc:
            failure = nothing_sent(exc.reason)
        except PaymentReportedFailed as exc:
            reported = exc.reason
        except PaymentPending as exc:
            failure = unknown(f"payment pending: {exc.reason}")
        except Exception as exc:
            if never_reached_backend(exc):
                failure = nothing_sent(f"the backend could not be reached ({type(exc).__name__})")
            else:
                failure = unknown(
                    f"no answer after asking to pay ({type(exc).__name__}); the payment may "
                    "have been made"
                )
        if reported is not None:
            # The node's answer to the pay call is not proof enough: the amount is released
            # only when a lookup on the same node agrees that no part can still settle.
            if (yield from self._confirm_failed(payment_hash)):
                raise nothing_sent(f"{reported} (confirmed by a lookup)")
            raise unknown(
                f"the backend reported a failure that a lookup did not confirm: {reported}"
            )
        if failure is not None:
            raise failure
        preimage = result.preimage.lower()
        if not preimage_matches(preimage, payment_hash):
            # The backend says it paid but gives no valid proof: money may be gone, and the
            # server would reject this preimage. Surface it, never pay again.
            raise unknown(
                "the backend returned a preimage that does not hash to the invoice's payment hash"
            )
        return PaymentProof(
            payload={"preimage": preimage}, reference=payment_hash, money_moved=True
        )

    def _confirm_failed(self, payment_hash: str) -> Generator[Effect, Any, bool]:
        try:
            return (yield from self._payer.confirm_failed(payment_hash))
        except Exception:
            # A lookup that fails proves nothing: the outcome stays unknown.
            return False

    def lookup(
        self, reference: str, *, void_after: datetime | None = None
    ) -> Generator[Effect, Any, LookupResult]:
        """Ask the backend what became of the payment of ``reference`` (a payment hash).

        ``void_after`` is ignored: a Lightning payment whose HTLCs left before the invoice
        expired can still settle after it, so no deadline alone proves it void. ``failed``
        comes only from the backend (see ``LightningPayer.lookup``); the wallet trusts it only
        when ``payer()`` is the one recorded with the payment.
        """
        if not _HASH.fullmatch(reference):
            raise ValueError("a Lightning payment reference is a 64-hex payment hash")
        return (yield from self._payer.lookup(reference.lower()))


def _challenge_expires(challenge: Challenge) -> datetime | None:
    try:
        return challenge.expires_at
    except ValueError:
        # An unreadable deadline cannot be honoured: treat it as already passed.
        return datetime.fromtimestamp(0, UTC)


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
