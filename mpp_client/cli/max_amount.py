"""``--max-amount``: the most one ``mpp fetch`` may pay, written as a decimal amount and a unit
(``0.05USD``, ``"0.05 USD"``, ``"1.5 pathUSD"``, ``"100 sat"``).

The unit is matched against the currency of each offer when it is quoted (its code, its symbol,
or ``USD``/``$`` for any dollar-pegged currency), and the amount is converted to that
currency's base units exactly (``Decimal``, never floats). An offer in another currency, or
above the amount, is refused before anything is signed.
"""

from __future__ import annotations

import re
from collections.abc import Generator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from mpp_client.errors import BudgetExceeded
from mpp_client.money import Currency, Money

if TYPE_CHECKING:
    from mpp_client.effects import Effect
    from mpp_client.guard import PaymentGuard, PaymentOptions, Reservation
    from mpp_client.methods.base import PaymentContext, Quote

__all__ = ["AmountLimit", "CappedGuard", "parse_amount_limit"]

_TEXT = re.compile(r"^\s*(?P<number>[0-9]+(?:\.[0-9]+)?)\s*(?P<unit>[A-Za-z$][A-Za-z0-9_$-]*)\s*$")
_EXPONENT = re.compile(r"^[0-9.]+[eE][+-]?[0-9]+(?:\s|$|[A-Za-z$])")
_MAX_WHOLE_DIGITS = 18
_MAX_DIGITS = 28  # Decimal's default precision
_DOLLARS = ("usd", "$")
RULE = "cli.max_amount"


@dataclass(frozen=True, slots=True)
class AmountLimit:
    """A decimal ``number`` of whole units of ``unit`` (as the user wrote it)."""

    number: Decimal
    unit: str

    def __str__(self) -> str:
        return f"{self.number:f} {self.unit}"

    def matches(self, currency: Currency) -> bool:
        """Whether this limit is written in ``currency``."""
        unit = self.unit.lower()
        names = {currency.code.lower(), (currency.symbol or "").lower()}
        return unit in names or (unit in _DOLLARS and currency.usd_pegged)

    def in_base_units(self, currency: Currency) -> Money:
        """The limit in base units of ``currency``; ``ValueError`` when it is not exact."""
        base = self.number.scaleb(currency.decimals)
        if base != base.to_integral_value():
            raise ValueError(
                f"--max-amount {self} has more decimals than {currency} has ({currency.decimals})"
            )
        return Money(int(base), currency)

    def check(self, quote: Quote) -> None:
        """Raise ``BudgetExceeded`` unless ``quote`` (amount plus maximum fee) fits."""
        currency = quote.amount.currency
        if not self.matches(currency):
            raise BudgetExceeded(
                f"the offer is in {currency}; --max-amount is in {self.unit}",
                rule=RULE,
                challenge=quote.challenge,
            )
        try:
            limit = self.in_base_units(currency)
        except ValueError as exc:
            raise BudgetExceeded(str(exc), rule=RULE, challenge=quote.challenge) from None
        if quote.exposure.amount > limit.amount:
            raise BudgetExceeded(
                f"{quote.exposure} is above --max-amount {limit}",
                rule=RULE,
                challenge=quote.challenge,
            )


def parse_amount_limit(text: str) -> AmountLimit:
    """Read ``--max-amount`` (``$0.05`` is ``0.05 USD``); ``ValueError`` with a usage message
    when it cannot be read."""
    stripped = text.strip()
    if stripped.startswith("$"):
        stripped = stripped[1:].strip() + " USD"
    if _EXPONENT.match(stripped):
        # `1e3` would otherwise be read as 1 of a unit named "e3" and refused only when an
        # offer arrives (exit 3): exponent notation is refused here, as a usage error.
        raise ValueError(
            f"cannot read an amount from {text!r}: write the number in full (1000, not 1e3) "
            "followed by its unit, e.g. 0.05USD or '100 sat'"
        )
    match = _TEXT.match(stripped)
    if not match:
        raise ValueError(
            f"cannot read an amount from {text!r}: write a decimal number and a unit, "
            "e.g. 0.05USD, '1.5 pathUSD' or '100 sat'"
        )
    whole, _, fraction = match["number"].partition(".")
    whole = whole.lstrip("0")
    if len(whole) > _MAX_WHOLE_DIGITS or len(whole) + len(fraction) > _MAX_DIGITS:
        # Beyond these the Decimal arithmetic that converts to base units would round.
        raise ValueError(
            f"--max-amount {text[:40]!r}: at most {_MAX_WHOLE_DIGITS} digits before the point "
            f"and {_MAX_DIGITS} in all"
        )
    try:
        number = Decimal(match["number"])
    except InvalidOperation:  # pragma: no cover - the pattern only lets digits through
        raise ValueError(f"not a number: {match['number']!r}") from None
    return AmountLimit(number, match["unit"])


class CappedGuard:
    """The wallet's guard with ``--max-amount`` checked first (before the policy, before any
    signature), so a too-expensive challenge is skipped in favour of a cheaper one."""

    def __init__(self, inner: PaymentGuard, limit: AmountLimit) -> None:
        self._inner = inner
        self._limit = limit

    def check(self, quote: Quote, context: PaymentContext, options: PaymentOptions) -> None:
        self._limit.check(quote)
        self._inner.check(quote, context, options)

    def reserve(
        self, quote: Quote, context: PaymentContext, options: PaymentOptions
    ) -> Generator[Effect, Any, Reservation]:
        self._limit.check(quote)
        reservation: Reservation = yield from self._inner.reserve(quote, context, options)
        return reservation
