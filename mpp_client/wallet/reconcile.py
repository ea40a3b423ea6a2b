"""Reconciliation: finding out what became of payments whose outcome was unknown.

An ``unknown`` entry keeps its amount reserved against every budget. ``reconcile`` asks the
method that made it (``PaymentMethod.lookup(reference)``, a generator of effects run by the
lead's runners) and records the answer: ``settled`` keeps the amount as spent, ``failed``
releases it, ``pending`` leaves the entry unknown for a later try.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from mpp_client.methods.base import LookupResult, PaymentMethod

if TYPE_CHECKING:
    import httpx

    from mpp_client.wallet.journal import Journal, PaymentRecord

__all__ = ["Reconciled", "areconcile", "reconcile"]

log = logging.getLogger("mpp_client.wallet")


@dataclass(frozen=True, slots=True)
class Reconciled:
    """What reconciliation did with one unknown entry.

    ``outcome``: ``settled`` / ``failed`` (recorded), ``pending`` (still unknown), or
    ``skipped`` (no method of that name in the wallet, or no reference to look up).
    """

    entry_id: str
    reference: str | None
    outcome: Literal["settled", "failed", "pending", "skipped"]
    detail: str | None = None


def _plan(
    journal: Journal, methods: Sequence[PaymentMethod]
) -> list[tuple[PaymentRecord, PaymentMethod | None]]:
    by_name = {m.name: m for m in methods}
    return [(r, by_name.get(r.method)) for r in journal.payments(state="unknown")]


def _skip(record: PaymentRecord, method: PaymentMethod | None) -> Reconciled | None:
    if method is None:
        return Reconciled(record.id, record.reference, "skipped", f"no {record.method} method")
    if not record.reference:
        return Reconciled(record.id, None, "skipped", "the entry has no payment reference")
    return None


def _apply(journal: Journal, record: PaymentRecord, result: LookupResult) -> Reconciled:
    if result.status == "settled":
        journal.advance(record.id, "settled", reason=f"reconciled: {result.detail or 'settled'}")
    elif result.status == "failed":
        # The method saw the payment fail: no value moved, the reservation is released.
        journal.advance(
            record.id,
            "failed",
            reason=f"reconciled: {result.detail or 'failed'}",
            money_moved=False,
        )
    log.info("payment %s reconciled as %s", record.id, result.status)
    return Reconciled(record.id, record.reference, result.status, result.detail)


def reconcile(
    journal: Journal,
    methods: Sequence[PaymentMethod],
    client: httpx.Client | None = None,
) -> list[Reconciled]:
    """Look every unknown entry up with its method (synchronously)."""
    from mpp_client.runner import run_sync

    def run(gen: Generator[Any, Any, LookupResult]) -> LookupResult:
        return run_sync(gen, client)

    return _reconcile(journal, methods, run)


def _reconcile(
    journal: Journal,
    methods: Sequence[PaymentMethod],
    run: Callable[[Generator[Any, Any, LookupResult]], LookupResult],
) -> list[Reconciled]:
    done: list[Reconciled] = []
    for record, method in _plan(journal, methods):
        skipped = _skip(record, method)
        if skipped is not None or method is None or record.reference is None:
            done.append(skipped or Reconciled(record.id, record.reference, "skipped"))
            continue
        try:
            result = run(method.lookup(record.reference))
        except Exception as exc:  # one failing lookup must not stop the others
            done.append(
                Reconciled(
                    record.id, record.reference, "pending", f"lookup failed: {type(exc).__name__}"
                )
            )
            continue
        done.append(_apply(journal, record, result))
    return done


async def areconcile(
    journal: Journal,
    methods: Sequence[PaymentMethod],
    client: httpx.AsyncClient | None = None,
) -> list[Reconciled]:
    """Look every unknown entry up with its method (on the running event loop)."""
    from mpp_client.runner import run_async

    done: list[Reconciled] = []
    for record, method in _plan(journal, methods):
        skipped = _skip(record, method)
        if skipped is not None or method is None or record.reference is None:
            done.append(skipped or Reconciled(record.id, record.reference, "skipped"))
            continue
        try:
            result = await run_async(method.lookup(record.reference), client)
        except Exception as exc:
            done.append(
                Reconciled(
                    record.id, record.reference, "pending", f"lookup failed: {type(exc).__name__}"
                )
            )
            continue
        done.append(_apply(journal, record, result))
    return done
