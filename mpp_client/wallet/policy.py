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
import difflib
import os
import re
import tomllib
import urllib.parse
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
    "parse_cap",
    "parse_origin",
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
        """Build a policy from a parsed TOML/JSON document (see ``from_toml``).

        Strict: an unknown section or key (with the closest known one suggested), a value of
        the wrong type (``default_limits = "false"`` is not false), a float amount, an
        amount too large to sum, or an origin without its scheme is a ``ValueError`` naming
        the key, never ignored or guessed.
        """
        if not isinstance(data, Mapping):
            raise ValueError("a policy document must be a table")
        _known_keys("", data, ("policy", "limit"), "section")
        raw_section = data.get("policy", {})
        if not isinstance(raw_section, Mapping):
            raise ValueError(f"policy must be a [policy] table, not {_kind(raw_section)}")
        raw_limits = data.get("limit", [])
        if not isinstance(raw_limits, list):
            raise ValueError(f"limit must be [[limit]] tables, not {_kind(raw_limits)}")
        section = dict(raw_section)
        _known_keys("[policy] ", section, _POLICY_KEYS, "key")
        kwargs: dict[str, Any] = {}
        keep_defaults = "limit" not in data
        if "default_limits" in section:
            keep_defaults = _bool(section.pop("default_limits"), "[policy] default_limits")
        for name in ("origins", "payees", "networks", "tokens", "methods"):
            if name in section:
                values = _strings(section.pop(name), f"[policy] {name}")
                if name == "origins":
                    values = [parse_origin(v, f"[policy] {name}") for v in values]
                kwargs[name] = frozenset(values)
        for name in ("require_limit", "pin_payees"):
            if name in section:
                kwargs[name] = _bool(section.pop(name), f"[policy] {name}")
        if "on_payee_change" in section:
            choice = section.pop("on_payee_change")
            if choice not in ("refuse", "approve"):
                raise ValueError(
                    f'[policy] on_payee_change must be "refuse" or "approve", not {_kind(choice)}'
                )
            kwargs["on_payee_change"] = choice
        if "approve_above" in section:
            kwargs["approve_above"] = parse_cap(
                section.pop("approve_above"), "[policy] approve_above"
            )
        limits = [_limit(entry, index) for index, entry in enumerate(raw_limits, 1)]
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

        A file that cannot be read as such a policy is a ``ValueError`` whose message starts
        with the file's path (``OSError`` when it cannot be read at all).
        """
        with open(path, "rb") as handle:
            raw = handle.read()
        try:
            document = tomllib.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise ValueError(
                f"{os.fspath(path)}: not UTF-8 text (byte {exc.start}); TOML files are UTF-8"
            ) from None
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{os.fspath(path)}: {exc}") from None
        try:
            return cls.from_mapping(document)
        except ValueError as exc:
            raise ValueError(f"{os.fspath(path)}: {exc}") from None


# --- reading the policy file --------------------------------------------------------------------

_POLICY_KEYS = (
    "default_limits", "origins", "payees", "networks", "tokens", "methods",
    "require_limit", "pin_payees", "on_payee_change", "approve_above",
)  # fmt: skip
_LIMIT_KEYS = ("cap", "per", "origin", "payee", "method", "currency", "network", "name")
_CAP_KEYS = ("amount", "currency", "decimals", "network", "usd_pegged")
# Decimal's default precision: an amount with more digits would be rounded while read.
_MAX_DIGITS = 28
_MAX_DECIMALS = 36
_AMOUNT_TEXT = re.compile(r"^\s*\$?\s*(?P<whole>[0-9]+)(?:\.(?P<frac>[0-9]+))?\s*[A-Za-z$]*\s*$")


def _kind(value: Any) -> str:
    kind = {bool: "a boolean", int: "an integer", float: "a float", str: "a string"}.get(
        type(value), f"a {type(value).__name__}"
    )
    text = repr(value)
    return f"{kind} {text if len(text) <= 40 else text[:37] + '...'}"


def _known_keys(where: str, table: Mapping[str, Any], known: Sequence[str], what: str) -> None:
    for key in table:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"{where}unknown {what} {key!r}{hint}")


def _strings(value: Any, name: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"{name} must be a list of strings, not {_kind(value)}")
    return list(value)


def _bool(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        # "false" is a non-empty string, so truthy: never read a string as a boolean.
        raise ValueError(f"{name} must be true or false (no quotes), not {_kind(value)}")
    return value


def parse_origin(text: Any, where: str = "origin") -> str:
    """An origin as policies compare them: ``scheme://host[:port]``, lower case, without a
    trailing slash. Anything else (no scheme, a path, a query) is a ``ValueError``: an origin
    that can never match would silently refuse, or scope a cap to nothing."""
    if not isinstance(text, str):
        raise ValueError(f"{where} must be a string, not {_kind(text)}")
    origin = text.strip().rstrip("/").lower()
    try:
        parts = urllib.parse.urlsplit(origin)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        raise ValueError(f"{where}: {text!r} is not an origin ({exc})") from None
    if parts.scheme == "mcp-stdio" and parts.hostname:
        # An MCP server run as a local process (``mpp_client.mcp``): named, never networked.
        return origin
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            f"{where}: {text!r} is not an origin: write scheme://host[:port], "
            f"e.g. https://{parts.path or parts.netloc or 'api.example.com'}"
        )
    if parts.path or parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(
            f"{where}: {text!r} is not an origin: only scheme://host[:port], "
            f"e.g. {parts.scheme}://{parts.netloc}"
        )
    return origin


def parse_cap(value: Any, where: str = "cap") -> Money:
    """An amount of a policy (a cap, the approval threshold): ``"0.50 USD"``, ``"1000 sat"``
    or a table in base units, checked before ``parse_money`` reads it: no floats, no more
    digits than can be read exactly, nothing the journal could not sum (``_MAX_AMOUNT``)."""
    if isinstance(value, (float, bool, int)) and not isinstance(value, Money):
        raise ValueError(
            f'{where} must be a string such as "0.50 USD" or "1000 sat", or a table in base '
            f"units, not {_kind(value)}"
        )
    if isinstance(value, str):
        match = _AMOUNT_TEXT.match(value)
        if match and len(match["whole"].lstrip("0")) + len(match["frac"] or "") > _MAX_DIGITS:
            raise ValueError(f"{where}: {value[:40]!r}... has too many digits to be a cap")
    elif isinstance(value, Mapping):
        _known_keys(f"{where} ", value, _CAP_KEYS, "key")
        amount, decimals = value.get("amount"), value.get("decimals")
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise ValueError(
                f"{where} amount must be an integer of base units, not {_kind(amount)}"
            )
        if isinstance(decimals, bool) or not isinstance(decimals, int):
            raise ValueError(f"{where} decimals must be an integer, not {_kind(decimals)}")
        if not 0 <= decimals <= _MAX_DECIMALS:
            raise ValueError(f"{where} decimals must be 0 to {_MAX_DECIMALS}, not {decimals}")
        if not isinstance(value.get("currency"), str) or not value["currency"]:
            raise ValueError(f"{where} currency must be a string (a currency code or token)")
        if "network" in value and not isinstance(value["network"], str):
            raise ValueError(f"{where} network must be a string, not {_kind(value['network'])}")
        if "usd_pegged" in value:
            _bool(value["usd_pegged"], f"{where} usd_pegged")
    try:
        money = parse_money(value)
    except (ValueError, ArithmeticError) as exc:
        raise ValueError(f"{where}: {exc}") from None
    if not 0 <= money.amount < _MAX_AMOUNT:
        raise ValueError(f"{where}: {money} is out of range (at most {_MAX_AMOUNT - 1} base units)")
    return money


def _limit(entry: Any, index: int) -> Limit:
    where = f"[[limit]] #{index}"
    if not isinstance(entry, Mapping):
        raise ValueError(f"{where} must be a table, not {_kind(entry)}")
    entry = dict(entry)
    _known_keys(f"{where} ", entry, _LIMIT_KEYS, "key")
    if "cap" not in entry:
        raise ValueError(f'{where} needs a cap (e.g. cap = "0.10 USD")')
    cap = parse_cap(entry.pop("cap"), f"{where} cap")
    per = entry.pop("per", "payment")
    windows = get_args(Window)
    if per not in windows:
        close = difflib.get_close_matches(str(per), windows, n=1) if isinstance(per, str) else []
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"{where} per must be one of {', '.join(windows)}, not {_kind(per)}{hint}")
    scope = {k: entry.pop(k) for k in _LIMIT_KEYS[2:] if k in entry}
    for key, value in scope.items():
        if not isinstance(value, str) or not value:
            raise ValueError(f"{where} {key} must be a non-empty string, not {_kind(value)}")
    if "origin" in scope:
        scope["origin"] = parse_origin(scope["origin"], f"{where} origin")
    try:
        return Limit(cap, per, **scope)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


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


def _units(unit: Currency, currency: Currency, amount: int) -> int | None:
    """``amount`` of ``currency`` as a whole number of the cap's base units when that is exact
    without prices (a pegged currency under a dollar cap with no more decimals than it; the
    cap's own decimals under a native cap), else ``None`` (``_count`` decides, exactly)."""
    if is_usd_cap(unit):
        if currency.usd_pegged and currency.decimals <= unit.decimals:
            scale: int = 10 ** (unit.decimals - currency.decimals)  # decimals <= the cap's: whole
            return amount * scale
        return None
    return amount if currency.decimals == unit.decimals else None


def _held_rows(limit: Limit, ledger: Ledger, *, call_id: str) -> list[tuple[Currency, int]]:
    """What the journal holds in ``limit``'s window and scope, per currency (base units)."""
    if limit.per == "payment":
        return []
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
    return [(currency, amount) for currency, amount in rows if amount and limit.selects(currency)]


def _held_value(
    limit: Limit, rows: list[tuple[Currency, int]], prices: PriceSource | None
) -> Fraction:
    total = Fraction(0)
    for currency, amount in rows:
        total += _count(limit.cap.currency, Money(amount, currency), prices, limit.rule)
    return total


def _fits_in_units(limit: Limit, counted: Money, rows: list[tuple[Currency, int]]) -> bool | None:
    """Whether ``counted`` fits ``limit`` on top of ``rows``, in integers: every amount as a
    whole number of the cap's base units (exactly the comparison of the dollar or unit
    fractions, scaled by the cap's 10**decimals). ``None`` when an amount is not such a whole
    number without prices: the caller compares fractions instead."""
    unit = limit.cap.currency
    total = _units(unit, counted.currency, counted.amount)
    if total is None:
        return None
    for currency, amount in rows:
        units = _units(unit, currency, amount)
        if units is None:
            return None
        total += units
    return total <= limit.cap.amount


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
        rows = _held_rows(limit, ledger, call_id=call_id)
        if _fits_in_units(limit, counted, rows):
            continue  # the common case, in integers; fractions below refuse and say why
        unit = limit.cap.currency
        this = _count(unit, counted, prices, limit.rule)
        before = _held_value(limit, rows, prices)
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
