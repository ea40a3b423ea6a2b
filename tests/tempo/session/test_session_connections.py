"""How a metered stream uses connections, as the server saw them: the paid retry of a bodyless
GET carries no body (an empty chunked body left ``0\\r\\n\\r\\n`` on the stream's connection,
which the server then read as a request and answered with a bare HTML error page: the
``BadStatusLine '<!DOCTYPE HTML>'`` flake of the next request reusing that connection), and no
side request (HEAD, voucher POST) goes over the connection still carrying the stream."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from mpp_client import (
    AsyncPaymentTransport,
    PaymentSession,
    PaymentTransport,
    SessionStream,
    Wallet,
    session_of,
)
from tests.tempo.session.conftest import Session
from tests.tempo.session.test_session_e2e import method_for


def _stream(driver: str, url: str, wallet: Wallet) -> tuple[list[str], SessionStream | None]:
    if driver == "requests":
        with PaymentSession(wallet=wallet) as session:
            response = session.get(url, stream=True)
            lines = [line.decode() for line in response.iter_lines() if line.startswith(b"data:")]
            return lines, session_of(response)
    if driver == "httpx":
        with (
            httpx.Client(transport=PaymentTransport(wallet=wallet)) as client,
            client.stream("GET", url) as response,
        ):
            lines = [line for line in response.iter_lines() if line.startswith("data:")]
            return lines, session_of(response)

    async def run() -> tuple[list[str], SessionStream | None]:
        transport = AsyncPaymentTransport(wallet=wallet)
        async with (
            httpx.AsyncClient(transport=transport) as client,
            client.stream("GET", url) as response,
        ):
            lines = [line async for line in response.aiter_lines() if line.startswith("data:")]
            return lines, session_of(response)

    return asyncio.run(run())


@pytest.mark.parametrize("driver", ["requests", "httpx", "httpx-async"])
def test_side_requests_never_share_the_streams_connection(
    driver: str, session_server: Session, tmp_path: Path
) -> None:
    s = session_server
    wallet = Wallet([method_for(s)], journal=tmp_path / "journal.sqlite3")
    lines, state = _stream(driver, s.url + "/stream?n=4", wallet)
    assert lines == [f"data: chunk {i}" for i in range(4)]
    # What the stream cost (what `mpp fetch` prints): four units, the open's prepaid one included.
    assert state is not None and state.spent == 4 * s.server.price
    seen = s.server.requests
    # Nothing was left on a connection for the server to misread as a request.
    assert s.server.unparsed == []
    gets = [r for r in seen if r.method == "GET"]
    assert len(gets) == 2 and all(r.framing == "none" for r in gets), gets
    [stream] = [r for r in seen if r.streamed]
    side = [r for r in seen if r.method in ("POST", "HEAD")]
    assert sum(r.method == "POST" for r in side) == 3  # three vouchers mid-stream
    assert all(r.connection != stream.connection for r in side), (stream, side)
