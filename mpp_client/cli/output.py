"""How ``mpp`` talks: human text by default, one JSON document with ``--json``, and a progress
indicator on standard error that appears only when standard error is a terminal.

Results go to standard output, everything else (progress, warnings, errors, ``-v`` details) to
standard error, so ``mpp ... > file`` and pipes get only the result.
"""

from __future__ import annotations

import itertools
import json
import re
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any, TextIO

from mpp_client.money import Money

__all__ = [
    "Output",
    "Progress",
    "format_money",
    "money_json",
    "printable",
    "prompting",
    "short",
]

# What is never written to a terminal as it is. Realms, descriptions, problem details, receipt
# fields, header values and backend error messages are chosen by servers and backends; a terminal
# obeys ESC / CSI sequences in them (clear the screen, recolour, rewrite the title, on some
# terminals even answer back), and invisible or reordering characters make a payee look like
# another one. So every character below is shown as a visible escape:
# - C0 controls, DEL and the C1 controls U+0080-U+009F (U+009B is an 8-bit CSI);
# - the soft hyphen and the invisible format characters: zero-width space, word joiner, BOM,
#   Mongolian vowel separator, interlinear annotations, tag characters;
# - the bidi formatting characters (U+061C, U+200E, U+200F, U+202A-U+202E, U+2066-U+2069),
#   which reorder what follows them ("Trojan Source");
# - the line and paragraph separators U+2028 / U+2029, which some terminals break lines on;
# - lone surrogates, which cannot even be encoded for the terminal.
# ZWNJ / ZWJ (U+200C, U+200D) are kept: emoji sequences and several scripts need them and they
# cannot reorder or hide text on their own.
_ALWAYS = (
    "\x00-\x08\x0b-\x1f\x7f-\x9f\xad\u061c\u180e\u200b\u200e\u200f\u2028-\u202e"
    "\u2060-\u206f\ufeff\ufff9-\ufffb\ud800-\udfff\U000e0000-\U000e007f"
)
_UNPRINTABLE = re.compile(f"[\t\n{_ALWAYS}]")
# For whole messages the CLI composed itself (several lines, tab-separated tables): the line
# breaks and tabs are its own, everything else is escaped as above.
_UNPRINTABLE_BUT_LINES = re.compile(f"[{_ALWAYS}]")


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def printable(text: object, *, keep_lines: bool = False) -> str:
    """``text`` (made a str) with every character a terminal would act on or hide shown as an
    escape: ``\\x1b``, ``\\x9b``, ``\\u202e``, ``\\U000e0041``.

    Use it on every string that came from a server or a backend before it is printed. Tabs and
    line breaks are escaped too (a server value must not start a line that looks like ours),
    unless ``keep_lines`` is set for a message the CLI composed (the last line of defence in
    :class:`Output`). A backslash is left as it is, so the text stays readable; an escape shown
    here can therefore also be a server's literal backslash sequence, never a raw control.
    """
    text = text if isinstance(text, str) else str(text)
    pattern = _UNPRINTABLE_BUT_LINES if keep_lines else _UNPRINTABLE
    return pattern.sub(_visible, text)


def format_money(money: Money) -> str:
    """``0.001 pathUSD``: the exact decimal amount (no trailing zeros beyond two places) and
    the currency's symbol or code."""
    if money.currency.decimals == 0:
        return f"{money.amount} {money.currency}"
    text = f"{money.to_decimal().normalize():f}"
    whole, _, frac = text.partition(".")
    return f"{whole}.{frac.ljust(2, '0')} {money.currency}"


def money_json(money: Money) -> dict[str, Any]:
    """An amount in ``--json`` output: ``{"amount": base units (int), "currency": code,
    "decimals": int, "amount_display": "0.01 pathUSD"}`` (the ``money`` definition of
    ``mpp_client.cli.schema``)."""
    return {
        "amount": money.amount,
        "currency": money.currency.code,
        "decimals": money.currency.decimals,
        "amount_display": format_money(money),
    }


def short(text: str | None, keep: int = 10) -> str:
    """``0x1234…cdef``: enough of a long identifier to recognise it."""
    if text is None:
        return "-"
    return text if len(text) <= 2 * keep + 1 else f"{text[:keep]}…{text[-6:]}"


# Spinners running now: a prompt (``prompting``) stops them all, whoever started them.
_RUNNING: list[Progress] = []
_RUNNING_LOCK = threading.Lock()


@contextmanager
def prompting() -> Iterator[None]:
    """Stop every running spinner (its line cleared) while a prompt is shown, and start them
    again afterwards. Every prompt ``mpp`` shows runs inside it: a passphrase asked for in the
    middle of a payment, an approval, a confirmation; a spinner redrawing the line would hide
    the question or the typed answer."""
    with _RUNNING_LOCK:
        running = list(_RUNNING)
    with ExitStack() as stack:
        for progress in running:
            stack.enter_context(progress.halted())
        yield


class Progress:
    """A spinner with a message on standard error, drawn only when it is a terminal.

    ``update`` changes the message (the payment hooks call it); ``pause`` clears the line while
    something else (a ``-v`` line) is written; ``halted`` (and ``prompting`` for every spinner)
    stops it while a prompt is shown.
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
        self._message = printable(message)
        if not self.active or self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._spin, name="mpp-progress", daemon=True)
        self._thread.start()
        with _RUNNING_LOCK:
            _RUNNING.append(self)

    @property
    def spinning(self) -> bool:
        """Whether the spinner thread is drawing now."""
        return self._thread is not None

    def update(self, message: str) -> None:
        with self._lock:
            self._message = printable(message)

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
            with _RUNNING_LOCK:
                if self in _RUNNING:
                    _RUNNING.remove(self)
        with self._lock:
            self._clear()

    @contextmanager
    def halted(self) -> Iterator[None]:
        """Stopped (thread ended, line cleared) inside the block, running again after it if it
        was running before."""
        was = self._thread is not None
        self.stop()
        try:
            yield
        finally:
            if was:
                self.start(self._message)

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

    def result(self, data: Any, text: str | None = None, *, escaped: bool = False) -> None:
        """Print the command's result: ``data`` as JSON, or ``text`` for humans.

        JSON is written with ``ensure_ascii`` (json.dumps' default): every control character and
        everything beyond ASCII is a ``\\uXXXX`` escape, so no server string reaches the
        terminal raw. ``text`` keeps its line breaks and tabs; anything else unprintable in it is
        escaped (see :func:`printable`), unless ``escaped``: the caller escaped every foreign
        string itself and the text carries its own styling (``mpp report``'s colours).
        """
        if self.json:
            self.out.write(
                json.dumps(data, indent=2, sort_keys=True, default=str, ensure_ascii=True) + "\n"
            )
        elif text is not None:
            text = text if escaped else printable(text, keep_lines=True)
            self.out.write(text if text.endswith("\n") or not text else text + "\n")
        self.out.flush()

    def info(self, message: str) -> None:
        """A human note on standard error (suppressed by ``--quiet`` and ``--json``)."""
        if not self.quiet and not self.json:
            self.err.write(printable(message, keep_lines=True) + "\n")
            self.err.flush()

    def warn(self, message: str) -> None:
        """A warning on standard error (always shown)."""
        self.err.write(f"mpp: warning: {printable(message, keep_lines=True)}\n")
        self.err.flush()

    def error(self, message: str) -> None:
        """An error line on standard error (``mpp: ...``)."""
        self.err.write(f"mpp: {printable(message, keep_lines=True)}\n")
        self.err.flush()

    def fail(self, message: str, code: int, kind: str = "error", **extra: Any) -> int:
        """A command failed: the error line on standard error and, with ``--json``, the
        ``{"error": {"type", "message", "exit_code", ...}}`` document on standard output (the
        ``error`` definition of ``mpp_client.cli.schema``). Returns ``code``."""
        self.error(message)
        if self.json:
            self.result(
                {"error": {"type": kind, "message": message, "exit_code": int(code), **extra}}
            )
        return int(code)


def table(rows: Sequence[Mapping[str, str]], columns: Sequence[str]) -> str:
    """A plain text table with a header row (columns padded to their widest cell)."""
    widths = {c: max([len(c), *(len(r.get(c, "")) for r in rows)]) for c in columns}
    lines = ["  ".join(c.upper().ljust(widths[c]) for c in columns).rstrip()]
    for row in rows:
        lines.append("  ".join(row.get(c, "").ljust(widths[c]) for c in columns).rstrip())
    return "\n".join(lines)
