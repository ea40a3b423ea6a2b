"""``FakeMppServer``: a small MPP server for tests, with stateless HMAC-bound challenges.

It issues challenges per route, verifies credentials the way real servers do (HMAC-bound
challenge id, echo of the request, expiry, single use, optional body-digest and route binding,
the method's proof), answers with a receipt, and records every request it received so tests can
assert exactly what a client sent. Use it three ways:

- ``server.mock_transport()``: an ``httpx.MockTransport`` (sync and async clients), no sockets;
- ``with server.serve() as base_url:``: a real HTTP server on 127.0.0.1 (any client, requests);
- ``server.asgi``: an ASGI application (uvicorn, ``httpx.ASGITransport``).
"""

from __future__ import annotations

import contextlib
import json
import random
import secrets
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx

from mpp_client.errors import ParseError
from mpp_client.protocol import (
    Challenge,
    Credential,
    Receipt,
    compute_challenge_id,
    content_digest,
    digest_matches,
    format_timestamp,
    parse_credential,
)
from mpp_client.testing.method import TEST_SECRET, test_proof

__all__ = ["FakeMppServer", "Offer", "RecordedRequest", "Route"]

PROBLEM_BASE = "https://paymentauth.org/problems/"
#: Status ``handle`` returns when the connection must be dropped without an answer.
DROP = 0
#: Pseudo-header ``handle`` adds to tell the runners how to damage the answer's body (never
#: sent; a colon cannot start a real header name). Value: ``"truncated"``.
FAULT = ":fault"
#: Bytes a truncated body claims (in ``Content-Length``) beyond what is sent.
TRUNCATED_BY = 64
#: Longest a ``Route.hold_paid`` hold lasts if the test never releases it (seconds): a safety
#: net so a failing test cannot hang the server thread forever, not a synchronisation.
HOLD_TIMEOUT = 30.0


@dataclass(frozen=True)
class Offer:
    """One challenge a route issues.

    ``amount`` is in base units (a decimal string, as on the wire). ``expires_in`` is seconds
    from now; ``expires`` (RFC 3339) fixes the value instead. ``header`` names the credential
    header (default ``Authorization``). ``opaque`` is echoed back by clients; when it is not
    set, each challenge gets a random one, so two identical offers never share a challenge id.
    ``verify`` checks the payload; by default it expects ``TestMethod``'s HMAC proof.
    """

    amount: str = "1000"
    currency: str = "usd-test"
    recipient: str = "merchant"
    method: str = "test"
    intent: str = "charge"
    extra: Mapping[str, Any] = field(default_factory=dict)
    expires_in: float | None = 300.0
    expires: str | None = None
    description: str | None = None
    header: str | None = None
    opaque: str | None = None
    verify: Callable[[Credential], bool] | None = None

    def request_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "amount": self.amount,
            "currency": self.currency,
            "recipient": self.recipient,
        }
        data.update(self.extra)
        return data


@dataclass(frozen=True)
class Route:
    """How one path behaves.

    ``offers``: the challenges issued (in this order); empty means a free route.
    ``paid_status``: the status after a verified payment (200; or 403, 500 to test failures).
    ``reject``: verification always fails (402 ``verification-failed``).
    ``receipt``: send ``Payment-Receipt`` on success. ``bind_digest``: challenges carry the
    request body's digest. ``bind_resource``: the request names the path and query it pays for.
    ``redirect_to``: answer 302 to this URL instead. ``status``: a fixed status (no payment).
    ``retry_after``: a ``Retry-After`` value on rejections.
    ``drop_paid``: how many requests carrying a credential to drop without an answer (the
    connection is closed; ``mock_transport`` raises ``httpx.ReadError``) before answering.
    ``raw_challenges``: send these ``WWW-Authenticate`` values instead of the offers' (to test
    how clients treat malformed or foreign challenges).
    ``paid_redirect``: after a verified payment answer ``303 See Other`` to this URL (with the
    receipt) instead of the body (post/redirect/get).

    Faults AFTER the server took the payment (the credential is verified, appended to
    ``FakeMppServer.accepted`` and its challenge marked used, so a replay of it is answered
    402 ``invalid-challenge`` "already used", like a single-use server):

    ``lose_paid``: the first N accepted payments on this path get no answer: the connection is
    dropped (like ``drop_paid``, which drops BEFORE verifying and accepting).
    ``lose_every``: also lose the answer to every N-th accepted payment (the N-th, 2N-th, ...).
    ``lose_ratio``: also lose each other answer with this probability, drawn from ``lose_rng``
    (a seeded ``random.Random`` for a deterministic test; default: the server's own
    ``random.Random(0)``). Every lost one is recorded in ``FakeMppServer.lost``.
    ``hold_paid``: after accepting, the handler waits until this event is set (at most
    ``HOLD_TIMEOUT`` seconds) before it answers; ``FakeMppServer.holding`` is set when a request
    starts waiting, so a test can act (cancel the caller) on an event, never on a sleep. Use it
    with ``serve()`` (under ``mock_transport`` it would block the caller itself).
    ``paid_body_fault``: damage the answer's body: ``"truncated"`` (``Content-Length`` claims
    ``TRUNCATED_BY`` more bytes than are sent, then the connection closes; ``mock_transport``
    raises ``httpx.RemoteProtocolError`` mid-body) or ``"bad-gzip"`` (``Content-Encoding:
    gzip`` over bytes that are not gzip). Combine with ``paid_status`` (e.g. 500) to test an
    unreadable error answer to the paid retry.
    """

    offers: Sequence[Offer] = (Offer(),)
    paid_status: int = 200
    reject: bool = False
    receipt: bool = True
    bind_digest: bool = False
    bind_resource: bool = False
    redirect_to: str | None = None
    status: int | None = None
    retry_after: str | None = None
    body: bytes = b'{"ok":true}'
    drop_paid: int = 0
    raw_challenges: Sequence[str] | None = None
    paid_redirect: str | None = None
    lose_paid: int = 0
    lose_every: int = 0
    lose_ratio: float = 0.0
    lose_rng: random.Random | None = None
    hold_paid: threading.Event | None = None
    paid_body_fault: Literal["truncated", "bad-gzip"] | None = None


@dataclass(frozen=True)
class RecordedRequest:
    """A request the server received (header names lower-case)."""

    method: str
    target: str
    headers: Mapping[str, str]
    body: bytes

    def credential(self, header: str = "authorization") -> Credential | None:
        value = self.headers.get(header)
        if value is None or not value.lower().startswith("payment "):
            return None
        return parse_credential(value)


class _TruncatedStream(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A body that ends early: ``content``, then the connection "closes"."""

    def __init__(self, content: bytes) -> None:
        self._content = content

    def __iter__(self) -> Iterator[bytes]:
        yield self._content
        raise httpx.RemoteProtocolError("peer closed connection without sending complete body")

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self._content
        raise httpx.RemoteProtocolError("peer closed connection without sending complete body")


class FakeMppServer:
    """An MPP server for tests. ``routes`` maps a path to its ``Route``; unknown paths 404."""

    def __init__(
        self,
        routes: Mapping[str, Route] | None = None,
        *,
        realm: str = "fake.test",
        secret: bytes = TEST_SECRET,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.routes: dict[str, Route] = dict(routes or {"/paid": Route()})
        self.realm = realm
        self._secret = secret
        self._clock = clock or (lambda: datetime.now(UTC))
        self._lock = threading.Lock()
        self._used: set[str] = set()
        self._dropped: dict[str, int] = {}
        self._taken: dict[str, int] = {}
        self._rng = random.Random(0)
        #: Every request received, in order.
        self.requests: list[RecordedRequest] = []
        #: Every credential the server accepted, in order (a replay is never added again).
        self.accepted: list[Credential] = []
        #: Accepted credentials whose answer was lost (``Route.lose_*``), in order.
        self.lost: list[Credential] = []
        #: Set when a paid request starts waiting on ``Route.hold_paid``.
        self.holding = threading.Event()

    # --- the server logic --------------------------------------------------------------------

    def handle(
        self, method: str, target: str, headers: Sequence[tuple[str, str]], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """Answer one request: ``(status, headers, body)``."""
        lowered = {k.lower(): v for k, v in headers}
        with self._lock:
            self.requests.append(RecordedRequest(method, target, lowered, body))
        path = urlsplit(target).path
        route = self.routes.get(path)
        if route is None:
            return 404, [("content-type", "text/plain")], b"not found"
        if route.redirect_to is not None:
            return 302, [("location", route.redirect_to)], b""
        if route.status is not None or not route.offers:
            return route.status or 200, [("content-type", "application/json")], route.body
        challenges = self._challenges(route, target, body)
        credential_value = self._credential_value(route, lowered)
        if credential_value is None:
            return self._payment_required(route, challenges, "payment-required", None)
        with self._lock:
            dropped = self._dropped.get(path, 0)
            if dropped < route.drop_paid:
                self._dropped[path] = dropped + 1
                return DROP, [], b""
        try:
            credential = parse_credential(credential_value)
        except ParseError as exc:
            return self._payment_required(route, challenges, "malformed-credential", str(exc))
        problem = self._verify(route, target, body, credential)
        if problem is not None:
            return self._payment_required(route, challenges, *problem)
        with self._lock:
            self.accepted.append(credential)
            lose = self._lose(route, path)
            if lose:
                self.lost.append(credential)
        if route.hold_paid is not None:
            self.holding.set()
            route.hold_paid.wait(HOLD_TIMEOUT)
        if lose:
            return DROP, [], b""
        status, out, content = self._paid_answer(route, credential)
        if route.paid_body_fault == "bad-gzip":
            out = [(k, v) for k, v in out if k != "content-encoding"]
            out.append(("content-encoding", "gzip"))
            content = b"this is not gzip data"
        elif route.paid_body_fault == "truncated":
            out.append((FAULT, "truncated"))
        return status, out, content

    def _lose(self, route: Route, path: str) -> bool:
        """Whether the answer to this accepted payment is lost (called under the lock)."""
        taken = self._taken.get(path, 0) + 1
        self._taken[path] = taken
        if taken <= route.lose_paid:
            return True
        if route.lose_every > 0 and taken % route.lose_every == 0:
            return True
        if route.lose_ratio > 0:
            rng = route.lose_rng if route.lose_rng is not None else self._rng
            return rng.random() < route.lose_ratio
        return False

    def _paid_answer(
        self, route: Route, credential: Credential
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        if route.paid_status >= 300:
            return route.paid_status, [("content-type", "application/json")], b'{"error":"x"}'
        out = [("content-type", "application/json"), ("cache-control", "private")]
        status, content = route.paid_status, route.body
        if route.paid_redirect is not None:
            status, content = 303, b""
            out.append(("location", route.paid_redirect))
        if route.receipt:
            receipt = Receipt(
                status="success",
                method=credential.challenge.method,
                timestamp=format_timestamp(self._clock()),
                reference="ref-" + credential.challenge.id[:12],
                challenge_id=credential.challenge.id,
            )
            out.append(("payment-receipt", receipt.encode()))
        return status, out, content

    def _credential_value(self, route: Route, headers: Mapping[str, str]) -> str | None:
        names = {(offer.header or "authorization").lower() for offer in route.offers}
        for name in sorted(names):
            value = headers.get(name)
            if value is not None and value[:8].lower() == "payment ":
                return value
        return None

    def _challenges(self, route: Route, target: str, body: bytes) -> list[Challenge]:
        now = self._clock()
        out = []
        for offer in route.offers:
            data = offer.request_data()
            if route.bind_resource:
                data["resource"] = target
            expires = offer.expires
            if expires is None and offer.expires_in is not None:
                expires = format_timestamp(now + timedelta(seconds=offer.expires_in))
            digest = content_digest(body) if route.bind_digest else None
            draft = Challenge.create(
                id="-",
                realm=self.realm,
                method=offer.method,
                intent=offer.intent,
                request=data,
                expires=expires,
                digest=digest,
                description=offer.description,
                opaque=offer.opaque if offer.opaque is not None else secrets.token_urlsafe(9),
                header=offer.header,
            )
            challenge_id = compute_challenge_id(
                self._secret,
                realm=draft.realm,
                method=draft.method,
                intent=draft.intent,
                request=draft.request,
                expires=draft.expires,
                digest=draft.digest,
                opaque=draft.opaque,
                header=draft.header,
            )
            out.append(
                Challenge(
                    id=challenge_id,
                    realm=draft.realm,
                    method=draft.method,
                    intent=draft.intent,
                    request=draft.request,
                    request_data=draft.request_data,
                    expires=draft.expires,
                    digest=draft.digest,
                    description=draft.description,
                    opaque=draft.opaque,
                    header=draft.header,
                )
            )
        return out

    def _verify(
        self, route: Route, target: str, body: bytes, credential: Credential
    ) -> tuple[str, str] | None:
        echoed = credential.challenge
        expected_id = compute_challenge_id(
            self._secret,
            realm=echoed.realm,
            method=echoed.method,
            intent=echoed.intent,
            request=echoed.request,
            expires=echoed.expires,
            digest=echoed.digest,
            opaque=echoed.opaque,
            header=echoed.header,
        )
        if expected_id != echoed.id or echoed.realm != self.realm:
            return "invalid-challenge", "unknown challenge"
        offer = next(
            (o for o in route.offers if (o.method, o.intent) == (echoed.method, echoed.intent)),
            None,
        )
        if offer is None:
            return "method-unsupported", "this route does not take that method"
        wanted = offer.request_data()
        data = dict(echoed.request_data)
        if route.bind_resource:
            if data.pop("resource", None) != target:
                return "invalid-challenge", "the challenge is for another resource"
        if any(data.get(k) != v for k, v in wanted.items()):
            return "invalid-challenge", "the challenge is not for this route"
        expires_at = echoed.expires_at
        if expires_at is not None and self._clock() >= expires_at:
            return "payment-expired", f"Payment expired at {echoed.expires}."
        if route.bind_digest:
            if echoed.digest is None or not digest_matches(echoed.digest, body):
                return "invalid-challenge", "the body does not match the challenge digest"
        with self._lock:
            if echoed.id in self._used:
                return "invalid-challenge", "the challenge was already used"
            verify = offer.verify or self._default_verify
            if route.reject or not verify(credential):
                self._used.add(echoed.id)
                return "verification-failed", "Payment verification failed."
            self._used.add(echoed.id)
        return None

    def _default_verify(self, credential: Credential) -> bool:
        return credential.payload.get("proof") == test_proof(credential.challenge.id, self._secret)

    def _payment_required(
        self, route: Route, challenges: Sequence[Challenge], kind: str, detail: str | None
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        if route.raw_challenges is not None:
            headers = [("www-authenticate", value) for value in route.raw_challenges]
        else:
            headers = [("www-authenticate", c.to_header()) for c in challenges]
        headers += [
            ("cache-control", "no-store"),
            ("content-type", "application/problem+json"),
        ]
        if route.retry_after is not None and kind != "payment-required":
            headers.append(("retry-after", route.retry_after))
        problem: dict[str, Any] = {
            "type": PROBLEM_BASE + kind,
            "title": kind.replace("-", " ").capitalize(),
            "status": 402,
        }
        if detail:
            problem["detail"] = detail
        return 402, headers, json.dumps(problem).encode()

    # --- ways to run it ----------------------------------------------------------------------

    def mock_transport(self) -> httpx.MockTransport:
        """An ``httpx.MockTransport`` answering from this server (sync and async)."""

        def handler(request: httpx.Request) -> httpx.Response:
            body = request.read()
            target = request.url.raw_path.decode("ascii")
            status, headers, content = self.handle(
                request.method, target, list(request.headers.multi_items()), body
            )
            if status == DROP:
                raise httpx.ReadError("connection dropped by the fake server", request=request)
            if (FAULT, "truncated") in headers:
                headers = [(k, v) for k, v in headers if k != FAULT]
                headers.append(("content-length", str(len(content) + TRUNCATED_BY)))
                return httpx.Response(status, headers=headers, stream=_TruncatedStream(content))
            return httpx.Response(status, headers=headers, content=content)

        return httpx.MockTransport(handler)

    async def asgi(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """ASGI entry point (HTTP only)."""
        if scope["type"] != "http":
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        target = scope.get("raw_path", scope["path"].encode()).decode("latin-1")
        if scope.get("query_string"):
            target += "?" + scope["query_string"].decode("latin-1")
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        status, out, content = self.handle(scope["method"], target, headers, b"".join(chunks))
        if status == DROP:
            raise ConnectionResetError("connection dropped by the fake server")
        truncated = (FAULT, "truncated") in out
        if truncated:
            out = [(k, v) for k, v in out if k != FAULT]
            out.append(("content-length", str(len(content) + TRUNCATED_BY)))
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(k.encode(), v.encode("latin-1")) for k, v in out],
            }
        )
        await send({"type": "http.response.body", "body": content, "more_body": truncated})
        if truncated:
            raise ConnectionResetError("the fake server cut the body short")

    @contextlib.contextmanager
    def serve(self, port: int = 0) -> Iterator[str]:
        """Serve on ``http://127.0.0.1:<port>`` in a background thread; yields the base URL."""
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _any(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                if self.headers.get("transfer-encoding", "").lower() == "chunked":
                    body = self._read_chunked()
                else:
                    body = self.rfile.read(length) if length else b""
                status, headers, content = fake.handle(
                    self.command, self.path, list(self.headers.items()), body
                )
                if status == DROP:
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                try:
                    self._answer(status, headers, content)
                except (BrokenPipeError, ConnectionResetError):
                    # The client went away (e.g. it was cancelled while a hold lasted).
                    self.close_connection = True

            def _answer(self, status: int, headers: list[tuple[str, str]], content: bytes) -> None:
                truncated = (FAULT, "truncated") in headers
                self.send_response(status)
                for name, value in headers:
                    if name != FAULT:
                        self.send_header(name, value)
                claimed = len(content) + (TRUNCATED_BY if truncated else 0)
                self.send_header("content-length", str(claimed))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(content)
                if truncated:
                    # The rest never comes: the client sees the connection end mid-body.
                    self.wfile.flush()
                    self.close_connection = True

            def _read_chunked(self) -> bytes:
                data = b""
                while True:
                    size = int(self.rfile.readline().strip() or b"0", 16)
                    if size == 0:
                        self.rfile.readline()
                        return data
                    data += self.rfile.read(size)
                    self.rfile.readline()

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _any

            def log_message(self, format: str, *args: Any) -> None:
                return None

        httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        httpd.daemon_threads = True
        thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-mpp", daemon=True
        )
        thread.start()
        try:
            yield f"http://127.0.0.1:{httpd.server_address[1]}"
        finally:
            httpd.shutdown()
            httpd.server_close()
            thread.join(timeout=5)
