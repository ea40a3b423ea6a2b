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
# ``skim``'s grammar: whole events of LF-ended lines, each a known field (``data``, ``id``,
# ``event``, ``retry``; the name alone or ``name:value``) or a comment, at least one ``data``
# line per event, one blank line after each. No CR anywhere (a CR ends a line too), no line
# left over. ``id`` keeps its last value (a group repeated keeps its last match).
_VALUE = rb"(?::[^\r\n]*)?\n"
_NOT_DATA = rb"(?:(?:event|retry)" + _VALUE + rb"|id(?P<id>(?::[^\r\n]*)?)\n|:[^\r\n]*\n)"
_ANY = rb"(?:(?:data|event|retry)" + _VALUE + rb"|id(?P<id2>(?::[^\r\n]*)?)\n|:[^\r\n]*\n)"
# The usual chunk, matched in one call: one event, an optional ``id`` line (without U+0000,
# which would make the parser ignore it), then its data. No group: the id is read from the
# chunk only when asked for (``SseParser._settle_id``).
_COMMON_EVENT = re.compile(rb"(?:id(?::[^\r\n\x00]*)?\n)?(?:data(?::[^\r\n]*)?\n)+\n")
_common_event = _COMMON_EVENT.fullmatch
_SIMPLE_EVENTS = re.compile(rb"(?:" + _NOT_DATA + rb"*data" + _VALUE + _ANY + rb"*\n)+")


def _last_id_value(chunk: bytes) -> bytes | None:
    """The value of the last ``id`` line of ``chunk`` (LF line ends, ending with a blank
    line), or ``None`` when it has none."""
    end = len(chunk)
    while True:
        pos = chunk.rfind(b"\nid", 0, end)
        if pos < 0 and not chunk.startswith(b"id"):
            return None
        start = pos + 1  # 0: the first line
        after = chunk[start + 2 : start + 3]
        if after == b":":
            stop = chunk.find(b"\n", start)
            skip = 4 if chunk[start + 3 : start + 4] == b" " else 3
            return chunk[start + skip : stop] if start + skip <= stop else b""
        if after == b"\n":
            return b""
        if pos < 0:
            return None
        end = pos


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
        "_at_rest", "_buffer", "_data", "_event", "_has_data", "_id_field", "_last_id",
        "_max_event", "_max_line", "_pending_cr", "_raw", "_retry", "_skim_limit", "_started",
        "crlf_tail",
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
        # The last chunk ``skim`` took that sets the id, its ``id`` line first, not decoded
        # yet: reading every chunk's id would cost more than the rest of the fast path, and
        # only the last one is ever read.
        self._id_field: bytes | None = None
        self._started = False  # the BOM check is done
        self._pending_cr = False  # the buffer ended in CR: an LF may follow in the next chunk
        self._at_rest = False  # started, and between events (``at_boundary``)
        self._skim_limit = min(max_line, max_event)
        #: Whether the last ``feed_raw`` began with the LF of a CRLF whose CR ended the
        #: previous chunk and the block before it (returned then): that ``b"\n"`` comes back
        #: first, as its own item, so a caller consuming that block can drop it too.
        self.crlf_tail = False

    @property
    def last_event_id(self) -> str:
        """The last event id in force (what a reconnecting client would send)."""
        self._settle_id()
        return self._last_id

    def _settle_id(self) -> None:
        chunk = self._id_field
        if chunk is not None:
            self._id_field = None
            field = chunk[2 : chunk.index(b"\n")]  # ``b":value"``, ``b": value"`` or ``b""``
            value = field[2:] if field[1:2] == b" " else field[1:]
            self._last_id = value.decode("utf-8", "replace")

    def _set_id(self, value: bytes) -> None:
        self._id_field = None  # superseded
        self._last_id = value.decode("utf-8", "replace")

    @property
    def at_boundary(self) -> bool:
        """Whether the parser is between events: nothing buffered, no event half built (so
        ``skim`` may take the next chunk)."""
        return self._at_rest

    def skim(self, chunk: bytes, markers: tuple[bytes, ...] = ()) -> int | None:
        """The fast path for a stream read chunk by chunk: when the parser is
        ``at_boundary`` and ``chunk`` is whole events of the common shape (LF line ends, no
        CR, only ``data``/``id``/``event``/``retry`` fields and comments, a ``data`` line in
        each event, within the limits) and none of ``markers`` (the event types a caller
        wants parsed, as bytes) occurs in an ``event`` line of it, take it as ``feed_raw``
        would (the last event id follows it) and return how many events it dispatches,
        without building them (the caller passes ``chunk`` on as is). Otherwise ``None``, and
        nothing was consumed: give the chunk to ``feed_raw``.

        An event type can only be named by its literal bytes in an ``event`` line, so a chunk
        that holds no marker holds no event of a marked type."""
        if not self._at_rest or len(chunk) > self._skim_limit:
            return None
        if _common_event(chunk) is not None:
            if chunk[:2] == b"id":  # only the id line can begin so
                self._id_field = chunk  # read when asked for (``last_event_id``, ``feed_raw``)
            return 1
        if not chunk.endswith(b"\n\n"):
            return None
        if b"event" in chunk:
            for marker in markers:
                if marker in chunk:
                    return None
        if b"\r" in chunk:
            return None
        if chunk.find(b"\n\n") == len(chunk) - 2:
            # One event (the common chunk), only its data and id lines matter: unknown
            # fields and comments are ignored by every parser.
            if not (
                chunk.startswith((b"data:", b"data\n")) or b"\ndata:" in chunk
                or b"\ndata\n" in chunk
            ):  # fmt: skip
                return None  # no data: dispatches nothing (the slow path says so)
            if b"\nid" in chunk:
                value = _last_id_value(chunk)  # an id line after the first: search
            elif chunk[:3] == b"id:":  # the usual place: the first line, and no other
                stop = chunk.find(b"\n")
                value = chunk[4:stop] if chunk[3:4] == b" " else chunk[3:stop]
            elif chunk[:3] == b"id\n":
                value = b""
            else:
                return 1
            if value is not None:
                if b"\x00" in value:
                    return None
                self._set_id(value)
            return 1
        found = _SIMPLE_EVENTS.fullmatch(chunk)
        if found is None:
            return None
        last = found.group("id2") if found.start("id2") > found.start("id") else found.group("id")
        if last is not None:
            value = last[2:] if last[1:2] == b" " else last[1:]
            if b"\x00" in value:
                return None  # that id is ignored, an earlier one counts: the slow path knows
            self._set_id(value)
        # Each event ends with the only blank line in it.
        return chunk.count(b"\n\n")

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
        self._settle_id()  # events dispatched here carry the id in force
        buffer = self._buffer
        events: list[SseEvent | bytes] = []
        self.crlf_tail = False
        if self._pending_cr:
            self._pending_cr = False
            if chunk[:1] == b"\n":
                # The second half of a CRLF whose CR ended the previous chunk: part of the
                # event being built, or the end of the block already returned.
                chunk = chunk[1:]
                if self._raw:
                    self._raw += b"\n"
                else:
                    events.append(b"\n")
                    self.crlf_tail = True
        buffer += chunk
        if not self._started:
            if len(buffer) < 3 and _BOM.startswith(bytes(buffer)):
                return []
            self._started = True
            if buffer.startswith(_BOM):
                self._raw += _BOM
                del buffer[:3]
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
        self._at_rest = not (
            buffer or self._raw or self._pending_cr or self._has_data or self._event
            or self._retry is not None
        )  # fmt: skip
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
        self._pending_cr = False
        self._at_rest = self._started
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
