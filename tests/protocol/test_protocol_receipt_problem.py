"""Payment-Receipt (§6) and RFC 9457 problem documents (§7)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from mpp_client.errors import EncodingError, FormatError, ParseError
from mpp_client.protocol import (
    Problem,
    Receipt,
    b64url_decode,
    b64url_encode,
    parse_problem,
    parse_receipt,
)

SPEC_RECEIPT = (
    "eyJtZXRob2QiOiJ0ZW1wbyIsInJlZmVyZW5jZSI6IjB4MWEyYjNjNGQ1ZTZmNzg5MGFiY2RlZjEyMzQ1Njc4OTBhYmNk"
    "ZWYxMjM0NTY3ODkwYWJjZGVmMTIzNDU2Nzg5MCIsInN0YXR1cyI6InN1Y2Nlc3MiLCJ0aW1lc3RhbXAiOiIyMDI2LTA5"
    "LTAxVDEyOjA0OjMxWiJ9"
)


def encode(document: object) -> str:
    return b64url_encode(json.dumps(document).encode())


CORE = {
    "status": "success",
    "method": "tempo",
    "reference": "0xabc",
    "timestamp": "2026-09-01T12:04:31Z",
}


def test_parse_receipt_reads_the_spec_example() -> None:
    receipt = parse_receipt(SPEC_RECEIPT)
    assert receipt.status == "success"
    assert receipt.method == "tempo"
    assert receipt.reference == "0x1a2b3c4d5e6f7890abcdef1234567890abcdef1234567890abcdef1234567890"
    assert receipt.timestamp == "2026-09-01T12:04:31Z"
    assert receipt.timestamp_at == datetime(2026, 9, 1, 12, 4, 31, tzinfo=UTC)
    assert receipt.challenge_id is None
    assert receipt.extra == {}


def test_parse_receipt_keeps_challenge_id_and_every_extra_field() -> None:
    receipt = parse_receipt(encode({**CORE, "challengeId": "ch_1", "externalId": "o-1", "n": [1]}))
    assert receipt.challenge_id == "ch_1"
    assert receipt.extra == {"externalId": "o-1", "n": [1]}


@pytest.mark.parametrize("missing", ["status", "method", "reference", "timestamp"])
def test_parse_receipt_requires_the_core_fields(missing: str) -> None:
    document = {k: v for k, v in CORE.items() if k != missing}
    with pytest.raises(ParseError, match=missing):
        parse_receipt(encode(document))


@pytest.mark.parametrize("field", ["status", "method", "reference", "timestamp"])
@pytest.mark.parametrize("bad", [None, 5, "", ["x"]])
def test_parse_receipt_requires_non_empty_strings(field: str, bad: object) -> None:
    with pytest.raises(ParseError):
        parse_receipt(encode({**CORE, field: bad}))


def test_parse_receipt_rejects_a_timestamp_that_is_not_rfc3339() -> None:
    with pytest.raises(ParseError, match="timestamp"):
        parse_receipt(encode({**CORE, "timestamp": "1757000000"}))


def test_parse_receipt_rejects_a_non_string_challenge_id() -> None:
    with pytest.raises(ParseError, match="challengeId"):
        parse_receipt(encode({**CORE, "challengeId": 7}))


@pytest.mark.parametrize("value", ["not-valid-base64!!!", encode([CORE]), b64url_encode(b"{")])
def test_parse_receipt_rejects_bad_encodings(value: str) -> None:
    with pytest.raises(EncodingError):
        parse_receipt(value)


def test_receipt_encode_round_trips() -> None:
    receipt = Receipt("success", "lightning", "2026-09-01T12:04:31Z", "ab" * 32, "ch_1", {"x": 1})
    assert parse_receipt(receipt.encode()) == receipt
    assert json.loads(b64url_decode(receipt.encode()))["challengeId"] == "ch_1"


def test_receipt_encode_refuses_extra_fields_that_shadow_core_fields() -> None:
    with pytest.raises(FormatError, match="status"):
        Receipt("success", "tempo", "2026-09-01T12:04:31Z", "r", extra={"status": "x"}).encode()


# --- problems -----------------------------------------------------------------------------------

PROBLEM = {
    "type": "https://paymentauth.org/problems/verification-failed",
    "title": "Verification failed",
    "status": 402,
    "detail": "signature does not recover to the payer",
    "challengeId": "ch_1",
    "instance": "/r",
}


def test_parse_problem_reads_a_problem_document() -> None:
    problem = parse_problem(json.dumps(PROBLEM).encode(), "application/problem+json; charset=utf-8")
    assert problem == Problem(
        type="https://paymentauth.org/problems/verification-failed",
        title="Verification failed",
        status=402,
        detail="signature does not recover to the payer",
        challenge_id="ch_1",
        extra={"instance": "/r"},
    )


def test_parse_problem_defaults_the_type_to_about_blank() -> None:
    problem = parse_problem(b'{"title":"x"}', "Application/Problem+JSON")
    assert problem is not None and problem.type == "about:blank"


def test_parse_problem_treats_members_of_the_wrong_type_as_absent() -> None:
    body = json.dumps({"type": 5, "title": [], "status": "402", "detail": None, "challengeId": 1})
    problem = parse_problem(body.encode(), "application/problem+json")
    assert problem == Problem("about:blank", None, None, None, None, {})
    problem = parse_problem(b'{"type":"t","status":true}', "application/problem+json")
    assert problem is not None and problem.status is None


def test_parse_problem_accepts_plain_json_only_with_a_type() -> None:
    assert parse_problem(json.dumps(PROBLEM).encode(), "application/json") is not None
    assert parse_problem(b'{"error":"nope"}', "application/json") is None


def test_parse_problem_tolerates_legacy_urn_types() -> None:
    problem = parse_problem(b'{"type":"urn:payment:error:expired"}', "application/problem+json")
    assert problem is not None and problem.type == "urn:payment:error:expired"


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (json.dumps(PROBLEM).encode(), "text/html"),
        (json.dumps(PROBLEM).encode(), None),
        (b"", "application/problem+json"),
        (b"<html>", "application/problem+json"),
        (b"[1]", "application/problem+json"),
        (b'{"type":"\xff"}', "application/problem+json"),
        (b'{"status":NaN}', "application/problem+json"),
        (b"[" * 200_000, "application/problem+json"),
        (b'{"type":"t","pad":"' + b"x" * (64 * 1024) + b'"}', "application/problem+json"),
    ],
)
def test_parse_problem_returns_none_for_anything_else(
    content: bytes, content_type: str | None
) -> None:
    assert parse_problem(content, content_type) is None
