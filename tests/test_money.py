"""Money and Currency: identity-based currency equality, exact parsing, exact formatting."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mpp_client.money import MAX_DIGITS, SAT, Currency, Money

PATH_USD = Currency("0x20C0", 6, network="eip155:4217", symbol="pathUSD", usd_pegged=True)
USD6 = Currency("usd", 6, symbol="USD", usd_pegged=True)
CENTS = Currency.fiat("usd")

# --- Currency identity -------------------------------------------------------------------------


def test_currency_equality_ignores_display_fields():
    bare = Currency("0x20c0", 6, network="eip155:4217")
    assert bare == PATH_USD
    assert hash(bare) == hash(PATH_USD)
    assert Currency("0x20c0", 6, network="eip155:4217", symbol="other") == PATH_USD
    assert {PATH_USD: 1}[bare] == 1


def test_currency_equality_ignores_the_peg_flag():
    # The peg is a belief about the token, not which token it is (see the Currency docstring).
    assert Currency("0x20c0", 6, network="eip155:4217", usd_pegged=False) == PATH_USD


@pytest.mark.parametrize(
    "other",
    [
        Currency("0x20c1", 6, network="eip155:4217", symbol="pathUSD", usd_pegged=True),
        Currency("0x20c0", 18, network="eip155:4217", symbol="pathUSD", usd_pegged=True),
        Currency("0x20c0", 6, network="eip155:1", symbol="pathUSD", usd_pegged=True),
        Currency("0x20c0", 6, symbol="pathUSD", usd_pegged=True),
    ],
)
def test_currency_identity_is_code_decimals_network(other):
    assert other != PATH_USD
    with pytest.raises(ValueError, match="cannot combine"):
        Money(1, PATH_USD) + Money(1, other)


def test_money_of_one_token_described_twice_combines():
    described = Money(5, Currency("0x20c0", 6, network="eip155:4217", symbol="X"))
    assert Money(5, PATH_USD) == described
    assert Money(5, PATH_USD) + described == Money(10, PATH_USD)
    assert str(Money(5, PATH_USD) + described) == "0.000010 pathUSD"


def test_currency_code_is_lower_case_and_decimals_an_int():
    assert Currency("0xABC", 6).code == "0xabc"
    with pytest.raises(TypeError):
        Currency("x", True)
    with pytest.raises(TypeError):
        Currency("x", 6.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="out of range"):
        Currency("x", 37)


# --- parsing -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "currency", "base_units"),
    [
        ("1.50", USD6, 1_500_000),
        ("0.000001", USD6, 1),
        ("1.5000000000", USD6, 1_500_000),  # trailing zeros are exact, not extra precision
        (" 2 ", USD6, 2_000_000),
        ("0", USD6, 0),
        ("007", SAT, 7),
        (3, USD6, 3_000_000),
        (21, SAT, 21),
        ("2.50", CENTS, 250),
        (Decimal("1.5E-1"), USD6, 150_000),
        (Decimal("1E+3"), USD6, 1_000_000_000),
        (Decimal("1.000000000000"), SAT, 1),
        ("123456789012345678901234567890.123456789012345678", Currency("t", 18),
         123456789012345678901234567890123456789012345678),
    ],
)  # fmt: skip
def test_parse_is_exact(value, currency, base_units):
    assert Money.parse(value, currency) == Money(base_units, currency)


@pytest.mark.parametrize(
    "value",
    [
        "0.00999999999999999999999999999999",  # used to round to 0.01
        "0.0000001",
        "1.0000001",
        Decimal("0.0000005"),
        Decimal("1E-999999999"),  # refused without building 10**999999999
    ],
)
def test_more_decimal_places_than_the_currency_is_refused_never_rounded(value):
    with pytest.raises(ValueError, match="more than 6 decimal places"):
        Money.parse(value, USD6)


def test_sats_have_no_fractions():
    with pytest.raises(ValueError, match="more than 0 decimal places"):
        Money.parse("1.5", SAT)


@pytest.mark.parametrize(
    "value",
    ["", " ", "1e3", "1E-2", "NaN", "nan", "Infinity", "-inf", "1_000", "+1", ".5", "5.", "1.2.3",
     "0x10", "١٢", "1 000", "$1", Decimal("NaN"), Decimal("sNaN"), Decimal("Infinity")],
)  # fmt: skip
def test_anything_but_a_plain_decimal_is_refused(value):
    with pytest.raises(ValueError, match="not an amount"):
        Money.parse(value, USD6)


@pytest.mark.parametrize(
    "value",
    ["9" * (MAX_DIGITS + 1), "1." + "0" * MAX_DIGITS, "1" * 10_000_000, 10**MAX_DIGITS,
     -(10**MAX_DIGITS), Decimal("1E+200"), Decimal("1" * (MAX_DIGITS + 1))],
)  # fmt: skip
def test_absurdly_long_amounts_are_refused_cleanly(value):
    with pytest.raises(ValueError, match=r"amount too (long|large)"):
        Money.parse(value, USD6, allow_negative=True)


def test_the_longest_allowed_amount_is_exact():
    text = "9" * 90 + "." + "9" * 6
    assert Money.parse(text, USD6) == Money(int("9" * 96), USD6)


@pytest.mark.parametrize("value", ["-1", "-0", "-0.000001", -1, Decimal("-1"), Decimal("-0")])
def test_negative_amounts_are_refused_unless_allowed(value):
    with pytest.raises(ValueError, match="negative amount"):
        Money.parse(value, USD6)


def test_negative_amounts_when_allowed():
    assert Money.parse("-1.5", USD6, allow_negative=True) == Money(-1_500_000, USD6)
    assert Money.parse(-2, SAT, allow_negative=True) == Money(-2, SAT)


@pytest.mark.parametrize("value", [0.5, 0.1, 1.0, float("nan"), True, None, b"1", [1]])
def test_floats_and_other_types_are_refused(value):
    with pytest.raises(TypeError):
        Money.parse(value, USD6)


# --- formatting and round trips ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("money", "text"),
    [
        (Money(1_500_000, USD6), "1.500000"),
        (Money(1, USD6), "0.000001"),
        (Money(0, USD6), "0.000000"),
        (Money(-1, USD6), "-0.000001"),
        (Money(21, SAT), "21"),
        (Money(250, CENTS), "2.50"),
    ],
)
def test_format(money, text):
    assert money.format() == text


def test_str_is_unchanged():
    assert str(Money(1_500_000, PATH_USD)) == "1.500000 pathUSD"
    assert str(Money(21, SAT)) == "21 sat"
    assert str(Money(250, CENTS)) == "2.50 USD"
    assert str(Money(0, Currency("x", 2))) == "0.00 x"


def test_to_decimal_is_exact_beyond_28_digits():
    money = Money(10**40 + 1, Currency("t", 18))
    assert money.to_decimal() == Decimal("10000000000000000000000.000000000000000001")


currencies = st.builds(Currency, st.just("t"), st.integers(min_value=0, max_value=36))
amounts = st.integers(min_value=-(10**60), max_value=10**60)


@given(amounts, currencies)
def test_parse_of_format_is_identity(amount, currency):
    money = Money(amount, currency)
    assert Money.parse(money.format(), currency, allow_negative=True) == money
    assert Money.parse(money.to_decimal(), currency, allow_negative=True) == money
    assert Fraction(money.to_decimal()) == Fraction(amount, 10**currency.decimals)


@given(amounts, currencies, st.integers(min_value=1, max_value=9))
def test_one_more_significant_digit_is_always_refused(amount, currency, digit):
    text = Money(amount, currency).format()
    text += ("" if currency.decimals else ".") + str(digit)
    with pytest.raises(ValueError, match="decimal places"):
        Money.parse(text, currency, allow_negative=True)


@given(st.integers(min_value=0, max_value=10**30), st.integers(min_value=0, max_value=36))
def test_whole_units_scale_exactly(whole, decimals):
    currency = Currency("t", decimals)
    assert Money.parse(whole, currency).amount == whole * 10**decimals
    assert Money.parse(str(whole), currency).amount == whole * 10**decimals
