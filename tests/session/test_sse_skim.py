"""``SseParser.skim``, the fast path of a metered stream: whatever it takes, it takes exactly
as ``feed_raw`` would (same events counted, same last event id), and it declines the rest."""

from __future__ import annotations

import random

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
