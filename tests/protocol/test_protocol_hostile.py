"""Hostile values: control characters, bidi controls, non-finite numbers and lone surrogates are
refused by every parser, and the writers refuse exactly what the parsers refuse."""

from __future__ import annotations

import dataclasses
import json

import pytest

from mpp_client.errors import EncodingError, FormatError, ParseError
from mpp_client.protocol import (
    Challenge,
    Credential,
    Receipt,
    b64url_encode,
    parse_challenge,
    parse_challenges,
    parse_credential,
    parse_problem,
    parse_receipt,
)
from mpp_client.protocol.auth_params import has_unsafe_character

E30 = "e30"  # base64url("{}")
BASE = f'id="ch_1", realm="api.example.com", method="tempo", intent="charge", request="{E30}"'
REQUIRED = {
    "id": "ch_1",
    "realm": "api.example.com",
    "method": "tempo",
    "intent": "charge",
    "request": E30,
}

# One of each kind the parser refuses, as the character itself.
UNSAFE = {
    "NUL": "\x00",
    "BEL": "\x07",
    "BS": "\x08",
    "LF": "\n",
    "CR": "\r",
    "ESC": "\x1b",
    "US": "\x1f",
    "DEL": "\x7f",
    "PAD (C1)": "\x80",
    "CSI (C1)": "\x9b",
    "APC (C1)": "\x9f",
    "ALM": "\u061c",
    "LRM": "\u200e",
    "RLM": "\u200f",
    "LRE": "\u202a",
    "RLO": "\u202e",
    "LRI": "\u2066",
    "PDI": "\u2069",
}
# Accepted: HTAB, printable Latin-1, zero-width joiners (emoji, scripts), other format chars.
SAFE = ["\t", "\xa0", "\xe9", "\u200b", "\u200c", "\u200d", "\ufeff", "\u2028", "\U0001f600"]


def _mppx_escape(char: str) -> str:
    units = char.encode("utf-16-be")
    return "".join(f"\\u{units[i]:02x}{units[i + 1]:02x}" for i in range(0, len(units), 2))


def _raw_token(text: str) -> str:
    return b64url_encode(text.encode("utf-8", "surrogatepass"))


# --- header parameters --------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(UNSAFE))
@pytest.mark.parametrize("param", ["realm", "description", "id", "opaque", "digest", "x-ext"])
def test_an_unsafe_character_in_a_quoted_string_refuses_the_challenge(
    name: str, param: str
) -> None:
    char = UNSAFE[name]
    for spelled in (char, "\\" + char, _mppx_escape(char)):
        params = {**REQUIRED, param: f"a{spelled}b"}
        header = "Payment " + ", ".join(f'{k}="{v}"' for k, v in params.items())
        with pytest.raises(ParseError, match="control character"):
            parse_challenge(header)
        assert parse_challenges([header]) == []


def test_the_issue_s_realm_is_refused_and_its_neighbours_survive() -> None:
    hostile = (
        'Payment id="h", realm="\\u001b[2J\\u001b[31mAPPROVED: pay now", method="tempo", '
        f'intent="charge", request="{E30}"'
    )
    with pytest.raises(ParseError):
        parse_challenge(hostile)
    found = parse_challenges([f"{hostile}, Payment {BASE}"])
    assert [c.id for c in found] == ["ch_1"]


@pytest.mark.parametrize("char", SAFE)
def test_htab_and_printable_or_joining_characters_are_accepted(char: str) -> None:
    for spelled in (char, _mppx_escape(char)):
        challenge = parse_challenge(payment_with(description=f"a{spelled}b"))
        assert challenge.description == f"a{char}b"
        assert parse_challenge(challenge.to_header()) == challenge


def payment_with(**extra: str) -> str:
    return f"Payment {BASE}" + "".join(f', {k}="{v}"' for k, v in extra.items())


def test_an_escaped_lone_surrogate_still_becomes_the_replacement_character() -> None:
    # mppx escapes JavaScript code units, so a broken pair is decoded, not refused; U+FFFD is
    # writable, so the value formats back.
    challenge = parse_challenge(payment_with(description="a\\ud800b"))
    assert challenge.description == "a\ufffdb"
    assert parse_challenge(challenge.to_header()) == challenge


def test_a_raw_lone_surrogate_in_a_python_string_is_refused() -> None:
    with pytest.raises(ParseError):
        parse_challenge(payment_with(description="a\ud800b"))


@pytest.mark.parametrize("name", sorted(UNSAFE))
def test_the_writer_refuses_what_the_parser_refuses(name: str) -> None:
    challenge = parse_challenge(payment_with())
    with pytest.raises(FormatError):
        dataclasses.replace(challenge, realm=f"a{UNSAFE[name]}b").to_header()
    assert has_unsafe_character(UNSAFE[name])


def test_the_writer_refuses_a_lone_surrogate() -> None:
    challenge = parse_challenge(payment_with())
    with pytest.raises(FormatError):
        dataclasses.replace(challenge, description="\udc00").to_header()


# --- JSON: request, credential, receipt, problem -----------------------------------------------

NON_FINITE = ["NaN", "-NaN", "Infinity", "-Infinity", "1e309", "-1e309", "1E400", "123456e99999"]
LONE = ['"\\ud800"', '"a\\udfffb"', '"\\ude00\\ud83d"', '"\\uD83D"']


@pytest.mark.parametrize("number", NON_FINITE)
def test_a_request_with_a_non_finite_number_is_refused(number: str) -> None:
    header = payment_with().replace(E30, _raw_token(f'{{"amount":{number}}}'))
    with pytest.raises(EncodingError):
        parse_challenge(header)


@pytest.mark.parametrize("text", LONE)
def test_a_request_with_a_lone_surrogate_is_refused(text: str) -> None:
    for document in (f'{{"k":{text}}}', f"{{{text}:1}}", f'{{"a":[[{text}]]}}'):
        header = payment_with().replace(E30, _raw_token(document))
        with pytest.raises(EncodingError, match="lone surrogate"):
            parse_challenge(header)


def test_finite_floats_escaped_pairs_and_escaped_backslashes_still_parse() -> None:
    document = '{"a":1e308,"b":-0.5,"c":"\\ud83d\\ude00","d":"\\\\ud800"}'
    challenge = parse_challenge(payment_with().replace(E30, _raw_token(document)))
    assert challenge.request_data == {"a": 1e308, "b": -0.5, "c": "\U0001f600", "d": "\\ud800"}


def _credential_text(payload_json: str, **echo: str) -> str:
    challenge = json.dumps({**REQUIRED, **echo})
    return "Payment " + _raw_token(f'{{"challenge":{challenge},"payload":{payload_json}}}')


@pytest.mark.parametrize("value", [*NON_FINITE, *LONE])
def test_a_credential_payload_with_a_non_finite_number_or_lone_surrogate_is_refused(
    value: str,
) -> None:
    with pytest.raises(EncodingError):
        parse_credential(_credential_text(f'{{"proof":{value}}}'))


@pytest.mark.parametrize("name", sorted(UNSAFE))
def test_a_credential_echo_with_an_unsafe_character_is_refused(name: str) -> None:
    # JSON can carry ESC; the echoed challenge could then never be written as a header.
    with pytest.raises(ParseError, match="control character"):
        parse_credential(_credential_text("{}", realm=f"a{UNSAFE[name]}b"))


@pytest.mark.parametrize("value", [*NON_FINITE, *LONE])
def test_a_receipt_with_a_non_finite_number_or_lone_surrogate_is_refused(value: str) -> None:
    text = (
        '{"status":"success","method":"tempo","reference":"r",'
        f'"timestamp":"2026-09-01T12:04:31Z","extra":{value}}}'
    )
    with pytest.raises(EncodingError):
        parse_receipt(_raw_token(text))


@pytest.mark.parametrize("value", [*NON_FINITE, *LONE])
def test_a_problem_with_a_non_finite_number_or_lone_surrogate_is_not_a_problem(
    value: str,
) -> None:
    body = f'{{"type":"about:blank","status":402,"x":{value}}}'.encode()
    assert parse_problem(body, "application/problem+json") is None
    assert parse_problem(b'{"type":"about:blank","x":1.5}', "application/problem+json")


def test_what_parses_is_writable_again() -> None:
    credential = parse_credential(_credential_text('{"proof":"p","n":1.5e300}'))
    assert parse_credential(credential.to_header()) == credential
    receipt = Receipt("success", "tempo", "2026-09-01T12:04:31Z", "ref", None, {"n": 1e-300})
    assert parse_receipt(receipt.encode()) == receipt
    challenge = Challenge.create(
        id="x", realm="r", method="tempo", intent="charge", request={"a": "b"}
    )
    assert Credential(challenge, {"x": float("inf")}, None).challenge == challenge
    with pytest.raises(FormatError):
        Credential(challenge, {"x": float("inf")}, None).encode()
