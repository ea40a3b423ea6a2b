"""The stream hook: how the three drivers read a paid event stream through a ``StreamHandler``.

The drivers call one function each, after the flow returned a paid ``Payment``:

- ``PaymentTransport``: ``attach_httpx_sync(response, request, payment, config, perform,
  inner)``;
- ``AsyncPaymentTransport``: ``attach_httpx_async(...)`` (``perform`` awaited, ``inner`` an
  ``httpx.AsyncBaseTransport``);
- ``PaymentSession`` (requests): ``attach_requests(response, request, payment, config,
  perform, session)``.

Each does nothing unless the answer is ``text/event-stream`` and a configured method that is a
``SessionMethod`` returns a handler for it. Then the body the caller reads is replaced by one
that parses events as they pass (``SseParser``), hands the handler's control events to it
(running its effects with the driver's runner, side requests through the inner transport) and
passes every other byte through unchanged. The ``SessionStream`` goes into
``response.extensions["mpp.session"]`` (httpx) or ``response.mpp_session`` (requests).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from mpp_client.effects import HttpReply
from mpp_client.session.base import (
    MAX_SIDE_BODY,
    SESSION_KEY,
    SessionMethod,
    SessionStream,
    SideRequest,
    StreamContext,
    StreamHandler,
)
from mpp_client.session.sse import SseEvent, SseParser
from mpp_client.trampoline import drive, drive_async

if TYPE_CHECKING:
    import httpx
    import requests

    from mpp_client.flow import FlowConfig, Payment

__all__ = [
    "attach_httpx_async",
    "attach_httpx_sync",
    "attach_requests",
    "is_event_stream",
    "stream_handler_for",
]

log = logging.getLogger("mpp_client")

_NEVER = float("inf")

# Request headers never copied onto a side request: credentials of the paid request and the
# framing of its body (a side request carries its own, usually none).
_NOT_COPIED = frozenset(
    {
        "authorization",
        "payment-authorization",
        "content-length",
        "content-type",
        "content-encoding",
        "transfer-encoding",
        "idempotency-key",
        "host",
        "accept",
    }
)


def is_event_stream(content_type: str | None) -> bool:
    """Whether a ``Content-Type`` value is ``text/event-stream``."""
    if not content_type:
        return False
    return content_type.split(";", 1)[0].strip().lower() == "text/event-stream"


def stream_handler_for(
    config: FlowConfig,
    payment: Payment | None,
    *,
    url: str,
    http_method: str,
    origin: str,
    request_headers: Sequence[tuple[str, str]],
    response_headers: tuple[tuple[str, str], ...],
) -> tuple[StreamHandler, StreamContext] | None:
    """The handler for a paid event stream and the context it was made with, or ``None``
    (not paid, not a session method, or the method does not meter this stream)."""
    if payment is None or payment.status != "paid" or payment.quote is None:
        return None
    challenge = payment.quote.challenge
    method = next((m for m in config.methods if m.can_pay(challenge)), None)
    if method is None or not isinstance(method, SessionMethod):
        return None
    headers: dict[str, str] = {}
    for name, value in request_headers:
        lower = name.lower()
        if lower in _NOT_COPIED:
            if lower == "authorization" and value[:8].lower() != "payment ":
                headers[lower] = value  # an ordinary bearer token the server may require
            continue
        headers[lower] = value
    state = SessionStream()
    context = StreamContext(
        url=url,
        http_method=http_method,
        origin=origin,
        request_headers=headers,
        response_headers=response_headers,
        payment=payment,
        guard=config.guard,
        clock=config.clock,
        stream=state,
    )
    handler = method.stream_handler(context)
    if handler is None:
        return None
    return handler, context


class _Pump:
    """The sans-I/O part: bytes in, pass-through bytes and control events out, in order."""

    __slots__ = ("after_control", "controls", "handler", "markers", "parser", "state")

    def __init__(self, handler: StreamHandler, context: StreamContext) -> None:
        self.handler = handler
        self.state = context.stream
        self.controls = handler.control_events
        # A chunk naming none of these cannot hold a control event (``SseParser.skim``).
        self.markers = tuple(name.encode() for name in self.controls)
        self.parser = SseParser()
        self.after_control = False  # the last block parsed was a control event (consumed)

    def items(self, chunk: bytes) -> list[bytes | SseEvent]:
        """The chunk parsed: pass-through bytes and control events, in order (the pumps try
        ``SseParser.skim`` first)."""
        out: list[bytes | SseEvent] = []
        pending = bytearray()
        found = self.parser.feed_raw(chunk)
        if self.parser.crlf_tail and self.after_control:
            found = found[1:]  # the LF ending the control event consumed before: consumed too
        for item in found:
            self.after_control = False
            if isinstance(item, SseEvent):
                if item.event in self.controls:
                    if pending:
                        out.append(bytes(pending))
                        pending.clear()
                    out.append(item)
                    self.after_control = True
                    continue
                self.state.data_events += 1
                item = item.raw
            pending += item
        if pending:
            out.append(bytes(pending))
        return out

    def due(self) -> bool:
        """Whether the handler asked to see the units now (its ``wake_at`` is reached)."""
        return self.state.data_events >= self.wake()

    def wake(self) -> float:
        """The handler's ``wake_at`` (infinite when it has none). It only changes while the
        handler runs, so the pumps read it again after each run, not per chunk."""
        wake = getattr(self.handler, "wake_at", None)
        return _NEVER if wake is None else wake

    def on_units(self) -> Generator[Any, Any, None]:
        units: Generator[Any, Any, None] = self.handler.on_units(  # type: ignore[attr-defined]
            self.state.data_events
        )
        return units

    def rest(self) -> bytes:
        return self.parser.close()

    def broke(self, exc: BaseException) -> bool:
        """Record that the stream ended with ``exc``; whether the handler still needs its
        ``on_end(False)`` (not when the stream had completed before ``exc``)."""
        self.state.ended = True
        if self.state.error is None:
            self.state.error = exc
        return not self.state.complete


def _pump_sync(
    chunks: Iterator[bytes],
    pump: _Pump,
    run: Callable[[Generator[Any, Any, None]], None],
) -> Iterator[bytes]:
    state, skim, markers = pump.state, pump.parser.skim, pump.markers
    try:
        if pump.due():
            run(pump.on_units())
        wake = pump.wake()
        for chunk in chunks:
            count = skim(chunk, markers)
            if count is not None:
                # The common chunk (whole events, no control event) passes as is, counted,
                # not parsed into events; the handler sees the units before the reader does.
                state.data_events += count
                if state.data_events >= wake:
                    run(pump.on_units())
                    wake = pump.wake()
                yield chunk
                continue
            for item in pump.items(chunk):
                if isinstance(item, bytes):
                    yield item
                else:
                    state.control_events += 1
                    run(pump.handler.on_event(item))
            if pump.due():
                run(pump.on_units())
            wake = pump.wake()
        rest = pump.rest()
        if rest:
            yield rest
        state.ended = state.complete = True
        run(pump.handler.on_end(True))
    except GeneratorExit:
        state.ended = True  # the reader stopped early
        raise
    except BaseException as exc:
        if pump.broke(exc):
            try:
                run(pump.handler.on_end(False))
            except Exception:
                log.exception("session stream handler failed at the end of a broken stream")
        raise


async def _pump_async(
    chunks: AsyncIterator[bytes],
    pump: _Pump,
    run: Callable[[Generator[Any, Any, None]], Awaitable[None]],
) -> AsyncIterator[bytes]:
    state, skim, markers = pump.state, pump.parser.skim, pump.markers
    try:
        if pump.due():
            await run(pump.on_units())
        wake = pump.wake()
        async for chunk in chunks:
            count = skim(chunk, markers)
            if count is not None:
                state.data_events += count
                if state.data_events >= wake:
                    await run(pump.on_units())
                    wake = pump.wake()
                yield chunk
                continue
            for item in pump.items(chunk):
                if isinstance(item, bytes):
                    yield item
                else:
                    state.control_events += 1
                    await run(pump.handler.on_event(item))
            if pump.due():
                await run(pump.on_units())
            wake = pump.wake()
        rest = pump.rest()
        if rest:
            yield rest
        state.ended = state.complete = True
        await run(pump.handler.on_end(True))
    except GeneratorExit:
        state.ended = True
        raise
    except BaseException as exc:
        if pump.broke(exc):
            try:
                await run(pump.handler.on_end(False))
            except Exception:
                log.exception("session stream handler failed at the end of a broken stream")
        raise


# --- httpx -------------------------------------------------------------------------------------


def _compressed(headers: Any) -> bool:
    encoding = (headers.get("content-encoding") or "identity").strip().lower()
    return encoding not in ("", "identity")


def _reply_headers(response: httpx.Response) -> dict[str, str]:
    merged: dict[str, str] = {}
    for name, value in response.headers.multi_items():
        key = name.lower()
        merged[key] = f"{merged[key]}, {value}" if key in merged else value
    return merged


def _side_request(request: httpx.Request, context: StreamContext, effect: SideRequest) -> Any:
    import httpx

    headers = {**context.request_headers, **{k.lower(): v for k, v in effect.headers.items()}}
    timeout = {"connect": effect.timeout, "read": effect.timeout, "write": effect.timeout,
               "pool": effect.timeout}  # fmt: skip
    return httpx.Request(
        effect.method,
        effect.url or request.url,
        headers=headers,
        content=effect.content,
        extensions={"timeout": timeout},
    )


def _context_of(
    config: FlowConfig, payment: Payment | None, request: Any, response_headers: Any, url: str
) -> tuple[StreamHandler, StreamContext] | None:
    from mpp_client.driver import url_origin

    return stream_handler_for(
        config,
        payment,
        url=url,
        http_method=str(request.method),
        origin=url_origin(url),
        request_headers=[(str(k), str(v)) for k, v in request.headers.items()],
        response_headers=response_headers,
    )


def _httpx_context(
    response: httpx.Response, request: httpx.Request, payment: Payment | None, config: FlowConfig
) -> tuple[StreamHandler, StreamContext] | None:
    """The handler and context metering ``response``, or ``None`` when it is no session's
    event stream (or one compressed, whose control events cannot be read)."""
    if not is_event_stream(response.headers.get("content-type")):
        return None
    heads = tuple((k.lower(), v) for k, v in response.headers.multi_items())
    found = _context_of(config, payment, request, heads, str(request.url))
    if found is None:
        return None
    if _compressed(response.headers):
        log.warning("a metered event stream is compressed; its control events are not read")
        return None
    return found


def attach_httpx_sync(
    response: httpx.Response,
    request: httpx.Request,
    payment: Payment | None,
    config: FlowConfig,
    perform: Callable[[Any], Any],
    inner: httpx.BaseTransport,
) -> None:
    """Meter ``response`` (a paid answer of ``PaymentTransport``) if it is a session's event
    stream: see the module docstring."""
    import httpx

    found = _httpx_context(response, request, payment, config)
    if found is None:
        return
    handler, context = found

    def side(effect: SideRequest) -> HttpReply:
        answer = inner.handle_request(_side_request(request, context, effect))
        try:
            body = _read_bounded_sync(answer)
        finally:
            answer.close()
        return HttpReply(answer.status_code, _reply_headers(answer), body)

    def dispatch(effect: Any) -> Any:
        if isinstance(effect, SideRequest):
            return side(effect)
        return perform(effect)

    def run(gen: Generator[Any, Any, None]) -> None:
        drive(gen, dispatch)

    original = response.stream
    if not isinstance(original, httpx.SyncByteStream):
        raise TypeError("a sync transport answered with an async stream")
    response.stream = _metered_classes()[0](original, _Pump(handler, context), run)
    response.extensions[SESSION_KEY] = context.stream


def attach_httpx_async(
    response: httpx.Response,
    request: httpx.Request,
    payment: Payment | None,
    config: FlowConfig,
    perform: Callable[[Any], Awaitable[Any]],
    inner: httpx.AsyncBaseTransport,
) -> None:
    """``attach_httpx_sync`` for ``AsyncPaymentTransport``."""
    import httpx

    found = _httpx_context(response, request, payment, config)
    if found is None:
        return
    handler, context = found

    async def side(effect: SideRequest) -> HttpReply:
        answer = await inner.handle_async_request(_side_request(request, context, effect))
        try:
            chunks: list[bytes] = []
            size = 0
            stream = answer.stream
            assert isinstance(stream, httpx.AsyncByteStream)
            async for chunk in stream:
                chunks.append(chunk)
                size += len(chunk)
                if size > MAX_SIDE_BODY:
                    break
        finally:
            await answer.aclose()
        body = b"".join(chunks)[:MAX_SIDE_BODY]
        return HttpReply(answer.status_code, _reply_headers(answer), body)

    async def dispatch(effect: Any) -> Any:
        if isinstance(effect, SideRequest):
            return await side(effect)
        return await perform(effect)

    async def run(gen: Generator[Any, Any, None]) -> None:
        await drive_async(gen, dispatch)

    original = response.stream
    if not isinstance(original, httpx.AsyncByteStream):
        raise TypeError("an async transport answered with a sync stream")
    response.stream = _metered_classes()[1](original, _Pump(handler, context), run)
    response.extensions[SESSION_KEY] = context.stream


@functools.cache
def _metered_classes() -> tuple[Any, Any]:
    """The metered byte streams for httpx (sync, async): made once, on the first metered
    stream (httpx is imported only then; a class made per stream would cost more than the
    rest of attaching it)."""
    import httpx

    class MeteredSync(httpx.SyncByteStream):
        def __init__(
            self,
            original: httpx.SyncByteStream,
            pump: _Pump,
            run: Callable[[Generator[Any, Any, None]], None],
        ) -> None:
            self._original, self._pump, self._run = original, pump, run

        def __iter__(self) -> Iterator[bytes]:
            # The pump itself (no generator around it: one layer less per chunk).
            return _pump_sync(iter(self._original), self._pump, self._run)

        def close(self) -> None:
            self._original.close()

    class MeteredAsync(httpx.AsyncByteStream):
        def __init__(
            self,
            original: httpx.AsyncByteStream,
            pump: _Pump,
            run: Callable[[Generator[Any, Any, None]], Awaitable[None]],
        ) -> None:
            self._original, self._pump, self._run = original, pump, run

        def __aiter__(self) -> AsyncIterator[bytes]:
            return _pump_async(self._original.__aiter__(), self._pump, self._run)

        async def aclose(self) -> None:
            await self._original.aclose()

    return MeteredSync, MeteredAsync


def _read_bounded_sync(answer: httpx.Response) -> bytes:
    import httpx

    chunks: list[bytes] = []
    size = 0
    # The transport's own stream (a response a transport hands back is never read yet, but a
    # mock's may be marked read).
    stream = answer.stream
    assert isinstance(stream, httpx.SyncByteStream)
    for chunk in stream:
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_SIDE_BODY:
            break
    return b"".join(chunks)[:MAX_SIDE_BODY]


# --- requests ----------------------------------------------------------------------------------


class _MeteredRaw:
    """Stands in for ``response.raw`` (a urllib3 response): ``stream``/``read`` go through the
    pump; everything else is the original's."""

    def __init__(self, original: Any, body: Iterator[bytes]) -> None:
        self._original = original
        self._body = body
        self._left = b""

    def stream(
        self, amt: int | None = 2**16, decode_content: bool | None = None
    ) -> Iterator[bytes]:
        if self._left:
            left, self._left = self._left, b""
            yield left
        yield from self._body

    def read(self, amt: int | None = None, *args: Any, **kwargs: Any) -> bytes:
        if amt is None:
            return self._left + b"".join(self._body)
        out = bytearray(self._left)
        self._left = b""
        while len(out) < amt:
            try:
                out += next(self._body)
            except StopIteration:
                break
        data, self._left = bytes(out[:amt]), bytes(out[amt:])
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._original, name)


def attach_requests(
    response: requests.Response,
    request: requests.PreparedRequest,
    payment: Payment | None,
    config: FlowConfig,
    perform: Callable[[Any], Any],
    session: requests.Session,
) -> None:
    """Meter a paid answer of ``PaymentSession`` (read with ``stream=True``) if it is a
    session's event stream. Side requests go through ``requests.Session.send`` of
    ``session`` (its mounted adapters, never the paying ``PaymentSession.send``)."""
    import requests as _requests

    if not is_event_stream(response.headers.get("content-type")):
        return
    heads = tuple((k.lower(), v) for k, v in response.headers.items())
    found = _context_of(config, payment, request, heads, str(request.url))
    if found is None:
        return
    handler, context = found

    def side(effect: SideRequest) -> HttpReply:
        headers = {**context.request_headers, **{k.lower(): v for k, v in effect.headers.items()}}
        prepared = _requests.Request(
            effect.method, effect.url or str(request.url), headers=headers, data=effect.content
        ).prepare()
        answer = _requests.Session.send(
            session, prepared, stream=True, allow_redirects=False, timeout=effect.timeout
        )
        try:
            chunks: list[bytes] = []
            size = 0
            for chunk in answer.iter_content(16384):
                chunks.append(chunk)
                size += len(chunk)
                if size > MAX_SIDE_BODY:
                    break
        finally:
            answer.close()
        merged = {k.lower(): v for k, v in answer.headers.items()}
        return HttpReply(answer.status_code, merged, b"".join(chunks)[:MAX_SIDE_BODY])

    def dispatch(effect: Any) -> Any:
        if isinstance(effect, SideRequest):
            return side(effect)
        return perform(effect)

    def run(gen: Generator[Any, Any, None]) -> None:
        drive(gen, dispatch)

    original = response.raw
    pump = _Pump(handler, context)
    chunks = original.stream(2**16, decode_content=True)
    response.raw = _MeteredRaw(original, _pump_sync(chunks, pump, run))
    response.mpp_session = context.stream  # type: ignore[attr-defined]
