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
from mpp_client.extras import require_extra
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
    check_amount,
    check_network,
    check_payment_hash,
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
    from mpp_client.methods.config import SecretField, SecretLoader
    from mpp_client.protocol import Challenge

__all__ = ["LightningCharge", "check_expiry", "pay_invoice"]

_NETWORKS: frozenset[str] = frozenset({"mainnet", "testnet", "signet", "regtest"})
_AMOUNT = re.compile(r"[1-9][0-9]{0,17}")
_HASH = re.compile(r"[0-9a-fA-F]{64}")


class LightningCharge(PaymentMethod):
    """Pays ``lightning``/``charge`` challenges through a ``LightningPayer``.

    ``network`` is the Lightning network this wallet is on (``"mainnet"``, ``"testnet"``,
    ``"signet"`` or ``"regtest"``). ``max_fee_sats`` is the most routing fee one payment may
    cost, in satoshis; it is passed to the backend and counted in the quote (``max_fee``) so the
    spend policy sees amount plus fee. ``expiry_margin`` is how many seconds the invoice
    and the challenge must still be valid when the quote is made, so the payment can complete.
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
        expiry_margin: float = 30.0,
        already_paid: Callable[[str], bool] | None = None,
        max_amount_sats: int | None = None,
    ) -> None:
        require_extra("lightning", "LightningCharge")
        if network not in _NETWORKS:
            raise ValueError(f"unknown Lightning network {network!r}")
        if isinstance(max_fee_sats, bool) or not isinstance(max_fee_sats, int) or max_fee_sats < 0:
            raise ValueError("max_fee_sats must be a non-negative int of satoshis")
        if expiry_margin < 0:
            raise ValueError("expiry_margin must not be negative (seconds)")
        if max_amount_sats is not None and max_amount_sats <= 0:
            raise ValueError("max_amount_sats must be positive")
        self._payer = payer
        self.network: LightningNetwork = network
        self.max_fee_sats = max_fee_sats
        self.expiry_margin = expiry_margin
        self._already_paid = already_paid
        self.max_amount_sats = max_amount_sats

    def __repr__(self) -> str:
        return (
            f"LightningCharge(payer={self._payer!r}, network={self.network!r}, "
            f"max_fee_sats={self.max_fee_sats})"
        )

    # --- from configuration (mpp_client.methods.config) -------------------------------------

    config_summary = "Bitcoin over Lightning through NWC, LND, CLN, phoenixd or LNbits"

    @classmethod
    def config_secrets(cls, settings: Mapping[str, object]) -> tuple[SecretField, ...]:
        """One secret, ``secret``: what the ``backend`` setting's node or wallet needs."""
        from mpp_client.methods.config import SecretField
        from mpp_client.wallet.keystore import SecretKind

        prompts = {
            "nwc": ("NWC connection URI (nostr+walletconnect://...)", SecretKind.LIGHTNING_NWC_URI),
            "lnd": ("LND admin macaroon (hex)", SecretKind.LIGHTNING_MACAROON),
            "cln": ("Core Lightning rune", SecretKind.LIGHTNING_RUNE),
            "phoenixd": ("phoenixd HTTP password", SecretKind.LIGHTNING_API_KEY),
            "lnbits": ("LNbits admin key", SecretKind.LIGHTNING_API_KEY),
        }
        backend = settings.get("backend", "nwc")
        prompt, kind = prompts.get(str(backend), ("Lightning backend secret", SecretKind.OTHER))
        return (SecretField("secret", prompt, kind),)

    @classmethod
    def from_config(cls, settings: Mapping[str, object], secrets: SecretLoader) -> LightningCharge:
        """From settings ``backend`` (``nwc`` default, ``lnd``, ``cln``, ``phoenixd``,
        ``lnbits``), ``url`` (all but NWC), ``network`` (default mainnet) and
        ``max_fee_sats`` (default 100). The wallet's journal answers ``already_paid``."""
        from mpp_client.methods import lightning
        from mpp_client.methods.config import MethodConfigError, Settings

        read = Settings(settings)
        backend = read.text("backend", "nwc")
        url = read.text("url")
        makers: dict[str, Callable[[str, str], LightningPayer]] = {
            "lnd": lightning.LndRestPayer,
            "cln": lightning.ClnRestPayer,
            "phoenixd": lightning.PhoenixdPayer,
            "lnbits": lightning.LnbitsPayer,
        }
        if backend != "nwc" and backend not in makers:
            raise MethodConfigError(f"unknown lightning backend {backend!r}")
        if backend != "nwc" and url is None:
            raise MethodConfigError(f"the {backend} backend needs url")
        network = read.text("network", "mainnet")
        max_fee_sats = read.integer("max_fee_sats", 100) or 0
        value = secrets("secret").reveal()
        try:
            payer = (
                lightning.NwcPayer(value)
                if backend == "nwc" or url is None
                else makers[str(backend)](url, value)
            )
            return cls(payer, network=network, max_fee_sats=max_fee_sats)  # type: ignore[arg-type]
        except ValueError:
            # Backend constructors validate the secret: their messages are not repeated.
            raise MethodConfigError(f"the {backend} settings or secret are not valid") from None

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
        check_amount(invoice, amount_sats, refuse, field="amount")

    def _check_network(
        self, invoice: Invoice, declared: object, refuse: Callable[[str], PaymentRefused]
    ) -> None:
        check_network(invoice, declared, self.network, refuse, field="methodDetails.network")

    def _check_payment_hash(
        self, invoice: Invoice, declared: object, refuse: Callable[[str], PaymentRefused]
    ) -> None:
        check_payment_hash(invoice, declared, refuse, field="methodDetails.paymentHash")

    def _check_expiry(self, invoice: Invoice, challenge: Challenge, now: datetime) -> datetime:
        return check_expiry(invoice, challenge, now, self.expiry_margin)

    # --- paying -------------------------------------------------------------------------------

    def pay(self, quote: Quote, context: PaymentContext) -> Generator[Effect, Any, PaymentProof]:
        """Pay the quoted invoice; return ``{"preimage": <64 hex>}`` as the credential payload.

        Raises ``NothingSent`` only when the backend proves nothing was paid, and
        ``PaymentOutcomeUnknown`` (the amount stays held) whenever the payment may have left.
        """
        invoice_text = str(quote.details["invoice"])
        payment_hash = str(quote.details["payment_hash"])
        challenge_id = quote.challenge.id
        # Checked again right before paying: another request may have paid it since the quote.
        if self._already_paid is not None and self._already_paid(payment_hash):
            raise PaymentRefused(
                f"lightning: invoice {payment_hash} was already paid by this wallet",
                challenge=quote.challenge,
            )
        yield Checkpoint("broadcast", payment_hash)
        preimage = yield from pay_invoice(
            self._payer, invoice_text, payment_hash, self.max_fee_sats, challenge_id=challenge_id
        )
        return PaymentProof(
            payload={"preimage": preimage}, reference=payment_hash, money_moved=True
        )

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


def check_expiry(
    invoice: Invoice, challenge: Challenge, now: datetime, margin_seconds: float
) -> datetime:
    """The earlier of the invoice's and the challenge's expiry; ``ChallengeExpired`` when it is
    less than ``margin_seconds`` away from ``now`` (the payment could not complete)."""
    now = now if now.tzinfo is not None else now.replace(tzinfo=UTC)
    expires = invoice.expires_at
    challenge_expires = _challenge_expires(challenge)
    if challenge_expires is not None and challenge_expires < expires:
        expires = challenge_expires
    if expires - now < timedelta(seconds=margin_seconds):
        which = "challenge" if expires is challenge_expires else "invoice"
        raise ChallengeExpired(
            f"lightning: the {which} expires at {expires.isoformat()}, within the "
            f"{margin_seconds:g} s safety margin",
            challenge=challenge,
        )
    return expires


def pay_invoice(
    payer: LightningPayer,
    invoice_text: str,
    payment_hash: str,
    max_fee_sats: int,
    *,
    challenge_id: str,
) -> Generator[Effect, Any, str]:
    """Pay ``invoice_text`` through ``payer`` and return its preimage (64 lower-case hex, a
    secret), checked against ``payment_hash``. The caller has already written the
    ``broadcast`` checkpoint.

    Raises ``NothingSent`` only when the backend proves nothing was paid, and
    ``PaymentOutcomeUnknown`` whenever the payment may have left.
    """
    name = payer.name

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
        result = yield from payer.pay(invoice_text, max_fee_sats)
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
        if (yield from _confirm_failed(payer, payment_hash)):
            raise nothing_sent(f"{reported} (confirmed by a lookup)")
        raise unknown(f"the backend reported a failure that a lookup did not confirm: {reported}")
    if failure is not None:
        raise failure
    preimage = result.preimage.lower()
    if not preimage_matches(preimage, payment_hash):
        # The backend says it paid but gives no valid proof: money may be gone, and the
        # server would reject this preimage. Surface it, never pay again.
        raise unknown(
            "the backend returned a preimage that does not hash to the invoice's payment hash"
        )
    return preimage


def _confirm_failed(payer: LightningPayer, payment_hash: str) -> Generator[Effect, Any, bool]:
    try:
        return (yield from payer.confirm_failed(payment_hash))
    except Exception:
        # A lookup that fails proves nothing: the outcome stays unknown.
        return False


def _challenge_expires(challenge: Challenge) -> datetime | None:
    try:
        return challenge.expires_at
    except ValueError:
        # An unreadable deadline cannot be honoured: treat it as already passed.
        return datetime.fromtimestamp(0, UTC)


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
