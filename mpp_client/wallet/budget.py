"""Scoped budgets: ``with wallet.budget(usd("0.50"), label="research"):`` caps everything paid
inside the block, whichever client pays (httpx sync, httpx async, requests).

Budgets live in a ``contextvars.ContextVar``: the drivers reserve payments in the caller's
context (the same thread for sync clients, the same task for async ones), so a budget opened
around agent code applies to every payment that code makes, and nested budgets all apply (the
innermost is usually the tightest). asyncio tasks created inside a budget inherit it and share
it. Threads started inside do not (Python does not copy contexts into new threads); use
``contextvars.copy_context().run`` to carry a budget into a worker thread.

A budget counts what is HELD: reserved, in flight, settled or unknown payments. A payment that
failed without moving money is released and frees its share.
"""

from __future__ import annotations

import contextvars
import itertools
import threading
from collections.abc import Iterator
from types import TracebackType

from mpp_client.money import Money
from mpp_client.wallet.prices import is_usd_cap

__all__ = ["BudgetScope", "active_budgets"]

_ACTIVE: contextvars.ContextVar[tuple[BudgetScope, ...]] = contextvars.ContextVar(
    "mpp_client_budgets", default=()
)
_ids = itertools.count(1)

#: One lock for all budget bookkeeping: a budget can be shared by tasks and threads and by
#: payments of several wallets, and it is held only for a few dictionary operations.
LOCK = threading.RLock()


def active_budgets() -> tuple[BudgetScope, ...]:
    """The budgets open in the current context, outermost first."""
    return _ACTIVE.get()


class BudgetScope:
    """A cap on what may be spent inside a ``with`` / ``async with`` block.

    ``limit`` is dollars (``usd(...)``, applies to every currency through prices) or a native
    currency (then payments in other currencies are refused inside the block). ``spent`` and
    ``remaining`` are in the unit of ``limit``, base units.
    """

    def __init__(self, limit: Money, *, label: str | None = None) -> None:
        if limit.amount < 0:
            raise ValueError("a budget cannot be negative")
        self._limit = limit
        self.id = next(_ids)
        self._label = label or f"budget-{self.id}"
        self._held: dict[str, Money] = {}
        self._tokens: list[contextvars.Token[tuple[BudgetScope, ...]]] = []

    @property
    def limit(self) -> Money:
        """The cap (base units of its currency)."""
        return self._limit

    @property
    def label(self) -> str:
        """The name stored with every journal entry paid inside this budget."""
        return self._label

    def held(self) -> Iterator[Money]:
        """Exposures currently held against this budget (call with ``LOCK`` held)."""
        return iter(list(self._held.values()))

    @property
    def spent(self) -> Money | None:
        """What is held, in the limit's currency; ``None`` when held payments are in other
        currencies (a dollar budget over sats: see the journal)."""
        with LOCK:
            total = 0
            for money in self._held.values():
                if money.currency == self._limit.currency or (
                    is_usd_cap(self._limit.currency)
                    and money.currency.usd_pegged
                    and money.currency.decimals <= self._limit.currency.decimals
                ):
                    total += money.amount * 10 ** (
                        self._limit.currency.decimals - money.currency.decimals
                    )
                else:
                    return None
            return Money(total, self._limit.currency)

    @property
    def remaining(self) -> Money | None:
        """``limit - spent`` (``None`` when ``spent`` is)."""
        spent = self.spent
        return None if spent is None else self._limit - spent

    def hold(self, reservation_id: str, exposure: Money) -> None:
        """Count ``exposure`` against this budget (the wallet calls this under ``LOCK``)."""
        self._held[reservation_id] = exposure

    def release(self, reservation_id: str) -> None:
        """Stop counting a reservation that moved no money."""
        with LOCK:
            self._held.pop(reservation_id, None)

    def __enter__(self) -> BudgetScope:
        self._tokens.append(_ACTIVE.set((*_ACTIVE.get(), self)))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        _ACTIVE.reset(self._tokens.pop())

    async def __aenter__(self) -> BudgetScope:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    def __repr__(self) -> str:
        return f"BudgetScope({self._label!r}, limit={self._limit}, spent={self.spent})"
