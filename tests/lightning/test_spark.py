"""Spark (Breez SDK) payer: the mapping of the SDK's real response types, driven by a fake SDK
object; and a live payment that runs only when credentials are in the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import pytest

if os.environ.get("MPP_ALLOW_SKIP") == "1":
    pytest.importorskip("breez_sdk_spark")
# Without MPP_ALLOW_SKIP a missing SDK fails the run (the `spark` extra must be installed).
import breez_sdk_spark as breez

from mpp_client.effects import Sleep
from mpp_client.errors import NothingSent, PaymentOutcomeUnknown, PaymentRefused
from mpp_client.methods.lightning import LightningCharge
from mpp_client.methods.lightning.spark import SparkPayer, lightning_fee_sats, spark_outcome

from .challenges import charge_request, context, make_challenge
from .effects_driver import Recorder, run
from .invoices import NODE_ID, make_invoice


def sdk_payment(invoice, status: str, *, preimage: str | None, payment_id: str = "pay-1"):
    return breez.Payment(
        id=payment_id,
        payment_type=breez.PaymentType.SEND,
        status=getattr(breez.PaymentStatus, status),
        amount=100,
        fees=2,
        timestamp=1700000000,
        method=breez.PaymentMethod.LIGHTNING,
        details=breez.PaymentDetails.LIGHTNING(
            description="weather report",
            invoice=invoice.text,
            destination_pubkey=NODE_ID,
            htlc_details=breez.SparkHtlcDetails(
                payment_hash=invoice.payment_hash,
                preimage=preimage,
                expiry_time=0,
                status=breez.SparkHtlcStatus.PREIMAGE_SHARED
                if preimage
                else breez.SparkHtlcStatus.WAITING_FOR_PREIMAGE,
            ),
            lnurl_pay_info=None,
            lnurl_withdraw_info=None,
            lnurl_receive_metadata=None,
            conversion_info=None,
        ),
        conversion_details=None,
    )


def prepared(invoice, fee_sats: int):
    details = breez.Bolt11InvoiceDetails(
        amount_msat=100_000,
        description="weather report",
        description_hash=None,
        expiry=600,
        invoice=breez.Bolt11Invoice(
            bolt11=invoice.text,
            source=breez.PaymentRequestSource(bip_21_uri=None, bip_353_address=None),
        ),
        min_final_cltv_expiry_delta=18,
        network=breez.BitcoinNetwork.BITCOIN,
        payee_pubkey=NODE_ID,
        payment_hash=invoice.payment_hash,
        payment_secret="00" * 32,
        routing_hints=[],
        timestamp=1700000000,
    )
    return breez.PrepareSendPaymentResponse(
        payment_method=breez.SendPaymentMethod.BOLT11_INVOICE(
            invoice_details=details, spark_transfer_fee_sats=None, lightning_fee_sats=fee_sats
        ),
        amount=100,
        token_identifier=None,
        conversion_estimate=None,
        fee_policy=breez.FeePolicy.FEES_EXCLUDED,
    )


@dataclass
class FakeBreezSdk:
    """Answers like a connected BreezSdk; records every call."""

    invoice: Any
    fee_sats: int = 2
    send_status: str = "COMPLETED"
    later: list[str] = field(default_factory=list)  # statuses get_payment returns in turn
    prepare_error: Exception | None = None
    send_error: Exception | None = None
    listed: list[str] | None = None  # statuses list_payments shows for this invoice's hash
    calls: list[tuple[str, Any]] = field(default_factory=list)

    def _payment(self, status: str):
        preimage = self.invoice.preimage if status == "COMPLETED" else None
        return sdk_payment(self.invoice, status, preimage=preimage)

    async def prepare_send_payment(self, request):
        self.calls.append(("prepare", request.payment_request.input))
        if self.prepare_error:
            raise self.prepare_error
        return prepared(self.invoice, self.fee_sats)

    async def send_payment(self, request):
        options = request.options
        self.calls.append(("send", (options.prefer_spark, options.completion_timeout_secs)))
        if self.send_error:
            raise self.send_error
        return breez.SendPaymentResponse(payment=self._payment(self.send_status))

    async def get_payment(self, request):
        self.calls.append(("get", request.payment_id))
        status = self.later.pop(0) if self.later else "PENDING"
        return breez.GetPaymentResponse(payment=self._payment(status))

    async def list_payments(self, request):
        self.calls.append(("list", request.type_filter))
        statuses = ["COMPLETED"] if self.listed is None else self.listed
        return breez.ListPaymentsResponse(payments=[self._payment(s) for s in statuses])


def pay(sdk: FakeBreezSdk, recorder=None, request=None, **payer_args):
    charge = LightningCharge(SparkPayer(sdk=sdk, **payer_args), max_fee_sats=5)
    ctx = context()
    quote = charge.quote(make_challenge(request or charge_request(sdk.invoice.text)), ctx)
    return run(charge.pay(quote, ctx), recorder=recorder)


def test_completed_payment_yields_preimage():
    invoice = make_invoice(100_000)
    sdk = FakeBreezSdk(invoice)
    proof = pay(sdk)
    assert proof.payload == {"preimage": invoice.preimage}
    assert sdk.calls == [("prepare", invoice.text), ("send", (False, 30))]


def test_pending_payment_is_polled_until_completed():
    invoice = make_invoice(100_000)
    sdk = FakeBreezSdk(invoice, send_status="PENDING", later=["PENDING", "COMPLETED"])
    recorder = Recorder()
    proof = pay(sdk, recorder, poll_seconds=0.5)
    assert proof.payload == {"preimage": invoice.preimage}
    assert [c[0] for c in sdk.calls] == ["prepare", "send", "get", "get"]
    assert [e for e in recorder.effects if isinstance(e, Sleep)] == [Sleep(0.5), Sleep(0.5)]


def test_payment_still_pending_after_polling_is_outcome_unknown():
    invoice = make_invoice(100_000)
    sdk = FakeBreezSdk(invoice, send_status="PENDING")
    with pytest.raises(PaymentOutcomeUnknown):
        pay(sdk, max_polls=3, poll_seconds=0)
    assert [c[0] for c in sdk.calls].count("send") == 1
    assert [c[0] for c in sdk.calls].count("get") == 3


def test_failed_payment_confirmed_by_the_wallet_list_is_nothing_sent():
    invoice = make_invoice(100_000)
    sdk = FakeBreezSdk(invoice, send_status="FAILED", listed=["FAILED"])
    with pytest.raises(NothingSent, match="confirmed by a lookup") as info:
        pay(sdk)
    assert info.value.money_moved is False
    assert [c[0] for c in sdk.calls] == ["prepare", "send", "list"]


@pytest.mark.parametrize("listed", [[], ["PENDING"], ["FAILED", "PENDING"]])
def test_failed_payment_not_confirmed_by_the_wallet_list_is_outcome_unknown(listed):
    invoice = make_invoice(100_000)
    with pytest.raises(PaymentOutcomeUnknown, match="did not confirm"):
        pay(FakeBreezSdk(invoice, send_status="FAILED", listed=listed))


def test_fee_quote_above_cap_is_refused_before_sending():
    invoice = make_invoice(100_000)
    sdk = FakeBreezSdk(invoice, fee_sats=6)  # cap is 5
    with pytest.raises(NothingSent, match="6 sat fee") as info:
        pay(sdk)
    assert info.value.money_moved is False
    assert [c[0] for c in sdk.calls] == ["prepare"]


def test_prepare_error_is_nothing_sent():
    invoice = make_invoice(100_000)
    sdk = FakeBreezSdk(invoice, prepare_error=RuntimeError("ssp unreachable"))
    with pytest.raises(NothingSent) as info:
        pay(sdk)
    assert info.value.money_moved is False


def test_send_error_is_outcome_unknown():
    invoice = make_invoice(100_000)
    sdk = FakeBreezSdk(invoice, send_error=RuntimeError("connection reset"))
    with pytest.raises(PaymentOutcomeUnknown):
        pay(sdk)


def test_refused_challenge_never_reaches_the_sdk():
    invoice = make_invoice(100_000)
    sdk = FakeBreezSdk(invoice)
    with pytest.raises(PaymentRefused):
        pay(sdk, request=charge_request(invoice.text, network="regtest"))
    assert sdk.calls == []


def test_lookup_finds_the_payment_by_hash_and_absence_is_pending():
    invoice = make_invoice(100_000)
    sdk = FakeBreezSdk(invoice)
    payer = SparkPayer(sdk=sdk)
    assert run(payer.lookup(invoice.payment_hash)).status == "settled"
    # a bounded scan of a local store that may not have synced proves nothing
    assert run(payer.lookup("ef" * 32)).status == "pending"
    sdk.listed = ["FAILED", "COMPLETED"]  # a retried hash: one attempt completed
    assert run(payer.lookup(invoice.payment_hash)).status == "settled"
    sdk.listed = ["FAILED", "FAILED"]
    assert run(payer.lookup(invoice.payment_hash)).status == "failed"


def test_identity_is_stable_names_no_secret_and_tells_wallets_apart():
    mnemonic = "abandon " * 11 + "about"
    one = SparkPayer(mnemonic=mnemonic, api_key="breez-key-123", storage_dir="/tmp/x")
    assert one.identity.startswith("spark:mainnet:")
    assert "abandon" not in one.identity and "breez-key-123" not in one.identity
    again = SparkPayer(mnemonic="  " + mnemonic.strip(), api_key="k2", storage_dir="/tmp/y")
    assert again.identity == one.identity
    other = SparkPayer(mnemonic="zoo " * 11 + "wrong", api_key="k", storage_dir="/tmp/x")
    assert other.identity != one.identity
    named = SparkPayer(sdk=object(), account="02" + "ab" * 32, network="regtest")
    assert named.identity == "spark:regtest:02" + "ab" * 32
    assert LightningCharge(named).payer("regtest") == "lightning:" + named.identity
    with pytest.raises(ValueError):
        SparkPayer(mnemonic=mnemonic, api_key="k", storage_dir="/tmp/x", account="k")


def test_mapping_of_sdk_types():
    invoice = make_invoice(100_000)
    outcome = spark_outcome(sdk_payment(invoice, "COMPLETED", preimage=invoice.preimage.upper()))
    assert (outcome.status, outcome.payment_hash, outcome.preimage, outcome.fee_sats) == (
        "settled",
        invoice.payment_hash,
        invoice.preimage,
        2,
    )
    assert invoice.preimage not in repr(outcome)
    assert spark_outcome(sdk_payment(invoice, "FAILED", preimage=None)).status == "failed"
    assert lightning_fee_sats(prepared(invoice, 7)) == 7


def test_secrets_are_redacted_and_configuration_checked():
    payer = SparkPayer(
        mnemonic="abandon " * 11 + "about", api_key="breez-key-123", storage_dir="/tmp/x"
    )
    assert "abandon" not in repr(payer) and "breez-key-123" not in repr(payer)
    with pytest.raises(ValueError, match="api_key"):
        SparkPayer(mnemonic="abandon " * 11 + "about", storage_dir="/tmp/x")
    with pytest.raises(ValueError):
        SparkPayer()


@pytest.mark.skipif(
    not os.environ.get("MPP_SPARK_MNEMONIC"),
    reason="live Spark test: set MPP_SPARK_MNEMONIC, MPP_SPARK_NETWORK (mainnet|regtest), "
    "BREEZ_API_KEY (mainnet) and MPP_SPARK_INVOICE (a BOLT11 invoice to pay)",
)
def test_live_spark_payment(tmp_path):  # pragma: no cover - needs the internet and funds
    from mpp_client.runner import run_sync

    network = os.environ.get("MPP_SPARK_NETWORK", "regtest")
    payer = SparkPayer(
        mnemonic=os.environ["MPP_SPARK_MNEMONIC"],
        network=network,  # type: ignore[arg-type]
        api_key=os.environ.get("BREEZ_API_KEY"),
        storage_dir=str(tmp_path),
    )
    invoice = os.environ.get("MPP_SPARK_INVOICE")
    if not invoice:
        pytest.skip("MPP_SPARK_INVOICE not set: connected only")
    result = run_sync(payer.pay(invoice, int(os.environ.get("MPP_SPARK_MAX_FEE", "10"))))
    from mpp_client.methods.lightning import decode_invoice
    from mpp_client.methods.lightning.payer import preimage_matches

    assert preimage_matches(result.preimage, decode_invoice(invoice).payment_hash)
