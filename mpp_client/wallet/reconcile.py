"""Reconciliation: finding out what became of payments whose outcome was unknown.

An ``unknown`` entry keeps its amount held against every budget. ``reconcile`` asks the method
that made it (``PaymentMethod.lookup(reference, void_after=...)``, a generator of effects run by
the runners) and records the answer: ``settled`` keeps the amount as spent, ``failed`` (a proof:
the method knows no value moved and none can) releases it, ``pending`` leaves the entry unknown
for a later try.

A lookup is trusted only from the account that paid: the journal records each payment's payer
(``PaymentMethod.payer``), and an entry paid by another account (the owner switched from LND to
phoenixd, or to another Tempo key) is skipped, because "no such payment" from a backend that
never paid it proves nothing. When the server's receipt named another reference than the one
the client signed or broadcast, both are looked up and must agree.
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
    return [(r, method_of(r, methods)) for r in journal.payments(state="unknown")]


def method_of(record: PaymentRecord, methods: Sequence[PaymentMethod]) -> PaymentMethod | None:
    """The method that made ``record``: same name and one of its intents. Two methods may share
    a name (``LightningCharge`` and ``LightningSession`` are both ``lightning``), and only the
    one that paid the entry's intent can look it up; a name match alone is enough only for a
    method that declares no intents."""
    named = [m for m in methods if m.name == record.method]
    for method in named:
        if record.intent in getattr(method, "intents", ()):
            return method
    return next((m for m in named if not getattr(m, "intents", None)), None)


def skip_reason(record: PaymentRecord, method: PaymentMethod | None) -> Reconciled | None:
    if method is None:
        return Reconciled(record.id, record.reference, "skipped", f"no {record.method} method")
    if not record.reference:
        return Reconciled(record.id, None, "skipped", "the entry has no payment reference")
    if record.payer is not None:
        current = method.payer(record.network)
        if current != record.payer:
            return Reconciled(
                record.id,
                record.reference,
                "skipped",
                f"paid by {record.payer}; this wallet's {record.method} method pays as "
                f"{current or 'an unknown account'}, whose lookup proves nothing about it",
            )
    return None


def lookups_of(
    record: PaymentRecord, method: PaymentMethod
) -> list[Generator[Any, Any, LookupResult]]:
    references = [record.reference] if record.reference else []
    if record.receipt_reference and record.receipt_reference not in references:
        references.append(record.receipt_reference)
    if record.void_after is None:
        # Methods written before ``void_after`` existed take the reference alone.
        return [method.lookup(ref) for ref in references]
    return [method.lookup(ref, void_after=record.void_after) for ref in references]


def combine(results: Sequence[LookupResult]) -> LookupResult:
    """One answer from the lookups of an entry's references: settled if any settled (value
    moved), failed only if every one is proven failed, else pending."""
    for result in results:
        if result.status == "settled":
            return result
    if results and all(result.status == "failed" for result in results):
        return results[0]
    pending = next((r for r in results if r.status == "pending"), results[0])
    return pending


def apply_lookup(journal: Journal, record: PaymentRecord, result: LookupResult) -> Reconciled:
    if result.status == "settled":
        journal.advance(
            record.id,
            "settled",
            reason=f"reconciled: {result.detail or 'settled'}",
            proof="lookup",
        )
    elif result.status == "failed":
        # The paying account's lookup proves no value moved: the hold is released.
        journal.advance(
            record.id,
            "failed",
            reason=f"reconciled: {result.detail or 'failed'}",
            money_moved=False,
            proof="lookup",
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
        skipped = skip_reason(record, method)
        if skipped is not None or method is None or record.reference is None:
            done.append(skipped or Reconciled(record.id, record.reference, "skipped"))
            continue
        try:
            result = combine([run(lookup) for lookup in lookups_of(record, method)])
        except Exception as exc:  # one failing lookup must not stop the others
            done.append(
                Reconciled(
                    record.id, record.reference, "pending", f"lookup failed: {type(exc).__name__}"
                )
            )
            continue
        done.append(apply_lookup(journal, record, result))
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
        skipped = skip_reason(record, method)
        if skipped is not None or method is None or record.reference is None:
            done.append(skipped or Reconciled(record.id, record.reference, "skipped"))
            continue
        try:
            result = combine(
                [await run_async(lookup, client) for lookup in lookups_of(record, method)]
            )
        except Exception as exc:
            done.append(
                Reconciled(
                    record.id, record.reference, "pending", f"lookup failed: {type(exc).__name__}"
                )
            )
            continue
        done.append(apply_lookup(journal, record, result))
    return done
