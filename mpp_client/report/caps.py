"""What each cap of the spend policy has used in its window, and what is left.

One computation for ``mpp budget show`` and ``mpp report``: the ledger's held totals (settled,
in flight, unknown, failed after value may have moved; released entries do not count) over the
cap's window, in the cap's unit. Dollar caps sum every currency they select at its dollar value
(pegged currencies 1:1, others through the price source).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from mpp_client.errors import PriceUnavailable
from mpp_client.money import Money
from mpp_client.wallet.prices import usd_value

if TYPE_CHECKING:
    from mpp_client.wallet import Limit, SpendPolicy
    from mpp_client.wallet.policy import Ledger
    from mpp_client.wallet.prices import PriceSource

__all__ = ["SCOPES", "CapUsage", "cap_usage"]

#: The scope fields a limit may narrow itself with, in the order they are shown.
SCOPES = ("origin", "payee", "method", "currency", "network")


@dataclass(frozen=True, slots=True)
class CapUsage:
    """One limit: its ``cap``, and for windowed caps (hour, day, lifetime) what it has ``used``
    and what is ``left``, both in base units of the cap's currency (``used`` rounded up and
    ``left`` rounded down to a whole base unit when prices make them fractional). ``None``:
    not counted (per-payment and per-call caps) or not countable (a price is missing)."""

    rule: str
    per: str
    cap: Money
    scope: dict[str, Any]
    used: Money | None
    left: Money | None

    @property
    def share(self) -> Fraction | None:
        """``used / cap`` (0 to 1 and beyond), or ``None`` when not counted."""
        if self.used is None or not self.cap.amount:
            return None
        return Fraction(self.used.amount, self.cap.amount)

    @property
    def percent(self) -> str | None:
        """``share`` for people, rounded down: ``"42%"``, ``"<1%"`` for a little above nothing,
        ``"100%"`` only once the cap is used up (99.6% is ``"99%"``)."""
        share = self.share
        if share is None:
            return None
        if 0 < share < Fraction(1, 100):
            return "<1%"
        return f"{share.numerator * 100 // share.denominator}%"


def _used_units(limit: Limit, ledger: Ledger, prices: PriceSource | None) -> Fraction | None:
    """What ``limit`` has used, in whole units of its cap (dollars for dollar caps)."""
    if limit.per in ("payment", "call"):
        return None
    since = ledger.now() - limit.window_seconds if limit.window_seconds else None
    rows = ledger.held_totals(
        since=since, origin=limit.origin, method=limit.method, payee=limit.payee
    )
    total = Fraction(0)
    for currency, amount in rows:
        if not amount or not limit.selects(currency):
            continue
        if limit.in_usd:
            total += usd_value(Money(amount, currency), prices)
        else:
            total += Fraction(amount, 10**currency.decimals)
    return total


def _ceil(value: Fraction) -> int:
    return -((-value.numerator) // value.denominator)


def cap_usage(
    policy: SpendPolicy, ledger: Ledger, prices: PriceSource | None = None
) -> list[CapUsage]:
    """Every limit of ``policy`` with what it has used as ``ledger`` stands now (the journal's
    clock decides the windows)."""
    usages: list[CapUsage] = []
    for limit in policy.limits:
        try:
            units = _used_units(limit, ledger, prices)
        except PriceUnavailable:
            units = None
        cap = limit.cap
        scope = {k: getattr(limit, k) for k in SCOPES if getattr(limit, k) is not None}
        used = left = None
        if units is not None:
            base = units * 10**cap.currency.decimals
            used_base = _ceil(base)
            left_base = max(cap.amount - base, Fraction(0))
            used = Money(used_base, cap.currency)
            left = Money(left_base.numerator // left_base.denominator, cap.currency)
        usages.append(CapUsage(limit.rule, limit.per, cap, scope, used, left))
    return usages
