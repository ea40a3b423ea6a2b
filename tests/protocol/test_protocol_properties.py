"""Properties: parsers raise ParseError and nothing else; writers round-trip; hostile headers
parse in linear time."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from datetime import UTC
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mpp_client.errors import EncodingError, FormatError, ParseError
from mpp_client.protocol import (
    Challenge,
    Credential,
    Receipt,
    auth_params,
    b64url_decode,
    b64url_encode,
    canonical_json,
    digest_matches,
    parse_accept_payment,
    parse_challenge,
    parse_challenges,
    parse_credential,
    parse_problem,
    parse_receipt,
    parse_timestamp,
)

# Fragments that matter to the grammar, mixed with arbitrary text.
FRAGMENTS = [
    "Payment ",
    "payment",
    "Bearer ",
    'id="',
    "realm=",
    "method=tempo",
    "intent=charge",
    'request="e30"',
    'expires="2026-09-01T12:05:00Z"',
    "header=",
    '"',
    "\\",
    "\\u00e9",
    "\\ud83d",
    ",",
    "=",
    " ",
    "\t",
    "\r\n",
    "\x00",
    "\u2014",
    "e30",
    "eyJ",
]
header_text = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=6)), max_size=40).map(
    "".join
)
VALID = 'Payment id="a", realm="r", method="tempo", intent="charge", request="e30"'


# --- only ParseError ----------------------------------------------------------------------------


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(header_text)
def test_parse_challenge_raises_only_parse_errors(text: str) -> None:
    try:
        challenge = parse_challenge(text)
    except ParseError:
        return
    assert challenge.id
    assert challenge.request_data is not None


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(header_text, max_size=3))
def test_parse_challenges_never_raises_and_every_result_is_valid(values: list[str]) -> None:
    for challenge in parse_challenges(values):
        assert challenge.id
        assert isinstance(challenge.request_data, dict)
        assert challenge.expires is None or challenge.expires_at is not None


@settings(max_examples=200)
@given(header_text, header_text)
def test_garbage_around_a_valid_challenge_never_hides_it_when_separated_by_commas(
    before: str, after: str
) -> None:
    # Whatever precedes or follows, a well-formed challenge in its own field is found.
    found = parse_challenges([before, VALID, after])
    assert any(c.id == "a" and c.realm == "r" for c in found)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)


def _token(value: Any) -> str:
    return b64url_encode(json.dumps(value).encode())


@settings(max_examples=300)
@given(st.one_of(header_text.map(lambda t: "Payment " + t), json_values.map(_token)))
def test_parse_credential_raises_only_parse_errors(text: str) -> None:
    with contextlib.suppress(ParseError):
        parse_credential(text if text.startswith("Payment") else "Payment " + text)


@settings(max_examples=300)
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "challenge": st.one_of(
                json_values,
                st.fixed_dictionaries(
                    {},
                    optional={
                        "id": json_values,
                        "realm": json_values,
                        "method": st.sampled_from(["tempo", "Tempo", 1]),
                        "intent": st.sampled_from(["charge", "", None]),
                        "request": st.sampled_from(["e30", "", "[]", "W10", 5]),
                        "expires": st.sampled_from(["2026-09-01T12:05:00Z", "x", None]),
                        "header": st.sampled_from(["Payment-Authorization", "a b", 3]),
                    },
                ),
            ),
            "payload": json_values,
            "source": json_values,
        },
    )
)
def test_parse_credential_raises_only_parse_errors_for_structured_junk(
    document: dict[str, Any],
) -> None:
    with contextlib.suppress(ParseError):
        parse_credential("Payment " + _token(document))


@settings(max_examples=300)
@given(
    st.one_of(
        header_text,
        json_values.map(_token),
        st.dictionaries(
            st.sampled_from(["status", "method", "reference", "timestamp", "challengeId", "x"]),
            st.one_of(json_values, st.just("2026-09-01T12:05:00Z")),
        ).map(_token),
    )
)
def test_parse_receipt_raises_only_parse_errors(text: str) -> None:
    try:
        receipt = parse_receipt(text)
    except ParseError:
        return
    assert receipt.timestamp_at is not None


@settings(max_examples=300)
@given(
    st.one_of(st.binary(max_size=64), json_values.map(lambda v: json.dumps(v).encode())),
    st.one_of(
        st.none(),
        st.text(max_size=30),
        st.sampled_from(["application/problem+json", "application/json; charset=utf-8"]),
    ),
)
def test_parse_problem_never_raises(content: bytes, content_type: str | None) -> None:
    problem = parse_problem(content, content_type)
    assert problem is None or isinstance(problem.type, str)


@given(st.text(max_size=60))
def test_parse_accept_payment_raises_only_parse_errors(text: str) -> None:
    with contextlib.suppress(ParseError):
        parse_accept_payment(text)


@given(st.text(max_size=40))
def test_b64url_decode_raises_only_encoding_errors(text: str) -> None:
    with contextlib.suppress(EncodingError):
        b64url_decode(text)


@given(st.text(max_size=40))
def test_parse_timestamp_raises_only_parse_errors(text: str) -> None:
    with contextlib.suppress(ParseError):
        parse_timestamp(text)


@given(st.text(max_size=60), st.binary(max_size=32))
def test_digest_matches_never_raises(digest: str, body: bytes) -> None:
    assert digest_matches(digest, body) in (True, False, None)


# --- round trips --------------------------------------------------------------------------------


@given(st.binary(max_size=100))
def test_b64url_round_trips_any_bytes(data: bytes) -> None:
    assert b64url_decode(b64url_encode(data)) == data


@given(json_values)
def test_canonical_json_decodes_to_the_same_value(value: Any) -> None:
    assert json.loads(canonical_json(value)) == value
    assert canonical_json(json.loads(canonical_json(value))) == canonical_json(value)


# The bidi formatting characters the parser refuses in header parameters (auth_params._UNSAFE).
BIDI = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
# Text a header value can carry: anything but control characters, bidi controls and lone
# surrogates.
display_text = st.text(
    st.characters(
        blacklist_categories=("Cc", "Cs"), blacklist_characters=BIDI, whitelist_characters="\t"
    ),
    max_size=20,
)
tokens = st.text(
    st.sampled_from("abcXYZ019!#$%&'*+.^_`|~-"),
    min_size=1,
    max_size=10,
)
methods = st.from_regex(r"[a-z][a-z0-9:_-]{0,8}", fullmatch=True)
timestamps = st.datetimes(timezones=st.just(UTC)).map(
    lambda d: d.strftime("%Y-%m-%dT%H:%M:%SZ") if d.year >= 1000 else "2026-09-01T12:05:00Z"
)
request_objects = st.dictionaries(st.text(max_size=6), json_values, max_size=5)


@st.composite
def challenges(draw: st.DrawFn) -> Challenge:
    return Challenge.create(
        id=draw(display_text.filter(bool)),
        realm=draw(display_text),
        method=draw(methods),
        intent=draw(tokens),
        request=draw(request_objects),
        expires=draw(st.none() | timestamps),
        digest=draw(st.none() | display_text),
        description=draw(st.none() | display_text),
        opaque=draw(st.none() | display_text),
        header=draw(st.none() | tokens),
    )


@settings(max_examples=300)
@given(challenges())
def test_challenge_to_header_round_trips(challenge: Challenge) -> None:
    header = challenge.to_header()
    assert header.isascii()
    assert parse_challenge(header) == challenge
    assert parse_challenge(header).request_data == challenge.request_data


@settings(max_examples=150)
@given(st.lists(challenges(), min_size=1, max_size=4), st.booleans())
def test_folded_challenges_and_other_schemes_parse_back_in_order(
    items: list[Challenge], with_noise: bool
) -> None:
    parts = [c.to_header() for c in items]
    if with_noise:
        parts = ['Bearer realm="x"', *parts, "Negotiate YWJj=="]
    assert parse_challenges([", ".join(parts)]) == items
    assert parse_challenges(parts) == items


@settings(max_examples=150)
@given(
    challenges(),
    st.dictionaries(st.text(max_size=6), json_values, max_size=4),
    st.none() | display_text,
)
def test_credential_round_trips(
    challenge: Challenge, payload: dict[str, Any], source: str | None
) -> None:
    credential = Credential(challenge, payload, source)
    assert parse_credential(credential.to_header()) == credential


_CORE_RECEIPT = {"status", "method", "timestamp", "reference", "challengeId"}


def _not_core(key: str) -> bool:
    return key not in _CORE_RECEIPT


@given(
    display_text.filter(bool),
    methods,
    timestamps,
    display_text.filter(bool),
    st.none() | display_text,
    st.dictionaries(st.text(max_size=6).filter(_not_core), json_values),
)
def test_receipt_round_trips(
    status: str,
    method: str,
    timestamp: str,
    reference: str,
    challenge_id: str | None,
    extra: dict[str, Any],
) -> None:
    receipt = Receipt(status, method, timestamp, reference, challenge_id, extra)
    assert parse_receipt(receipt.encode()) == receipt


@given(
    challenges(),
    st.sampled_from(["\r", "\n", "\x00", "\x1b", "\x7f", "\x85", "\x9b", *BIDI, "\ud800"]),
)
def test_control_characters_never_reach_the_wire(challenge: Challenge, bad: str) -> None:
    with pytest.raises(FormatError):
        dataclasses.replace(challenge, description=f"a{bad}b").to_header()


# --- whatever parses formats back to the same object ---------------------------------------------
#
# Fuzzed wire input, not objects built by the writers: if a parser accepts a value, writing the
# parsed object and parsing that again must give an equal object. A character the parser lets
# through but the writer refuses (ESC, a C1 control, a bidi override, a lone surrogate, inf)
# breaks the property, which is how parse and format are kept in agreement.

# Pieces of quoted-string content: hostile characters raw, as quoted-pairs and as mppx escapes,
# next to harmless text.
QUOTED_PIECES = [
    "a",
    "Z9",
    " ",
    "\t",
    "\xe9",
    "\xa0",
    "\u2014",
    "\U0001f600",
    "\u200d",
    "\x1b",
    "\x9b",
    "\x85",
    "\x00",
    "\x7f",
    "\r\n",
    "\u202e",
    "\u200e",
    "\u2066",
    "\ud800",
    '\\"',
    "\\\\",
    "\\a",
    "\\\x1b",
    "\\u001b",
    "\\u009b",
    "\\u007f",
    "\\u202e",
    "\\u200f",
    "\\u00e9",
    "\\u2014",
    "\\ud83d",
    "\\ude00",
    "\\ud83d\\ude00",
    "\\uD83D\\uDE00",
    "\\u12",
    "\\",
    '"',
    ",",
    "=",
    "Payment ",
]
# What a well-behaved server sends; mixed in so that a good share of the fuzzed challenges
# parse and the round trip is exercised, not only the refusals.
CLEAN_PIECES = ["a", "Z9", " ", "\t", "\xe9", "\u2014", "\U0001f600", '\\"', "\\\\", "\\u00e9"]
clean_quoted = st.lists(st.sampled_from(CLEAN_PIECES), min_size=1, max_size=5).map(
    lambda p: '"' + "".join(p) + '"'
)
hostile_quoted = st.lists(
    st.one_of(st.sampled_from(QUOTED_PIECES), st.text(max_size=3)), max_size=6
).map(lambda pieces: '"' + "".join(pieces) + '"')
quoted_values = st.one_of(clean_quoted, clean_quoted, hostile_quoted)
bare_values = st.text(st.sampled_from("abcXYZ019!#$%&'*+.^_`|~-/="), min_size=1, max_size=8)
# Request JSON texts: valid objects, and the values a strict decoder must refuse.
GOOD_REQUESTS = [
    "{}",
    '{"amount":"1000","currency":"usd","recipient":"r"}',
    '{"amount":1e308,"nested":{"a":[1,2.5,-0.0]}}',
    '{"memo":"\\u001b[2J"}',
    '{"memo":"\\ud83d\\ude00"}',
    '{"a":1,"a":2}',
]
BAD_REQUESTS = [
    '{"amount":1e309}',
    '{"amount":-1E400}',
    '{"amount":NaN}',
    '{"amount":Infinity}',
    '{"memo":"\\ud800"}',
    '{"\\udfff":1}',
    "[]",
    '"x"',
    "{",
]
request_values = st.one_of(
    st.sampled_from(GOOD_REQUESTS), st.sampled_from(GOOD_REQUESTS), st.sampled_from(BAD_REQUESTS)
).map(lambda text: '"' + b64url_encode(text.encode()) + '"')
PARAM_VALUES: dict[str, st.SearchStrategy[str]] = {
    "id": st.one_of(quoted_values, bare_values),
    "realm": st.one_of(quoted_values, bare_values),
    "method": st.sampled_from(['"tempo"', "test", '"a:b-c"', '"te\\u006dpo"', "Tempo", '""']),
    "intent": st.sampled_from(["charge", '"session"', '"ch\\u0061rge"', '"a b"', '"x\\u001b"']),
    "request": st.one_of(request_values, request_values, st.just("e30"), hostile_quoted),
    "expires": st.sampled_from(
        ['"2026-09-01T12:05:00Z"', "2026-09-01T12:05:00Z", '"2026-09-01T12:05:00+01:00"', '"x"']
    ),
    "header": st.sampled_from(['"Payment-Authorization"', "X-Pay", '"a b"', '"\\u001b"']),
    "description": quoted_values,
    "digest": st.one_of(quoted_values, bare_values),
    "opaque": st.one_of(quoted_values, bare_values),
    "x-ext": st.one_of(quoted_values, bare_values),
}
REQUIRED_PARAMS = ("id", "realm", "method", "intent", "request")


@st.composite
def fuzzed_challenge_fields(draw: st.DrawFn) -> str:
    """A Payment challenge built from hostile pieces: usually complete, often refusable."""
    # Hypothesis favours small and boundary integers, so the rare branches test a middle value.
    names = [name for name in REQUIRED_PARAMS if draw(st.integers(0, 19)) != 13]
    optional = sorted(set(PARAM_VALUES) - set(REQUIRED_PARAMS))
    # Mostly distinct names; a repeated one (a defect) now and then.
    names += draw(st.lists(st.sampled_from(optional), unique=draw(st.integers(0, 5)) != 3))
    names = draw(st.permutations(names))
    params = []
    for name in names:
        spelled = draw(st.sampled_from([name, name.upper(), name.capitalize()]))
        params.append(f"{spelled}={draw(PARAM_VALUES[name])}")
    joiner = draw(st.sampled_from([", ", ",", " , ", ",\t", ", ,"]))
    scheme = draw(st.sampled_from(["Payment ", "payment  ", "PAYMENT\t"]))
    text = scheme + joiner.join(params)
    # Sometimes damage it: a fragment dropped somewhere, or noise folded around it.
    if draw(st.integers(0, 5)) == 3:
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.sampled_from(FRAGMENTS + QUOTED_PIECES)) + text[at:]
    before = draw(st.sampled_from(["", 'Bearer realm="x", ', "Negotiate abc, "]))
    return before + text


fuzzed_headers = st.one_of(
    header_text,
    fuzzed_challenge_fields(),
    st.lists(fuzzed_challenge_fields(), min_size=2, max_size=3).map(", ".join),
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(fuzzed_headers, min_size=1, max_size=3))
def test_every_parsed_challenge_formats_back_to_an_equal_challenge(values: list[str]) -> None:
    for challenge in parse_challenges(values):
        header = challenge.to_header()  # never a FormatError for something that parsed
        assert header.isascii()
        again = parse_challenge(header)
        assert again == challenge
        assert again.request_data == challenge.request_data
        assert again.to_header() == header


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(), fuzzed_challenge_fields()))
def test_parse_challenge_formats_back_for_any_string(text: str) -> None:
    try:
        challenge = parse_challenge(text)
    except ParseError:
        return
    assert parse_challenge(challenge.to_header()) == challenge


# JSON documents with hostile strings (controls, bidi, lone surrogates) and numbers a strict
# decoder must refuse. Numbers json.dumps cannot spell (1e309) travel as marker strings that are
# replaced after dumping.
NUMBER_MARKERS = {
    "@1e309": "1e309",
    "@-1e309": "-1e309",
    "@1E400": "1E400",
    "@1e308": "1e308",
    "@tiny": "1e-400",
    "@-0": "-0.0",
}
HOSTILE_CHARS = ["a", "\t", "\n", "\x1b", "\x9b", "\x7f", "\u202e", "\u2066", "\U0001f600"]
hostile_strings = st.one_of(
    st.text(max_size=6),
    st.lists(st.sampled_from([*HOSTILE_CHARS, "\ud800", "\udc00", "\ud83d"]), max_size=4).map(
        "".join
    ),
)
hostile_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | hostile_strings
    | st.sampled_from(sorted(NUMBER_MARKERS)),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(hostile_strings, inner, max_size=3),
    max_leaves=8,
)


def _json_token(document: Any, ascii_only: bool) -> str:
    # allow_nan (the default) writes NaN and Infinity, as a hostile server would; ensure_ascii
    # writes lone surrogates as \ud800 escapes, and without it they go out as (invalid) UTF-8.
    text = json.dumps(document, ensure_ascii=ascii_only)
    for marker, number in NUMBER_MARKERS.items():
        text = text.replace(f'"{marker}"', number)
    return b64url_encode(text.encode("utf-8", "surrogatepass"))


ECHO_VALUES = st.one_of(st.just("x"), st.just("caf\xe9 \U0001f600"), hostile_strings)
echo_documents = st.fixed_dictionaries(
    {
        "id": ECHO_VALUES,
        "realm": ECHO_VALUES,
        "method": st.sampled_from(["tempo", "test", "Tempo", "te\x1bmpo"]),
        "intent": st.sampled_from(["charge", "session", "a b"]),
        "request": st.one_of(request_values.map(lambda v: v.strip('"')), st.just("e30")),
    },
    optional={
        "expires": st.sampled_from(["2026-09-01T12:05:00Z", "x"]),
        "digest": ECHO_VALUES,
        "opaque": ECHO_VALUES,
        "description": ECHO_VALUES,
        "header": st.sampled_from(["Payment-Authorization", "X-Pay", "a\x1b"]),
    },
)
credential_tokens = st.builds(
    _json_token,
    st.fixed_dictionaries(
        {
            "challenge": echo_documents,
            "payload": st.one_of(st.dictionaries(hostile_strings, hostile_json), hostile_json),
        },
        optional={"source": st.one_of(hostile_strings, hostile_json)},
    ),
    st.booleans(),
)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(credential_tokens, credential_tokens, header_text))
def test_every_parsed_credential_formats_back_to_an_equal_credential(token: str) -> None:
    try:
        credential = parse_credential("Payment " + token)
    except ParseError:
        return
    header = credential.to_header()  # never a FormatError for something that parsed
    again = parse_credential(header)
    assert again == credential
    assert again.to_header() == header


receipt_tokens = st.builds(
    _json_token,
    st.fixed_dictionaries(
        {
            "status": st.one_of(st.just("success"), hostile_strings),
            "method": st.one_of(st.just("tempo"), hostile_strings),
            "reference": st.one_of(st.just("0xabc"), hostile_strings),
            "timestamp": st.sampled_from(["2026-09-01T12:04:31Z", "2026-09-01", "\x1b"]),
        },
        optional={
            "challengeId": st.one_of(hostile_strings, st.none()),
            "externalId": hostile_json,
            "x": hostile_json,
        },
    ),
    st.booleans(),
)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(receipt_tokens, receipt_tokens, header_text))
def test_every_parsed_receipt_formats_back_to_an_equal_receipt(token: str) -> None:
    try:
        receipt = parse_receipt(token)
    except ParseError:
        return
    encoded = receipt.encode()  # never a FormatError for something that parsed
    again = parse_receipt(encoded)
    assert again == receipt
    assert again.encode() == encoded


# --- linear time on hostile headers -------------------------------------------------------------

SIZE = 12_000
HOSTILE = {
    "backslashes in a quoted value": 'Payment id="' + "\\" * SIZE,
    "escaped quotes": 'Payment id="' + '\\"' * (SIZE // 2),
    "quotes": '"' * SIZE,
    "commas": "Payment " + "," * SIZE,
    "payment repeats": "Payment " * (SIZE // 8),
    "payment id repeats": 'Payment id="' * (SIZE // 12),
    "equals": "Payment a" + "=" * SIZE,
    "names without values": "Payment " + "a " * (SIZE // 2),
    "params without commas": "Payment " + 'a="b" ' * (SIZE // 6),
    "empty params": "Payment " + "a=, " * (SIZE // 4),
    "unterminated tail after valid": VALID + ', x="' + "\\a" * (SIZE // 2),
    "stray quotes after values": "Payment " + 'a="b"c"' * (SIZE // 7),
    "backslash quote comma": 'Payment d="' + '\\",' * (SIZE // 3),
    "many valid challenges": ", ".join([VALID] * (SIZE // len(VALID))),
    "u escapes": 'Payment d="' + "\\u" * (SIZE // 2) + '"',
    "whitespace": "Payment" + " \t" * (SIZE // 2) + "id",
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_12000_char_headers_parse_well_under_a_second(name: str) -> None:
    value = HOSTILE[name]
    assert len(value) >= SIZE - 100
    started = time.perf_counter()
    parse_challenges([value])
    with contextlib.suppress(ParseError):
        parse_challenge(value)
    elapsed = time.perf_counter() - started
    # A generous guard against super-linear behaviour; the real numbers are in benchmarks/.
    assert elapsed < 1.0, f"{name}: {elapsed:.3f} s"


def test_many_valid_folded_challenges_are_all_found() -> None:
    value = HOSTILE["many valid challenges"]
    assert len(parse_challenges([value])) == value.count("Payment ")


# --- the fast scanner agrees with the careful one -----------------------------------------------


def _scanned(raws: list[auth_params.RawChallenge]) -> list[tuple[str, dict[str, str], str | None]]:
    return [(raw.scheme, raw.params, raw.defect) for raw in raws]


@settings(max_examples=1000, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        header_text,
        st.lists(challenges(), max_size=3).map(lambda cs: ", ".join(c.to_header() for c in cs)),
    )
)
def test_the_well_formed_fast_path_gives_what_the_careful_scan_gives(value: str) -> None:
    careful = _scanned(auth_params._scan_any(value))
    fast = auth_params._scan_well_formed(value)
    if fast is not None:
        assert _scanned(fast) == careful
    quoted = auth_params._scan_all_quoted(value)
    if quoted is not None:
        assert _scanned(quoted) == careful


def test_the_fast_path_takes_well_formed_values_and_leaves_junk_to_the_careful_scan() -> None:
    assert auth_params._scan_well_formed(f'{VALID}, Bearer realm="x", {VALID}') is not None
    assert auth_params._scan_well_formed(VALID + ', d="a "b" c"') is None
    assert auth_params._scan_well_formed("Negotiate abc, " + VALID) is None


def test_the_all_quoted_path_takes_the_usual_shape_only() -> None:
    assert auth_params._scan_all_quoted(f'{VALID}, Bearer realm="x", {VALID}') is not None
    assert auth_params._scan_all_quoted(VALID + ', d="a "b" c"') is None
    assert auth_params._scan_all_quoted(VALID + ", n=1") is None
    [escaped] = auth_params._scan_all_quoted(VALID + ', d="a \\"b\\" \\\\ \\u00e9"') or []
    assert escaped.params["d"] == 'a "b" \\ \u00e9'
    [unsafe] = auth_params._scan_all_quoted(VALID + ', d="\\u001b[2J"') or []
    assert unsafe.defect is not None
    assert auth_params._scan_all_quoted(VALID + ', d="a\\"') is None
    assert auth_params._scan_all_quoted('Payment id="a" realm="b"') is None
