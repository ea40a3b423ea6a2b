"""MPP over MCP on the wire: MCP challenge objects to header challenges and back (no I/O)."""

from __future__ import annotations

import pytest

from mpp_client.mcp import payment_capability, stdio_server
from mpp_client.mcp.challenges import (
    McpChallenges,
    challenge_header,
    payment_required_data,
    receipt_header,
)
from mpp_client.mcp.client import _server_identity
from mpp_client.protocol import b64url_encode, canonical_json, parse_challenges, parse_receipt
from mpp_client.testing import TestMethod

REQUEST = {"recipient": "merchant", "amount": "1000", "currency": "usd-test"}
OBJ = {
    "id": "abc",
    "realm": "mcp.test",
    "method": "test",
    "intent": "charge",
    "request": REQUEST,
    "expires": "2099-01-01T00:00:00Z",
    "opaque": {"_mpp_nonce": "n1"},
    "description": "1000 units \u2014 forecast",
}


def test_a_native_request_becomes_base64url_jcs_and_parses_back():
    challenge = challenge_header(OBJ)
    assert challenge is not None
    assert challenge.request == b64url_encode(canonical_json(REQUEST))
    assert dict(challenge.request_data) == REQUEST
    assert challenge.opaque == '{"_mpp_nonce":"n1"}'
    [again] = parse_challenges([challenge.to_header()])
    assert again == challenge and again.description == OBJ["description"]


@pytest.mark.parametrize(
    "broken",
    [
        {**OBJ, "id": ""},
        {**OBJ, "id": 7},
        {**OBJ, "request": ["not", "an", "object"]},
        {**OBJ, "expires": "tomorrow"},
        {**OBJ, "method": "Test"},
        {k: v for k, v in OBJ.items() if k != "realm"},
        "not an object",
    ],
)
def test_unreadable_challenges_are_skipped(broken):
    assert challenge_header(broken) is None


def test_the_original_object_is_kept_for_the_echo():
    seen = McpChallenges()
    fields = seen.headers({"challenges": [{"id": ""}, OBJ, {**OBJ, "id": "def"}]})
    assert [name for name, _ in fields] == ["www-authenticate"] * 2
    assert seen.original("abc") is OBJ and seen.original("zzz") is None


@pytest.mark.parametrize(
    ("data", "payment"),
    [
        ({"challenges": [OBJ]}, True),
        ({"httpStatus": 402, "challenges": []}, False),
        ({"elicitations": [{"url": "https://x"}]}, False),  # -32042 is also URL elicitation
        (None, False),
        ("Payment Required", False),
    ],
)
def test_payment_required_data_needs_challenges(data, payment):
    assert (payment_required_data(data) is not None) is payment


def test_a_receipt_object_travels_unchanged():
    receipt = {
        "status": "success",
        "method": "test",
        "timestamp": "2026-12-01T12:00:00Z",
        "reference": "r1",
        "challengeId": "abc",
        "externalId": "x",
    }
    parsed = parse_receipt(receipt_header(receipt))
    assert (parsed.challenge_id, parsed.extra) == ("abc", {"externalId": "x"})
    assert receipt_header("not an object") is None


def test_the_capability_lists_methods_and_intents():
    methods = [TestMethod(), TestMethod(intents=frozenset({"session", "charge"})), TestMethod("x")]
    assert payment_capability(methods) == {
        "methods": {"test": {"intents": ["charge", "session"]}, "x": {"intents": ["charge"]}}
    }


def test_server_identities():
    assert _server_identity("https://API.example.com/mcp") == (
        "https://api.example.com",
        "https://API.example.com/mcp#",
        False,
    )
    assert _server_identity(stdio_server("Weather")) == (
        "mcp-stdio://weather",
        "mcp-stdio://weather",
        True,
    )
    for bad in ("weather", "ftp://x/mcp", "mcp-stdio://"):
        with pytest.raises(ValueError):
            _server_identity(bad)
    with pytest.raises(ValueError):
        stdio_server("/usr/bin/python")
