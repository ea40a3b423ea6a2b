"""The requests drop-in keeps what code written for requests.Session relies on."""

from __future__ import annotations

import requests

from mpp_client import PaymentSession, payment_of
from mpp_client.guard import OpenGuard
from mpp_client.protocol import parse_credential
from mpp_client.testing import FakeMppServer, Offer, Route, TestMethod


def session(**options) -> PaymentSession:
    return PaymentSession(methods=[TestMethod()], guard=OpenGuard(), **options)


def test_it_is_a_requests_session():
    with session() as s:
        assert isinstance(s, requests.Session)


def test_response_hooks_see_the_paid_response(server, base_url):
    seen = []
    with session() as s:
        s.hooks["response"].append(lambda r, *a, **k: seen.append(r.status_code))
        response = s.get(base_url + "/paid", timeout=5)
    assert response.status_code == 200
    assert seen[-1] == 200 and 402 in seen


def test_session_auth_is_kept_when_the_credential_has_its_own_header(server, base_url):
    server.routes["/paid"] = Route(offers=(Offer(header="Payment-Authorization"),))
    with session() as s:
        s.auth = ("alice", "secret")
        response = s.get(base_url + "/paid", timeout=5)
    assert payment_of(response).status == "paid"
    paid = server.requests[1]
    assert paid.headers["authorization"].startswith("Basic ")
    assert parse_credential(paid.headers["payment-authorization"]).challenge.method == "test"


def test_session_cookies_reach_the_paid_retry(server, base_url):
    with session() as s:
        s.cookies.set("sid", "abc123", domain="127.0.0.1")
        s.get(base_url + "/paid", timeout=5)
    assert [r.headers.get("cookie") for r in server.requests] == ["sid=abc123", "sid=abc123"]


def test_streamed_paid_response_is_still_streamed(server, base_url):
    server.routes["/paid"] = Route(body=b"x" * 100_000)
    with session() as s:
        response = s.get(base_url + "/paid", stream=True, timeout=5)
        assert response.raw is not None and not response._content_consumed
        chunks = list(response.iter_content(8192))
    assert b"".join(chunks) == b"x" * 100_000
    assert payment_of(response).status == "paid"


def test_history_keeps_the_402(server, base_url):
    with session() as s:
        response = s.get(base_url + "/paid", timeout=5)
    assert [r.status_code for r in response.history] == [402]
    assert "authorization" not in {k.lower() for k in response.request.headers}


def test_cross_origin_redirect_after_paying_drops_the_credential():
    target = FakeMppServer({"/landing": Route(offers=())})
    with target.serve() as target_url:
        origin = FakeMppServer({"/paid": Route()})
        with origin.serve() as origin_url:
            # the paid retry answers 302 to another origin
            original = origin.handle

            def handle(method, path, headers, body):
                status, out, content = original(method, path, headers, body)
                if status == 200:
                    return 302, [("location", target_url + "/landing")], b""
                return status, out, content

            origin.handle = handle
            with session() as s:
                s.headers["Payment-Authorization"] = "Payment stale"
                response = s.get(origin_url + "/paid", timeout=5)
    assert response.status_code == 200
    landing = target.requests[0].headers
    assert "payment-authorization" not in landing
    assert not landing.get("authorization", "").lower().startswith("payment")
