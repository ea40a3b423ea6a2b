"""The stream hook of the session core, with a session method of the test's own: control
events reach the handler (and not the reader), every other byte passes unchanged, side
requests go through the INNER transport, the receipt is attached, a handler error ends the
stream for the reader."""

from __future__ import annotations

from collections.abc import Generator, Iterator
from typing import Any

import httpx
import pytest

from mpp_client import AsyncPaymentTransport, PaymentTransport
from mpp_client.guard import OpenGuard
from mpp_client.protocol import Challenge, Credential, parse_credential
from mpp_client.session import (
    SessionStreamError,
    SideRequest,
    SseEvent,
    StreamContext,
    receipt_from_event,
    session_of,
)
from mpp_client.testing.method import TestMethod

BODY = (
    b": hello\n\ndata: one\n\n"
    b"event: need\ndata: 2\n\n"
    b"id: 3\ndata: two\n\n"
    b'event: payment-receipt\ndata: {"status":"success","method":"test","reference":"s1",'
    b'"timestamp":"2026-12-01T12:00:00Z"}\n\n'
    b"data: three\n\n"
)
PASSED = b": hello\n\ndata: one\n\nid: 3\ndata: two\n\ndata: three\n\n"


class _Handler:
    control_events = frozenset({"need", "payment-receipt"})

    def __init__(self, context: StreamContext, fail: bool) -> None:
        self.context, self.fail = context, fail
        self.ended: list[bool] = []

    def on_event(self, event: SseEvent) -> Generator[Any, Any, None]:
        if event.event == "payment-receipt":
            self.context.stream.receipt = receipt_from_event(event.data)
            return
        if self.fail:
            raise SessionStreamError("the server asked for too much", money_moved=None)
        reply = yield SideRequest("POST", {"x-top-up": event.data})
        self.context.stream.details["side"] = reply.status

    def on_end(self, complete: bool) -> Generator[Any, Any, None]:
        self.ended.append(complete)
        return
        yield  # pragma: no cover


class SessionTestMethod(TestMethod):
    __test__ = False

    def __init__(self, fail: bool = False) -> None:
        super().__init__(intents=frozenset({"session"}))
        self.fail = fail
        self.handlers: list[_Handler] = []

    def stream_handler(self, context: StreamContext) -> _Handler:
        handler = _Handler(context, self.fail)
        self.handlers.append(handler)
        return handler


class _Chunks(httpx.SyncByteStream, httpx.AsyncByteStream):
    def __iter__(self) -> Iterator[bytes]:
        for i in range(0, len(BODY), 7):  # events split across chunks
            yield BODY[i : i + 7]

    async def __aiter__(self) -> Any:
        for i in range(0, len(BODY), 7):
            yield BODY[i : i + 7]


def server(seen: list[httpx.Request]) -> httpx.MockTransport:
    challenge = Challenge.create(
        id="c1", realm="t", method="test", intent="session",
        request={"amount": "0", "recipient": "r"},
    )  # fmt: skip

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.method == "POST":
            return httpx.Response(200)
        if not request.headers.get("authorization", "").startswith("Payment "):
            return httpx.Response(402, headers={"www-authenticate": challenge.to_header()})
        assert isinstance(parse_credential(request.headers["authorization"]), Credential)
        return httpx.Response(200, headers={"content-type": "text/event-stream"},
                              stream=_Chunks())  # fmt: skip

    return httpx.MockTransport(handle)


@pytest.mark.parametrize("fail", [False, True])
def test_sync(fail: bool) -> None:
    seen: list[httpx.Request] = []
    method = SessionTestMethod(fail)
    transport = PaymentTransport(server(seen), methods=[method], guard=OpenGuard())
    with (
        httpx.Client(transport=transport) as client,
        client.stream(
            "GET", "http://127.0.0.1/s", headers={"authorization": "Bearer app-token"}
        ) as response,
    ):
        if fail:
            with pytest.raises(SessionStreamError):
                b"".join(response.iter_raw())
            assert session_of(response).error is not None  # type: ignore[union-attr]
            assert [r.method for r in seen] == ["GET", "GET"]  # no side request
            return
        body = b"".join(response.iter_raw())
    assert body == PASSED
    state = session_of(response)
    assert state is not None and state.receipt is not None and state.receipt.reference == "s1"
    assert state.control_events == 2 and state.data_events == 3 and state.complete
    assert state.details["side"] == 200
    side = seen[-1]
    assert side.method == "POST" and side.headers["x-top-up"] == "2"
    # The caller's own bearer token goes along; the payment credential never does.
    assert side.headers["authorization"] == "Bearer app-token"
    assert method.handlers[0].ended == [True]


async def test_async() -> None:
    seen: list[httpx.Request] = []
    method = SessionTestMethod()
    transport = AsyncPaymentTransport(server(seen), methods=[method], guard=OpenGuard())
    async with (
        httpx.AsyncClient(transport=transport) as client,
        client.stream("GET", "http://127.0.0.1/s") as response,
    ):
        body = b"".join([chunk async for chunk in response.aiter_raw()])
    assert body == PASSED
    state = session_of(response)
    assert state is not None and state.receipt is not None and state.details["side"] == 200
    assert [r.method for r in seen] == ["GET", "GET", "POST"]
