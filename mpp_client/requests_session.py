"""A drop-in ``requests.Session`` that pays 402 challenges (install the ``requests`` extra).

::

    session = PaymentSession(wallet=wallet)
    response = session.get("https://api.example.com/report")
    mpp_client.payment_of(response)          # or response.mpp_payment

It is a real ``requests.Session`` subclass: ``mount``, hooks, auth, cookies, ``stream=True``,
timeouts, proxies and environment settings behave as usual, and payment works whatever adapter
is mounted, because payment happens in ``Session.send`` around the adapter. Per-request options:
``session.get(url, mpp=PaymentOptions(max_amount=...))``.

Request bodies: bytes and strings replay as is; seekable files are rewound; generators and
other iterables are buffered up to ``body_cap`` bytes before the first send (a naive adapter
would resend them empty), and larger ones are streamed but cannot be paid for.
"""

from __future__ import annotations

import contextvars
import itertools
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

try:
    import requests
    from requests.cookies import extract_cookies_to_jar
except ImportError:
    from mpp_client.extras import require_extra

    require_extra("requests", "PaymentSession")  # MissingExtra, naming the extra to install
    raise

from mpp_client.driver import (
    DEFAULT_BODY_CAP,
    MAX_402_BODY,
    OnFirstUse,
    build_config,
    url_origin,
)
from mpp_client.errors import MppError

# As in mpp_client.transport: the flow, the runner and the trampoline load on the first 402.
if TYPE_CHECKING:
    import httpx

    from mpp_client.flow import Payment, PaymentHooks, ResponseHead, Send
    from mpp_client.guard import PaymentGuard, PaymentOptions
    from mpp_client.methods.base import PaymentMethod
    from mpp_client.runner import SyncRunner
    from mpp_client.wallet import Wallet

__all__ = ["PaymentResponse", "PaymentSession"]

# Set while one logical request (its redirects and paid retry included) is in flight, so the
# nested Session.send calls made by requests for redirect hops pass straight through.
_IN_FLIGHT: contextvars.ContextVar[bool] = contextvars.ContextVar("mpp_in_flight", default=False)
_OPTIONS: contextvars.ContextVar[PaymentOptions | None] = contextvars.ContextVar(
    "mpp_options", default=None
)


class _Body:
    """How the request body can be sent again."""

    def __init__(self, data: bytes | None, problem: str | None, rewind: Any = None) -> None:
        self.data, self.problem, self.rewind = data, problem, rewind


def _prepare_body(request: requests.PreparedRequest, cap: int) -> _Body:
    body = request.body
    if body is None:
        return _Body(b"", None)
    if isinstance(body, bytes):
        return _Body(body, None)
    if isinstance(body, str):
        return _Body(body.encode("utf-8"), None)
    seek = getattr(body, "seek", None)
    tell = getattr(body, "tell", None)
    if seek is not None and tell is not None and getattr(body, "seekable", lambda: True)():
        try:
            position = tell()
        except OSError:
            position = None
        if position is not None:
            # Read once now to learn the bytes (for the digest check), then rewind.
            data = body.read(cap + 1)
            seek(position)
            if isinstance(data, str):
                data = data.encode("utf-8")
            if len(data) > cap:
                return _Body(None, f"the request body is larger than the {cap}-byte limit")
            return _Body(data, None, rewind=(body, position))
    # An iterator or a non-seekable file: buffer it now, or it would be sent empty on retry.
    chunks: list[bytes] = []
    size = 0
    iterator: Iterator[Any] = (
        iter(lambda: body.read(65536), b"") if hasattr(body, "read") else iter(body)
    )
    for chunk in iterator:
        piece = chunk.encode("utf-8") if isinstance(chunk, str) else bytes(chunk)
        chunks.append(piece)
        size += len(piece)
        if size > cap:
            request.body = itertools.chain(chunks, iterator)
            return _Body(None, f"the request body is larger than the {cap}-byte replay buffer")
    data = b"".join(chunks)
    request.body = data
    request.headers.pop("Transfer-Encoding", None)
    request.headers["Content-Length"] = str(len(data))
    return _Body(data, None)


def _bounded_content(response: requests.Response) -> bytes:
    """Read at most ``MAX_402_BODY`` bytes of a 402 (or error) body and close it; the caller
    can still read ``response.content``."""
    if getattr(response, "_content_consumed", False) and isinstance(response._content, bytes):
        response.close()
        return response._content[:MAX_402_BODY]
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_content(chunk_size=16384):
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_402_BODY:
            break
    data = b"".join(chunks)[:MAX_402_BODY]
    if size > MAX_402_BODY:
        # The rest is still on the socket: close it, or the pool would hand it to the next
        # request, which would read that rest as its status line.
        response.raw.close()
    response._content = data
    response._content_consumed = True  # type: ignore[attr-defined]
    response.close()
    return data


def _head(response: requests.Response, body: bytes) -> ResponseHead:
    from mpp_client.flow import ResponseHead

    raw_headers = getattr(getattr(response, "raw", None), "headers", None)
    if raw_headers is not None and hasattr(raw_headers, "getlist"):
        # urllib3 keeps repeated WWW-Authenticate fields apart; requests joins them.
        pairs = tuple(
            (name.lower(), value)
            for name in dict.fromkeys(k.lower() for k in raw_headers)
            for value in raw_headers.getlist(name)
        )
    else:
        pairs = tuple((k.lower(), v) for k, v in response.headers.items())
    return ResponseHead(response.status_code, pairs, body)


def _sync_runner(io_client: httpx.Client | None) -> SyncRunner:
    from mpp_client.runner import SyncRunner

    return SyncRunner(io_client)


class PaymentResponse(requests.Response):
    """What every ``PaymentSession`` request returns: a ``requests.Response`` whose
    ``mpp_payment`` is the ``Payment`` made for it, or ``None`` when no 402 was met (the same as
    ``mpp_client.payment_of(response)``)."""

    mpp_payment: Payment | None = None


def _with_payment(response: requests.Response, payment: Payment | None) -> PaymentResponse:
    # requests builds its Response objects deep inside the adapter; giving the one returned
    # to the caller the subclass (same layout, no new slots) is what lets ``mpp_payment`` be
    # typed and always present, whatever adapter is mounted.
    if not isinstance(response, PaymentResponse):
        response.__class__ = PaymentResponse
    assert isinstance(response, PaymentResponse)
    response.mpp_payment = payment
    return response


class PaymentSession(requests.Session):
    """A ``requests.Session`` that pays 402 challenges (same options as ``PaymentTransport``).

    ``body_cap`` is in bytes; ``expiry_margin`` in seconds. ``io_client`` is the
    ``httpx.Client`` used for the payment methods' own calls (chain RPC, Lightning node, ...).
    """

    def __init__(
        self,
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
        super().__init__()
        self._mpp_config = build_config(
            wallet=wallet,
            methods=methods,
            guard=guard,
            prefer=prefer,
            hooks=hooks,
            expiry_margin=expiry_margin,
            allow_insecure_http=allow_insecure_http,
        )
        self._mpp_body_cap = body_cap
        self._mpp_runners = OnFirstUse(lambda: _sync_runner(io_client))

    @property
    def _mpp_runner(self) -> SyncRunner:
        """The effect runner, made on the first 402."""
        return self._mpp_runners.get()

    def request(
        self,
        method: str | bytes,
        url: str | bytes,
        *args: Any,
        mpp: PaymentOptions | None = None,
        **kwargs: Any,
    ) -> PaymentResponse:
        """As ``requests.Session.request``, plus ``mpp=PaymentOptions(...)`` for this call."""
        token = _OPTIONS.set(mpp)
        try:
            response = super().request(method, url, *args, **kwargs)
        finally:
            _OPTIONS.reset(token)
        return _with_payment(response, getattr(response, "mpp_payment", None))

    # The verbs, typed with ``mpp=`` so a caller's ``session.get(url, mpp=...)`` and
    # ``response.mpp_payment`` check under mypy --strict (requests' stubs know neither).

    def get(
        self, url: str | bytes, *, mpp: PaymentOptions | None = None, **kwargs: Any
    ) -> PaymentResponse:
        """``GET`` (redirects followed), paying a 402 under ``mpp`` options."""
        kwargs.setdefault("allow_redirects", True)
        return self.request("GET", url, mpp=mpp, **kwargs)

    def options(
        self, url: str | bytes, *, mpp: PaymentOptions | None = None, **kwargs: Any
    ) -> PaymentResponse:
        """``OPTIONS`` (redirects followed), paying a 402 under ``mpp`` options."""
        kwargs.setdefault("allow_redirects", True)
        return self.request("OPTIONS", url, mpp=mpp, **kwargs)

    def head(
        self, url: str | bytes, *, mpp: PaymentOptions | None = None, **kwargs: Any
    ) -> PaymentResponse:
        """``HEAD`` (redirects not followed, as requests does), paying a 402 under ``mpp``."""
        kwargs.setdefault("allow_redirects", False)
        return self.request("HEAD", url, mpp=mpp, **kwargs)

    def post(
        self,
        url: str | bytes,
        data: Any = None,
        json: Any = None,
        *,
        mpp: PaymentOptions | None = None,
        **kwargs: Any,
    ) -> PaymentResponse:
        """``POST``, paying a 402 under ``mpp`` options (the body is replayed byte-identically)."""
        return self.request("POST", url, data=data, json=json, mpp=mpp, **kwargs)

    def put(
        self,
        url: str | bytes,
        data: Any = None,
        *,
        mpp: PaymentOptions | None = None,
        **kwargs: Any,
    ) -> PaymentResponse:
        """``PUT``, paying a 402 under ``mpp`` options."""
        return self.request("PUT", url, data=data, mpp=mpp, **kwargs)

    def patch(
        self,
        url: str | bytes,
        data: Any = None,
        *,
        mpp: PaymentOptions | None = None,
        **kwargs: Any,
    ) -> PaymentResponse:
        """``PATCH``, paying a 402 under ``mpp`` options."""
        return self.request("PATCH", url, data=data, mpp=mpp, **kwargs)

    def delete(
        self, url: str | bytes, *, mpp: PaymentOptions | None = None, **kwargs: Any
    ) -> PaymentResponse:
        """``DELETE``, paying a 402 under ``mpp`` options."""
        return self.request("DELETE", url, mpp=mpp, **kwargs)

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        if _IN_FLIGHT.get():
            return super().send(request, **kwargs)
        token = _IN_FLIGHT.set(True)
        try:
            accept = self._mpp_config.accept_payment
            if accept and "Accept-Payment" not in request.headers:
                request.headers["Accept-Payment"] = accept
            body = _prepare_body(request, self._mpp_body_cap)
            response = super().send(request, **kwargs)
            if response.status_code != 402:
                return response
            return self._pay(request, response, body, kwargs)
        finally:
            _IN_FLIGHT.reset(token)

    def _pay(
        self,
        original: requests.PreparedRequest,
        response: requests.Response,
        body: _Body,
        kwargs: dict[str, Any],
    ) -> requests.Response:
        from mpp_client.flow import RequestFacts, SendFailed, needs_body, payment_flow
        from mpp_client.guard import PaymentOptions
        from mpp_client.trampoline import drive

        hop = response.request  # the request that got the 402 (after any redirects)
        content = _bounded_content(response)
        url = str(hop.url)
        facts = RequestFacts(
            method=str(hop.method),
            url=url,
            origin=url_origin(url),
            first_origin=url_origin(str(original.url)),
            headers={k.lower(): v for k, v in hop.headers.items()},
            body=body.data,
            body_problem=body.problem,
            options=_OPTIONS.get() or PaymentOptions(),
        )
        flow = payment_flow(self._mpp_config, facts, _head(response, content))
        first_402 = response
        last = response

        def send(effect: Send) -> ResponseHead:
            nonlocal last
            retry = hop.copy()
            # Cookies the 402 set go along, as requests' own digest auth does on its retry.
            extract_cookies_to_jar(retry._cookies, hop, first_402.raw)  # type: ignore[attr-defined,no-untyped-call]
            retry.prepare_cookies(retry._cookies)  # type: ignore[attr-defined]
            for name in effect.remove_headers:
                retry.headers.pop(name, None)
            for name, value in effect.set_headers.items():
                retry.headers[name] = value
            if body.rewind is not None:
                stream, position = body.rewind
                stream.seek(position)
            else:
                # No body stays None: b"" without Content-Length makes the adapter send an
                # empty chunked body, whose "0\r\n\r\n" a server may read as the next request.
                retry.body = body.data or None
            try:
                # Not following redirects here: a redirect after paying is the server's
                # answer to the payment, and what follows it is fetched unpaid below.
                # Streamed, so that a metered event stream is not read before its hook is
                # in place (read below unless the caller asked for stream=True).
                answer = super(PaymentSession, self).send(
                    retry, **{**kwargs, "allow_redirects": False, "stream": True}
                )
                content = b""
                if needs_body(answer.status_code):
                    content = _bounded_content(answer)
            except requests.RequestException as exc:
                raise SendFailed(exc) from exc
            last = answer
            return _head(answer, content)

        try:
            payment = drive(flow, self._mpp_runner.perform, send)
        except MppError as failure:
            failure.request, failure.response = original, last
            raise
        if last is not first_402:
            if payment is not None and payment.status == "paid":
                if last.headers.get("content-type", "")[:17].lower() == "text/event-stream":
                    from mpp_client.session.stream import attach_requests

                    runner = self._mpp_runner
                    attach_requests(last, hop, payment, self._mpp_config, runner.perform, self)
            if not kwargs.get("stream", False):
                last.content  # noqa: B018 - read now, as requests does without stream=True
        return self._finish(last, original, first_402, payment, kwargs)

    def _finish(
        self,
        response: requests.Response,
        original: requests.PreparedRequest,
        first_402: requests.Response,
        payment: Payment | None,
        kwargs: dict[str, Any],
    ) -> requests.Response:
        if payment is None:
            return response
        # Keep the credential out of what callers and redirect logic see.
        response.request = original
        if response.is_redirect and kwargs.get("allow_redirects", True):
            # Paid, then redirected (post/redirect/get): follow as requests would, without the
            # credential; the hops pass through unpaid (one payment per logical request).
            rest = {k: v for k, v in kwargs.items() if k != "allow_redirects"}
            hops = [response, *self.resolve_redirects(response, original, **rest)]
            response = hops.pop()
            response.history = hops
        response = _with_payment(response, payment)
        if response is not first_402:
            response.history = [*first_402.history, first_402, *response.history]
        return response

    def rebuild_auth(
        self, prepared_request: requests.PreparedRequest, response: requests.Response
    ) -> None:
        """As requests does for ``Authorization``, drop payment credentials on a redirect to
        another origin (requests alone would keep ``Payment-Authorization``)."""
        super().rebuild_auth(prepared_request, response)  # type: ignore[no-untyped-call]
        if url_origin(str(prepared_request.url)) != url_origin(str(response.request.url)):
            headers = prepared_request.headers
            if headers.get("Authorization", "")[:8].lower() == "payment ":
                del headers["Authorization"]
            headers.pop("Payment-Authorization", None)

    def close(self) -> None:
        if self._mpp_runners.made is not None:
            self._mpp_runners.made.close()
        super().close()
