"""How many minor units Stripe counts per whole unit of each currency.

Stripe amounts are integers in the currency's smallest unit as *Stripe* defines it, which is not
always ISO 4217's: ``jpy`` has no minor unit (``"500"`` is 500 yen), the three-decimal dinars
count thousandths, and everything else counts hundredths. Quoting with the wrong exponent would
make a 500 yen charge look like 5 yen to the spend policy, so the table is explicit.
"""

from __future__ import annotations

from mpp_client.money import Currency

__all__ = ["stripe_currency", "stripe_decimals"]

# https://docs.stripe.com/currencies#zero-decimal
_ZERO_DECIMAL = frozenset(
    {
        "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga",
        "pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf",
    }
)  # fmt: skip
# https://docs.stripe.com/currencies#three-decimal
_THREE_DECIMAL = frozenset({"bhd", "jod", "kwd", "omr", "tnd"})


def stripe_decimals(code: str) -> int:
    """Minor units per whole unit (as a power of ten) of the lower-case ISO code ``code``."""
    if code in _ZERO_DECIMAL:
        return 0
    if code in _THREE_DECIMAL:
        return 3
    return 2


def stripe_currency(code: str) -> Currency:
    """The ``Currency`` whose base unit is Stripe's amount unit for ``code`` (lower-case ISO)."""
    return Currency.fiat(code, stripe_decimals(code))
