"""base64url (§4), JCS (RFC 8785) and RFC 3339 timestamps."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from mpp_client.errors import EncodingError, FormatError, ParseError
from mpp_client.protocol import (
    b64url_decode,
    b64url_encode,
    canonical_json,
    format_timestamp,
    parse_timestamp,
)
from mpp_client.protocol.base64url import decode_json_object

# --- base64url ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "text"),
    [(b"", ""), (b"a", "YQ"), (b"ab", "YWI"), (b"abc", "YWJj"), (b">>>???", "Pj4-Pz8_")],
)
def test_b64url_encode_uses_the_urlsafe_alphabet_without_padding(data: bytes, text: str) -> None:
    assert b64url_encode(data) == text
    assert b64url_decode(text) == data


@pytest.mark.parametrize("text", ["YQ==", "YQ=", "YWI="])
def test_b64url_decode_accepts_trailing_padding(text: str) -> None:
    assert b64url_decode(text) in (b"a", b"ab")


@pytest.mark.parametrize(
    "text",
    [
        "not-valid!!!",  # '!' outside the alphabet (vector invalid_characters_rejected)
        "Pj4+Pz8/",  # standard alphabet is not base64url
        "YQ A",  # whitespace is not silently dropped
        "Y",  # length 1 mod 4
        "YWJjZ",  # length 1 mod 4
        "Y=Q",  # padding inside the text
        "é",  # non-ASCII
        "YQ\n",
    ],
)
def test_b64url_decode_rejects_anything_outside_the_strict_grammar(text: str) -> None:
    with pytest.raises(EncodingError):
        b64url_decode(text)


def test_decode_json_object_rejects_non_utf8_bytes() -> None:
    with pytest.raises(EncodingError, match="UTF-8 JSON"):
        decode_json_object(b64url_encode(b'{"a":"\xff"}'), "request")


@pytest.mark.parametrize("document", [b"[1,2]", b'"text"', b"3", b"null"])
def test_decode_json_object_rejects_json_that_is_not_an_object(document: bytes) -> None:
    with pytest.raises(EncodingError, match="not a JSON object"):
        decode_json_object(b64url_encode(document), "request")


@pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"-Infinity"])
def test_decode_json_object_rejects_non_standard_json_constants(constant: bytes) -> None:
    with pytest.raises(EncodingError):
        decode_json_object(b64url_encode(b'{"a":' + constant + b"}"), "request")


def test_decode_json_object_turns_absurd_nesting_into_an_encoding_error() -> None:
    deep = b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with pytest.raises(EncodingError):
        decode_json_object(b64url_encode(deep), "request")


def test_decode_json_object_rejects_a_byte_order_mark() -> None:
    with pytest.raises(EncodingError):
        decode_json_object(b64url_encode(b"\xef\xbb\xbf{}"), "request")


# --- JCS ----------------------------------------------------------------------------------------


def test_canonical_json_sorts_keys_and_drops_whitespace() -> None:
    value = {
        "recipient": "0xab",
        "amount": "1000",
        "methodDetails": {"feePayer": True, "chainId": 4217},
    }
    assert canonical_json(value) == (
        b'{"amount":"1000","methodDetails":{"chainId":4217,"feePayer":true},"recipient":"0xab"}'
    )


def test_canonical_json_writes_non_ascii_literally_and_does_not_escape_html() -> None:
    assert (
        canonical_json({"d": "caf\u00e9 <b> & \u2615"}) == '{"d":"caf\u00e9 <b> & \u2615"}'.encode()
    )


def test_canonical_json_escapes_control_characters_as_rfc8785_requires() -> None:
    assert canonical_json(['\n\t\x01"\\\x7f']) == b'["\\n\\t\\u0001\\"\\\\\x7f"]'


def test_canonical_json_sorts_keys_by_utf16_code_units_not_code_points() -> None:
    # U+1F600 is D83D DE00 in UTF-16 and sorts before U+FB01; code point order says otherwise.
    assert canonical_json({"\ufb01": 1, "\U0001f600": 2}) == '{"\U0001f600":2,"\ufb01":1}'.encode()


def test_canonical_json_sorts_upper_case_before_lower_case() -> None:
    assert canonical_json({"network": 1, "ZONE": 2, "Currency": 3}) == (
        b'{"Currency":3,"ZONE":2,"network":1}'
    )


def test_canonical_json_writes_integral_floats_as_integers() -> None:
    assert canonical_json({"a": 1.0, "b": -0.0}) == b'{"a":1,"b":0}'


@pytest.mark.parametrize(
    "value",
    [1.5, float("nan"), float("inf"), 2**53, {1: "non-string key"}, {"a": object()}, "\ud800"],
)
def test_canonical_json_refuses_what_it_cannot_write_canonically(value: object) -> None:
    with pytest.raises(FormatError):
        canonical_json(value)


def test_canonical_json_accepts_read_only_mappings_and_tuples() -> None:
    from types import MappingProxyType

    assert canonical_json(MappingProxyType({"b": (1, 2), "a": None})) == b'{"a":null,"b":[1,2]}'


def test_canonical_json_is_what_json_loads_gives_back() -> None:
    value = {"z": [1, {"y": "x"}], "a": False}
    assert json.loads(canonical_json(value)) == value


# --- timestamps ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-09-01T12:05:00Z", datetime(2026, 9, 1, 12, 5, tzinfo=UTC)),
        ("2026-09-01T12:05:00.5Z", datetime(2026, 9, 1, 12, 5, 0, 500000, tzinfo=UTC)),
        ("2026-09-01T12:05:00.1234567Z", datetime(2026, 9, 1, 12, 5, 0, 123456, tzinfo=UTC)),
        ("2026-09-01T14:05:00+02:00", datetime(2026, 9, 1, 12, 5, tzinfo=UTC)),
        ("2026-09-01T11:35:00-00:30", datetime(2026, 9, 1, 12, 5, tzinfo=UTC)),
        ("2026-09-01t12:05:00z", datetime(2026, 9, 1, 12, 5, tzinfo=UTC)),
        ("2026-12-31T23:59:60Z", datetime(2026, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)),
    ],
)
def test_parse_timestamp_reads_rfc3339_into_utc(text: str, expected: datetime) -> None:
    parsed = parse_timestamp(text)
    assert parsed == expected
    assert parsed.tzinfo is UTC


@pytest.mark.parametrize(
    "text",
    [
        "",
        "2026-09-01",
        "2026-09-01T12:05:00",  # no offset: ambiguous
        "2026-09-01 12:05:00Z",
        "2026-09-01T12:05Z",
        "2026-02-30T00:00:00Z",
        "2026-09-01T24:00:00Z",
        "2026-09-01T12:05:00+24:00",
        "2026-09-01T12:05:00Z trailing",
        "0001-01-01T00:00:00+01:00",  # before year 1 in UTC
        "Mon, 01 Sep 2026 12:05:00 GMT",
        "\u0661\u0662\u0663\u0664-09-01T12:05:00Z",  # non-ASCII digits
    ],
)
def test_parse_timestamp_rejects_everything_else(text: str) -> None:
    with pytest.raises(ParseError):
        parse_timestamp(text)


def test_format_timestamp_writes_utc_with_z() -> None:
    moment = datetime(2026, 9, 1, 14, 5, tzinfo=timezone(timedelta(hours=2)))
    assert format_timestamp(moment) == "2026-09-01T12:05:00Z"
    assert format_timestamp(moment.replace(microsecond=250000)) == "2026-09-01T12:05:00.25Z"
    assert format_timestamp(datetime(5, 1, 2, tzinfo=UTC)) == "0005-01-02T00:00:00Z"


def test_format_timestamp_refuses_naive_datetimes() -> None:
    with pytest.raises(FormatError):
        format_timestamp(datetime(2026, 9, 1))
