"""Money: integer amounts in base units of a currency whose decimals are known.

Never floats. ``Money(1_500_000, PATH_USD)`` is 1.50 pathUSD (6 decimals); ``Money(21, SAT)`` is
21 satoshis; ``Money(250, Currency.fiat("usd"))`` is 2.50 US dollars (minor units).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

__all__ = ["Currency", "Money", "SAT"]


@dataclass(frozen=True, slots=True)
class Currency:
    """The identity of what an amount counts.

    ``code`` is lower-case: a token address (``0x20c0…``) for Tempo, ``"sat"`` for Lightning, an
    ISO 4217 code (``"usd"``) for fiat rails. ``network`` separates the same code on different
    chains (``"eip155:42431"``); ``decimals`` is how many base units make one whole unit
    (TIP-20: 6, sats: 0, USD cents: 2). ``usd_pegged`` is true for currencies worth one US dollar
    per whole unit, so caps written in USD apply to them without a price source.
    """

    code: str
    decimals: int
    network: str | None = None
    symbol: str | None = None
    usd_pegged: bool = False

    def __post_init__(self) -> None:
        if self.code != self.code.lower():
            object.__setattr__(self, "code", self.code.lower())
        if not 0 <= self.decimals <= 36:
            raise ValueError(f"decimals out of range: {self.decimals}")

    @classmethod
    def fiat(cls, iso_code: str, decimals: int = 2) -> Currency:
        """A fiat currency counted in minor units (``usd`` cents by default)."""
        code = iso_code.lower()
        return cls(code, decimals, symbol=code.upper(), usd_pegged=code == "usd")

    def __str__(self) -> str:
        return self.symbol or self.code


SAT = Currency("sat", 0, symbol="sat")


@dataclass(frozen=True, slots=True, order=False)
class Money:
    """An integer ``amount`` of base units of ``currency`` (never a float)."""

    amount: int
    currency: Currency

    def __post_init__(self) -> None:
        if isinstance(self.amount, bool) or not isinstance(self.amount, int):
            raise TypeError("Money.amount must be an int of base units")

    def _same(self, other: Money) -> None:
        if self.currency != other.currency:
            raise ValueError(f"cannot combine {self.currency} with {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount - other.amount, self.currency)

    def __lt__(self, other: Money) -> bool:
        self._same(other)
        return self.amount < other.amount

    def __le__(self, other: Money) -> bool:
        self._same(other)
        return self.amount <= other.amount

    def __gt__(self, other: Money) -> bool:
        self._same(other)
        return self.amount > other.amount

    def __ge__(self, other: Money) -> bool:
        self._same(other)
        return self.amount >= other.amount

    def to_decimal(self) -> Decimal:
        """The amount in whole units, exactly (for display)."""
        return Decimal(self.amount).scaleb(-self.currency.decimals)

    def __str__(self) -> str:
        return f"{self.to_decimal():f} {self.currency}"
