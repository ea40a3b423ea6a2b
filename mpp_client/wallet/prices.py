"""Prices: how caps written in US dollars apply to payments in other currencies.

A cap in USD (``usd("0.50")``) applies directly to USD-pegged currencies (TIP-20 stablecoins,
Stripe ``usd``): one whole unit is one dollar. Any other currency (sats, a volatile token)
needs a ``PriceSource`` the owner supplies. When no price is available the payment is refused
with ``PriceUnavailable`` (fail closed), never waved through.

Values are exact: ``fractions.Fraction`` of whole dollars, never floats.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from fractions import Fraction
from typing import Any, Protocol, runtime_checkable

from mpp_client.errors import PriceUnavailable
from mpp_client.money import SAT, Currency, Money

__all__ = [
    "USD",
    "PriceSource",
    "StaticPrices",
    "is_usd_cap",
    "parse_money",
    "usd",
    "usd_value",
]

#: The unit of caps written in US dollars: micro-dollars (6 decimals), so a cap can be as small
#: as one TIP-20 base unit. ``Currency.fiat("usd")`` (cents) is a USD cap unit as well.
USD = Currency("usd", 6, symbol="USD", usd_pegged=True)


def usd(amount: str | int | Decimal) -> Money:
    """A cap of ``amount`` US dollars (a decimal string such as ``"0.50"``, or whole dollars),
    as ``Money`` in micro-dollars. More than 6 decimal places, exponents, floats and non-finite
    values are errors, never rounded (``Money.parse``)."""
    try:
        return Money.parse(amount, USD)
    except TypeError:
        raise ValueError(f"not a dollar amount: {amount!r} (give a decimal string)") from None


def is_usd_cap(currency: Currency) -> bool:
    """Whether a cap in ``currency`` is a dollar cap (applies to every currency it scopes)."""
    return currency.code == "usd" and currency.network is None and currency.usd_pegged


@runtime_checkable
class PriceSource(Protocol):
    """The price of currencies that are not pegged to the US dollar.

    ``usd_per_unit`` returns the dollars one WHOLE unit is worth (one bitcoin-sat-unit for
    ``sat``, one token for a token with decimals), or ``None`` when it does not know. It is
    called inside the wallet's budget transaction: keep it a cached lookup, never network I/O.
    """

    def usd_per_unit(self, currency: Currency) -> Decimal | Fraction | None:
        """Dollars per whole unit of ``currency``, or ``None``."""
        ...


class StaticPrices:
    """Fixed prices by currency code (lower case), e.g. ``StaticPrices({"sat": "0.001"})``:
    dollars per whole unit. Useful for tests and for owners who prefer a conservative fixed
    rate (set it high: a price that is too high only makes caps stricter)."""

    def __init__(self, prices: Mapping[str, str | Decimal | int]) -> None:
        self._prices = {code.lower(): Decimal(str(value)) for code, value in prices.items()}
        for code, value in self._prices.items():
            if not value.is_finite() or value < 0:
                raise ValueError(f"price for {code} must be a non-negative number")

    def usd_per_unit(self, currency: Currency) -> Decimal | None:
        return self._prices.get(currency.code)

    def __repr__(self) -> str:
        return f"StaticPrices({sorted(self._prices)})"


def usd_value(money: Money, prices: PriceSource | None, *, rule: str = "price") -> Fraction:
    """``money`` in whole US dollars, exactly. Raises ``PriceUnavailable`` (fail closed) when
    the currency is not pegged and no price is known."""
    units = Fraction(money.amount, 10**money.currency.decimals)
    if money.currency.usd_pegged:
        return units
    price: Any = None
    if prices is not None:
        try:
            price = prices.usd_per_unit(money.currency)
        except Exception as exc:  # a broken price source must refuse, not crash the flow
            raise PriceUnavailable(
                f"the price source failed for {money.currency}: {type(exc).__name__}", rule=rule
            ) from None
    if price is None:
        raise PriceUnavailable(
            f"no USD price for {money.currency}, so a dollar cap cannot be applied", rule=rule
        )
    if isinstance(price, float):
        # Floats are inexact; a Decimal round trip keeps the printed value the owner meant.
        price = Decimal(repr(price))
    rate = Fraction(price)
    if rate < 0:
        raise PriceUnavailable(f"negative price for {money.currency}", rule=rule)
    return units * rate


_MONEY_TEXT = re.compile(r"^\s*(?P<num>[0-9]+(?:\.[0-9]+)?)\s*(?P<unit>[A-Za-z$]+)\s*$")


def parse_money(value: Any) -> Money:
    """Read an amount from a policy file.

    ``"0.50 USD"`` (dollars, a USD cap), ``"1000 sat"`` (satoshis), or a table in base units
    ``{amount = 5000000, currency = "0x20c0…", decimals = 6, network = "eip155:4217",
    usd_pegged = true}``.
    """
    if isinstance(value, Money):
        return value
    if isinstance(value, str):
        match = _MONEY_TEXT.match(value)
        if not match:
            raise ValueError(f"cannot read an amount from {value!r}")
        number, unit = match["num"], match["unit"].lower()
        if unit in ("usd", "$"):
            return usd(number)
        if unit in ("sat", "sats"):
            if "." in number:
                raise ValueError(f"sats are whole numbers: {value!r}")
            return Money(int(number), SAT)
        raise ValueError(f"unknown unit {unit!r} in {value!r}; use a table with base units")
    if isinstance(value, Mapping):
        amount = value.get("amount")
        code = value.get("currency")
        decimals = value.get("decimals")
        if not isinstance(amount, int) or isinstance(amount, bool):
            raise ValueError("amount must be an integer of base units")
        if not isinstance(code, str) or not isinstance(decimals, int):
            raise ValueError("currency (a string) and decimals (an integer) are required")
        network = value.get("network")
        pegged = bool(value.get("usd_pegged", False))
        currency = Currency(code, decimals, network=network, usd_pegged=pegged)
        return Money(amount, currency)
    raise ValueError(f"cannot read an amount from a {type(value).__name__}")
