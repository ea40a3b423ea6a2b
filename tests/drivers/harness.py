"""One harness for the three drivers (httpx sync, httpx async, requests), so every behaviour of
the payment flow is specified once and checked for each driver against a real loopback server.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import requests

from mpp_client import (
    AsyncPaymentTransport,
    PaymentOptions,
    PaymentSession,
    PaymentTransport,
    payment_of,
)
from mpp_client.flow import Payment, PaymentHooks
from mpp_client.guard import OpenGuard
from mpp_client.methods.base import PaymentMethod
from mpp_client.testing import FakeMppServer, TestMethod

DRIVERS = ["httpx", "httpx-async", "requests"]


@dataclass
class Chunks:
    """A streamed request body: sent as a generator in whatever form the driver takes."""

    parts: Sequence[bytes]


@dataclass
class Result:
    status: int
    headers: dict[str, str]
    content: bytes
    payment: Payment | None
    request_headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Driver:
    """Sends one request through a payment driver and reports what came back."""

    name: str
    methods: Sequence[PaymentMethod]
    guard: OpenGuard | None
    options: dict[str, Any] = field(default_factory=dict)
    #: A ``Wallet`` to pay with instead of ``methods``/``guard`` (its journal records it all).
    wallet: Any = None

    def send(
        self,
        method: str,
        url: str,
        *,
        content: bytes | Chunks | None = None,
        headers: dict[str, str] | None = None,
        mpp: PaymentOptions | None = None,
        follow_redirects: bool = True,
        inner: Any = None,
    ) -> Result:
        if self.wallet is not None:
            kwargs = dict(wallet=self.wallet, **self.options)
        else:
            kwargs = dict(methods=self.methods, guard=self.guard, **self.options)
        if self.name == "httpx":
            with httpx.Client(
                transport=PaymentTransport(inner, **kwargs), follow_redirects=follow_redirects
            ) as client:
                body: Any = iter(content.parts) if isinstance(content, Chunks) else content
                response = client.request(
                    method,
                    url,
                    content=body,
                    headers=headers,
                    extensions={"mpp": mpp} if mpp else None,
                )
                return _result(response)
        if self.name == "httpx-async":

            async def run() -> Result:
                async with httpx.AsyncClient(
                    transport=AsyncPaymentTransport(inner, **kwargs),
                    follow_redirects=follow_redirects,
                ) as client:
                    body: Any = content
                    if isinstance(content, Chunks):

                        async def gen() -> AsyncIterator[bytes]:
                            for part in content.parts:
                                yield part

                        body = gen()
                    response = await client.request(
                        method,
                        url,
                        content=body,
                        headers=headers,
                        extensions={"mpp": mpp} if mpp else None,
                    )
                    return _result(response)

            return asyncio.run(run())
        with PaymentSession(**kwargs) as session:
            if inner is not None:
                session.mount("http://", inner)
                session.mount("https://", inner)
            data: Any = content
            if isinstance(content, Chunks):
                data = (part for part in content.parts)
            response = session.request(
                method,
                url,
                data=data,
                headers=headers,
                mpp=mpp,
                allow_redirects=follow_redirects,
                timeout=10,
            )
            return Result(
                response.status_code,
                {k.lower(): v for k, v in response.headers.items()},
                response.content,
                payment_of(response),
                {k.lower(): v for k, v in response.request.headers.items()},
            )


def _result(response: httpx.Response) -> Result:
    response.read()
    return Result(
        response.status_code,
        {k.lower(): v for k, v in response.headers.items()},
        response.content,
        payment_of(response),
        {k.lower(): v for k, v in response.request.headers.items()},
    )


class FakeServerAdapter(requests.adapters.BaseAdapter):
    """A requests adapter answering from a FakeMppServer without sockets (any host name)."""

    def __init__(self, server: FakeMppServer) -> None:
        super().__init__()
        self.server = server

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        body = request.body or b""
        if isinstance(body, str):
            body = body.encode()
        url = httpx.URL(str(request.url))
        status, headers, content = self.server.handle(
            str(request.method), url.raw_path.decode(), list(request.headers.items()), body
        )
        response = requests.Response()
        response.status_code = status
        for name, value in headers:
            if name.startswith(":"):
                continue  # the fake server's private fault markers
            if name in response.headers:
                response.headers[name] += ", " + value
            else:
                response.headers[name] = value
        response._content = content
        response.request = request
        response.url = str(request.url)
        return response

    def close(self) -> None:
        return None


def carries_payment(headers: Any) -> bool:
    """Whether request headers carry a payment credential (either header)."""
    return any(
        str(headers.get(name, ""))[:8].lower() == "payment "
        for name in ("authorization", "payment-authorization")
    )


class InterruptOnPaid(httpx.BaseTransport):
    """An inner httpx transport that sends for real, then raises ``raise_`` (default
    ``KeyboardInterrupt``) instead of returning the answer to a request carrying a credential:
    the credential reached the server, the caller never learns what it said."""

    def __init__(self, raise_: type[BaseException] = KeyboardInterrupt) -> None:
        self.inner = httpx.HTTPTransport()
        self.raise_ = raise_

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if carries_payment(request.headers):
            response.close()
            raise self.raise_()
        return response

    def close(self) -> None:
        self.inner.close()


class InterruptOnPaidAdapter(requests.adapters.HTTPAdapter):
    """The requests twin of ``InterruptOnPaid`` (mount it on the session)."""

    def __init__(self, raise_: type[BaseException] = KeyboardInterrupt) -> None:
        super().__init__()
        self.raise_ = raise_

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> Any:
        response = super().send(request, *args, **kwargs)
        if carries_payment(request.headers):
            response.close()
            raise self.raise_()
        return response


def interrupt_on_paid(driver_name: str) -> Any:
    """The inner transport / adapter for ``driver_name`` that raises ``KeyboardInterrupt`` on
    the paid retry (sync drivers only)."""
    if driver_name == "requests":
        return InterruptOnPaidAdapter()
    if driver_name == "httpx":
        return InterruptOnPaid()
    raise ValueError(f"no interrupting inner transport for {driver_name}")


def inner_for(driver: Driver, server: FakeMppServer) -> Any:
    """An inner transport / adapter that answers from ``server`` for any host."""
    if driver.name == "requests":
        return FakeServerAdapter(server)
    transport = server.mock_transport()
    return transport


@pytest.fixture(params=DRIVERS)
def driver_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def method() -> TestMethod:
    return TestMethod()


@pytest.fixture
def guard() -> OpenGuard:
    return OpenGuard()


@pytest.fixture
def driver(driver_name: str, method: TestMethod, guard: OpenGuard) -> Driver:
    return Driver(driver_name, [method], guard)


@pytest.fixture
def server() -> FakeMppServer:
    return FakeMppServer()


@pytest.fixture
def base_url(server: FakeMppServer) -> Iterator[str]:
    with server.serve() as url:
        yield url


def hooks_recorder() -> tuple[PaymentHooks, list[str]]:
    events: list[str] = []
    hooks = PaymentHooks(
        on_challenges=lambda challenges, ctx: events.append(f"challenges:{len(challenges)}"),
        on_quote=lambda quote, ctx: events.append(f"quote:{quote.amount.amount}"),
        on_paid=lambda quote, proof: events.append("paid"),
        on_receipt=lambda quote, receipt: events.append(
            "receipt:" + (receipt.status if receipt else "none")
        ),
        on_failure=lambda quote, error: events.append("failure:" + type(error).__name__),
    )
    return hooks, events
