"""WWW-Authenticate: Payment parsing (§2, §3, §10) and formatting."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import pytest

from mpp_client.errors import EncodingError, FormatError, ParseError
from mpp_client.protocol import (
    Challenge,
    b64url_encode,
    compute_challenge_id,
    parse_challenge,
    parse_challenges,
)

E30 = "e30"  # base64url("{}")
BASE = f'id="ch_1", realm="api.example.com", method="tempo", intent="charge", request="{E30}"'


def payment(extra: str = "", *, base: str = BASE) -> str:
    return f"Payment {base}{extra}"


# --- scheme and parameter names -----------------------------------------------------------------


def test_parse_challenge_reads_every_required_parameter() -> None:
    challenge = parse_challenge(payment())
    assert (challenge.id, challenge.realm, challenge.method, challenge.intent) == (
        "ch_1",
        "api.example.com",
        "tempo",
        "charge",
    )
    assert challenge.request == E30
    assert challenge.request_data == {}
    assert challenge.expires is None and challenge.expires_at is None
    assert challenge.digest is challenge.description is challenge.opaque is challenge.header is None


@pytest.mark.parametrize("scheme", ["payment", "PAYMENT", "pAyMeNt"])
def test_scheme_name_is_case_insensitive(scheme: str) -> None:
    assert parse_challenge(f"{scheme} {BASE}").id == "ch_1"


def test_parameter_names_are_case_insensitive() -> None:
    header = f'Payment ID="ch_1", Realm="r", METHOD="tempo", InTeNt="charge", Request="{E30}"'
    assert parse_challenge(header).realm == "r"


def test_parameter_order_does_not_matter() -> None:
    header = f'Payment request="{E30}", intent="charge", method="tempo", realm="r", id="x"'
    assert parse_challenge(header).id == "x"


def test_unquoted_token_values_are_accepted() -> None:
    challenge = parse_challenge(
        f"Payment id=ch_1, realm=api, method=tempo, intent=charge, request={E30}"
    )
    assert (challenge.id, challenge.realm, challenge.request) == ("ch_1", "api", E30)


def test_whitespace_around_separators_is_tolerated() -> None:
    header = (
        '  Payment \t id = "ch_1" ,realm=  "r"\t,  method="tempo" , '
        f'intent ="charge",request="{E30}"  '
    )
    assert parse_challenge(header).realm == "r"


def test_unknown_parameters_are_ignored() -> None:
    assert parse_challenge(payment(', foo="bar", baz=qux')).id == "ch_1"


# --- quoted strings -----------------------------------------------------------------------------


def test_quoted_pairs_resolve_to_the_escaped_character() -> None:
    challenge = parse_challenge(payment(r', description="Pay \"premium\" API \\ now \x"'))
    assert challenge.description == 'Pay "premium" API \\ now x'


def test_mppx_unicode_escapes_are_decoded() -> None:
    challenge = parse_challenge(payment(r', description="1 USDC \u2014 caf\u00e9"'))
    assert challenge.description == "1 USDC \u2014 caf\u00e9"


def test_mppx_surrogate_pair_escapes_become_one_character() -> None:
    challenge = parse_challenge(payment(r', description="\ud83d\ude00"'))
    assert challenge.description == "\U0001f600"


def test_a_lone_surrogate_escape_becomes_the_replacement_character() -> None:
    challenge = parse_challenge(payment(r', description="a\ud83db"'))
    assert challenge.description == "a\ufffdb"


def test_backslash_u_without_four_hex_digits_is_a_plain_quoted_pair() -> None:
    assert parse_challenge(payment(r', description="\u12"')).description == "u12"


def test_an_unescaped_quote_ends_the_value_and_the_tail_is_ignored() -> None:
    challenge = parse_challenge(
        payment(', description="Payment for "Premium" service \u2014 50% off!", opaque="o"')
    )
    assert challenge.description == "Payment for "
    assert challenge.opaque == "o"


def test_an_unterminated_quoted_string_in_a_trailing_extension_parameter_is_ignored() -> None:
    assert parse_challenge(payment(', foo="never closed')).id == "ch_1"
    assert parse_challenge(payment(', foo="never closed \\')).id == "ch_1"


def test_the_word_payment_inside_a_quoted_value_is_not_a_scheme_boundary() -> None:
    challenges = parse_challenges([payment(', description="x, Payment id=\\"evil\\", realm=y"')])
    assert [c.id for c in challenges] == ["ch_1"]
    assert challenges[0].description == 'x, Payment id="evil", realm=y'


# --- required values and validation -------------------------------------------------------------


@pytest.mark.parametrize("name", ["id", "realm", "method", "intent", "request"])
def test_a_missing_required_parameter_is_a_parse_error(name: str) -> None:
    params = {"id": "ch_1", "realm": "r", "method": "tempo", "intent": "charge", "request": E30}
    del params[name]
    header = "Payment " + ", ".join(f'{k}="{v}"' for k, v in params.items())
    with pytest.raises(ParseError, match=name):
        parse_challenge(header)


def test_an_empty_id_is_a_parse_error() -> None:
    with pytest.raises(ParseError, match="empty"):
        parse_challenge(payment(base=BASE.replace('"ch_1"', '""')))


def test_an_empty_realm_is_allowed() -> None:
    assert parse_challenge(payment(base=BASE.replace('"api.example.com"', '""'))).realm == ""


@pytest.mark.parametrize("value", ["", "Bearer token123", "Payment", "Payment   ", "Basic", ","])
def test_empty_values_other_schemes_and_bare_payment_are_parse_errors(value: str) -> None:
    with pytest.raises(ParseError):
        parse_challenge(value)


def test_payment_with_a_token68_is_a_parse_error() -> None:
    with pytest.raises(ParseError):
        parse_challenge("Payment eyJhIjoiYiJ9")


def test_a_duplicate_parameter_is_a_parse_error() -> None:
    with pytest.raises(ParseError, match="duplicate"):
        parse_challenge(payment(', ID="again"'))


def test_a_duplicate_unknown_parameter_is_a_parse_error() -> None:
    with pytest.raises(ParseError, match="duplicate"):
        parse_challenge(payment(", foo=1, FOO=2"))


@pytest.mark.parametrize(
    "method", ["tempo", "lightning", "tempo-v2", "vendor:method", "x402", "a_b"]
)
def test_method_names_follow_the_mppx_syntax(method: str) -> None:
    assert parse_challenge(payment(base=BASE.replace('"tempo"', f'"{method}"'))).method == method


@pytest.mark.parametrize("method", ["Tempo", "TEMPO", "2tempo", "-x", "tem po", "tempo/charge", ""])
def test_methods_outside_that_syntax_are_parse_errors(method: str) -> None:
    with pytest.raises(ParseError, match="method"):
        parse_challenge(payment(base=BASE.replace('"tempo"', f'"{method}"')))


@pytest.mark.parametrize("intent", ["", "char ge", "a/b"])
def test_an_intent_that_is_not_a_token_is_a_parse_error(intent: str) -> None:
    with pytest.raises(ParseError, match="intent"):
        parse_challenge(payment(base=BASE.replace('"charge"', f'"{intent}"')))


def test_unknown_intents_parse() -> None:
    assert parse_challenge(payment(base=BASE.replace('"charge"', '"subscription"'))).intent == (
        "subscription"
    )


@pytest.mark.parametrize(
    "request_text",
    [
        "not-valid!!!",  # bad base64url
        b64url_encode(b"[1,2]"),  # a JSON array
        b64url_encode(b"{"),  # not JSON
        b64url_encode(b'{"a":"\xff"}'),  # not UTF-8
        b64url_encode(b'{"a":NaN}'),
        "",
    ],
)
def test_request_must_be_base64url_of_a_utf8_json_object(request_text: str) -> None:
    with pytest.raises(EncodingError):
        parse_challenge(payment(base=BASE.replace(f'"{E30}"', f'"{request_text}"')))


def test_request_is_kept_byte_for_byte_even_when_not_canonical() -> None:
    # Not JCS (space, key order) and padded: it must be echoed exactly as received.
    text = b64url_encode(b'{"b": "2", "a": "1"}') + "=="
    challenge = parse_challenge(payment(base=BASE.replace(f'"{E30}"', f'"{text}"')))
    assert challenge.request == text
    assert challenge.request_data == {"b": "2", "a": "1"}
    assert challenge.echo()["request"] == text


def test_a_request_over_16_kib_is_refused() -> None:
    text = b64url_encode(b'{"a":"' + b"x" * 13_000 + b'"}')
    assert len(text) > 16 * 1024
    with pytest.raises(ParseError, match="16 KiB"):
        parse_challenge(payment(base=BASE.replace(f'"{E30}"', f'"{text}"')))


def test_expires_is_validated_and_exposed_as_utc() -> None:
    challenge = parse_challenge(payment(', expires="2026-09-01T14:05:00+02:00"'))
    assert challenge.expires == "2026-09-01T14:05:00+02:00"
    assert challenge.expires_at == datetime(2026, 9, 1, 12, 5, tzinfo=UTC)


@pytest.mark.parametrize("expires", ["tomorrow", "2026-09-01", "2026-13-01T00:00:00Z", ""])
def test_a_malformed_expires_is_a_parse_error(expires: str) -> None:
    with pytest.raises(ParseError, match="timestamp"):
        parse_challenge(payment(f', expires="{expires}"'))


def test_header_names_the_credential_header() -> None:
    assert parse_challenge(payment(', header="Payment-Authorization"')).header == (
        "Payment-Authorization"
    )


@pytest.mark.parametrize("header", ["", "Payment Authorization", "X:Y", "a\\\\b"])
def test_a_header_that_is_not_a_token_is_a_parse_error(header: str) -> None:
    with pytest.raises(ParseError, match="header"):
        parse_challenge(payment(f', header="{header}"'))


def test_optional_parameters_are_kept_verbatim() -> None:
    challenge = parse_challenge(
        payment(', digest="sha-256=:abc=:", opaque="trace-123", description="d"')
    )
    assert (challenge.digest, challenge.opaque, challenge.description) == (
        "sha-256=:abc=:",
        "trace-123",
        "d",
    )


# --- several challenges -------------------------------------------------------------------------


def test_parse_challenges_reads_every_challenge_of_every_field_in_server_order() -> None:
    one = payment(base=BASE.replace("ch_1", "a"))
    two = payment(base=BASE.replace("ch_1", "b"))
    three = payment(base=BASE.replace("ch_1", "c"))
    challenges = parse_challenges([f"{one}, {two}", three])
    assert [c.id for c in challenges] == ["a", "b", "c"]


def test_parse_challenges_skips_other_schemes_mixed_into_a_field() -> None:
    value = (
        f'Bearer realm="x", error="invalid_token", {payment()}, Basic realm="y", Negotiate abc=='
    )
    assert [c.id for c in parse_challenges([value])] == ["ch_1"]


def test_parse_challenges_skips_a_token68_scheme_before_a_payment_challenge() -> None:
    assert [c.id for c in parse_challenges([f"Negotiate YWJj==, {payment()}"])] == ["ch_1"]


def test_parse_challenges_skips_malformed_payment_challenges_and_keeps_the_rest() -> None:
    bad_method = payment(base=BASE.replace('"tempo"', '"TEMPO"').replace("ch_1", "bad1"))
    no_request = 'Payment id="bad2", realm="r", method="tempo", intent="charge"'
    duplicate = payment(', id="dup"', base=BASE.replace("ch_1", "bad3"))
    good = payment(base=BASE.replace("ch_1", "good"))
    values = [f"{bad_method}, {good}", no_request, duplicate, "", 'garbage \x00 \\ "']
    assert [c.id for c in parse_challenges(values)] == ["good"]


def test_parse_challenges_accepts_a_single_string() -> None:
    assert [c.id for c in parse_challenges(payment())] == ["ch_1"]


def test_parse_challenges_of_nothing_is_an_empty_list() -> None:
    assert parse_challenges([]) == []


def test_parse_challenge_refuses_a_value_holding_two_challenges() -> None:
    with pytest.raises(ParseError, match="one challenge"):
        parse_challenge(f"{payment()}, {payment()}")


def test_challenges_with_the_same_content_compare_equal_and_hash_alike() -> None:
    assert parse_challenge(payment()) == parse_challenge(payment())
    assert len({parse_challenge(payment()), parse_challenge(payment())}) == 1


# --- echo and formatting ------------------------------------------------------------------------


def test_echo_carries_every_parameter_that_was_present() -> None:
    challenge = parse_challenge(
        payment(
            ', expires="2026-09-01T12:05:00Z", digest="d", opaque="o", description="x", '
            'header="Payment-Authorization", unknown="dropped"'
        )
    )
    assert challenge.echo() == {
        "id": "ch_1",
        "realm": "api.example.com",
        "method": "tempo",
        "intent": "charge",
        "request": E30,
        "expires": "2026-09-01T12:05:00Z",
        "digest": "d",
        "opaque": "o",
        "description": "x",
        "header": "Payment-Authorization",
    }


def test_echo_leaves_out_absent_parameters() -> None:
    assert set(parse_challenge(payment()).echo()) == {"id", "realm", "method", "intent", "request"}


def make(**overrides: object) -> Challenge:
    fields: dict[str, object] = {
        "id": "ch_1",
        "realm": "api.example.com",
        "method": "tempo",
        "intent": "charge",
        "request": {"amount": "1000"},
    }
    fields.update(overrides)
    return Challenge.create(**fields)  # type: ignore[arg-type]


def test_create_encodes_the_request_as_base64url_jcs() -> None:
    challenge = make(request={"b": "2", "a": "1"})
    assert challenge.request == b64url_encode(b'{"a":"1","b":"2"}')
    assert challenge.request_data == {"a": "1", "b": "2"}


def test_to_header_round_trips_through_the_parser() -> None:
    challenge = make(
        expires="2026-09-01T12:05:00Z",
        digest="sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:",
        description='He said "pay" \\ \u2014 caf\u00e9 \U0001f600\ttab',
        opaque="trace-123",
        header="Payment-Authorization",
    )
    header = challenge.to_header()
    assert header.isascii()
    assert header.startswith('Payment id="ch_1", realm="api.example.com", method="tempo"')
    assert parse_challenge(header) == challenge


def test_create_accepts_an_aware_datetime_for_expires() -> None:
    challenge = make(expires=datetime(2026, 9, 1, 12, 5, tzinfo=UTC))
    assert challenge.expires == "2026-09-01T12:05:00Z"


@pytest.mark.parametrize("field", ["id", "realm", "description", "opaque", "digest", "expires"])
@pytest.mark.parametrize("bad", ["a\r\nSet-Cookie: x", "a\nb", "a\rb", "a\x00b", "a\x7fb"])
def test_to_header_refuses_header_injection(field: str, bad: str) -> None:
    changes: dict[str, Any] = {field: bad}
    challenge = dataclasses.replace(parse_challenge(payment()), **changes)
    with pytest.raises(FormatError):
        challenge.to_header()


@pytest.mark.parametrize(
    "overrides",
    [
        {"id": ""},
        {"method": "Tempo"},
        {"intent": "a b"},
        {"header": "Bad Header"},
        {"expires": "soon"},
        {"request": {"amount": 1.5}},
    ],
)
def test_create_refuses_values_a_client_would_reject(overrides: dict[str, object]) -> None:
    with pytest.raises(FormatError):
        make(**overrides)


# --- challenge ids ------------------------------------------------------------------------------

SECRET = b"test-vector-secret-minimum-32-byte-secret"


def test_compute_challenge_id_matches_the_conformance_vector() -> None:
    request = b64url_encode(b'{"amount":"1000000"}')
    args = {"realm": "api.example.com", "method": "tempo", "intent": "charge", "request": request}
    assert compute_challenge_id(SECRET, **args) == "6QDs0BmhrI_v67iWeCMvGqQJEFQ6ErWKlk7zi5xL6t0"
    assert compute_challenge_id(SECRET, **args, header="authorization") == (
        "6QDs0BmhrI_v67iWeCMvGqQJEFQ6ErWKlk7zi5xL6t0"
    )
    assert compute_challenge_id(SECRET, **args, header="Payment-Authorization") == (
        "re8MIMJYpIJ0r_aiizscg6ghtipQM8IpOa_NtpwIU8E"
    )
    assert compute_challenge_id(SECRET, **args, opaque="trace-123") == (
        "1XJ-Ti0DACNe3E1zHvwH6OdnKlhUx6xKxDbhJyexng4"
    )


def test_compute_challenge_id_refuses_a_short_secret() -> None:
    with pytest.raises(FormatError, match="32 bytes"):
        compute_challenge_id(b"short", realm="r", method="tempo", intent="charge", request=E30)


def test_a_scheme_without_parameters_does_not_swallow_the_next_challenge() -> None:
    assert [c.id for c in parse_challenges([f"Bearer , {payment()}"])] == ["ch_1"]
    assert [c.id for c in parse_challenges([f"Basic, {payment()}"])] == ["ch_1"]
