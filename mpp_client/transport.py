"""httpx drivers of the payment flow: ``PaymentTransport`` and ``AsyncPaymentTransport``.

Wrap any httpx transport::

    transport = PaymentTransport(wallet=wallet)            # inner: httpx.HTTPTransport()
    with httpx.Client(transport=transport) as client:
        response = client.get("https://api.example.com/report")
        payment = mpp_client.payment_of(response)          # None when nothing was paid

The transport sends each request unchanged (plus ``Accept-Payment``). A 402 with ``Payment``
challenges is read and closed, handed to the flow (``mpp_client.flow``), and the request is
sent again with the credential; the caller gets the final response, whose ``request`` is the
caller's own (so a later redirect never carries the credential). Who closes what: the caller
closes the returned response, as with any httpx transport; the transport closes every
intermediate 402 itself.

Proxies: configure them on the *inner* transport. ``httpx.Client(proxy=...)`` mounts its own
transports and bypasses this one (and its budgets).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import httpx

from mpp_client.driver import (
    CARRY_KEY,
    DEFAULT_BODY_CAP,
    MAX_402_BODY,
    PAYMENT_KEY,
    PIN_KEY,
    OnFirstUse,
    build_config,
    first_origin,
    options_from,
    remember_redirect,
    url_origin,
)
from mpp_client.errors import MppError

# The flow, the runners (asyncio, tenacity) and the trampoline are imported on the first 402
# (the flow's configuration on construction): a request that is never answered 402 does not
# need them, and importing them costs more than httpx itself.
if TYPE_CHECKING:
    from mpp_client.flow import Payment, PaymentHooks, RequestFacts, ResponseHead, Send
    from mpp_client.guard import PaymentGuard
    from mpp_client.methods.base import PaymentMethod
    from mpp_client.runner import AsyncRunner, SyncRunner
    from mpp_client.wallet import Wallet

__all__ = ["AsyncPaymentTransport", "PaymentTransport"]


class _ChainedStream(httpx.SyncByteStream):
    """Chunks already read, then the rest of an iterator: a body too big to buffer is still
    sent whole (it just cannot be paid for)."""

    def __init__(self, head: list[bytes], rest: Iterator[bytes]) -> None:
        self._head, self._rest = head, rest

    def __iter__(self) -> Iterator[bytes]:
        yield from self._head
        yield from self._rest


class _AsyncChainedStream(httpx.AsyncByteStream):
    def __init__(self, head: list[bytes], rest: AsyncIterator[bytes]) -> None:
        self._head, self._rest = head, rest

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self._head:
            yield chunk
        async for chunk in self._rest:
            yield chunk


#: Failures of the paid retry that count as a failed send (the same credential is sent once
#: more, then the outcome is unknown): the transport failed, or the answer's body could not be
#: read or decoded.
_UNREADABLE = (httpx.TransportError, httpx.DecodingError, httpx.StreamError)


def _too_big(cap: int) -> str:
    return f"the request body is larger than the {cap}-byte replay buffer"


def _buffer_sync(request: httpx.Request, cap: int) -> tuple[bytes | None, str | None]:
    try:
        return request.content, None
    except httpx.RequestNotRead:
        pass
    stream = request.stream
    if not isinstance(stream, httpx.SyncByteStream):
        return None, "the request body is an async stream in a sync client"
    chunks: list[bytes] = []
    size = 0
    iterator = iter(stream)
    for chunk in iterator:
        chunks.append(chunk)
        size += len(chunk)
        if size > cap:
            request.stream = _ChainedStream(chunks, iterator)
            return None, _too_big(cap)
    body = b"".join(chunks)
    request.stream = httpx.ByteStream(body)
    return body, None


async def _buffer_async(request: httpx.Request, cap: int) -> tuple[bytes | None, str | None]:
    try:
        return request.content, None
    except httpx.RequestNotRead:
        pass
    stream = request.stream
    if not isinstance(stream, httpx.AsyncByteStream):
        return None, "the request body is a sync iterator in an async client"
    chunks: list[bytes] = []
    size = 0
    iterator = stream.__aiter__()
    async for chunk in iterator:
        chunks.append(chunk)
        size += len(chunk)
        if size > cap:
            request.stream = _AsyncChainedStream(chunks, iterator)
            return None, _too_big(cap)
    body = b"".join(chunks)
    request.stream = httpx.ByteStream(body)
    return body, None


def _facts(
    request: httpx.Request, pinned: str | None, body: bytes | None, problem: str | None
) -> RequestFacts:
    from mpp_client.flow import RequestFacts, origin_of

    parsed = request.url
    url = str(parsed)
    # From httpx's parsed URL (ASCII host, default port already None): what ``url_origin``
    # gives for ``url``, without parsing it again.
    origin = origin_of(parsed.scheme, parsed.raw_host.decode("ascii").lower(), parsed.port)
    return RequestFacts(
        method=request.method,
        url=url,
        origin=origin,
        first_origin=pinned or origin,
        headers={k.lower(): v for k, v in request.headers.items()},
        body=body,
        body_problem=problem,
        options=options_from(request.extensions),
    )


def _head(response: httpx.Response, body: bytes) -> ResponseHead:
    from mpp_client.flow import ResponseHead

    return ResponseHead(
        response.status_code,
        tuple((k.lower(), v) for k, v in response.headers.multi_items()),
        body,
    )


#: Headers that describe a body's framing on the wire, not the decoded (maybe cut) body.
_FRAMING = frozenset({"content-encoding", "content-length", "transfer-encoding"})


def _head_402(response: httpx.Response, body: bytes, truncated: bool) -> ResponseHead:
    """The head of a 402 whose body was read (``_read_402_*``): what ``_head`` gives for the
    response ``_rebuild`` makes of it, without making that response (only needed when the 402
    goes back to the caller)."""
    from mpp_client.flow import ResponseHead

    headers = [(k, v) for k, v in response.headers.multi_items() if k not in _FRAMING]
    if truncated:
        headers.append(("x-mpp-truncated", "1"))
    return ResponseHead(response.status_code, tuple(headers), body[:MAX_402_BODY])


def _retry_request(request: httpx.Request, body: bytes, send: Send) -> httpx.Request:
    headers = request.headers.copy()
    for name in send.remove_headers:
        headers.pop(name, None)
    for name, value in send.set_headers.items():
        headers[name] = value
    return httpx.Request(
        request.method,
        request.url,
        headers=headers,
        stream=httpx.ByteStream(body),
        extensions=request.extensions,
    )


def _advertise(request: httpx.Request, value: bytes) -> None:
    """Add ``Accept-Payment`` unless the caller set one.

    This runs on every request, paid or not, so it works on httpx's header list directly
    (the public ``in``/``[]=`` pair costs ~1.5 µs, more than the rest of the transport); the
    layout is stable across the pinned httpx range and the public API is the fallback.
    """
    headers = request.headers
    items = getattr(headers, "_list", None)
    if isinstance(items, list):
        for entry in items:
            if entry[1] == b"accept-payment":
                return
        items.append((b"Accept-Payment", b"accept-payment", value))
    elif "accept-payment" not in headers:
        headers["Accept-Payment"] = value.decode("latin-1")


def _strip_on_cross_origin(request: httpx.Request, pinned: str | None) -> None:
    """A redirect hop to another origin never carries a payment credential."""
    if pinned is None or pinned == url_origin(str(request.url)):
        return
    if request.headers.get("authorization", "")[:8].lower() == "payment ":
        del request.headers["authorization"]
    request.headers.pop("payment-authorization", None)


def _read_402_sync(response: httpx.Response) -> tuple[bytes, bool]:
    """Read a body up to ``MAX_402_BODY`` (and a byte more) and close it; returns the body
    read and whether it was cut."""
    chunks: list[bytes] = []
    size = 0
    truncated = False
    try:
        for chunk in response.iter_bytes():
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_402_BODY:
                truncated = True
                break
    finally:
        response.close()
    return b"".join(chunks), truncated


async def _read_402_async(response: httpx.Response) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    size = 0
    truncated = False
    try:
        async for chunk in response.aiter_bytes():
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_402_BODY:
                truncated = True
                break
    finally:
        await response.aclose()
    return b"".join(chunks), truncated


def _bounded_body_sync(
    response: httpx.Response, request: httpx.Request
) -> tuple[bytes, httpx.Response]:
    """Read a body up to ``MAX_402_BODY`` and close it; returns the body and a response
    whose content can still be read by the caller."""
    body, truncated = _read_402_sync(response)
    return _rebuild(response, request, body, truncated)


async def _bounded_body_async(
    response: httpx.Response, request: httpx.Request
) -> tuple[bytes, httpx.Response]:
    body, truncated = await _read_402_async(response)
    return _rebuild(response, request, body, truncated)


def _rebuild(
    response: httpx.Response, request: httpx.Request, body: bytes, truncated: bool
) -> tuple[bytes, httpx.Response]:
    body = body[:MAX_402_BODY]
    headers = response.headers.copy()
    # The body is decoded and maybe cut: its framing headers no longer describe it.
    for name in _FRAMING:
        headers.pop(name, None)
    if truncated:
        headers["x-mpp-truncated"] = "1"
    rebuilt = httpx.Response(
        response.status_code,
        headers=headers,
        content=body,
        request=request,
        extensions=dict(response.extensions),
    )
    return body, rebuilt


def _finish(
    response: httpx.Response,
    request: httpx.Request,
    pinned: str | None,
    payment: Payment | None,
) -> httpx.Response:
    if payment is not None:
        response.extensions[PAYMENT_KEY] = payment
        # The caller's request, not the one carrying the credential: redirects and logging
        # downstream must never see it.
        response.request = request
    status = response.status_code
    extensions = request.extensions
    # A paid hop answered with a redirect (post/redirect/get): the next hop is still this
    # request. Any other answer ends it.
    remember_redirect(
        extensions, str(request.url), status, response.headers.get("location"), pinned
    )
    if payment is not None and 300 <= status < 400:
        extensions[CARRY_KEY] = payment
    return response


def _after_hop(
    extensions: dict[str, Any], url: str, response: httpx.Response, pinned: str | None
) -> None:
    """Bookkeeping after a response that needed no payment: pin redirects, and hand a payment
    made earlier in this redirect chain to the response that ends it."""
    carried = extensions.get(CARRY_KEY)
    status = response.status_code
    remember_redirect(extensions, url, status, response.headers.get("location"), pinned)
    if carried is not None and not 300 <= status < 400:
        response.extensions[PAYMENT_KEY] = carried


def _metered(response: httpx.Response, payment: Payment | None) -> bool:
    """Whether a paid answer is an event stream a session method may meter
    (``mpp_client.session.stream``; imported only then)."""
    if payment is None or payment.status != "paid":
        return False
    content_type: str = response.headers.get("content-type", "")
    return content_type[:17].lower() == "text/event-stream"


def _annotate(error: MppError, request: httpx.Request, response: httpx.Response) -> MppError:
    error.request = request
    error.response = response
    return error


def _sync_runner(io_client: httpx.Client | None) -> SyncRunner:
    from mpp_client.runner import SyncRunner

    return SyncRunner(io_client)


def _async_runner(io_client: httpx.AsyncClient | None) -> AsyncRunner:
    from mpp_client.runner import AsyncRunner

    return AsyncRunner(io_client)


class _TransportOptions:
    def __init__(
        self,
        *,
        wallet: Wallet | None,
        methods: Sequence[PaymentMethod],
        guard: PaymentGuard | None,
        prefer: Iterable[str],
        hooks: PaymentHooks | None,
        body_cap: int,
        expiry_margin: float,
        allow_insecure_http: bool,
    ) -> None:
        self.config = build_config(
            wallet=wallet,
            methods=methods,
            guard=guard,
            prefer=prefer,
            hooks=hooks,
            expiry_margin=expiry_margin,
            allow_insecure_http=allow_insecure_http,
        )
        self.body_cap = body_cap
        self.accept = self.config.accept_payment


class PaymentTransport(httpx.BaseTransport):
    """An ``httpx.BaseTransport`` that pays 402 challenges and retries.

    ``inner``: the transport that really sends (default ``httpx.HTTPTransport()``).
    ``wallet``: methods, spend policy and journal (or ``methods=`` for a default wallet).
    ``prefer``: method names or ``"method/intent"`` in order of preference.
    ``body_cap``: bytes of a streamed request body buffered for replay (default 8 MiB).
    ``expiry_margin``: seconds; challenges expiring sooner are not paid.
    ``io_client``: the ``httpx.Client`` used for the methods' own calls (chain RPC, Lightning
    node, Stripe); one is created and reused when not given.
    """

    def __init__(
        self,
        inner: httpx.BaseTransport | None = None,
        *,
        wallet: Wallet | None = None,
        methods: Sequence[PaymentMethod] = (),
        guard: PaymentGuard | None = None,
        prefer: Iterable[str] = (),
        hooks: PaymentHooks | None = None,
        body_cap: int = DEFAULT_BODY_CAP,
        expiry_margin: float = 5.0,
        allow_insecure_http: bool = False,
        io_client: httpx.Client | None = None,
    ) -> None:
        self._inner = inner if inner is not None else httpx.HTTPTransport()
        self._options = _TransportOptions(
            wallet=wallet,
            methods=methods,
            guard=guard,
            prefer=prefer,
            hooks=hooks,
            body_cap=body_cap,
            expiry_margin=expiry_margin,
            allow_insecure_http=allow_insecure_http,
        )
        self._accept = self._options.accept.encode("latin-1")
        self._runners = OnFirstUse(lambda: _sync_runner(io_client))

    @property
    def _runner(self) -> SyncRunner:
        """The effect runner, made on the first 402."""
        return self._runners.get()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        extensions = request.extensions
        pinned = first_origin(extensions, request.url) if PIN_KEY in extensions else None
        if pinned is not None:
            _strip_on_cross_origin(request, pinned)
        if self._accept:
            _advertise(request, self._accept)
        body, problem = _buffer_sync(request, self._options.body_cap)
        response = self._inner.handle_request(request)
        status = response.status_code
        # A 402 further down a redirect chain that already paid is not paid again.
        if status == 402 and (pinned is None or CARRY_KEY not in extensions):
            return self._paid(request, response, pinned, body, problem)
        if pinned is not None or 300 <= status < 400:
            _after_hop(extensions, str(request.url), response, pinned)
        return response

    def _paid(
        self,
        request: httpx.Request,
        response: httpx.Response,
        pinned: str | None,
        body: bytes | None,
        problem: str | None,
    ) -> httpx.Response:
        from mpp_client.flow import SendFailed, needs_body, payment_flow
        from mpp_client.trampoline import drive

        content, truncated = _read_402_sync(response)
        facts = _facts(request, pinned, body, problem)
        flow = payment_flow(self._options.config, facts, _head_402(response, content, truncated))
        # The latest answer; ``None`` while it is the 402, rebuilt (readable again) only if it
        # goes back to the caller: a paid request never needs it.
        last: httpx.Response | None = None

        def send(effect: Send) -> ResponseHead:
            nonlocal last
            assert body is not None  # the flow refuses unreplayable bodies before Send
            try:
                answer = self._inner.handle_request(_retry_request(request, body, effect))
                content = b""
                if needs_body(answer.status_code):
                    content, answer = _bounded_body_sync(answer, request)
            except _UNREADABLE as exc:
                raise SendFailed(exc) from exc
            last = answer
            return _head(answer, content)

        try:
            payment = drive(flow, self._runner.perform, send)
        except MppError as failure:
            if last is None:
                last = _rebuild(response, request, content, truncated)[1]
            raise _annotate(failure, request, last) from failure.__cause__
        if last is None:
            last = _rebuild(response, request, content, truncated)[1]
        if _metered(last, payment):
            from mpp_client.session.stream import attach_httpx_sync

            config = self._options.config
            attach_httpx_sync(last, request, payment, config, self._runner.perform, self._inner)
        return _finish(last, request, pinned, payment)

    def close(self) -> None:
        if self._runners.made is not None:
            self._runners.made.close()
        self._inner.close()


class AsyncPaymentTransport(httpx.AsyncBaseTransport):
    """The async twin of ``PaymentTransport``, for ``httpx.AsyncClient`` (same options;
    ``io_client`` is an ``httpx.AsyncClient``)."""

    def __init__(
        self,
        inner: httpx.AsyncBaseTransport | None = None,
        *,
        wallet: Wallet | None = None,
        methods: Sequence[PaymentMethod] = (),
        guard: PaymentGuard | None = None,
        prefer: Iterable[str] = (),
        hooks: PaymentHooks | None = None,
        body_cap: int = DEFAULT_BODY_CAP,
        expiry_margin: float = 5.0,
        allow_insecure_http: bool = False,
        io_client: httpx.AsyncClient | None = None,
    ) -> None:
        self._inner = inner if inner is not None else httpx.AsyncHTTPTransport()
        self._options = _TransportOptions(
            wallet=wallet,
            methods=methods,
            guard=guard,
            prefer=prefer,
            hooks=hooks,
            body_cap=body_cap,
            expiry_margin=expiry_margin,
            allow_insecure_http=allow_insecure_http,
        )
        self._accept = self._options.accept.encode("latin-1")
        self._runners = OnFirstUse(lambda: _async_runner(io_client))

    @property
    def _runner(self) -> AsyncRunner:
        """The effect runner, made on the first 402."""
        return self._runners.get()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        extensions = request.extensions
        pinned = first_origin(extensions, request.url) if PIN_KEY in extensions else None
        if pinned is not None:
            _strip_on_cross_origin(request, pinned)
        if self._accept:
            _advertise(request, self._accept)
        body, problem = await _buffer_async(request, self._options.body_cap)
        response = await self._inner.handle_async_request(request)
        status = response.status_code
        # A 402 further down a redirect chain that already paid is not paid again.
        if status == 402 and (pinned is None or CARRY_KEY not in extensions):
            return await self._paid(request, response, pinned, body, problem)
        if pinned is not None or 300 <= status < 400:
            _after_hop(extensions, str(request.url), response, pinned)
        return response

    async def _paid(
        self,
        request: httpx.Request,
        response: httpx.Response,
        pinned: str | None,
        body: bytes | None,
        problem: str | None,
    ) -> httpx.Response:
        from mpp_client.flow import SendFailed, needs_body, payment_flow
        from mpp_client.trampoline import drive_async

        content, truncated = await _read_402_async(response)
        facts = _facts(request, pinned, body, problem)
        flow = payment_flow(self._options.config, facts, _head_402(response, content, truncated))
        last: httpx.Response | None = None  # as in the sync twin

        async def send(effect: Send) -> ResponseHead:
            nonlocal last
            assert body is not None
            try:
                answer = await self._inner.handle_async_request(
                    _retry_request(request, body, effect)
                )
                content = b""
                if needs_body(answer.status_code):
                    content, answer = await _bounded_body_async(answer, request)
            except _UNREADABLE as exc:
                raise SendFailed(exc) from exc
            last = answer
            return _head(answer, content)

        try:
            runner = self._runner
            payment = await drive_async(flow, runner.perform, send, runner.offload)
        except MppError as failure:
            if last is None:
                last = _rebuild(response, request, content, truncated)[1]
            raise _annotate(failure, request, last) from failure.__cause__
        if last is None:
            last = _rebuild(response, request, content, truncated)[1]
        if _metered(last, payment):
            from mpp_client.session.stream import attach_httpx_async

            config = self._options.config
            attach_httpx_async(last, request, payment, config, self._runner.perform, self._inner)
        return _finish(last, request, pinned, payment)

    async def aclose(self) -> None:
        if self._runners.made is not None:
            await self._runners.made.aclose()
        await self._inner.aclose()
