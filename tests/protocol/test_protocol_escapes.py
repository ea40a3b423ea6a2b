"""Quoted-pairs and ``\\uXXXX`` escapes in ``WWW-Authenticate`` values (protocol README §2).

The scanner resolves escapes with placeholders and C-level string operations; these tests pin
the edge cases and hold every path to a plain reference implementation of the rules.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mpp_client.errors import ParseError
from mpp_client.protocol import auth_params, parse_challenge, parse_challenges

VALID = 'Payment id="a", realm="r", method="tempo", intent="charge", request="e30"'

_REFERENCE_ESCAPE = re.compile(r"\\(?:u([0-9A-Fa-f]{4})|(.))", re.DOTALL)


def reference_unquote(text: str) -> str:
    """The rules written the obvious way: one regex, left to right, a callback per escape."""

    def one(match: re.Match[str]) -> str:
        code = match.group(1)
        return chr(int(code, 16)) if code is not None else match.group(2)

    text = _REFERENCE_ESCAPE.sub(one, text)
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def description(escaped: str) -> str | None:
    [challenge] = parse_challenges([f'{VALID}, description="{escaped}"'])
    return challenge.description


def test_an_escaped_quote_is_a_quote_and_does_not_end_the_value() -> None:
    assert description('say \\"hi\\", then go') == 'say "hi", then go'


def test_an_escaped_backslash_is_one_backslash() -> None:
    assert description("C:\\\\dir\\\\file") == "C:\\dir\\file"


def test_an_escaped_backslash_right_before_the_closing_quote_ends_the_value() -> None:
    assert description("dir\\\\") == "dir\\"
    assert description('\\\\\\"') == '\\"'


@pytest.mark.parametrize(
    ("escaped", "expected"),
    [
        ("\\a\\b\\n\\t", "abnt"),  # a quoted-pair yields the character itself, no C escapes
        ("\\u12 x", "u12 x"),  # \u without four hex digits is a plain quoted-pair
        ("\\uZZZZ", "uZZZZ"),
        ("\\U00e9", "U00e9"),  # only a lower-case u starts mppx's escape
        ("\\\\u00e9", "\\u00e9"),  # an escaped backslash, then the letters u00e9
        ("\\\\\\u00e9", "\\\u00e9"),  # an escaped backslash, then an escape
        ("\\u005cu0041", "\\u0041"),  # an escape spelling a backslash starts no new escape
        ("\\u0022", '"'),
        ("\\u00E9\\u2014", "\u00e9\u2014"),
        ("\\ud83d\\ude00", "\U0001f600"),
        ("\\ud83d x", "\ufffd x"),
        ("\\,\\=\\ ", ",= "),
    ],
)
def test_non_escape_characters_and_unicode_escapes(escaped: str, expected: str) -> None:
    assert description(escaped) == expected
    assert auth_params.unquote(escaped) == expected


def test_a_trailing_backslash_escapes_the_closing_quote_so_the_value_is_unterminated() -> None:
    # The required id swallows the rest of the value: no challenge at all.
    value = 'Payment id="abc\\", realm="r", method="tempo", intent="charge", request="e30"'
    assert parse_challenges([value]) == []
    with pytest.raises(ParseError):
        parse_challenge(value)
    # A trailing extension parameter left unterminated is ignored, the challenge kept.
    [challenge] = parse_challenges([VALID + ', description="x\\"'])
    assert challenge.description is None


def test_escapes_in_several_parameters_and_folded_challenges() -> None:
    one = (
        'Payment id="i\\"d", realm="re\\\\alm", method="tempo", intent="charge", request="e30",'
        ' description="caf\\u00e9 \\"x\\"", opaque="o\\pq"'
    )
    challenges = parse_challenges([f'{one}, Bearer realm="\\\\", {one}'])
    assert len(challenges) == 2
    for challenge in challenges:
        assert challenge.id == 'i"d'
        assert challenge.realm == "re\\alm"
        assert challenge.description == 'caf\u00e9 "x"'
        assert challenge.opaque == "opq"


@pytest.mark.parametrize("escaped", ["\\u0000", "\\u001b[2J", "\\u0000\\u0001", "a\\u202e"])
def test_an_escape_spelling_an_unsafe_character_makes_the_challenge_defective(
    escaped: str,
) -> None:
    assert parse_challenges([f'{VALID}, description="{escaped}"']) == []


def test_unquote_keeps_a_trailing_lone_backslash_and_handles_raw_nul() -> None:
    assert auth_params.unquote("a\\") == "a\\"
    assert auth_params.unquote("\x00\\\\\x01") == "\x00\\\x01"
    assert auth_params.unquote("\\u0000\x01") == "\x00\x01"


# Text dense in backslashes, quotes, escapes and the placeholder characters.
escape_text = st.lists(
    st.one_of(
        st.sampled_from(["\\", "\\\\", '\\"', "\\u", "\\u00e9", "\\u0000", "\\u0001", "\\ud83d"]),
        st.sampled_from(["\\ude00", "\\U", "u", "0041", "\x00", "\x01", "\x02", '"', "a", " "]),
        st.text(max_size=3),
    ),
    max_size=20,
).map("".join)


@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow])
@given(escape_text)
def test_unquote_matches_the_reference(text: str) -> None:
    assert auth_params.unquote(text) == reference_unquote(text)


@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(escape_text, min_size=1, max_size=3))
def test_every_scan_path_agrees_on_escaped_values(texts: list[str]) -> None:
    value = ", ".join(f'{VALID}, d="{text}", e="{text[::-1]}"' for text in texts)
    careful = [(r.scheme, r.params, r.defect) for r in auth_params._scan_any(value)]
    for fast in (auth_params._scan_all_quoted(value), auth_params._scan_well_formed(value)):
        if fast is not None:
            assert [(r.scheme, r.params, r.defect) for r in fast] == careful


def test_remembered_shapes_and_escapes_give_what_a_first_scan_gives() -> None:
    # The scanner remembers skeletons and escaped values it has read; a repeat must read the
    # same, an unsafe escape must stay refused on the second sight too.
    value = f'{VALID}, description="caf\\u00e9 \\"x\\""'
    first = parse_challenges([value])
    second = parse_challenges([value])
    assert first == second and first[0].description == 'café "x"'
    unsafe = f'{VALID}, description="bell \\u0007"'
    assert parse_challenges([unsafe]) == [] and parse_challenges([unsafe]) == []
    # Case in scheme and names is read the same whether the shape is new or remembered.
    upper = VALID.replace("Payment id", "PAYMENT ID")
    assert parse_challenges([upper]) == parse_challenges([upper]) == parse_challenges([VALID])


def test_the_remembered_shapes_stay_bounded_under_a_server_that_varies_them() -> None:
    for index in range(3 * auth_params._SHAPES_MAX):
        value = f'{VALID}, x{index}="v", description="d\\"{index}"'
        [challenge] = parse_challenges([value])
        assert challenge.description == f'd"{index}'
    assert len(auth_params._SHAPES) <= auth_params._SHAPES_MAX
    assert len(auth_params._UNQUOTED) <= auth_params._SHAPES_MAX
    long_name = "n" * 2000
    parse_challenges([f'{VALID}, {long_name}="v"'])
    assert not any(long_name in key for key in auth_params._SHAPES)
