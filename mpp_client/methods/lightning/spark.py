"""Spark through the Breez SDK (``breez-sdk-spark``, extra ``spark``): the self-custodial
wallet the MPP Lightning reference implementation pays with.

The SDK is async only. Each call is an ``Await`` effect; the sync driver runs it on its one
background event loop, so use one kind of driver per ``SparkPayer`` (the SDK binds the loop it
was connected on). Paying is two steps: ``prepare_send_payment`` quotes the Lightning fee, which
is checked against ``max_fee_sats`` before ``send_payment`` moves anything. A payment still
``PENDING`` when ``send_payment`` returns is polled with ``get_payment`` (``Sleep`` between
polls) until it completes, fails or the polling budget runs out (then: outcome unknown).

Mainnet needs a Breez API key (free from Breez); the mnemonic is the wallet: both are secrets.

Only failures of ``prepare_send_payment`` (which sends nothing) or a fee quote above the cap
prove nothing was paid. A ``FAILED`` payment is confirmed by a lookup; an error of
``send_payment`` leaves the outcome unknown.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Generator
from typing import Any, Literal

from mpp_client.effects import Await, Effect, Sleep
from mpp_client.errors import NothingSent
from mpp_client.extras import require_extra
from mpp_client.methods.base import LookupResult
from mpp_client.methods.lightning.payer import (
    CreatedInvoice,
    LightningPayer,
    PaymentPending,
    PaymentReportedFailed,
    PayResult,
    Received,
    credential_fingerprint,
)
from mpp_client.methods.lightning.rest import error_text
from mpp_client.secret import Secret, reveal

__all__ = ["SparkPayer", "SparkOutcome", "spark_outcome"]

SparkNetwork = Literal["mainnet", "regtest"]


class SparkOutcome:
    """What a Breez ``Payment`` says: ``status`` (``settled``/``failed``/``pending``), the
    ``preimage`` (hex, secret) and ``payment_hash`` when it is a Lightning payment, the ``fee``
    in sats, and the SDK's payment ``id`` (for ``get_payment``)."""

    __slots__ = ("fee_sats", "payment_hash", "payment_id", "preimage", "status")

    def __init__(
        self,
        status: Literal["settled", "failed", "pending"],
        payment_id: str,
        payment_hash: str | None,
        preimage: str | None,
        fee_sats: int | None,
    ) -> None:
        self.status = status
        self.payment_id = payment_id
        self.payment_hash = payment_hash
        self.preimage = preimage
        self.fee_sats = fee_sats

    def __repr__(self) -> str:
        return f"SparkOutcome({self.status}, payment_hash={self.payment_hash!r})"


def spark_outcome(payment: Any) -> SparkOutcome:
    """Read a ``breez_sdk_spark.Payment`` (duck-typed: ``id``, ``status.name``, ``fees``,
    ``details.is_lightning()``, ``details.htlc_details.{payment_hash, preimage}``)."""
    status_name = getattr(getattr(payment, "status", None), "name", "")
    details = getattr(payment, "details", None)
    payment_hash = preimage = None
    if details is not None and getattr(details, "is_lightning", lambda: False)():
        htlc = details.htlc_details
        payment_hash = str(htlc.payment_hash).lower()
        preimage = str(htlc.preimage).lower() if htlc.preimage else None
    fees = getattr(payment, "fees", None)
    fee_sats = int(fees) if isinstance(fees, int) else None
    status: Literal["settled", "failed", "pending"]
    if status_name == "COMPLETED":
        status = "settled"
    elif status_name == "FAILED":
        status = "failed"
    else:
        status = "pending"
    return SparkOutcome(status, str(getattr(payment, "id", "")), payment_hash, preimage, fee_sats)


class SparkPayer(LightningPayer):
    """Pays BOLT11 invoices from a Spark wallet.

    Either give ``mnemonic`` (secret), ``network`` and, on mainnet, ``api_key`` (secret) plus a
    ``storage_dir`` for the SDK's database (connected on first use), or ``sdk=`` an already
    connected ``BreezSdk``. ``completion_timeout`` is how many seconds ``send_payment`` waits
    for completion (whole seconds, rounded up, as the SDK takes them); ``poll_seconds`` and
    ``max_polls`` bound the polling after that.
    ``account`` (not secret, e.g. the wallet's identity public key from ``get_info``) names
    the wallet in ``identity``; without it a one-way fingerprint of the mnemonic does. Give it
    with ``sdk=``, which carries no mnemonic.
    """

    name = "spark"

    def __init__(
        self,
        *,
        mnemonic: str | Secret[str] | None = None,
        network: SparkNetwork = "mainnet",
        api_key: str | Secret[str] | None = None,
        storage_dir: str | None = None,
        sdk: Any = None,
        completion_timeout: float = 30.0,
        poll_seconds: float = 2.0,
        max_polls: int = 30,
        account: str | None = None,
    ) -> None:
        if sdk is None:
            require_extra("spark", "SparkPayer")
        if sdk is None and (mnemonic is None or storage_dir is None):
            raise ValueError("give mnemonic= and storage_dir= (or a connected sdk=)")
        if sdk is None and network == "mainnet" and not api_key:
            raise ValueError("Spark on mainnet needs a Breez api_key")
        self._sdk = sdk
        # Held as Secret so that neither shows in vars(), asdict or captured locals.
        self._mnemonic: Secret[str] | None = None if mnemonic is None else Secret(mnemonic)
        self._api_key: Secret[str] | None = None if api_key is None else Secret(api_key)
        self._network = network
        self._storage_dir = storage_dir
        self._completion_timeout = math.ceil(completion_timeout)
        self._poll_seconds = poll_seconds
        self._max_polls = max_polls
        if account is not None and (not account or any(c in account for c in "/\r\n ")):
            raise ValueError("account must be a non-empty name without '/' or spaces")
        if account is not None and account in (reveal(mnemonic), reveal(api_key)):
            raise ValueError("account names the wallet; it must not be a secret")
        self._account = account
        self._identity: str | None = None

    @property
    def identity(self) -> str:
        """``"spark:<network>:<account>"``, ``"spark:<network>:<mnemonic fingerprint>"``, or
        ``"spark:<network>:sdk"`` for an ``sdk=`` given without ``account`` (not told apart
        from another such wallet: give ``account``)."""
        if self._identity is None:
            if self._account is not None:
                who = self._account
            elif self._mnemonic is not None:
                who = credential_fingerprint(" ".join(self._mnemonic.reveal().split()))
            else:
                who = "sdk"
            self._identity = f"spark:{self._network}:{who}"
        return self._identity

    def __repr__(self) -> str:
        return f"SparkPayer(network={self._network!r}, mnemonic=<redacted>, api_key=<redacted>)"

    async def _connected(self) -> Any:
        if self._sdk is None:
            import breez_sdk_spark as breez

            config = breez.default_config(
                breez.Network.MAINNET if self._network == "mainnet" else breez.Network.REGTEST
            )
            config.api_key = None if self._api_key is None else self._api_key.reveal()
            self._sdk = await breez.connect(
                breez.ConnectRequest(
                    config=config,
                    seed=breez.Seed.MNEMONIC(
                        mnemonic=None if self._mnemonic is None else self._mnemonic.reveal(),
                        passphrase=None,
                    ),
                    storage_dir=str(self._storage_dir),
                )
            )
        return self._sdk

    def pay(self, invoice: str, max_fee_sats: int) -> Generator[Effect, Any, PayResult]:
        """Quote the fee, refuse when it exceeds ``max_fee_sats``, then send and wait."""
        prepared = yield Await(lambda: self._prepare(invoice, max_fee_sats))
        payment = yield Await(lambda: self._send(prepared))
        outcome = spark_outcome(payment)
        polls = 0
        while outcome.status == "pending" and polls < self._max_polls:
            yield Sleep(self._poll_seconds)
            payment = yield Await(functools.partial(self._get, outcome.payment_id))
            outcome = spark_outcome(payment)
            polls += 1
        return _pay_result(outcome)

    async def _prepare(self, invoice: str, max_fee_sats: int) -> Any:
        import breez_sdk_spark as breez

        try:
            sdk = await self._connected()
            prepared = await sdk.prepare_send_payment(
                breez.PrepareSendPaymentRequest(
                    payment_request=breez.PaymentRequest.INPUT(input=invoice)
                )
            )
        except Exception as exc:
            # Nothing is sent by prepare: it only quotes.
            raise NothingSent(
                f"Spark could not prepare the payment ({type(exc).__name__})"
            ) from None
        fee = lightning_fee_sats(prepared)
        if fee is None:
            raise NothingSent("Spark did not prepare a Lightning invoice payment")
        if fee > max_fee_sats:
            raise NothingSent(f"Spark quotes a {fee} sat fee, above the {max_fee_sats} sat cap")
        return prepared

    async def _send(self, prepared: Any) -> Any:
        import breez_sdk_spark as breez

        sdk = await self._connected()
        response = await sdk.send_payment(
            breez.SendPaymentRequest(
                prepare_response=prepared,
                options=breez.SendPaymentOptions.BOLT11_INVOICE(
                    prefer_spark=False, completion_timeout_secs=self._completion_timeout
                ),
            )
        )
        return response.payment

    async def _get(self, payment_id: str) -> Any:
        import breez_sdk_spark as breez

        sdk = await self._connected()
        response = await sdk.get_payment(breez.GetPaymentRequest(payment_id=payment_id))
        return response.payment

    def lookup(self, payment_hash: str) -> Generator[Effect, Any, LookupResult]:
        """Scan the wallet's recent outgoing payments for ``payment_hash``: any completed ->
        settled; only failed ones -> failed; none found -> pending (the scan is bounded and the
        SDK's local store may not have synced yet, so absence proves nothing)."""
        payments = yield Await(self._recent_sends)
        statuses = {
            outcome.status
            for outcome in map(spark_outcome, payments)
            if outcome.payment_hash == payment_hash
        }
        if "settled" in statuses:
            return LookupResult("settled", payment_hash)
        if statuses == {"failed"}:
            return LookupResult("failed", payment_hash, detail="Spark reports it failed")
        if not statuses:
            return LookupResult("pending", payment_hash, detail="no Spark payment with this hash")
        return LookupResult("pending", payment_hash)

    async def _recent_sends(self) -> list[Any]:
        import breez_sdk_spark as breez

        sdk = await self._connected()
        response = await sdk.list_payments(
            breez.ListPaymentsRequest(type_filter=[breez.PaymentType.SEND], limit=200)
        )
        return list(response.payments)

    # --- receiving (Lightning sessions) ---------------------------------------------------------

    receives_amountless = True

    def create_amountless_invoice(
        self, memo: str, expiry_seconds: int
    ) -> Generator[Effect, Any, CreatedInvoice]:
        """``receive_payment`` of a BOLT11 invoice with no ``amount_sats``."""
        invoice: str = yield Await(lambda: self._receive(memo, expiry_seconds))
        from mpp_client.methods.lightning.invoice import InvoiceError, decode_invoice

        try:
            payment_hash = decode_invoice(invoice).payment_hash
        except InvoiceError:
            payment_hash = ""
        return CreatedInvoice(invoice, payment_hash)

    async def _receive(self, memo: str, expiry_seconds: int) -> str:
        import breez_sdk_spark as breez

        try:
            sdk = await self._connected()
            response = await sdk.receive_payment(
                breez.ReceivePaymentRequest(
                    payment_method=breez.ReceivePaymentMethod.BOLT11_INVOICE(
                        description=memo,
                        amount_sats=None,
                        expiry_secs=expiry_seconds,
                        payment_hash=None,
                        receiver_identity_public_key=None,
                    )
                )
            )
        except Exception as exc:
            raise NothingSent(f"Spark did not create an invoice ({type(exc).__name__})") from None
        return str(response.payment_request)

    def lookup_received(self, payment_hash: str) -> Generator[Effect, Any, Received]:
        """Scan recent incoming payments: a completed one with this hash -> received (its
        ``amount`` in sats); none -> unknown (the local store may lag)."""
        payments = yield Await(self._recent_receives)
        for payment in payments:
            outcome = spark_outcome(payment)
            if outcome.payment_hash == payment_hash and outcome.status == "settled":
                amount = getattr(payment, "amount", None)
                return Received(
                    "received",
                    payment_hash,
                    int(amount) * 1000 if isinstance(amount, int) else None,
                )
        return Received("unknown", payment_hash, detail="no completed Spark receive with this hash")

    async def _recent_receives(self) -> list[Any]:
        import breez_sdk_spark as breez

        sdk = await self._connected()
        response = await sdk.list_payments(
            breez.ListPaymentsRequest(type_filter=[breez.PaymentType.RECEIVE], limit=200)
        )
        return list(response.payments)


def lightning_fee_sats(prepared: Any) -> int | None:
    """The Lightning fee (sats) a ``PrepareSendPaymentResponse`` quotes, or ``None`` when it is
    not a BOLT11 payment."""
    method = getattr(prepared, "payment_method", None)
    if method is None or not getattr(method, "is_bolt11_invoice", lambda: False)():
        return None
    fee = int(method.lightning_fee_sats)
    spark_fee = getattr(method, "spark_transfer_fee_sats", None)
    return max(fee, int(spark_fee)) if isinstance(spark_fee, int) else fee


def _pay_result(outcome: SparkOutcome) -> PayResult:
    if outcome.status == "failed":
        raise PaymentReportedFailed("Spark reports the payment failed")
    if outcome.status == "pending" or outcome.preimage is None:
        raise PaymentPending(f"Spark payment {error_text(outcome.payment_id, 80)} is still pending")
    return PayResult(outcome.preimage, outcome.payment_hash or "", (outcome.fee_sats or 0) * 1000)
