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
import secrets
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
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
        #: Every request received, in order.
        self.requests: list[RecordedRequest] = []
        #: Every credential the server accepted, in order.
        self.accepted: list[Credential] = []

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
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(k.encode(), v.encode("latin-1")) for k, v in out],
            }
        )
        await send({"type": "http.response.body", "body": content})

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
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("content-length", str(len(content)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(content)

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
