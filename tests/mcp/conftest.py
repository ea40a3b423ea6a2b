"""Fixtures for the MCP tests: the paid test server over stdio (a subprocess) and over
Streamable HTTP (uvicorn on 127.0.0.1, in a thread), and wallets journaling to a file."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

from mpp_client.mcp import PaymentSession, stdio_server
from mpp_client.testing import TestMethod
from mpp_client.wallet import Wallet
from tests import loopback_server as loopback
from tests.mcp.paid_server import PaidTools, http_app

REPO = Path(__file__).resolve().parents[2]


def serve(app: Any) -> contextlib.AbstractContextManager[str]:
    """``http://127.0.0.1:<port>`` while ``app`` runs (lifespan on: the MCP session manager
    runs in it)."""
    return loopback.serve(app, lifespan=True)


@dataclass
class Connected:
    """One connected client: the paying wrapper, and the server's state (HTTP only)."""

    paying: PaymentSession
    transport: str
    tools: PaidTools | None


@pytest.fixture
def transport() -> str:
    """HTTP by default (in-process, fast); tests parametrize ``transport`` for stdio too."""
    return "http"


@pytest.fixture(scope="module")
def http_server() -> Iterator[tuple[str, PaidTools]]:
    """One Streamable HTTP server per module (its state is reset for each test)."""
    tools = PaidTools()
    with serve(http_app(tools)) as base:
        yield base + "/mcp", tools


@pytest.fixture
def wallets(tmp_path: Path) -> Iterator[Callable[..., Wallet]]:
    made: list[Wallet] = []

    def make(method: TestMethod | None = None, **kwargs: Any) -> Wallet:
        wallet = Wallet(
            [method or TestMethod()], journal=tmp_path / f"journal-{len(made)}.sqlite3", **kwargs
        )
        made.append(wallet)
        return wallet

    yield make
    for wallet in made:
        wallet.close()


@pytest.fixture
def connect(transport: str, request: pytest.FixtureRequest) -> Callable[..., Any]:
    """``async with connect(wallet=...) as conn:`` an initialized paying session."""

    @asynccontextmanager
    async def open_(**options: Any) -> AsyncIterator[Connected]:
        if transport == "stdio":
            params = StdioServerParameters(
                command=sys.executable, args=["-m", "tests.mcp.paid_server"], cwd=str(REPO)
            )
            async with (
                stdio_client(params) as (read, write),
                ClientSession(read, write) as session,
            ):
                paying = PaymentSession(session, server=stdio_server("paid-test"), **options)
                await paying.initialize()
                async with paying:
                    yield Connected(paying, transport, None)
            return
        url, tools = request.getfixturevalue("http_server")
        tools.reset()
        async with (
            streamable_http_client(url) as (read, write),
            ClientSession(read, write) as session,
        ):
            paying = PaymentSession(session, server=url, **options)
            await paying.initialize()
            async with paying:
                yield Connected(paying, transport, tools)

    return open_
