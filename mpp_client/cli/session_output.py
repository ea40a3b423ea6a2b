"""What ``mpp fetch`` says about a metered session stream: what it cost, in words (stderr) or in
the ``session`` object of its ``--json`` document (``mpp_client.cli.schema``, ``fetch``).

The stream's cost is ``SessionStream.spent`` (base units of the paid quote's currency): for a
session the payment's own amount is the deposit (or nothing, on an open channel), which stays
in the channel, so it is not what the caller spent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mpp_client.cli.output import format_money, money_json, printable
from mpp_client.money import Money

if TYPE_CHECKING:
    from mpp_client.flow import Payment
    from mpp_client.session import SessionStream

__all__ = ["session_json", "session_line"]


def _spent(state: SessionStream, payment: Payment | None) -> Money | None:
    if state.spent is None or payment is None or payment.quote is None:
        return None
    return Money(state.spent, payment.quote.amount.currency)


def session_line(state: SessionStream | None, payment: Payment | None) -> str | None:
    """One stderr line for a metered stream (``None`` for any other response)."""
    if state is None:
        return None
    spent = _spent(state, payment)
    cost = "an unknown amount" if spent is None else format_money(spent)
    ending = "" if state.complete else " (the stream ended early)"
    if state.error is not None:
        ending = f" (stopped: {printable(str(state.error))})"
    return f"mpp: session stream cost {cost}{ending}"


def session_json(state: SessionStream | None, payment: Payment | None) -> dict[str, Any] | None:
    """The ``session`` object of ``mpp --json fetch`` (``None`` for any other response)."""
    if state is None:
        return None
    spent = _spent(state, payment)
    return {
        "spent": None if spent is None else money_json(spent),
        "complete": state.complete,
        # The final receipt's reference: the channel (Tempo) or session (Lightning) id.
        "reference": None if state.receipt is None else state.receipt.reference,
    }
