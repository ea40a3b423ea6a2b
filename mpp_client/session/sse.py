"""An incremental parser of ``text/event-stream`` bodies (the WHATWG HTML "server-sent events"
interpretation), bytes chunks in, events out, with limits against hostile servers.

What it follows (HTML Living Standard, "Parsing an event stream" and "Interpreting an event
stream"):

- the stream is UTF-8; one leading BOM is dropped; invalid bytes become U+FFFD;
- lines end with CRLF, LF or CR (a CR at the end of a chunk waits for the next chunk, so a CRLF
  split across chunks is one line end);
- a blank line dispatches the event: ``data`` lines are joined with LF, the last LF removed;
  an event whose data buffer is empty is not dispatched (its ``event`` name is dropped too);
- a line starting with ``:`` is a comment; ``field:value`` drops one space after the colon; a
  line without a colon is a field with an empty value; unknown fields are ignored;
- ``id`` sets the last event id unless the value contains U+0000, and it persists across
  events; ``retry`` is kept only when it is ASCII digits;
- at the end of the stream an event without its blank line is NOT dispatched.

Limits: a line longer than ``max_line`` bytes, or an event whose raw bytes exceed ``max_event``,
raises ``SseError`` (a ``ProtocolError``); nothing is buffered without bound.

Each ``SseEvent`` also carries ``raw``: the exact bytes of the stream that made it (from the end
of the previous event up to and including its blank line), so a caller can pass events through
byte for byte while consuming others.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mpp_client.errors import ProtocolError

__all__ = ["DEFAULT_MAX_EVENT", "DEFAULT_MAX_LINE", "SseError", "SseEvent", "SseParser"]

#: Longest line accepted (bytes, without its line end).
DEFAULT_MAX_LINE = 1024 * 1024
#: Largest event accepted (bytes of the stream, comments and field names included).
DEFAULT_MAX_EVENT = 4 * 1024 * 1024

_BOM = b"\xef\xbb\xbf"
# An ``id`` line (the field name alone, or ``id:`` and its value); ``skim`` only sees LF.
_ID_LINE = re.compile(rb"^id(?::([^\n]*))?$", re.MULTILINE)


class SseError(ProtocolError):
    """The event stream broke a limit (a line or an event too large)."""


@dataclass(frozen=True, slots=True)
class SseEvent:
    """One dispatched event. ``event`` is the type (``"message"`` when the stream named none),
    ``data`` the joined data lines, ``id`` the last event id in force (``""`` when none was
    ever set), ``retry`` the reconnection time in milliseconds if this event set one, ``raw``
    the stream bytes the event was made of."""

    event: str
    data: str
    id: str = ""
    retry: int | None = None
    raw: bytes = b""

    def __repr__(self) -> str:
        # Data may carry receipts or content: only its size.
        return f"SseEvent(event={self.event!r}, id={self.id!r}, {len(self.data)} chars)"


class SseParser:
    """Feed bytes with ``feed``; it returns the events completed by them. ``close()`` at the end
    of the stream returns the raw bytes of an unfinished event (which is not dispatched)."""

    __slots__ = (
        "_buffer", "_data", "_event", "_has_data", "_last_id", "_max_event", "_max_line",
        "_pending_cr", "_raw", "_retry", "_started",
    )  # fmt: skip

    def __init__(
        self, *, max_line: int = DEFAULT_MAX_LINE, max_event: int = DEFAULT_MAX_EVENT
    ) -> None:
        if max_line < 1 or max_event < 1:
            raise ValueError("limits must be positive")
        self._max_line = max_line
        self._max_event = max_event
        self._buffer = bytearray()  # bytes after the last complete line
        self._raw = bytearray()  # raw bytes of the event being built (complete lines only)
        self._data: list[str] = []
        self._has_data = False
        self._event = ""
        self._retry: int | None = None
        self._last_id = ""
        self._started = False  # the BOM check is done
        self._pending_cr = False  # the buffer ended in CR: an LF may follow in the next chunk

    @property
    def last_event_id(self) -> str:
        """The last event id in force (what a reconnecting client would send)."""
        return self._last_id

    @property
    def at_boundary(self) -> bool:
        """Whether the parser is between events: nothing buffered, no event half built (so
        ``skim`` may take the next chunk)."""
        return (
            self._started
            and not self._buffer
            and not self._raw
            and not self._pending_cr
            and not self._has_data
            and not self._event
            and self._retry is None
        )

    def skim(self, chunk: bytes, markers: tuple[bytes, ...] = ()) -> int | None:
        """The fast path for a stream read chunk by chunk: when the parser is
        ``at_boundary``, ``chunk`` is whole LF-terminated events (it ends with a blank line,
        has no CR) within the limits, and none of ``markers`` (e.g. the event types a caller
        wants parsed, as bytes) occurs in it, take it as ``feed_raw`` would (the last event id
        follows it) and return how many events it dispatches, without building them (the
        caller passes ``chunk`` on as is). Otherwise ``None``, and nothing was consumed: give
        the chunk to ``feed_raw``.

        An event type can only be named by its literal bytes in an ``event`` line, so a chunk
        without a marker holds no event of a marked type."""
        if (
            not chunk.endswith(b"\n\n")
            or not self.at_boundary
            or len(chunk) > self._max_line
            or len(chunk) > self._max_event
            or b"\r" in chunk
        ):
            return None
        for marker in markers:
            if marker in chunk:
                return None
        count = 0
        # A block is the lines between two blank lines (a leading LF: one more blank line,
        # which dispatches nothing); a block with a data line dispatches one event.
        for block in chunk.split(b"\n\n"):
            if (
                (block.startswith(b"data") and (len(block) == 4 or block[4] in b":\n"))
                or b"\ndata:" in block
                or b"\ndata\n" in block
                or block.endswith(b"\ndata")
            ):
                count += 1
        if b"id" in chunk:
            for found in reversed(_ID_LINE.findall(chunk)):
                value = found[1:] if found[:1] == b" " else found
                if b"\x00" not in value:
                    self._last_id = value.decode("utf-8", "replace")
                    break
        return count

    def feed(self, chunk: bytes) -> list[SseEvent]:
        """Parse ``chunk``; return the events it completed, in order."""
        return [item for item in self.feed_raw(chunk) if isinstance(item, SseEvent)]

    def feed_raw(self, chunk: bytes) -> list[SseEvent | bytes]:
        """Like ``feed``, but every completed block of the stream comes back in order: an
        ``SseEvent``, or ``bytes`` for a block that dispatched nothing (comments, blank
        lines, an event without data), so a caller can pass the stream through byte for byte.
        """
        if not chunk:
            return []
        buffer = self._buffer
        if self._pending_cr:
            self._pending_cr = False
            if chunk[:1] == b"\n":
                # The second half of a CRLF whose CR ended the previous chunk.
                self._raw += b"\n"
                chunk = chunk[1:]
        buffer += chunk
        if not self._started:
            if len(buffer) < 3 and _BOM.startswith(bytes(buffer)):
                return []
            self._started = True
            if buffer.startswith(_BOM):
                self._raw += _BOM
                del buffer[:3]
        events: list[SseEvent | bytes] = []
        start = 0
        size = len(buffer)
        while start < size:
            lf = buffer.find(b"\n", start)
            cr = buffer.find(b"\r", start, lf if lf >= 0 else size)
            if cr >= 0:
                end = cr
                if cr + 1 < size:
                    after = cr + 2 if buffer[cr + 1] == 0x0A else cr + 1
                else:
                    # A CR at the very end: the line is complete; an LF may follow.
                    after = cr + 1
                    self._pending_cr = True
            elif lf >= 0:
                end, after = lf, lf + 1
            else:
                break
            if end - start > self._max_line:
                raise SseError(f"an event-stream line is longer than {self._max_line} bytes")
            line = bytes(buffer[start:end])
            self._raw += buffer[start:after]
            if len(self._raw) > self._max_event:
                raise SseError(f"an event is larger than {self._max_event} bytes")
            start = after
            event = self._line(line)
            if event is not None:
                events.append(event)
        del buffer[:start]
        if len(buffer) > self._max_line:
            raise SseError(f"an event-stream line is longer than {self._max_line} bytes")
        if len(self._raw) + len(buffer) > self._max_event:
            raise SseError(f"an event is larger than {self._max_event} bytes")
        return events

    def close(self) -> bytes:
        """End of stream: the raw bytes of the unfinished event (not dispatched), if any."""
        rest = bytes(self._raw) + bytes(self._buffer)
        self._raw.clear()
        self._buffer.clear()
        self._data = []
        self._has_data = False
        self._event = ""
        self._retry = None
        return rest

    def _line(self, line: bytes) -> SseEvent | bytes | None:
        if not line:
            return self._dispatch()
        if line[:1] == b":":
            return None
        colon = line.find(b":")
        if colon >= 0:
            name = line[:colon]
            value = line[colon + 1 :]
            if value[:1] == b" ":
                value = value[1:]
        else:
            name, value = line, b""
        if name == b"data":
            self._data.append(value.decode("utf-8", "replace"))
            self._has_data = True
        elif name == b"event":
            self._event = value.decode("utf-8", "replace")
        elif name == b"id":
            if b"\x00" not in value:
                self._last_id = value.decode("utf-8", "replace")
        elif name == b"retry":
            if value and value.isdigit():
                self._retry = int(value)
        return None

    def _dispatch(self) -> SseEvent | bytes | None:
        raw = bytes(self._raw)
        self._raw.clear()
        event_type, self._event = self._event, ""
        retry, self._retry = self._retry, None
        if not self._has_data:
            self._data = []
            # Nothing to dispatch; the raw bytes (comments, a lone blank line) still go on.
            return raw
        data = "\n".join(self._data)
        self._data = []
        self._has_data = False
        return SseEvent(event_type or "message", data, self._last_id, retry, raw)
