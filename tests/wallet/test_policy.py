"""Each policy rule refuses with a clear, typed error, and a refused payment reserves nothing."""

from __future__ import annotations

import pytest

from mpp_client.errors import (
    BudgetExceeded,
    NotAllowed,
    PayeeChanged,
    PaymentVetoed,
    PolicyViolation,
    PriceUnavailable,
)
from mpp_client.guard import PaymentOptions
from mpp_client.methods.base import Payee
from mpp_client.money import SAT, Currency, Money
from mpp_client.runner import run_sync
from mpp_client.wallet import DEFAULT_LIMITS, USD_PEGGED, Limit, SpendPolicy, StaticPrices, usd

from .conftest import ORIGIN, PATH_USD, VOLATILE, context, pay, quote

OPEN = SpendPolicy(limits=(Limit(usd("1000"), "payment"),), pin_payees=False)


def refused(wallet, q, ctx=None, options=None, kind=PolicyViolation):
    """Assert both check and reserve refuse with ``kind`` and nothing was written."""
    ctx = ctx or context()
    options = options or PaymentOptions()
    before = wallet.payments()
    with pytest.raises(kind) as checked:
        wallet.check(q, ctx, options)
    with pytest.raises(kind) as reserved:
        run_sync(wallet.reserve(q, ctx, options))
    assert checked.value.rule == reserved.value.rule
    assert wallet.payments() == before, "a refused payment must not be journaled"
    assert checked.value.challenge is q.challenge
    return reserved.value


# --- safe defaults ------------------------------------------------------------------------------


def test_default_policy_pays_a_small_stablecoin_amount(make_wallet):
    wallet = make_wallet()
    pay(wallet, quote(500_000))  # $0.50
    assert [p.state for p in wallet.payments()] == ["settled"]


def test_default_per_payment_cap_is_one_dollar(make_wallet):
    wallet = make_wallet()
    error = refused(wallet, quote(1_000_001), kind=BudgetExceeded)
    assert error.rule == "default.usd.payment"
    assert "$1" in error.reason


def test_default_daily_cap_is_ten_dollars(make_wallet):
    wallet = make_wallet()
    for _ in range(10):
        pay(wallet, quote(1_000_000))
    error = refused(wallet, quote(1), kind=BudgetExceeded)
    assert error.rule == "default.usd.day"


def test_a_dollar_cap_is_exact_to_the_base_unit_across_pegged_currencies(make_wallet):
    # Caps are compared in whole base units when every amount is one (2 and 6 decimals under
    # a micro-dollar cap) and as fractions otherwise (18 decimals): the same edge either way.
    cents = Currency("0xc3", 2, network="eip155:4217", symbol="C", usd_pegged=True)
    fine = Currency("0xf18", 18, network="eip155:4217", symbol="F", usd_pegged=True)
    cap = Limit(usd("1.00"), "day", currency=USD_PEGGED)
    wallet = make_wallet(SpendPolicy(limits=(cap,), pin_payees=False))
    pay(wallet, quote(40, currency=cents))  # $0.40
    pay(wallet, quote(500_000))  # $0.50 in pathUSD (6 decimals)
    assert refused(wallet, quote(11, currency=cents), kind=BudgetExceeded).rule == cap.rule
    refused(wallet, quote(10**17 + 1, currency=fine), kind=BudgetExceeded)  # $0.1 + 1e-18
    pay(wallet, quote(10**17 - 10**12, currency=fine))  # $0.099999
    error = refused(wallet, quote(2), kind=BudgetExceeded)  # $0.000002 over, in fractions
    assert "already held: $0.999999" in error.reason
    pay(wallet, quote(1))  # exactly the cap
    refused(wallet, quote(1), kind=BudgetExceeded)


def test_default_allows_small_lightning_payments_in_sats(make_wallet):
    wallet = make_wallet()
    pay(wallet, quote(1_000, currency=SAT, method="lightning", network="mainnet"))
    error = refused(
        wallet, quote(1_001, currency=SAT, method="lightning", network="mainnet"),
        kind=BudgetExceeded,
    )  # fmt: skip
    assert error.rule == "default.sat.payment"


def test_a_currency_no_limit_covers_is_refused(make_wallet):
    wallet = make_wallet()
    error = refused(wallet, quote(1, currency=VOLATILE, network="eip155:1"), kind=NotAllowed)
    assert error.rule == "limit.required"


# --- caps and windows ---------------------------------------------------------------------------


def test_exposure_includes_the_maximum_fee(make_wallet):
    wallet = make_wallet(SpendPolicy(limits=(Limit(Money(100, SAT)),)))
    q = quote(90, currency=SAT, method="lightning", network="mainnet", max_fee=Money(11, SAT))
    assert refused(wallet, q, kind=BudgetExceeded).rule == "limit.payment"


def test_hourly_window_rolls(make_wallet, clock):
    wallet = make_wallet(SpendPolicy(limits=(Limit(usd("1"), "hour"),), pin_payees=False))
    pay(wallet, quote(600_000))
    clock.now += 1800
    refused(wallet, quote(600_000), kind=BudgetExceeded)
    clock.now += 1801  # the first payment is now more than an hour old
    pay(wallet, quote(600_000))


def test_lifetime_total(make_wallet, clock):
    wallet = make_wallet(SpendPolicy(limits=(Limit(usd("1"), "lifetime"),)))
    pay(wallet, quote(700_000))
    clock.now += 10 * 86400
    assert refused(wallet, quote(300_001), kind=BudgetExceeded).rule == "limit.lifetime"
    pay(wallet, quote(300_000))


def test_per_call_cap_spans_rechallenges(make_wallet):
    wallet = make_wallet(SpendPolicy(limits=(Limit(usd("1"), "payment"), Limit(usd("1"), "call"))))
    ctx = context(call_id="one-call")
    options = PaymentOptions(max_payments=5)
    pay(wallet, quote(600_000), ctx, options)
    error = refused(wallet, quote(600_000), ctx, options, kind=BudgetExceeded)
    assert error.rule == "limit.call"
    pay(wallet, quote(600_000), context(call_id="another-call"), options)


def test_request_max_payments(make_wallet):
    wallet = make_wallet()
    ctx = context(call_id="c")
    pay(wallet, quote(1), ctx)
    assert refused(wallet, quote(1), ctx, kind=BudgetExceeded).rule == "request.max_payments"


def test_released_reservation_frees_the_budget(make_wallet):
    wallet = make_wallet(SpendPolicy(limits=(Limit(usd("1"), "day"),)))
    first = pay(wallet, quote(1_000_000), settle=False)
    refused(wallet, quote(1), kind=BudgetExceeded)
    first.failed("server said no", money_moved=False)
    pay(wallet, quote(1_000_000))


def test_failed_after_money_moved_still_counts(make_wallet):
    wallet = make_wallet(SpendPolicy(limits=(Limit(usd("1"), "day"),)))
    first = pay(wallet, quote(1_000_000), settle=False)
    first.failed("403 after paying", money_moved=True)
    refused(wallet, quote(1), kind=BudgetExceeded)


def test_unknown_outcome_keeps_its_reservation(make_wallet):
    wallet = make_wallet(SpendPolicy(limits=(Limit(usd("1"), "day"),)))
    first = pay(wallet, quote(1_000_000), settle=False)
    first.sent("fp", "0xtx")
    first.unknown("no answer")
    refused(wallet, quote(1), kind=BudgetExceeded)


@pytest.mark.parametrize(
    ("limit", "ctx_origin", "payee", "method", "applies"),
    [
        (Limit(usd("0.1"), origin=ORIGIN), ORIGIN, "0xm", "tempo", True),
        (Limit(usd("0.1"), origin="https://other.example"), ORIGIN, "0xm", "tempo", False),
        (Limit(usd("0.1"), payee="0xm"), ORIGIN, "0xm", "tempo", True),
        (Limit(usd("0.1"), payee="0xz"), ORIGIN, "0xm", "tempo", False),
        (Limit(usd("0.1"), method="tempo"), ORIGIN, "0xm", "tempo", True),
        (Limit(usd("0.1"), method="stripe"), ORIGIN, "0xm", "tempo", False),
        (Limit(usd("0.1"), currency=PATH_USD.code), ORIGIN, "0xm", "tempo", True),
        (Limit(usd("0.1"), currency=USD_PEGGED), ORIGIN, "0xm", "tempo", True),
        (Limit(usd("0.1"), currency="sat"), ORIGIN, "0xm", "tempo", False),
        (Limit(usd("0.1"), network="eip155:1"), ORIGIN, "0xm", "tempo", False),
    ],
)
def test_scoped_limits_apply_only_in_scope(make_wallet, limit, ctx_origin, payee, method, applies):
    wallet = make_wallet(OPEN.with_limits(limit))
    q = quote(200_000, payee=payee, method=method)
    if applies:
        assert refused(wallet, q, context(ctx_origin), kind=BudgetExceeded).rule == limit.rule
    else:
        pay(wallet, q, context(ctx_origin))


def test_payee_scope_counts_only_that_payees_share(make_wallet):
    wallet = make_wallet(OPEN.with_limits(Limit(usd("0.5"), "day", payee="0xa")))
    split = (Payee("0xa", 400_000), Payee("0xb", 600_000))
    pay(wallet, quote(1_000_000, payees=split))
    error = refused(wallet, quote(200_000, payee="0xa"), kind=BudgetExceeded)
    assert error.rule == "limit.day[payee=0xa]"
    pay(wallet, quote(100_000, payee="0xa"))


# --- allowlists ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "rule"),
    [
        ({"origins": {"https://other.example"}}, "allow.origins"),
        ({"payees": {"0xsomeone"}}, "allow.payees"),
        ({"networks": {"eip155:1"}}, "allow.networks"),
        ({"tokens": {"0xdead"}}, "allow.tokens"),
        ({"methods": {"stripe"}}, "allow.methods"),
    ],
)
def test_allowlists_refuse_what_is_not_listed(make_wallet, changes, rule):
    wallet = make_wallet(OPEN.replace(**changes))
    assert refused(wallet, quote(1), kind=NotAllowed).rule == rule


def test_allowlists_admit_what_is_listed(make_wallet):
    policy = OPEN.replace(
        origins={ORIGIN + "/"}, payees={"0xmerchant"}, networks={"eip155:4217"},
        tokens={PATH_USD.code.upper()}, methods={"tempo"},
    )  # fmt: skip
    pay(make_wallet(policy), quote(1))


# --- pinning ------------------------------------------------------------------------------------


def test_payee_pinned_on_first_use(make_wallet):
    wallet = make_wallet()
    pay(wallet, quote(1, payee="0xfirst"))
    error = refused(wallet, quote(1, payee="0xattacker"), kind=PayeeChanged)
    assert error.rule == "pin.payee"
    assert "0xattacker" in error.reason
    pay(wallet, quote(1, payee="0xfirst"))
    pay(wallet, quote(1, payee="0xother"), context("https://elsewhere.example"))


def test_token_and_chain_pinned_on_first_use(make_wallet):
    wallet = make_wallet(SpendPolicy(limits=(Limit(usd("1"), currency=USD_PEGGED),)))
    pay(wallet, quote(1))
    usdc = Currency("0xusdc", 6, network="eip155:4217", usd_pegged=True)
    assert refused(wallet, quote(1, currency=usdc), kind=PayeeChanged).rule == "pin.token"
    assert refused(wallet, quote(1, network="eip155:42431"), kind=PayeeChanged).rule == "pin.chain"


def test_payee_change_can_go_to_approval(make_wallet):
    asked = []

    def approve(q, ctx):
        asked.append(q.payees[0].address)
        return True

    wallet = make_wallet(SpendPolicy(on_payee_change="approve"), approve=approve)
    pay(wallet, quote(1, payee="0xfirst"))
    pay(wallet, quote(1, payee="0xsecond"))
    assert asked == ["0xfirst", "0xsecond"]
    # Once approved, the new payee is part of the pin.
    assert wallet.journal.ledger().pin(ORIGIN, "tempo").payees == {"0xfirst", "0xsecond"}


def test_payee_change_without_approver_is_refused(make_wallet):
    wallet = make_wallet(SpendPolicy(on_payee_change="approve"))
    pay(wallet, quote(1, payee="0xfirst"))
    refused(wallet, quote(1, payee="0xsecond"), kind=PayeeChanged)


# --- prices -------------------------------------------------------------------------------------


def test_usd_cap_without_a_price_fails_closed(make_wallet):
    wallet = make_wallet(SpendPolicy(limits=(Limit(usd("1")),)))
    error = refused(wallet, quote(1, currency=VOLATILE, network="eip155:1"), kind=PriceUnavailable)
    assert "no USD price" in error.reason


def test_usd_cap_with_a_price(make_wallet):
    prices = StaticPrices({VOLATILE.code: "2000"})  # $2000 per whole token (18 decimals)
    wallet = make_wallet(SpendPolicy(limits=(Limit(usd("1")),)), prices=prices)
    pay(wallet, quote(5 * 10**14, currency=VOLATILE, network="eip155:1"))  # $1.00 exactly
    refused(
        wallet, quote(5 * 10**14 + 1, currency=VOLATILE, network="eip155:1"), kind=BudgetExceeded
    )


def test_a_failing_price_source_refuses(make_wallet):
    class Broken:
        def usd_per_unit(self, currency):
            raise RuntimeError("feed down")

    wallet = make_wallet(SpendPolicy(limits=(Limit(usd("1")),)), prices=Broken())
    refused(
        wallet, quote(1, currency=SAT, method="lightning", network="mainnet"), kind=PriceUnavailable
    )


# --- approval -----------------------------------------------------------------------------------


def test_approval_callback_can_veto(make_wallet):
    wallet = make_wallet(approve=lambda q, ctx: False)
    with pytest.raises(PaymentVetoed):
        run_sync(wallet.reserve(quote(1), context(), PaymentOptions()))
    assert wallet.payments() == []


def test_approval_must_be_exactly_true(make_wallet):
    wallet = make_wallet(approve=lambda q, ctx: "yes")
    with pytest.raises(PaymentVetoed):
        run_sync(wallet.reserve(quote(1), context(), PaymentOptions()))


async def test_async_approval_callback(make_wallet):
    from mpp_client.runner import run_async

    seen = []

    async def approve(q, ctx):
        seen.append(q.amount.amount)
        return True

    wallet = make_wallet(approve=approve)
    reservation = await run_async(wallet.reserve(quote(7), context(), PaymentOptions()))
    assert seen == [7]
    assert wallet.journal.get(reservation.id).state == "reserved"


def test_approve_above_asks_only_for_large_payments(make_wallet):
    asked = []
    wallet = make_wallet(
        SpendPolicy(approve_above=usd("0.25")), approve=lambda q, c: asked.append(q) or True
    )
    pay(wallet, quote(250_000))
    assert asked == []
    pay(wallet, quote(250_001))
    assert len(asked) == 1


def test_approve_above_without_callback_refuses(make_wallet):
    wallet = make_wallet(SpendPolicy(approve_above=usd("0.25")))
    pay(wallet, quote(250_000))
    assert refused(wallet, quote(250_001), kind=NotAllowed).rule == "approval"


# --- scoped budgets -----------------------------------------------------------------------------


def test_budget_scope_caps_the_block(make_wallet):
    wallet = make_wallet()
    with wallet.budget(usd("0.30"), label="task") as budget:
        pay(wallet, quote(200_000))
        error = refused(wallet, quote(200_000), kind=BudgetExceeded)
        assert error.rule == "budget:task"
        assert budget.spent == usd("0.20")
        assert budget.remaining == usd("0.10")
    pay(wallet, quote(200_000))  # outside the block the budget no longer applies
    assert [p.label for p in wallet.payments()] == ["task", None]


def test_nested_budgets_all_apply(make_wallet):
    wallet = make_wallet()
    with wallet.budget(usd("0.50"), label="outer"):
        with wallet.budget(usd("0.40"), label="inner"):
            pay(wallet, quote(300_000))
            assert refused(wallet, quote(150_000), kind=BudgetExceeded).rule == "budget:inner"
        pay(wallet, quote(150_000))
        assert refused(wallet, quote(100_000), kind=BudgetExceeded).rule == "budget:outer"
    assert [p.label for p in wallet.payments()] == ["outer/inner", "outer"]
    assert [p.amount.amount for p in wallet.payments(label="inner")] == [300_000]


def test_budget_in_native_units_refuses_other_currencies(make_wallet):
    wallet = make_wallet()
    with wallet.budget(Money(500, SAT), label="sats"):
        assert refused(wallet, quote(1), kind=BudgetExceeded).rule == "budget:sats"
        pay(wallet, quote(500, currency=SAT, method="lightning", network="mainnet"))


def test_budget_released_when_no_money_moved(make_wallet):
    wallet = make_wallet()
    with wallet.budget(usd("0.30")) as budget:
        reservation = pay(wallet, quote(300_000), settle=False)
        assert budget.remaining == usd("0")
        reservation.failed("rejected", money_moved=False)
        assert budget.remaining == usd("0.30")


async def test_budget_shared_by_tasks_created_inside(make_wallet):
    import asyncio

    from mpp_client.runner import run_async

    wallet = make_wallet(SpendPolicy(pin_payees=False))

    async def one():
        try:
            await run_async(wallet.reserve(quote(100_000), context(), PaymentOptions()))
            return True
        except BudgetExceeded:
            return False

    async with wallet.budget(usd("0.50")):
        results = await asyncio.gather(*(one() for _ in range(20)))
    assert results.count(True) == 5


# --- the policy value ---------------------------------------------------------------------------


def test_policy_is_immutable_and_replace_returns_a_copy():
    policy = SpendPolicy()
    changed = policy.replace(pin_payees=False)
    assert policy.pin_payees and not changed.pin_payees
    with pytest.raises(AttributeError):
        policy.pin_payees = False  # type: ignore[misc]
    assert policy.limits == DEFAULT_LIMITS


def test_policy_from_toml(tmp_path):
    path = tmp_path / "policy.toml"
    path.write_text(
        """
[policy]
origins = ["https://api.example.com"]
tokens = ["0x20C0000000000000000000000000000000000000"]
approve_above = "0.25 USD"
on_payee_change = "approve"

[[limit]]
cap = "0.10 USD"
per = "payment"

[[limit]]
cap = "500 sat"
per = "day"
origin = "https://api.example.com"

[[limit]]
per = "lifetime"
name = "pathusd.lifetime"
[limit.cap]
amount = 5000000
currency = "0x20c0000000000000000000000000000000000000"
decimals = 6
network = "eip155:4217"
usd_pegged = true
"""
    )
    policy = SpendPolicy.from_toml(path)
    assert policy.origins == {"https://api.example.com"}
    assert policy.tokens == {"0x20c0000000000000000000000000000000000000"}
    assert policy.approve_above == usd("0.25")
    assert policy.on_payee_change == "approve"
    assert policy.limits[0] == Limit(usd("0.10"), "payment")
    assert policy.limits[1] == Limit(Money(500, SAT), "day", origin="https://api.example.com")
    assert policy.limits[2].cap.amount == 5_000_000 and policy.limits[2].rule == "pathusd.lifetime"
    assert len(policy.limits) == 3  # [[limit]] entries replace the defaults


def test_policy_file_can_keep_defaults():
    policy = SpendPolicy.from_mapping(
        {"policy": {"default_limits": True}, "limit": [{"cap": "1 USD", "per": "hour"}]}
    )
    assert policy.limits[: len(DEFAULT_LIMITS)] == DEFAULT_LIMITS
    assert policy.limits[-1] == Limit(usd("1"), "hour")


@pytest.mark.parametrize(
    "document",
    [
        {"policy": {"origin": ["x"]}},
        {"limit": [{"cap": "1 USD", "per": "week"}]},
        {"limit": [{"cap": "1.5 sat"}]},
        {"limit": [{"cap": "0.0000001 USD"}]},
        {"limit": [{"per": "day"}]},
        {"limit": [{"cap": 1.5}]},
        {"rules": []},
    ],
)
def test_bad_policy_files_are_rejected(document):
    with pytest.raises(ValueError):
        SpendPolicy.from_mapping(document)
