"""Stripe shared payment tokens: pay ``stripe``/``charge`` challenges from your Stripe account.

Needs nothing beyond httpx (the extra ``stripe`` is empty). Example::

    from mpp_client.methods.stripe import StripeCharge

    stripe = StripeCharge(os.environ["STRIPE_SECRET_KEY"], payment_method="pm_...",
                          customer="cus_...")

See ``docs/methods/stripe.md``.
"""

from mpp_client.methods.stripe.api import STRIPE_PREVIEW_VERSION
from mpp_client.methods.stripe.charge import StripeCharge, StripeRetryRefused
from mpp_client.methods.stripe.currency import stripe_currency
from mpp_client.methods.stripe.request import StripeChargeRequest, parse_charge_request

__all__ = [
    "STRIPE_PREVIEW_VERSION",
    "StripeCharge",
    "StripeChargeRequest",
    "StripeRetryRefused",
    "parse_charge_request",
    "stripe_currency",
]
