"""The shared conformance flow cases (flows/flows.json), each against our fake MPP server built
from the case, with the client side driven through the adapter's ``http.payment_request`` op
(a subprocess, the real ``PaymentTransport``) and compared with golden-results.json.

Where the client is right to differ from the golden run the difference is asserted explicitly:
the golden runner drove the state machine itself and sent credentials for expired challenges;
a conforming client refuses to pay an expired challenge (protocol README §10), so those cases
assert that nothing was sent. Server-verification cases (a tampered or missing credential, a
credential replayed on another route) are checked against the fake server directly: a client
never produces those credentials.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mpp_client.protocol import Challenge, Credential, parse_problem
from mpp_client.testing import FakeMppServer, Offer, Route
from tests.conformance.test_vectors import SHARED

ROOT = Path(__file__).resolve().parents[2]
FLOWS = SHARED / "protocol" / "vectors" / "conformance" / "flows"
CASES = {case["name"]: case for case in json.loads((FLOWS / "flows.json").read_text())["cases"]}
GOLDEN = {
    result["name"]: result
    for result in json.loads((FLOWS / "golden-results.json").read_text())["results"]
}
REALM = "conformance"

DISCOVERY = {
    "openapi": "3.1.0",
    "info": {"title": "conformance", "version": "1"},
    "x-service-info": {"categories": ["test"]},
    "paths": {
        "/charge/success": {
            "get": {
                "x-payment-info": {"intent": "charge", "method": "tempo", "amount": "1000"},
                "responses": {"402": {"description": "Payment Required"}},
            }
        }
    },
}


def _route(case: dict[str, Any]) -> Route:
    if case.get("force_status"):
        return Route(offers=(), status=case["force_status"])
    if case.get("discovery"):
        return Route(offers=(), body=json.dumps(DISCOVERY).encode())
    if case.get("no_payment") or "request" not in case:
        return Route(offers=())  # the redirect case: its route is set by the fixture
    request = dict(case["request"])
    expected_payload = case.get("payload")
    offer = Offer(
        method="tempo",
        intent="charge",
        amount=request.pop("amount"),
        currency=request.pop("currency"),
        recipient=request.pop("recipient"),
        extra=request,  # the legacy in-request "expires", a "resource" binding
        expires=request.get("expires"),
        expires_in=None,
        verify=lambda credential: credential.payload == expected_payload,
    )
    raw = None
    if case.get("invalid_www_authenticate"):
        raw = (f'Payment id="broken", realm="{REALM}", method="tempo", intent="charge"',)
    return Route(
        offers=(offer,),
        reject=bool(case.get("fail_verification")),
        receipt=not case.get("omit_receipt"),
        bind_digest=bool(case.get("digest_binding")),
        bind_resource=bool(case.get("bind_request_resource")),
        raw_challenges=raw,
    )


@pytest.fixture(scope="module")
def servers():
    """The compliance server (every case's route) and a second origin on another port."""
    main = FakeMppServer({case["path"]: _route(case) for case in CASES.values()}, realm=REALM)
    other = FakeMppServer(
        {case["path"]: _route(case) for case in CASES.values() if case.get("server_only")},
        realm=REALM,
    )
    with main.serve() as main_url, other.serve() as other_url:
        redirect = CASES["cross_origin_redirect_before_402_rejected"]
        main.routes[redirect["path"]] = Route(redirect_to=other_url + redirect["redirect_to"])
        yield main, main_url, other


def _pay(url: str, case: dict[str, Any], mode: str = "payment") -> dict[str, Any]:
    headers = {"accept-payment": case["accept_payment"]} if case.get("accept_payment") else {}
    request = {
        "schema": 1,
        "op": "http.payment_request",
        "input": {
            "url": url + case["path"] + case.get("initial_query", ""),
            "method": case.get("http_method", "GET"),
            "headers": headers,
            "body": case.get("body"),
            "payment": {"payload": case.get("payload", {}), "source": None},
            "mode": mode,
        },
        "context": {"caseName": case["name"], "timeoutMs": 30000},
    }
    completed = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "conformance" / "adapter.py")],
        input=json.dumps(request).encode(),
        capture_output=True,
        timeout=60,
        check=True,
    )
    return json.loads(completed.stdout)


def _credentials(server: FakeMppServer, path: str) -> list[Credential]:
    found = []
    for recorded in server.requests:
        if recorded.target.split("?")[0] == path:
            credential = recorded.credential()
            if credential is not None:
                found.append(credential)
    return found


PAID = [
    "success_charge",
    "post_body_charge",
    "body_digest_match",
    "cache_headers_success",
    "accept_payment_preference",
    "same_origin_payment_request",
    "route_bound_basic_charge",
    "query_bound_charge",
    "no_receipt_header",
]


@pytest.mark.parametrize("name", PAID)
def test_paid_case_matches_golden(servers, name):
    server, url, _ = servers
    case, golden = CASES[name], GOLDEN[name]
    result = _pay(url, case)
    assert result["ok"] is True, result
    value = result["value"]
    assert value["status"] == golden["outcome"]["status"] == 200
    sent = _credentials(server, case["path"])
    assert len(sent) == 1
    assert sent[0].payload == case["payload"]
    assert sent[0].payload.get("signature") == case["expected_signature"]
    # The request the server bound (the golden run's server added "resource" where it binds
    # the route), echoed unchanged by the client.
    expected = golden.get("challenge", {"method": "tempo", "request": case["request"]})
    assert sent[0].challenge.method == expected["method"]
    assert dict(sent[0].challenge.request_data) == expected["request"]
    has_receipt = "payment-receipt" in value["headers"]
    assert has_receipt == (
        golden.get("receipt") is not None or name == "same_origin_payment_request"
    )
    if case.get("check_cache_headers"):
        first = next(r for r in server.requests if r.target == case["path"])
        status, headers, _ = server.handle("GET", case["path"], [], b"")
        assert status == 402 and ("cache-control", golden["initial_cache_control"]) in headers
        assert value["headers"]["cache-control"] == golden["retry_cache_control"]
        assert "authorization" not in first.headers
    if case.get("accept_payment"):
        observed = [
            r.headers.get("accept-payment") for r in server.requests if r.target == case["path"]
        ]
        assert observed[0] == golden["accept_payment_observed"]
    if case.get("http_method") == "POST":
        bodies = [r.body for r in server.requests if r.target == case["path"]]
        assert bodies == [case["body"].encode()] * 2


@pytest.mark.parametrize("name", ["verification_error", "problem_details_verification_failed"])
def test_rejected_payment_returns_the_402_with_its_problem(servers, name):
    server, url, _ = servers
    case, golden = CASES[name], GOLDEN[name]
    result = _pay(url, case)
    assert result["ok"] is True
    value = result["value"]
    assert value["status"] == golden["outcome"]["status"] == 402
    assert value["headers"]["content-type"] == golden["outcome"]["content_type"]
    problem = parse_problem(value["body"].encode(), value["headers"]["content-type"])
    assert problem is not None and problem.type.endswith("verification-failed")
    assert len(_credentials(server, case["path"])) == 1  # one credential, no second try


@pytest.mark.parametrize("name", ["expired_challenge", "problem_details_expired"])
def test_expired_challenge_is_refused_by_the_client(servers, name):
    server, url, _ = servers
    case = CASES[name]
    result = _pay(url, case)
    assert result["ok"] is False
    assert result["error"]["type"] == "http_error"
    assert "expire" in result["error"]["message"]
    assert _credentials(server, case["path"]) == []


def test_cross_origin_redirect_before_402_is_refused(servers):
    _, url, other = servers
    case, golden = (
        CASES["cross_origin_redirect_before_402_rejected"],
        GOLDEN["cross_origin_redirect_before_402_rejected"],
    )
    result = _pay(url, case)
    assert result["ok"] is False
    assert result["error"]["type"] == case["expect_error_type"]
    assert case["expect_error_message_contains"] in result["error"]["message"]
    assert golden["authorization_observed"] is False
    assert all("authorization" not in r.headers for r in other.requests)


def test_malformed_challenge_leaves_the_402_unpaid(servers):
    server, url, _ = servers
    case = CASES["invalid_www_authenticate"]
    result = _pay(url, case)
    assert result["ok"] is True
    assert result["value"]["status"] == GOLDEN[case["name"]]["outcome"]["status"] == 402
    assert _credentials(server, case["path"]) == []


@pytest.mark.parametrize("name", ["non_402_error", "free_endpoint", "discovery_document"])
def test_unpaid_responses_pass_through(servers, name):
    _, url, _ = servers
    case, golden = CASES[name], GOLDEN[name]
    result = _pay(url, case)
    assert result["ok"] is True
    assert result["value"]["status"] == golden["outcome"]["status"]
    if case.get("discovery"):
        document = json.loads(result["value"]["body"])
        operation = document["paths"]["/charge/success"]["get"]
        assert operation["x-payment-info"]["method"] == "tempo"
        assert "402" in operation["responses"]


def test_plain_mode_never_pays(servers):
    server, url, _ = servers
    case = CASES["success_charge"]
    before = len(_credentials(server, case["path"]))
    result = _pay(url, case, mode="plain")
    assert result["value"]["status"] == 402
    assert len(_credentials(server, case["path"])) == before


# --- server verification: credentials a client never sends --------------------------------------


def _issued(server: FakeMppServer, path: str) -> Challenge:
    from mpp_client.protocol import parse_challenges

    _, headers, _ = server.handle("GET", path, [], b"")
    return parse_challenges([v for k, v in headers if k == "www-authenticate"])[0]


def _problem_type(server: FakeMppServer, path: str, credential: Credential | None) -> str:
    headers = [("authorization", credential.to_header())] if credential else []
    status, out, body = server.handle("GET", path, headers, b"")
    assert status == 402
    problem = parse_problem(body, dict(out)["content-type"])
    assert problem is not None
    return problem.type


def test_missing_authorization_gets_a_fresh_payment_required(servers):
    server, _, _ = servers
    case = CASES["missing_authorization"]
    golden = GOLDEN[case["name"]]["problem_details"]["type"]
    assert _problem_type(server, case["path"], None) == golden


def test_tampered_request_and_forged_id_are_invalid_challenges(servers):
    server, _, _ = servers
    for name, tamper in (
        ("mismatched_request", "request"),
        ("invalid_challenge_id", "id"),
    ):
        case = CASES[name]
        issued = _issued(server, case["path"])
        if tamper == "request":
            data = dict(issued.request_data, amount="1")
            forged = Challenge.create(
                id=issued.id,
                realm=issued.realm,
                method=issued.method,
                intent=issued.intent,
                request=data,
                expires=issued.expires,
            )
        else:
            forged = Challenge(
                id="invalid-challenge-id",
                realm=issued.realm,
                method=issued.method,
                intent=issued.intent,
                request=issued.request,
                request_data=issued.request_data,
                expires=issued.expires,
            )
        credential = Credential(forged, case["payload"])
        golden = GOLDEN[name]["problem_details"]["type"]
        assert _problem_type(server, case["path"], credential) == golden


def test_credential_for_one_route_is_rejected_on_another(servers):
    server, _, _ = servers
    case = CASES["cross_route_credential_replay_rejected"]
    basic = _issued(server, case["challenge_path"])
    credential = Credential(basic, {"type": "transaction", "signature": "0xroutebasic"})
    golden = GOLDEN[case["name"]]["problem_details"]["type"]
    assert _problem_type(server, case["path"], credential) == golden
