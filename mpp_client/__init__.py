"""mpp_client: pay for HTTP resources over the Machine Payments Protocol (HTTP 402), within
limits the owner sets.

The public API is re-exported here. Payment methods live in ``mpp_client.methods.<name>`` behind
install extras, the wire format in ``mpp_client.protocol``, test helpers in
``mpp_client.testing``. Every name but the exceptions is imported on first use (``PaymentSession``
also needs ``requests``), so ``import mpp_client`` stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from mpp_client.errors import (
    AlreadyPaid,
    BudgetExceeded,
    ChallengeExpired,
    CrossOriginPayment,
    EffectFailed,
    EncodingError,
    FormatError,
    HumanActionRequired,
    InsecureOrigin,
    JournalError,
    KeyStoreError,
    MethodError,
    MissingExtra,
    MppError,
    NoPayableChallenge,
    NotAllowed,
    NothingSent,
    ParseError,
    PayeeChanged,
    PaymentFailed,
    PaymentOutcomeUnknown,
    PaymentRefused,
    PaymentRejected,
    PaymentVetoed,
    PolicyViolation,
    PriceUnavailable,
    ProtocolError,
    UnreplayableBody,
    UnresolvedPayments,
)

if TYPE_CHECKING:
    from mpp_client.clock import Clock
    from mpp_client.driver import payment_of, receipt_of
    from mpp_client.flow import Payment, PaymentHooks
    from mpp_client.guard import PaymentOptions
    from mpp_client.lifecycle import PaymentState
    from mpp_client.methods.base import PaymentMethod, PaymentProof, Quote
    from mpp_client.money import SAT, Currency, Money
    from mpp_client.protocol import Challenge, Credential, Problem, Receipt
    from mpp_client.requests_session import PaymentSession
    from mpp_client.session.base import SessionStream, SessionStreamError, session_of
    from mpp_client.transport import AsyncPaymentTransport, PaymentTransport
    from mpp_client.wallet import Limit, SpendPolicy, Wallet, usd

__version__ = "0.1.0"

__all__ = [
    "AlreadyPaid",
    "AsyncPaymentTransport",
    "BudgetExceeded",
    "Challenge",
    "ChallengeExpired",
    "Clock",
    "Credential",
    "CrossOriginPayment",
    "Currency",
    "EffectFailed",
    "EncodingError",
    "FormatError",
    "HumanActionRequired",
    "InsecureOrigin",
    "JournalError",
    "KeyStoreError",
    "Limit",
    "MethodError",
    "MissingExtra",
    "Money",
    "MppError",
    "NoPayableChallenge",
    "NotAllowed",
    "NothingSent",
    "ParseError",
    "PayeeChanged",
    "Payment",
    "PaymentFailed",
    "PaymentHooks",
    "PaymentMethod",
    "PaymentOptions",
    "PaymentOutcomeUnknown",
    "PaymentProof",
    "PaymentRefused",
    "PaymentRejected",
    "PaymentSession",
    "PaymentState",
    "PaymentTransport",
    "PaymentVetoed",
    "PolicyViolation",
    "PriceUnavailable",
    "Problem",
    "ProtocolError",
    "Quote",
    "Receipt",
    "SAT",
    "SessionStream",
    "SessionStreamError",
    "SpendPolicy",
    "UnreplayableBody",
    "UnresolvedPayments",
    "Wallet",
    "payment_of",
    "receipt_of",
    "session_of",
    "usd",
]

# Everything but the exceptions is imported on first use: the flow, the protocol parser, the
# runners (asyncio, tenacity) and the transports cost more to import than httpx itself, and a
# program that only names an exception, or never meets a 402, should not pay for them.
_LAZY = {
    "AsyncPaymentTransport": "mpp_client.transport",
    "Challenge": "mpp_client.protocol",
    "Clock": "mpp_client.clock",
    "Credential": "mpp_client.protocol",
    "Currency": "mpp_client.money",
    "Limit": "mpp_client.wallet",
    "Money": "mpp_client.money",
    "Payment": "mpp_client.flow",
    "PaymentHooks": "mpp_client.flow",
    "PaymentMethod": "mpp_client.methods.base",
    "PaymentOptions": "mpp_client.guard",
    "PaymentProof": "mpp_client.methods.base",
    "PaymentSession": "mpp_client.requests_session",
    "PaymentState": "mpp_client.lifecycle",
    "PaymentTransport": "mpp_client.transport",
    "Problem": "mpp_client.protocol",
    "Quote": "mpp_client.methods.base",
    "Receipt": "mpp_client.protocol",
    "SAT": "mpp_client.money",
    "SessionStream": "mpp_client.session.base",
    "SessionStreamError": "mpp_client.session.base",
    "SpendPolicy": "mpp_client.wallet",
    "Wallet": "mpp_client.wallet",
    "payment_of": "mpp_client.driver",
    "receipt_of": "mpp_client.driver",
    "session_of": "mpp_client.session.base",
    "usd": "mpp_client.wallet",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mpp_client' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
