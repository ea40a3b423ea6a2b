"""Property tests: dollar caps are exact for every amount, and rolling-window accounting agrees
with a simple model for any sequence of payments, outcomes and times."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from mpp_client.errors import BudgetExceeded
from mpp_client.guard import PaymentOptions
from mpp_client.money import Currency, Money
from mpp_client.runner import run_sync
from mpp_client.wallet import Limit, SpendPolicy, SqliteJournal, StaticPrices, Wallet, usd
from mpp_client.wallet.prices import usd_value

from .conftest import Clock, context, quote

dollars = st.decimals(min_value=0, max_value=10**9, places=6, allow_nan=False, allow_infinity=False)


@given(dollars)
def test_usd_caps_are_exact_micro_dollars(value: Decimal):
    cap = usd(str(value))
    assert cap.amount == int(value * 10**6)
    assert cap.to_decimal() == value


@given(st.integers(0, 10**30), st.integers(0, 18))
def test_pegged_currencies_are_worth_their_face_value(amount: int, decimals: int):
    currency = Currency("stable", decimals, usd_pegged=True)
    assert usd_value(Money(amount, currency), None) == Fraction(amount, 10**decimals)


@given(st.integers(0, 10**12), st.decimals(min_value=0, max_value=10**6, places=8,
                                          allow_nan=False, allow_infinity=False))  # fmt: skip
def test_priced_values_are_exact(amount: int, price: Decimal):
    sat = Currency("sat", 0)
    value = usd_value(Money(amount, sat), StaticPrices({"sat": price}))
    assert value == Fraction(amount) * Fraction(price)


@given(st.lists(st.integers(0, 10**15), max_size=20), st.lists(st.integers(0, 10**15), max_size=20))
def test_money_sums_do_not_depend_on_order(a: list[int], b: list[int]):
    currency = Currency("stable", 6, usd_pegged=True)
    left = sum((Money(x, currency) for x in a + b), Money(0, currency))
    right = sum((Money(x, currency) for x in reversed(b + a)), Money(0, currency))
    assert left == right and left.amount == sum(a) + sum(b)


payment = st.tuples(
    # seconds after the previous payment; window edges on purpose
    st.one_of(st.sampled_from([0, 1, 1800, 3599, 3600, 3601]), st.integers(0, 5400)),
    st.integers(1, 400_000),  # exposure, micro-dollars
    st.sampled_from(["settled", "released", "moved", "unknown"]),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(payment, min_size=1, max_size=25), st.integers(1, 1_000_000))
def test_hourly_window_matches_the_model(steps, cap):
    clock = Clock()
    wallet = Wallet(
        policy=SpendPolicy(
            limits=(Limit(Money(cap, usd("0").currency), "hour"),), pin_payees=False
        ),
        journal=SqliteJournal(":memory:", clock=clock),
        max_unknown=None,  # the window is what is modelled, not the circuit breaker
    )
    held: list[tuple[float, int]] = []  # the model: (time, amount) of what still counts
    for gap, amount, outcome in steps:
        clock.now += gap
        in_window = sum(a for t, a in held if t > clock.now - 3600)
        expected = in_window + amount <= cap
        try:
            reservation = run_sync(wallet.reserve(quote(amount), context(), PaymentOptions()))
        except BudgetExceeded:
            assert not expected, f"refused with {in_window} held of {cap}"
            continue
        assert expected, f"allowed {amount} with {in_window} held of {cap}"
        reservation.sent("fp", "0xref")
        if outcome == "settled":
            reservation.settled(None, None)
        elif outcome == "released":
            reservation.failed("revoked, unused", money_moved=False, proof="credential-void")
        elif outcome == "moved":
            reservation.failed("403", money_moved=True)
        else:
            reservation.unknown("no answer")
        if outcome != "released":
            held.append((clock.now, amount))
    wallet.close()
