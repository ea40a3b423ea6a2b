"""``SseParser.skim``, the fast path of a metered stream: whatever it takes, it takes exactly
as ``feed_raw`` would (same events counted, same last event id), and it declines the rest."""

from __future__ import annotations

import random
from collections.abc import Iterator

from mpp_client.session import SseEvent, SseParser

MARKERS = (b"payment-need-voucher", b"payment-receipt")

BLOCKS = [
    b"data: chunk 1\n\n",
    b"id: 7\ndata: chunk 2\n\n",
    b"id:8\ndata:x\n\n",
    b"data\n\n",
    b"data: a\ndata: b\nid: 9\n\n",
    b": keep-alive\n\n",
    b"id: 10\n\n",
    b"event: token\ndata: t\n\n",
    b"retry: 100\ndata: r\n\n",
    b"database: no\ndata: d\n\n",
    b"idx: 3\ndata: e\n\n",
    b"id: a\x00b\ndata: nul\n\n",
    b"id\ndata: empty id\n\n",
    b"data: x\r\n\r\n",
    b"event: payment-receipt\ndata: {}\n\n",
    b"\n",
    b"id: 1\nid: 2\ndata: two ids\n\n",
    b"id: 3\ndata: a\ndata: b\n\n",
    b"data: payment-receipt is only data\n\n",
    b"data: half",
    b" an event\n\n",
]


def slow_events(parser: SseParser, chunk: bytes) -> list[SseEvent]:
    return [item for item in parser.feed_raw(chunk) if isinstance(item, SseEvent)]


def test_skim_matches_feed_raw_on_random_streams() -> None:
    rng = random.Random(18)
    skims = 0
    for _ in range(400):
        chunks = [
            b"".join(rng.choice(BLOCKS) for _ in range(rng.randint(1, 3)))
            for _ in range(rng.randint(1, 12))
        ]
        fast, slow = SseParser(), SseParser()
        fast_count = slow_count = 0
        for chunk in chunks:
            skimmed = fast.skim(chunk, MARKERS)
            events = slow_events(slow, chunk)
            if skimmed is None:
                fast_count += len(slow_events(fast, chunk))
            else:
                # Skimmed: it held no event the caller wanted parsed.
                assert all(event.event.encode() not in MARKERS for event in events), chunk
                fast_count += skimmed
                skims += 1
            slow_count += len(events)
            assert fast_count == slow_count, chunks
            assert fast.last_event_id == slow.last_event_id, chunks
            assert fast.at_boundary == slow.at_boundary
    assert skims > 200  # the fast path was taken, often


def test_skim_takes_the_common_chunk_and_declines_the_rest() -> None:
    parser = SseParser()
    assert parser.skim(b"data: 1\n\n") is None  # the first chunk: the BOM check comes first
    assert parser.feed(b"data: 1\n\n")
    assert parser.skim(b"id: 5\ndata: chunk\n\n", MARKERS) == 1 and parser.last_event_id == "5"
    assert parser.skim(b"data: a\n\ndata: b\n\n", MARKERS) == 2
    assert parser.skim(b": ping\n\n", MARKERS) is None  # dispatches nothing: not skimmed
    assert parser.skim(b"event: payment-need-voucher\ndata: {}\n\n", MARKERS) is None
    assert parser.skim(b"data: x\r\n\r\n", MARKERS) is None
    assert parser.skim(b"data: no blank line\n", MARKERS) is None
    small = SseParser(max_line=12)
    small.feed(b": started\n\n")
    assert small.skim(b"data: 12\n\n") == 1
    assert small.skim(b"data: 1234567890\n\n") is None  # the limits hold: feed_raw raises


CONTROL_BLOCKS = [
    b'event: payment-need-voucher\ndata: {"requiredCumulative": "10"}\n\n',
    b"event: payment-receipt\ndata: {}\n\n",
    b"event:payment-need-voucher\r\ndata: x\r\n\r\n",
]


class _Recorder:
    control_events = frozenset({"payment-need-voucher", "payment-receipt"})

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def on_event(self, event: SseEvent) -> Iterator[object]:
        self.seen.append((event.event, event.data))
        return iter(())

    def on_end(self, complete: bool) -> Iterator[object]:
        return iter(())


def _reference(stream: bytes) -> tuple[bytes, list[tuple[str, str]], int, str]:
    """What the pump must produce for ``stream``, by the full parser fed it at once."""
    parser = SseParser()
    out, controls, units = bytearray(), [], 0
    for item in parser.feed_raw(stream):
        if isinstance(item, SseEvent):
            if item.event in _Recorder.control_events:
                controls.append((item.event, item.data))
                continue
            units += 1
            item = item.raw
        out += item
    out += parser.close()
    return bytes(out), controls, units, parser.last_event_id


def test_the_pump_matches_the_full_parser_whatever_the_block_splits() -> None:
    from mpp_client.session.base import SessionStream
    from mpp_client.session.stream import _Pump, _pump_sync

    rng = random.Random(1818)
    for round_ in range(300):
        parts = [rng.choice(BLOCKS + CONTROL_BLOCKS) for _ in range(rng.randint(1, 25))]
        stream = b"".join(parts)
        if round_ % 3 == 0:  # whole events per block, as most servers write them
            blocks, at = [], 0
            while at < len(parts):
                step = rng.randint(1, 3)
                blocks.append(b"".join(parts[at : at + step]))
                at += step
        else:  # any byte boundary: markers, CRLF pairs and lines split across blocks
            count = min(len(stream) - 1, rng.randint(1, 20))
            cuts = sorted(rng.sample(range(1, len(stream)), count))
            blocks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
        assert b"".join(blocks) == stream
        handler, state = _Recorder(), SessionStream()

        class Context:
            stream = state

        pump = _Pump(handler, Context())  # type: ignore[arg-type]
        out = b"".join(_pump_sync(iter(blocks), pump, lambda effects: None))
        expected, controls, units, last_id = _reference(stream)
        assert out == expected, blocks
        assert handler.seen == controls, blocks
        assert state.data_events == units, blocks
        assert state.control_events == len(controls)
        assert pump.parser.last_event_id == last_id, blocks
