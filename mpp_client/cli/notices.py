"""What the library logs while ``mpp`` runs, shown the CLI's way.

The library logs warnings (``logging``, logger ``mpp_client``); without a handler Python would
print each bare on standard error, ``--quiet`` and ``--json`` or not. While a command runs,
they go through ``Output`` instead: shown as ``mpp: warning: ...`` unless ``-q`` or ``--json``
is given. The wallet's "payments have an unknown outcome" warning, logged every time a wallet
opens, becomes one note naming the commands that deal with it, and only on the commands that
pay or count money (``unknown_notice``); ``mpp journal unknown``, ``reconcile`` and ``resolve``
are where it is dealt with and do not repeat it.
"""

from __future__ import annotations

import logging
from types import TracebackType

from mpp_client.cli.output import Output, printable

__all__ = ["LibraryWarnings", "unknown_note"]

_LOGGER = "mpp_client"


def unknown_note(count: int) -> str:
    """The note about ``count`` payments whose outcome is unknown."""
    return (
        f"{count} payment(s) have an unknown outcome; their amounts stay held against your "
        "budgets. Run `mpp journal reconcile` to ask the payment methods, or "
        "`mpp journal resolve ID settled|failed --note TEXT` when you know the outcome "
        "(`mpp journal unknown` lists them)."
    )


class _ToOutput(logging.Handler):
    def __init__(self, output: Output, *, unknown_notice: bool) -> None:
        super().__init__(logging.WARNING)
        self.output = output
        self.unknown_notice = unknown_notice
        self.noted = False

    def emit(self, record: logging.LogRecord) -> None:
        out = self.output
        if out.quiet or out.json:
            return
        count = getattr(record, "mpp_unknown_payments", None)
        if isinstance(count, int):
            if self.unknown_notice and not self.noted:
                self.noted = True
                out.warn(unknown_note(count))
            return
        try:
            # One line: a library message may quote a server or a backend, whose line break
            # must not start a line that looks like mpp's own.
            out.warn(printable(record.getMessage()))
        except Exception:  # a broken log call must not end the command
            self.handleError(record)


class LibraryWarnings:
    """While active, the ``mpp_client`` logger's warnings go to ``output`` (see the module
    docstring); the logger is restored afterwards."""

    def __init__(self, output: Output, *, unknown_notice: bool) -> None:
        self._handler = _ToOutput(output, unknown_notice=unknown_notice)
        self._logger = logging.getLogger(_LOGGER)
        self._propagate = self._logger.propagate

    def __enter__(self) -> LibraryWarnings:
        self._logger.addHandler(self._handler)
        # Not also to the root logger's last-resort handler (a second, bare copy).
        self._logger.propagate = False
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._logger.removeHandler(self._handler)
        self._logger.propagate = self._propagate
