"""The payment lifecycle: every state a payment can be in, how it may move, and which states
hold money. One table, used by the journal, the guards, the flow and the docs.

::

    reserved ──► signed ──► broadcast ──► sent ──► settled
       │           │           │           │
       │           │           │           ├──► failed (spent: the server kept the money)
       │           │           │           │
       │           │           └───────────┴──► unknown ──► settled | failed
       │           │                                  (a receipt, a lookup, a proof or the owner)
       └───────────┴──► failed (released: nothing left the process)

- ``reserved``: the amount is held against every budget; nothing is signed.
- ``signed``: a credential or transaction exists, but only in this process.
- ``broadcast``: the method itself is about to send value (push mode, a Lightning payment,
  a HandCash debit). Written, durably, before the call that can move value.
- ``sent``: the credential is about to leave the process (written, durably, before it does).
- ``settled``: the server took the payment; the amount is spent.
- ``failed``: final. ``money_moved`` false: released, which after ``broadcast`` or ``sent``
  needs a PROOF (``Proof``) that no value moved or can move. ``money_moved`` true: the value is
  gone (e.g. a 403 after a verified payment) and keeps counting as spent.
- ``unknown``: anything may have happened; the amount stays held until a receipt, the method's
  lookup (``Wallet.reconcile``), a proof that the authorization can no longer settle, or the
  owner (``Wallet.resolve``) decides.

Restart rule: an entry left in flight by a process that no longer runs is ``failed`` (released)
when it was only ``reserved``, else ``unknown``: ``signed`` may not have left the process, but
nothing proves it.
"""

from __future__ import annotations

from typing import Literal, get_args

__all__ = [
    "FINAL_STATES",
    "IN_FLIGHT_STATES",
    "LEFT_STATES",
    "PaymentState",
    "Proof",
    "allowed_sources",
    "holds",
    "on_restart",
    "release_needs_proof",
]

PaymentState = Literal["reserved", "signed", "broadcast", "sent", "settled", "failed", "unknown"]

#: Why a hold may be released once something left the process. Each is a fact, never a guess:
#: ``nothing-sent`` (the method proves nothing left or the backend refused before paying),
#: ``credential-void`` (the method proved the credential can no longer settle: a revoked,
#: unused token), ``expired-unmined`` (a transaction past its ``valid_before`` and not on
#: chain), ``lookup`` (the paying backend reports it failed), ``owner`` (resolved by hand).
Proof = Literal["nothing-sent", "credential-void", "expired-unmined", "lookup", "owner"]

#: The states a payment passes through before it is final; all of them hold its amount.
IN_FLIGHT_STATES: frozenset[str] = frozenset({"reserved", "signed", "broadcast", "sent"})
#: States after which a credential or a payment request may have left the process.
LEFT_STATES: frozenset[str] = frozenset({"broadcast", "sent", "unknown"})
#: States that never change again.
FINAL_STATES: frozenset[str] = frozenset({"settled", "failed"})

# to-state -> the states it may be reached from. A state may be written again with more
# detail (``sent`` after ``broadcast`` fills in the credential's fingerprint).
_FROM: dict[str, frozenset[str]] = {
    "signed": frozenset({"reserved", "signed"}),
    "broadcast": frozenset({"reserved", "signed", "broadcast"}),
    "sent": frozenset({"reserved", "signed", "broadcast", "sent"}),
    "settled": frozenset({"reserved", "signed", "broadcast", "sent", "unknown"}),
    "failed": frozenset({"reserved", "signed", "broadcast", "sent", "unknown"}),
    "unknown": frozenset({"reserved", "signed", "broadcast", "sent", "unknown"}),
}


def allowed_sources(state: str) -> frozenset[str]:
    """The states a payment may move to ``state`` from (``ValueError`` for no such state)."""
    try:
        return _FROM[state]
    except KeyError:
        raise ValueError(f"cannot move a payment to {state!r}") from None


def holds(state: str, money_moved: bool | None) -> bool:
    """Whether a payment in ``state`` counts against the budgets: every state but a
    ``failed`` one that is proven to have moved nothing."""
    if state not in get_args(PaymentState):
        raise ValueError(f"unknown payment state {state!r}")
    return not (state == "failed" and money_moved is False)


def release_needs_proof(current: str) -> bool:
    """Whether moving a payment in ``current`` to ``failed`` with ``money_moved=False`` needs a
    ``Proof``: once something may have left the process, an error is not one."""
    return current in LEFT_STATES


def on_restart(state: str) -> PaymentState | None:
    """What an in-flight entry of a process that no longer runs becomes (``None``: it is
    final already, or not in flight)."""
    if state == "reserved":
        return "failed"
    if state in IN_FLIGHT_STATES:
        return "unknown"
    return None
