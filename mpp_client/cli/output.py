"""How ``mpp`` talks: human text by default, one JSON document with ``--json``, and a progress
indicator on standard error that appears only when standard error is a terminal.

Results go to standard output, everything else (progress, warnings, errors, ``-v`` details) to
standard error, so ``mpp ... > file`` and pipes get only the result.
"""

from __future__ import annotations

import itertools
import json
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TextIO

from mpp_client.money import Money

__all__ = ["Output", "Progress", "format_money", "short"]


def format_money(money: Money) -> str:
    """``0.001 pathUSD``: the exact decimal amount (no trailing zeros beyond two places) and
    the currency's symbol or code."""
    if money.currency.decimals == 0:
        return f"{money.amount} {money.currency}"
    text = f"{money.to_decimal().normalize():f}"
    whole, _, frac = text.partition(".")
    return f"{whole}.{frac.ljust(2, '0')} {money.currency}"


def short(text: str | None, keep: int = 10) -> str:
    """``0x1234…cdef``: enough of a long identifier to recognise it."""
    if text is None:
        return "-"
    return text if len(text) <= 2 * keep + 1 else f"{text[:keep]}…{text[-6:]}"


class Progress:
    """A spinner with a message on standard error, drawn only when it is a terminal.

    ``update`` changes the message (the payment hooks call it); ``pause`` clears the line while
    something else (a prompt, a ``-v`` line) is written.
    """

    FRAMES = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"

    def __init__(self, stream: TextIO | None = None, *, enabled: bool = True) -> None:
        self._stream = stream or sys.stderr
        self.active = enabled and self._stream.isatty()
        self._message = ""
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._drawn = False

    def start(self, message: str) -> None:
        self._message = message
        if not self.active or self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._spin, name="mpp-progress", daemon=True)
        self._thread.start()

    def update(self, message: str) -> None:
        with self._lock:
            self._message = message

    def _spin(self) -> None:
        for frame in itertools.cycle(self.FRAMES):
            with self._lock:
                self._stream.write(f"\r\x1b[2K{frame} {self._message}")
                self._stream.flush()
                self._drawn = True
            if self._stop.wait(0.08):
                return

    def _clear(self) -> None:
        if self._drawn:
            self._stream.write("\r\x1b[2K")
            self._stream.flush()
            self._drawn = False

    def stop(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
        with self._lock:
            self._clear()

    @contextmanager
    def pause(self) -> Iterator[None]:
        with self._lock:
            self._clear()
            yield


class Output:
    """Where a command's results go. ``json``: one JSON document on standard output."""

    def __init__(self, *, json_mode: bool, quiet: bool = False) -> None:
        self.json = json_mode
        self.quiet = quiet
        self.out: TextIO = sys.stdout
        self.err: TextIO = sys.stderr

    def result(self, data: Any, text: str | None = None) -> None:
        """Print the command's result: ``data`` as JSON, or ``text`` for humans."""
        if self.json:
            self.out.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
        elif text is not None:
            self.out.write(text if text.endswith("\n") or not text else text + "\n")
        self.out.flush()

    def info(self, message: str) -> None:
        """A human note on standard error (suppressed by ``--quiet`` and ``--json``)."""
        if not self.quiet and not self.json:
            self.err.write(message + "\n")
            self.err.flush()

    def warn(self, message: str) -> None:
        """A warning on standard error (always shown)."""
        self.err.write(f"mpp: warning: {message}\n")
        self.err.flush()

    def error(self, message: str) -> None:
        self.err.write(f"mpp: {message}\n")
        self.err.flush()


def table(rows: Sequence[Mapping[str, str]], columns: Sequence[str]) -> str:
    """A plain text table with a header row (columns padded to their widest cell)."""
    widths = {c: max([len(c), *(len(r.get(c, "")) for r in rows)]) for c in columns}
    lines = ["  ".join(c.upper().ljust(widths[c]) for c in columns).rstrip()]
    for row in rows:
        lines.append("  ".join(row.get(c, "").ljust(widths[c]) for c in columns).rstrip())
    return "\n".join(lines)
