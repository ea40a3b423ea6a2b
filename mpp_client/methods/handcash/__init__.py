"""HandCash: pay ``handcash``/``charge`` challenges (our MPP method, see
``docs/methods/handcash.md``) from a HandCash wallet through HandCash Connect, and, opt-in per
site, the non-MPP 402s of ``handcash-mpp`` servers. Needs the ``handcash`` extra (coincurve).

Example::

    from mpp_client.methods.handcash import HandCashCharge

    handcash = HandCashCharge(app_id=..., app_secret=..., auth_token=...)
"""

from mpp_client.methods.handcash.api import DEFAULT_BASE_URL
from mpp_client.methods.handcash.charge import HandCashCharge
from mpp_client.methods.handcash.compat import (
    COMPAT_ID_PREFIX,
    COMPAT_INTENT,
    DEFAULT_RECEIPT_PATH,
    ApprovalHook,
    HandCashCompatSite,
    HandCashPaymentRequired,
    HostedPay,
    HostedPayment,
)
from mpp_client.methods.handcash.request import (
    HandCashChargeRequest,
    Receiver,
    parse_charge_request,
)
from mpp_client.methods.handcash.signing import ConnectSigner, SignedHeaders, signing_payload

__all__ = [
    "COMPAT_ID_PREFIX",
    "COMPAT_INTENT",
    "DEFAULT_BASE_URL",
    "DEFAULT_RECEIPT_PATH",
    "ApprovalHook",
    "ConnectSigner",
    "HandCashCharge",
    "HandCashChargeRequest",
    "HandCashCompatSite",
    "HandCashPaymentRequired",
    "HostedPay",
    "HostedPayment",
    "Receiver",
    "SignedHeaders",
    "parse_charge_request",
    "signing_payload",
]
