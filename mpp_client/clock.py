"""One clock for everything that compares times: the flow, the methods, the wallet, the journal.

A ``Clock`` tells the current time in Unix seconds. Production code uses ``SYSTEM_CLOCK``;
tests pass a ``mpp_client.testing.ManualClock`` so that no outcome depends on today's date.
Durations measured inside one call (a retry's backoff, a poll's deadline) still follow the
injected clock, so a test that pins the time pins them too; ``Sleep`` effects, performed by the
drivers, are the only place real time passes.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

__all__ = ["SYSTEM_CLOCK", "Clock", "SystemClock", "utcnow"]


@runtime_checkable
class Clock(Protocol):
    """A source of the current time."""

    def time(self) -> float:
        """The current time in Unix seconds (UTC)."""
        ...


class SystemClock:
    """The machine's clock (``time.time``)."""

    __slots__ = ()

    def time(self) -> float:
        """The current time in Unix seconds."""
        return time.time()

    def __repr__(self) -> str:
        return "SystemClock()"


#: The default clock of every component that takes ``clock=``.
SYSTEM_CLOCK: Clock = SystemClock()


def utcnow(clock: Clock) -> datetime:
    """The clock's current time as an aware UTC ``datetime``."""
    return datetime.fromtimestamp(clock.time(), UTC)
