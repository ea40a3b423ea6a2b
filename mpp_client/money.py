"""Money: integer amounts in base units of a currency whose decimals are known.

Never floats. ``Money(1_500_000, PATH_USD)`` is 1.50 pathUSD (6 decimals); ``Money(21, SAT)`` is
21 satoshis; ``Money(250, Currency.fiat("usd"))`` is 2.50 US dollars (minor units).

Amounts written in whole units (``"1.50"``) are read with ``Money.parse``, which is exact or
refuses: a value with more significant decimal places than the currency has is an error, never
rounded. ``Money.format`` writes the inverse, so ``Money.parse(m.format(), m.currency) == m``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal

__all__ = ["Currency", "Money", "SAT"]

#: The most digits an amount written in whole units may have (integer and fractional digits
#: together). Real amounts need a few dozen at most (a uint256 has 78); the bound keeps a hostile
#: or mistyped input from building a huge integer.
MAX_DIGITS = 100

# Plain decimal notation only, ASCII digits only. ``Decimal()`` would also accept exponents
# ("1e400": exact, but a way to build enormous integers), "NaN"/"Infinity", underscores
# ("1_000") and non-ASCII digits; none of those belong in an amount someone wrote down.
_PLAIN_DECIMAL = re.compile(r"(-)?([0-9]+)(?:\.([0-9]+))?")


@dataclass(frozen=True, slots=True)
class Currency:
    """The identity of what an amount counts.

    ``code`` is lower-case: a token address (``0x20c0…``) for Tempo, ``"sat"`` for Lightning, an
    ISO 4217 code (``"usd"``) for fiat rails. ``network`` separates the same code on different
    chains (``"eip155:42431"``); ``decimals`` is how many decimal places one base unit is worth
    (one whole unit is ``10**decimals`` base units; TIP-20: 6, sats: 0, USD cents: 2).
    ``usd_pegged`` is true for currencies worth one US dollar per whole unit, so caps written in
    USD apply to them without a price source.

    Equality and hashing use the identity only: ``(code, decimals, network)``. ``symbol`` is
    display text, and ``usd_pegged`` is a fact we believe *about* the token, not which token it
    is; two descriptions of one token that differ in either are the same currency (their amounts
    add up, and a cap in one applies to the other). Code that depends on the peg reads
    ``usd_pegged`` itself. ``decimals`` is identity: the same code counted at another scale
    would make the same integer mean a different amount, so such values never combine.
    """

    code: str
    decimals: int
    network: str | None = None
    symbol: str | None = field(default=None, compare=False)
    usd_pegged: bool = field(default=False, compare=False)

    def __post_init__(self) -> None:
        if self.code != self.code.lower():
            object.__setattr__(self, "code", self.code.lower())
        if isinstance(self.decimals, bool) or not isinstance(self.decimals, int):
            raise TypeError(f"decimals must be an int, not {type(self.decimals).__name__}")
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


def _not_exact(value: object, currency: Currency) -> ValueError:
    return ValueError(
        f"{value!r} has more than {currency.decimals} decimal places for {currency}; "
        "amounts are never rounded"
    )


def _from_digits(
    negative: bool, coefficient: int, exponent: int, value: object, currency: Currency
) -> int:
    """Base units of ``(-1)**negative * coefficient * 10**exponent`` whole units, exactly."""
    shift = exponent + currency.decimals
    if coefficient == 0:
        return 0
    units: int
    if shift >= 0:
        if len(str(coefficient)) + shift > MAX_DIGITS + currency.decimals:
            raise ValueError(f"amount too large: more than {MAX_DIGITS} digits")
        multiplier: int = 10**shift
        units = coefficient * multiplier
    else:
        # A non-zero coefficient of n digits is a multiple of 10**k only if k < n, so checking
        # that first keeps ``10**-shift`` small whatever the exponent.
        if -shift >= len(str(coefficient)):
            raise _not_exact(value, currency)
        divisor: int = 10 ** (-shift)
        units, rest = divmod(coefficient, divisor)
        if rest:
            raise _not_exact(value, currency)
    return -units if negative else units


@dataclass(frozen=True, slots=True, order=False)
class Money:
    """An integer ``amount`` of base units of ``currency`` (never a float)."""

    amount: int
    currency: Currency

    def __post_init__(self) -> None:
        if isinstance(self.amount, bool) or not isinstance(self.amount, int):
            raise TypeError("Money.amount must be an int of base units")

    @classmethod
    def parse(
        cls, value: str | int | Decimal, currency: Currency, *, allow_negative: bool = False
    ) -> Money:
        """``value`` whole units of ``currency`` as ``Money`` in base units, exactly.

        ``value`` is a plain decimal string (``"1.50"``, ``"0.000001"``; surrounding
        whitespace is ignored), an ``int`` of whole units, or a finite ``Decimal``. Raises
        ``ValueError`` for anything that is not exactly a whole number of base units (more
        significant decimal places than ``currency.decimals``: never rounded; trailing zeros
        are fine), for exponent forms, ``NaN``/``Infinity``, more than ``MAX_DIGITS`` digits, and
        for negative amounts unless ``allow_negative``. Raises ``TypeError`` for floats (binary
        fractions: ``0.1`` is not one tenth) and other types.
        """
        if isinstance(value, float):
            raise TypeError(
                f"amounts must be a decimal string, an int or a Decimal, not a float ({value!r}):"
                " binary floats are not exact"
            )
        if isinstance(value, bool):
            raise TypeError("amounts must be a decimal string, an int or a Decimal, not a bool")
        if isinstance(value, int):
            if abs(value) >= 10**MAX_DIGITS:
                raise ValueError(f"amount too large: more than {MAX_DIGITS} digits")
            negative = value < 0
            units = _from_digits(negative, abs(value), 0, value, currency)
        elif isinstance(value, Decimal):
            if not value.is_finite():
                raise ValueError(f"not an amount: {value!r}")
            sign, digits, exponent = value.as_tuple()
            assert isinstance(exponent, int)  # finite, checked above
            if len(digits) > MAX_DIGITS:
                raise ValueError(f"amount too long: more than {MAX_DIGITS} digits")
            coefficient = int("".join(map(str, digits)))
            negative = bool(sign)
            units = _from_digits(negative, coefficient, exponent, value, currency)
        elif isinstance(value, str):
            text = value.strip()
            # Checked before the regex so an enormous string is refused without being scanned.
            if len(text) > MAX_DIGITS + 2:
                raise ValueError(f"amount too long: more than {MAX_DIGITS} digits")
            match = _PLAIN_DECIMAL.fullmatch(text)
            if match is None:
                raise ValueError(f"not an amount: {value!r} (write a plain decimal such as '1.50')")
            minus, whole, fraction = match.group(1), match.group(2), match.group(3) or ""
            if len(whole) + len(fraction) > MAX_DIGITS:
                raise ValueError(f"amount too long: more than {MAX_DIGITS} digits")
            negative = minus is not None
            units = _from_digits(negative, int(whole + fraction), -len(fraction), value, currency)
        else:
            raise TypeError(
                f"amounts must be a decimal string, an int or a Decimal, not {type(value).__name__}"
            )
        # "-0" counts as negative: a minus sign where none is allowed is a mistake, not zero.
        if negative and not allow_negative:
            raise ValueError(f"negative amount: {value!r}")
        return cls(units, currency)

    def format(self) -> str:
        """The amount in whole units as a plain decimal string, exactly, with
        ``currency.decimals`` fractional digits (``"1.500000"``, ``"21"``); ``Money.parse``
        reads it back to the same value."""
        decimals = self.currency.decimals
        whole, fraction = divmod(abs(self.amount), 10**decimals)
        sign = "-" if self.amount < 0 else ""
        if decimals == 0:
            return f"{sign}{whole}"
        return f"{sign}{whole}.{fraction:0{decimals}d}"

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
        """The amount in whole units, exactly (for display).

        Built from the digits, not with ``scaleb``: decimal arithmetic rounds to the context's
        28 significant digits, which an 18-decimal token amount can exceed."""
        return Decimal(self.format())

    def __str__(self) -> str:
        return f"{self.format()} {self.currency}"
