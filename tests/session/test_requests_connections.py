"""The requests driver never hands a connection with unread bytes back to the pool: a 402 body
cut at MAX_402_BODY leaves the rest on the socket, and the next request on that connection
would read it as its status line (``BadStatusLine``)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from mpp_client.driver import MAX_402_BODY
from mpp_client.requests_session import _bounded_content


@pytest.fixture
def big_402() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            body = b"<!DOCTYPE HTML>" + b"x" * (4 * MAX_402_BODY)
            self.send_response(402)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_a_cut_402_body_closes_its_connection(big_402: str) -> None:
    with requests.Session() as session:
        response = session.get(big_402, stream=True)
        data = _bounded_content(response)
        assert len(data) == MAX_402_BODY
        assert response.raw.closed  # not pooled with the rest of the body unread
        again = session.get(big_402, stream=True)  # a fresh connection: a clean status line
        assert again.status_code == 402
        again.close()
