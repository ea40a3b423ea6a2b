"""Payment methods. Each lives in its own package behind an install extra; import it directly,
e.g. ``from mpp_client.methods.tempo import TempoCharge``."""

from mpp_client.methods.base import (
    LookupResult,
    Payee,
    PaymentContext,
    PaymentMethod,
    PaymentProof,
    Quote,
)

__all__ = ["LookupResult", "Payee", "PaymentContext", "PaymentMethod", "PaymentProof", "Quote"]
