"""The ``lightning`` payment method (extra ``lightning``): BOLT11 invoices paid through a
Lightning wallet backend, proven with the preimage.

``LightningCharge`` checks and pays ``lightning``/``charge`` challenges through one
``LightningPayer``: ``LndRestPayer``, ``ClnRestPayer``, ``PhoenixdPayer``, ``LnbitsPayer``
(HTTP, no extra dependency), ``NwcPayer`` (extra ``nwc``) or ``SparkPayer`` (extra ``spark``).
The NWC and Spark payers are imported on first use so their dependencies stay optional.

``LightningSession`` (imported on first use) pays ``lightning``/``session`` challenges: a
prepaid deposit, bearer requests, top-ups on metered streams and the refund on close.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mpp_client.methods.lightning.charge import LightningCharge
from mpp_client.methods.lightning.cln import ClnRestPayer
from mpp_client.methods.lightning.invoice import Invoice, InvoiceError, decode_invoice
from mpp_client.methods.lightning.lnbits import LnbitsPayer
from mpp_client.methods.lightning.lnd import LndRestPayer
from mpp_client.methods.lightning.payer import (
    LightningPayer,
    PaymentPending,
    PaymentReportedFailed,
    PayResult,
)
from mpp_client.methods.lightning.phoenixd import PhoenixdPayer

if TYPE_CHECKING:
    from mpp_client.methods.lightning.nwc import NwcPayer
    from mpp_client.methods.lightning.session import LightningSession
    from mpp_client.methods.lightning.spark import SparkPayer

__all__ = [
    "ClnRestPayer",
    "Invoice",
    "InvoiceError",
    "LightningCharge",
    "LightningPayer",
    "LightningSession",
    "LnbitsPayer",
    "LndRestPayer",
    "NwcPayer",
    "PayResult",
    "PaymentPending",
    "PaymentReportedFailed",
    "PhoenixdPayer",
    "SparkPayer",
    "decode_invoice",
]


def __getattr__(name: str) -> Any:
    if name == "NwcPayer":
        from mpp_client.methods.lightning.nwc import NwcPayer

        return NwcPayer
    if name == "LightningSession":
        from mpp_client.methods.lightning.session import LightningSession

        return LightningSession
    if name == "SparkPayer":
        from mpp_client.methods.lightning.spark import SparkPayer

        return SparkPayer
    raise AttributeError(name)
