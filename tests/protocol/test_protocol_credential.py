"""Authorization: Payment credentials (§5)."""

from __future__ import annotations

import json
from types import MappingProxyType

import pytest

from mpp_client.errors import EncodingError, FormatError, ParseError
from mpp_client.protocol import (
    Challenge,
    Credential,
    b64url_decode,
    b64url_encode,
    parse_challenge,
    parse_credential,
)

SIGNATURE = "0x76f8" + "ab" * 120
HEADER = (
    'Payment id="kn5eCtY_X24paabi3Hmly5kfrLEsZsDhAY7Is1NfIqQ", realm="api.example.com", '
    'method="tempo", intent="charge", request="eyJiIjogIjIiLCAiYSI6ICIxIn0", '
    'expires="2026-09-01T12:05:00Z", description="1 USDC \\u2014 report", opaque="o", '
    'header="Payment-Authorization", foo="unknown"'
)


def credential(**overrides: object) -> Credential:
    fields: dict[str, object] = {
        "challenge": parse_challenge(HEADER),
        "payload": {"type": "transaction", "signature": SIGNATURE},
        "source": "did:pkh:eip155:4217:0x19E7E376E7C213B7E7e7e46cc70A5dD086DAff2A",
    }
    fields.update(overrides)
    return Credential(**fields)  # type: ignore[arg-type]


def decoded(token: str) -> dict[str, object]:
    return json.loads(b64url_decode(token))  # type: ignore[no-any-return]


def test_encode_echoes_the_challenge_verbatim_with_payload_and_source() -> None:
    document = decoded(credential().encode())
    assert document == {
        "challenge": {
            "id": "kn5eCtY_X24paabi3Hmly5kfrLEsZsDhAY7Is1NfIqQ",
            "realm": "api.example.com",
            "method": "tempo",
            "intent": "charge",
            # the original, non-canonical base64url text: never re-encoded
            "request": "eyJiIjogIjIiLCAiYSI6ICIxIn0",
            "expires": "2026-09-01T12:05:00Z",
            "opaque": "o",
            "description": "1 USDC \u2014 report",
            "header": "Payment-Authorization",
        },
        "payload": {"type": "transaction", "signature": SIGNATURE},
        "source": "did:pkh:eip155:4217:0x19E7E376E7C213B7E7e7e46cc70A5dD086DAff2A",
    }


def test_encode_is_unpadded_base64url() -> None:
    token = credential().encode()
    assert "=" not in token and "+" not in token and "/" not in token


def test_to_header_is_the_payment_scheme_and_the_token() -> None:
    cred = credential()
    assert cred.to_header() == "Payment " + cred.encode()


def test_source_is_left_out_when_absent() -> None:
    assert "source" not in decoded(credential(source=None).encode())


def test_read_only_payload_mappings_are_written_as_objects() -> None:
    payload = MappingProxyType({"inner": MappingProxyType({"a": 1})})
    assert decoded(credential(payload=payload).encode())["payload"] == {"inner": {"a": 1}}


@pytest.mark.parametrize("payload", [{"x": object()}, {"x": float("nan")}, {"x": "\ud800"}])
def test_a_payload_json_cannot_carry_is_a_format_error_that_does_not_quote_it(
    payload: dict[str, object],
) -> None:
    with pytest.raises(FormatError) as raised:
        credential(payload=payload).encode()
    assert "object at" not in str(raised.value) and "nan" not in str(raised.value).lower()


def test_repr_never_shows_the_payload() -> None:
    cred = credential()
    assert SIGNATURE not in repr(cred)
    assert SIGNATURE not in str(cred)
    assert "kn5eCtY" in repr(cred)


def test_parse_credential_round_trips_encode() -> None:
    cred = credential()
    assert parse_credential(cred.to_header()) == cred


def test_parse_credential_accepts_a_case_insensitive_scheme_and_padding() -> None:
    cred = credential()
    assert parse_credential("payment  " + cred.encode() + "==") == cred


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("Bearer eyJjaGFsbGVuZ2UiOnt9fQ", ParseError),
        ("Payment", ParseError),
        ("Payment    ", ParseError),
        ("", ParseError),
        ("Payment not-valid!!!", EncodingError),
        ("Payment " + b64url_encode(b"[1]"), EncodingError),
        ("Payment " + b64url_encode(b'{"payload":{}}'), ParseError),
        ("Payment " + b64url_encode(b'{"challenge":[],"payload":{}}'), ParseError),
    ],
)
def test_parse_credential_rejects_malformed_values(value: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        parse_credential(value)


def _token(document: dict[str, object]) -> str:
    return "Payment " + b64url_encode(json.dumps(document).encode())


ECHO = {"id": "x", "realm": "r", "method": "tempo", "intent": "charge", "request": "e30"}


@pytest.mark.parametrize("missing", ["id", "realm", "method", "intent", "request"])
def test_parse_credential_requires_every_echoed_required_parameter(missing: str) -> None:
    echo = {k: v for k, v in ECHO.items() if k != missing}
    with pytest.raises(ParseError, match=missing):
        parse_credential(_token({"challenge": echo, "payload": {}}))


def test_parse_credential_requires_a_payload_object() -> None:
    with pytest.raises(ParseError, match="payload"):
        parse_credential(_token({"challenge": ECHO}))
    with pytest.raises(ParseError, match="payload"):
        parse_credential(_token({"challenge": ECHO, "payload": "x"}))


def test_parse_credential_requires_string_echo_values_and_source() -> None:
    with pytest.raises(ParseError, match="id"):
        parse_credential(_token({"challenge": {**ECHO, "id": 5}, "payload": {}}))
    with pytest.raises(ParseError, match="source"):
        parse_credential(_token({"challenge": ECHO, "payload": {}, "source": {"did": "x"}}))


def test_parse_credential_error_messages_never_quote_the_token() -> None:
    token = b64url_encode(b'{"challenge":{"id":"x"},"payload":{"secret":"hunter2"}}')
    with pytest.raises(ParseError) as raised:
        parse_credential("Payment " + token)
    assert "hunter2" not in str(raised.value) and token not in str(raised.value)


def test_parse_credential_refuses_tokens_over_64_kib() -> None:
    with pytest.raises(ParseError, match="64 KiB"):
        parse_credential("Payment " + "A" * (64 * 1024 + 4))


def test_credentials_compare_by_value_and_are_hashable() -> None:
    assert credential() == credential()
    assert credential() != credential(payload={"type": "hash", "hash": "0x1"})
    assert hash(credential()) == hash(credential())


def test_a_challenge_built_with_create_echoes_its_canonical_request() -> None:
    challenge = Challenge.create(
        id="x", realm="r", method="tempo", intent="charge", request={"b": "2", "a": "1"}
    )
    cred = Credential(challenge, {"k": "v"})
    echo = decoded(cred.encode())["challenge"]
    assert isinstance(echo, dict)
    assert echo["request"] == b64url_encode(b'{"a":"1","b":"2"}')
