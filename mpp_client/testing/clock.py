"""``ManualClock``: a clock that moves only when a test moves it."""

from __future__ import annotations

import threading
from datetime import datetime

__all__ = ["ManualClock"]


class ManualClock:
    """A ``mpp_client.clock.Clock`` pinned to ``start`` (a UTC ``datetime`` or Unix seconds).

    ``advance(seconds)`` moves it forward; ``set(when)`` moves it anywhere. Thread-safe, so a
    loopback server and the client under test can share one.
    """

    __slots__ = ("_lock", "_now")

    def __init__(self, start: datetime | float) -> None:
        self._lock = threading.Lock()
        self._now = start.timestamp() if isinstance(start, datetime) else float(start)

    def time(self) -> float:
        """The pinned time in Unix seconds."""
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        """Move the clock ``seconds`` forward."""
        with self._lock:
            self._now += seconds

    def set(self, when: datetime | float) -> None:
        """Move the clock to ``when``."""
        with self._lock:
            self._now = when.timestamp() if isinstance(when, datetime) else float(when)

    def __repr__(self) -> str:
        return f"ManualClock({self._now})"
