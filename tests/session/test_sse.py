"""The event-stream parser against the WHATWG rules, split at every byte, and its limits."""

from __future__ import annotations

import pytest

from mpp_client.session import SseError, SseEvent, SseParser


def events_of(data: bytes, *, split: int | None = None) -> list[SseEvent]:
    parser = SseParser()
    if split is None:
        return parser.feed(data)
    out: list[SseEvent] = []
    for i in range(0, len(data), split):
        out += parser.feed(data[i : i + split])
    return out


def simple(events: list[SseEvent]) -> list[tuple[str, str, str]]:
    return [(e.event, e.data, e.id) for e in events]


STREAM = (
    b"\xef\xbb\xbf: comment\r\n"
    b"data: first\r\n"
    b"data:  two spaces\r\n\r\n"
    b'event: payment-need-voucher\rid: 7\rdata: {"a":1}\r\r'
    b"data\n\n"  # a field without colon: empty value, dispatched as ""
    b"event: only-type\n\n"  # no data: not dispatched
    b"id: bad\x00id\nretry: 12x\ndata: x\n\n"  # NUL id ignored, bad retry ignored
    b"retry: 1500\ndata: y\nunknown: z\n\n"
    b"data: caf\xc3\xa9 \xff\n\n"
    b"data: unfinished\n"
)

EXPECTED = [
    ("message", "first\n two spaces", ""),
    ("payment-need-voucher", '{"a":1}', "7"),
    ("message", "", "7"),
    ("message", "x", "7"),
    ("message", "y", "7"),
    ("message", "café \ufffd", "7"),
]


@pytest.mark.parametrize("split", [None, 1, 2, 3, 5, 7, 64])
def test_whatwg_rules_whatever_the_chunking(split: int | None) -> None:
    events = events_of(STREAM, split=split)
    assert simple(events) == EXPECTED
    assert events[4].retry == 1500 and events[3].retry is None


def test_crlf_split_across_chunks_is_one_line_end() -> None:
    parser = SseParser()
    assert parser.feed(b"data: a\r") == []
    assert parser.feed(b"\n") == []
    events = parser.feed(b"\r\n")
    assert simple(events) == [("message", "a", "")]


def test_raw_bytes_pass_through_exactly() -> None:
    parser = SseParser()
    out = b""
    for i in range(len(STREAM)):
        for item in parser.feed_raw(STREAM[i : i + 1]):
            out += item.raw if isinstance(item, SseEvent) else item
    out += parser.close()
    assert out == STREAM


def test_an_unfinished_event_at_the_end_is_not_dispatched() -> None:
    parser = SseParser()
    assert parser.feed(b"event: x\ndata: 1\n") == []
    assert parser.close() == b"event: x\ndata: 1\n"


def test_line_and_event_limits() -> None:
    with pytest.raises(SseError):
        SseParser(max_line=10).feed(b"data: " + b"a" * 20)
    parser = SseParser(max_event=50)
    with pytest.raises(SseError):
        for _ in range(20):
            parser.feed(b"data: aaaa\n")
    # Many small events are fine: the limit is per event.
    parser = SseParser(max_event=50)
    assert len(parser.feed(b"data: aaaa\n\n" * 1000)) == 1000
