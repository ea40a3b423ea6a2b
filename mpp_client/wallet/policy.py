"""The spend policy: an immutable value saying what the wallet may pay.

A ``SpendPolicy`` holds ``Limit``s (caps per payment, per logical call, per rolling hour or
day, and lifetime, each optionally scoped to an origin, payee, method, currency or chain),
allowlists, trust-on-first-use payee pinning and when to ask for approval. It is built in
Python or loaded from TOML (``SpendPolicy.from_toml``), and changed with ``replace`` / ``with_``
methods that return new values, like urllib3's ``Retry``.

``assess`` applies a policy to one quote against what a ``Ledger`` (the journal) says was
already spent; the wallet runs it once without locks for ``check`` and once inside the
journal's write transaction for ``reserve``, so two payments can never both fit a cap that
only one of them fits.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, Decimal
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Literal, Protocol, get_args

from mpp_client.errors import BudgetExceeded, NotAllowed, PayeeChanged, PolicyViolation
from mpp_client.money import SAT, Currency, Money
from mpp_client.wallet.prices import PriceSource, is_usd_cap, parse_money, usd, usd_value

if TYPE_CHECKING:
    from mpp_client.guard import PaymentOptions
    from mpp_client.methods.base import PaymentContext, Quote

__all__ = [
    "DEFAULT_LIMITS",
    "USD_PEGGED",
    "Assessment",
    "Ledger",
    "Limit",
    "Pin",
    "SpendPolicy",
    "Window",
    "assess",
]

Window = Literal["payment", "call", "hour", "day", "lifetime"]
_WINDOW_SECONDS: dict[str, int] = {"hour": 3600, "day": 86400}

#: ``Limit.currency`` selector matching every currency pegged to the US dollar.
USD_PEGGED = "usd-pegged"

#: Amounts at or above this are refused outright (they cannot be summed safely in SQLite and
#: no real cap is that large).
_MAX_AMOUNT = 2**62


@dataclass(frozen=True, slots=True)
class Limit:
    """A cap on what may be spent, per ``per`` window, by the payments in its scope.

    ``cap`` is either dollars (``usd("1.00")``: applies to every currency in scope, converting
    through prices; see ``mpp_client.wallet.prices``) or a native currency (``Money(1000,
    SAT)``: counts only payments in that currency, base units). Windows: ``"payment"`` (each
    payment alone), ``"call"`` (all payments of one logical request, re-challenges included),
    ``"hour"`` / ``"day"`` (rolling 3600 s / 86400 s), ``"lifetime"`` (the whole journal).

    Scope filters (``None`` = any): ``origin`` (``scheme://host[:port]``), ``payee`` (an
    address; only the amount paid to it counts), ``method`` (``"tempo"``), ``currency`` (a
    currency code, or ``USD_PEGGED`` for every dollar stablecoin/fiat), ``network`` (a chain id).
    Payments count with their exposure: amount plus the most the fee can be.
    """

    cap: Money
    per: Window = "payment"
    origin: str | None = None
    payee: str | None = None
    method: str | None = None
    currency: str | None = None
    network: str | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        if self.per not in get_args(Window):
            raise ValueError(f"per must be one of {get_args(Window)}, not {self.per!r}")
        if self.cap.amount < 0:
            raise ValueError("a cap cannot be negative")
        if self.currency is not None and self.currency != self.currency.lower():
            object.__setattr__(self, "currency", self.currency.lower())
        if self.origin is not None:
            object.__setattr__(self, "origin", self.origin.rstrip("/").lower())

    @property
    def in_usd(self) -> bool:
        """Whether the cap is in dollars (so it applies across currencies)."""
        return is_usd_cap(self.cap.currency)

    @property
    def rule(self) -> str:
        """The rule name carried by ``PolicyViolation.rule`` when this limit refuses."""
        if self.name:
            return self.name
        scope = [
            f"{key}={value}"
            for key in ("origin", "payee", "method", "currency", "network")
            if (value := getattr(self, key)) is not None
        ]
        suffix = f"[{','.join(scope)}]" if scope else ""
        return f"limit.{self.per}{suffix}"

    @property
    def window_seconds(self) -> int | None:
        """The rolling window length in seconds (``None`` for payment, call and lifetime)."""
        return _WINDOW_SECONDS.get(self.per)

    def selects(self, currency: Currency) -> bool:
        """Whether payments in ``currency`` count against this limit (scope and cap unit)."""
        if self.currency == USD_PEGGED:
            if not currency.usd_pegged:
                return False
        elif self.currency is not None and self.currency != currency.code:
            return False
        if self.network is not None and self.network != currency.network:
            return False
        if self.in_usd:
            return True
        cap = self.cap.currency
        return cap.code == currency.code and cap.network in (None, currency.network)

    def applies(self, quote: Quote, origin: str) -> bool:
        """Whether ``quote`` (paid for a request to ``origin``) is in this limit's scope."""
        if self.origin is not None and self.origin != origin:
            return False
        if self.method is not None and self.method != quote.method:
            return False
        if self.network is not None and self.network != (
            quote.network or quote.amount.currency.network
        ):
            return False
        if self.payee is not None and all(p.address != self.payee for p in quote.payees):
            return False
        return self.selects(quote.amount.currency)


def _default_limits() -> tuple[Limit, ...]:
    return (
        Limit(usd("1.00"), "payment", currency=USD_PEGGED, name="default.usd.payment"),
        Limit(usd("10.00"), "day", currency=USD_PEGGED, name="default.usd.day"),
        Limit(Money(1_000, SAT), "payment", name="default.sat.payment"),
        Limit(Money(10_000, SAT), "day", name="default.sat.day"),
    )


#: The limits a ``SpendPolicy()`` starts with: $1.00 per payment and $10.00 per rolling day in
#: dollar-pegged currencies; 1,000 sat per payment and 10,000 sat per rolling day on Lightning.
#: Any other currency is refused until the owner adds a limit that covers it.
DEFAULT_LIMITS: tuple[Limit, ...] = _default_limits()


@dataclass(frozen=True, slots=True)
class Pin:
    """What an origin was first paid with, per method: payee addresses, token and chain."""

    payees: frozenset[str]
    token: str
    network: str | None


@dataclass(frozen=True, slots=True)
class SpendPolicy:
    """What the wallet may pay. Immutable; the defaults are safe and the owner raises them.

    ``limits``: caps (see ``Limit``); ``DEFAULT_LIMITS`` unless given.
    ``require_limit``: refuse a payment no limit covers (so an unexpected currency is never
    paid without a cap). Allowlists (``None`` = any): ``origins``, ``payees`` (every payee of a
    payment must be listed), ``networks`` (chains, ``Quote.network``), ``tokens`` (currency
    codes, e.g. a TIP-20 address or ``"sat"``), ``methods``.
    ``pin_payees``: trust on first use; the payee(s), token and chain an origin is first paid
    with (per method) are pinned, and a change is refused with ``PayeeChanged`` or, when
    ``on_payee_change="approve"``, sent to the approval callback. Payees on the ``payees``
    allowlist never count as a change.
    ``approve_above``: payments whose exposure is above this (dollars or native units) need the
    approval callback; ``None`` means the callback, when set, sees every payment.
    """

    limits: tuple[Limit, ...] = DEFAULT_LIMITS
    require_limit: bool = True
    origins: frozenset[str] | None = None
    payees: frozenset[str] | None = None
    networks: frozenset[str] | None = None
    tokens: frozenset[str] | None = None
    methods: frozenset[str] | None = None
    pin_payees: bool = True
    on_payee_change: Literal["refuse", "approve"] = "refuse"
    approve_above: Money | None = None

    def __post_init__(self) -> None:
        if self.on_payee_change not in ("refuse", "approve"):
            raise ValueError("on_payee_change must be 'refuse' or 'approve'")
        object.__setattr__(self, "limits", tuple(self.limits))
        for name in ("origins", "payees", "networks", "tokens", "methods"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, frozenset):
                object.__setattr__(self, name, frozenset(value))
        if self.origins is not None:
            object.__setattr__(
                self, "origins", frozenset(o.rstrip("/").lower() for o in self.origins)
            )
        if self.tokens is not None:
            object.__setattr__(self, "tokens", frozenset(t.lower() for t in self.tokens))

    def replace(self, **changes: Any) -> SpendPolicy:
        """A copy with ``changes`` applied (fields by name)."""
        return dataclasses.replace(self, **changes)

    def with_limits(self, *limits: Limit) -> SpendPolicy:
        """A copy with ``limits`` added to the existing ones."""
        return dataclasses.replace(self, limits=(*self.limits, *limits))

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> SpendPolicy:
        """Build a policy from a parsed TOML/JSON document (see ``from_toml``)."""
        known = {"policy", "limit"}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown policy sections: {sorted(unknown)}")
        section = dict(data.get("policy", {}))
        kwargs: dict[str, Any] = {}
        keep_defaults = bool(section.pop("default_limits", "limit" not in data))
        for name in ("origins", "payees", "networks", "tokens", "methods"):
            if name in section:
                kwargs[name] = frozenset(_strings(section.pop(name), name))
        for name in ("require_limit", "pin_payees"):
            if name in section:
                kwargs[name] = _bool(section.pop(name), name)
        if "on_payee_change" in section:
            kwargs["on_payee_change"] = section.pop("on_payee_change")
        if "approve_above" in section:
            kwargs["approve_above"] = parse_money(section.pop("approve_above"))
        if section:
            raise ValueError(f"unknown [policy] keys: {sorted(section)}")
        limits = [_limit(entry) for entry in data.get("limit", [])]
        kwargs["limits"] = (*(DEFAULT_LIMITS if keep_defaults else ()), *limits)
        return cls(**kwargs)

    @classmethod
    def from_toml(cls, path: str | os.PathLike[str]) -> SpendPolicy:
        """Load a policy file. Example::

        [policy]
        origins = ["https://api.example.com"]
        approve_above = "0.25 USD"
        # default_limits = true keeps DEFAULT_LIMITS next to the [[limit]]s below;
        # without it, [[limit]] entries replace them.

        [[limit]]
        cap = "0.10 USD"        # dollars, or "500 sat", or a table in base units
        per = "payment"         # payment | call | hour | day | lifetime
        [[limit]]
        cap = "5.00 USD"
        per = "day"
        origin = "https://api.example.com"
        """
        with open(path, "rb") as handle:
            return cls.from_mapping(tomllib.load(handle))


def _strings(value: Any, name: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{name} must be a list of strings")
    return list(value)


def _bool(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false")
    return value


def _limit(entry: Any) -> Limit:
    if not isinstance(entry, Mapping):
        raise ValueError("each [[limit]] must be a table")
    entry = dict(entry)
    if "cap" not in entry:
        raise ValueError("a [[limit]] needs a cap")
    cap = parse_money(entry.pop("cap"))
    per = entry.pop("per", "payment")
    scope = {
        k: entry.pop(k)
        for k in ("origin", "payee", "method", "currency", "network", "name")
        if k in entry
    }
    if entry:
        raise ValueError(f"unknown [[limit]] keys: {sorted(entry)}")
    for key, value in scope.items():
        if not isinstance(value, str):
            raise ValueError(f"limit {key} must be a string")
    return Limit(cap, per, **scope)


# --- assessment ---------------------------------------------------------------------------------


class Ledger(Protocol):
    """What the policy needs to know about past payments (the journal provides it).

    Totals are of HELD entries: reserved, in flight, settled, unknown, or failed after value
    may have moved; released reservations do not count. Amounts are base units per currency.
    """

    def now(self) -> float:
        """The journal clock, Unix seconds."""
        ...

    def held_totals(
        self,
        *,
        since: float | None = None,
        origin: str | None = None,
        method: str | None = None,
        payee: str | None = None,
        call_id: str | None = None,
        currencies: Callable[[Currency], bool] | None = None,
    ) -> list[tuple[Currency, int]]:
        """Held base units per currency, for entries matching every filter given
        (``currencies``: only currencies for which it returns true)."""
        ...

    def held_count(self, call_id: str) -> int:
        """How many held entries one logical call has."""
        ...

    def pin(self, origin: str, method: str) -> Pin | None:
        """The first-use pin of ``origin`` for ``method``, if any."""
        ...


class Valued(Protocol):
    """Something holding money against a cap (a scoped budget)."""

    @property
    def limit(self) -> Money: ...

    @property
    def label(self) -> str: ...

    def held(self) -> Iterable[Money]: ...


@dataclass(slots=True)
class Assessment:
    """The outcome of ``assess`` when nothing refused outright.

    ``approval``: why the approval callback must be asked (empty: no need). ``pin``: the pin to
    store for this origin and method after the payment is reserved (``None``: unchanged).
    """

    approval: list[str] = field(default_factory=list)
    pin: Pin | None = None


def _count(limit_unit: Currency, money: Money, prices: PriceSource | None, rule: str) -> Fraction:
    """``money`` in the unit of a cap (exactly)."""
    if is_usd_cap(limit_unit):
        return usd_value(money, prices, rule=rule)
    if money.currency.decimals != limit_unit.decimals:
        raise PolicyViolation(
            f"{money.currency} has {money.currency.decimals} decimals but the cap is in "
            f"{limit_unit.decimals}",
            rule=rule,
        )
    return Fraction(money.amount)


def _fmt(value: Fraction, unit: Currency) -> str:
    if is_usd_cap(unit):
        dollars = (Decimal(value.numerator) / Decimal(value.denominator)).quantize(
            Decimal("0.000001"), rounding=ROUND_CEILING
        )
        return f"${dollars.normalize():f}"
    return f"{int(value)} base units of {unit}" if unit.decimals else f"{int(value)} {unit}"


def _held_value(
    limit: Limit, ledger: Ledger, prices: PriceSource | None, *, call_id: str, origin: str
) -> Fraction:
    if limit.per == "payment":
        return Fraction(0)
    since: float | None = None
    if (seconds := limit.window_seconds) is not None:
        since = ledger.now() - seconds
    rows = ledger.held_totals(
        since=since,
        origin=limit.origin,
        method=limit.method,
        payee=limit.payee,
        call_id=call_id if limit.per == "call" else None,
        currencies=limit.selects,
    )
    total = Fraction(0)
    for currency, amount in rows:
        if amount and limit.selects(currency):
            total += _count(limit.cap.currency, Money(amount, currency), prices, limit.rule)
    return total


def assess(
    policy: SpendPolicy,
    quote: Quote,
    context: PaymentContext,
    options: PaymentOptions,
    ledger: Ledger,
    *,
    prices: PriceSource | None,
    scopes: Sequence[Valued] = (),
    approver: bool = False,
    approved: bool = False,
) -> Assessment:
    """Apply ``policy`` to ``quote``; raise a ``PolicyViolation`` subclass to refuse.

    ``approver``: an approval callback exists (so rules that need approval do not refuse).
    ``approved``: it already said yes for this payment. Nothing is written.
    """
    try:
        return _assess(
            policy, quote, context, options, ledger,
            prices=prices, scopes=scopes, approver=approver, approved=approved,
        )  # fmt: skip
    except PolicyViolation as refusal:
        if refusal.challenge is None:
            refusal.challenge = quote.challenge
        raise


def _assess(
    policy: SpendPolicy,
    quote: Quote,
    context: PaymentContext,
    options: PaymentOptions,
    ledger: Ledger,
    *,
    prices: PriceSource | None,
    scopes: Sequence[Valued] = (),
    approver: bool = False,
    approved: bool = False,
) -> Assessment:
    result = Assessment()
    challenge = quote.challenge
    origin = context.origin.rstrip("/").lower()
    exposure = quote.exposure
    currency = quote.amount.currency
    network = quote.network or currency.network

    def refuse(kind: type[PolicyViolation], rule: str, reason: str) -> PolicyViolation:
        return kind(reason, rule=rule, challenge=challenge)

    if exposure.amount < 0 or any(p.amount < 0 for p in quote.payees):
        raise refuse(NotAllowed, "amount.negative", "a negative amount cannot be paid")
    if exposure.amount >= _MAX_AMOUNT:
        raise refuse(BudgetExceeded, "amount.range", f"{exposure} is too large to pay")

    # Allowlists first: they are the owner's hard boundary, whatever the amounts.
    if policy.methods is not None and quote.method not in policy.methods:
        raise refuse(NotAllowed, "allow.methods", f"method {quote.method!r} is not allowed")
    if policy.origins is not None and origin not in policy.origins:
        raise refuse(NotAllowed, "allow.origins", f"paying {origin} is not allowed")
    if policy.networks is not None and network not in policy.networks:
        raise refuse(NotAllowed, "allow.networks", f"chain {network!r} is not allowed")
    if policy.tokens is not None and currency.code not in policy.tokens:
        raise refuse(NotAllowed, "allow.tokens", f"token {currency.code!r} is not allowed")
    if policy.payees is not None:
        for payee in quote.payees:
            if payee.address not in policy.payees:
                raise refuse(NotAllowed, "allow.payees", f"payee {payee.address} is not allowed")

    if policy.pin_payees:
        _assess_pin(policy, quote, origin, network, ledger, result, approver, approved, refuse)

    # The caller's per-request maximum (``PaymentOptions.max_amount``) is enforced once, by the
    # flow, for every guard: a second payment of one request happens only after the first was
    # proven void, so "per payment" and "per request" are the same amount.
    call_id = context.call_id
    if call_id and ledger.held_count(call_id) >= options.max_payments:
        raise refuse(
            BudgetExceeded,
            "request.max_payments",
            f"this request already made {options.max_payments} payment(s), its maximum",
        )

    covered = False
    for limit in policy.limits:
        if not limit.applies(quote, origin):
            continue
        covered = True
        counted = exposure
        if limit.payee is not None:
            counted = Money(
                sum(p.amount for p in quote.payees if p.address == limit.payee), currency
            )
        unit = limit.cap.currency
        this = _count(unit, counted, prices, limit.rule)
        before = _held_value(limit, ledger, prices, call_id=call_id, origin=origin)
        cap = (
            Fraction(limit.cap.amount, 10**unit.decimals)
            if limit.in_usd
            else Fraction(limit.cap.amount)
        )
        if before + this > cap:
            what = "" if limit.per == "payment" else f" (already held: {_fmt(before, unit)})"
            raise refuse(
                BudgetExceeded,
                limit.rule,
                f"{exposure} is {_fmt(this, unit)}; the {limit.per} cap is {_fmt(cap, unit)}{what}",
            )
    if policy.require_limit and not covered:
        raise refuse(
            NotAllowed,
            "limit.required",
            f"no limit covers payments in {currency} on {network or 'its network'}; "
            "add a Limit for it to allow them",
        )

    for scope in scopes:
        unit = scope.limit.currency
        rule = f"budget:{scope.label}"
        if not is_usd_cap(unit) and not (
            unit.code == currency.code and unit.network in (None, currency.network)
        ):
            raise refuse(
                BudgetExceeded,
                rule,
                f"budget {scope.label!r} is in {unit}; {currency} is not allowed in it",
            )
        this = _count(unit, exposure, prices, rule)
        before = sum((_count(unit, m, prices, rule) for m in scope.held()), Fraction(0))
        cap = (
            Fraction(scope.limit.amount, 10**unit.decimals)
            if is_usd_cap(unit)
            else Fraction(scope.limit.amount)
        )
        if before + this > cap:
            raise refuse(
                BudgetExceeded,
                rule,
                f"{exposure} does not fit budget {scope.label!r}: {_fmt(before, unit)} of "
                f"{_fmt(cap, unit)} already held",
            )

    if policy.approve_above is not None:
        unit = policy.approve_above.currency
        if is_usd_cap(unit) or unit == currency:
            over = _count(unit, exposure, prices, "approve_above") > (
                Fraction(policy.approve_above.amount, 10**unit.decimals)
                if is_usd_cap(unit)
                else Fraction(policy.approve_above.amount)
            )
        else:
            over = True  # a threshold in another currency cannot vouch for this one
        if over:
            result.approval.append(
                f"{exposure} is above the approval threshold {policy.approve_above}"
            )
            if not approver:
                raise refuse(
                    NotAllowed,
                    "approval",
                    f"{exposure} needs approval and no approval callback is set",
                )
    return result


def _assess_pin(
    policy: SpendPolicy,
    quote: Quote,
    origin: str,
    network: str | None,
    ledger: Ledger,
    result: Assessment,
    approver: bool,
    approved: bool,
    refuse: Any,
) -> None:
    payees = frozenset(p.address for p in quote.payees)
    token = quote.amount.currency.code
    pin = ledger.pin(origin, quote.method)
    if pin is None:
        result.pin = Pin(payees, token, network)
        return
    changes: list[tuple[str, str]] = []
    allowed = policy.payees or frozenset()
    new = sorted(payees - pin.payees - allowed)
    if new:
        changes.append(
            ("pin.payee", f"payee {', '.join(new)} is new for {origin} ({quote.method})")
        )
    if token != pin.token:
        changes.append(("pin.token", f"token changed for {origin}: {pin.token} -> {token}"))
    if network != pin.network:
        changes.append(("pin.chain", f"chain changed for {origin}: {pin.network} -> {network}"))
    if not changes:
        return
    if policy.on_payee_change == "approve" and approver:
        result.approval.extend(reason for _, reason in changes)
        if approved:
            result.pin = Pin(pin.payees | payees, token, network)
        return
    rule, reason = changes[0]
    raise refuse(PayeeChanged, rule, reason)
