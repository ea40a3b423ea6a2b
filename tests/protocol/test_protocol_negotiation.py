"""Accept-Payment (§11) and body digests (§9)."""

from __future__ import annotations

import pytest

from mpp_client.errors import FormatError, ParseError
from mpp_client.protocol import (
    AcceptPaymentEntry,
    content_digest,
    digest_matches,
    format_accept_payment,
    parse_accept_payment,
)

SPEC_EXAMPLE = "tempo/charge, tempo/session;q=0.5, stripe/*;q=0.2, */session;q=0"
SPEC_ENTRIES = [
    AcceptPaymentEntry("tempo", "charge"),
    AcceptPaymentEntry("tempo", "session", 500),
    AcceptPaymentEntry("stripe", "*", 200),
    AcceptPaymentEntry("*", "session", 0),
]


def test_format_accept_payment_writes_the_spec_example() -> None:
    assert format_accept_payment(SPEC_ENTRIES) == SPEC_EXAMPLE


def test_format_accept_payment_writes_three_decimal_q_values() -> None:
    entries = [AcceptPaymentEntry("a", "b", 1), AcceptPaymentEntry("a", "c", 999)]
    assert format_accept_payment(entries) == "a/b;q=0.001, a/c;q=0.999"


def test_format_accept_payment_of_nothing_is_empty() -> None:
    assert format_accept_payment([]) == ""


@pytest.mark.parametrize(
    "entry",
    [
        AcceptPaymentEntry("Tempo", "charge"),
        AcceptPaymentEntry("tempo", "char/ge"),
        AcceptPaymentEntry("tempo", "charge", 1001),
        AcceptPaymentEntry("tempo", "charge", -1),
        AcceptPaymentEntry("tempo\r\n", "charge"),
    ],
)
def test_format_accept_payment_refuses_invalid_entries(entry: AcceptPaymentEntry) -> None:
    with pytest.raises(FormatError):
        format_accept_payment([entry])


def test_parse_accept_payment_reads_the_spec_example() -> None:
    assert parse_accept_payment(SPEC_EXAMPLE) == SPEC_ENTRIES


def test_parse_accept_payment_tolerates_whitespace_empty_elements_and_other_params() -> None:
    assert parse_accept_payment(
        " tempo/charge ; foo=bar ; Q=0.25 ,, lightning/charge;q=1.000 "
    ) == [
        AcceptPaymentEntry("tempo", "charge", 250),
        AcceptPaymentEntry("lightning", "charge", 1000),
    ]


@pytest.mark.parametrize(
    "value",
    [
        "tempo",
        "Tempo/charge",
        "tempo/charge;q=2",
        "tempo/charge;q=0.1234",
        "tempo/charge;q",
        "a/b c",
    ],
)
def test_parse_accept_payment_rejects_malformed_elements(value: str) -> None:
    with pytest.raises(ParseError):
        parse_accept_payment(value)


def test_accept_payment_round_trips() -> None:
    assert parse_accept_payment(format_accept_payment(SPEC_ENTRIES)) == SPEC_ENTRIES


# --- digests ------------------------------------------------------------------------------------

BODY = b'{"prompt":"hello"}'
BODY_SHA256 = "ikRyUhC53NT+/Z8Oyge3CuReaSdKMQX7JetCaiz4u/Q="


def test_content_digest_writes_the_rfc9530_form() -> None:
    assert content_digest(BODY) == f"sha-256=:{BODY_SHA256}:"
    assert content_digest(BODY, "SHA-512").startswith("sha-512=:")


def test_content_digest_refuses_unknown_algorithms() -> None:
    with pytest.raises(FormatError):
        content_digest(BODY, "md5")


@pytest.mark.parametrize(
    "digest",
    [
        f"sha-256=:{BODY_SHA256}:",
        f"sha-256={BODY_SHA256}",
        f"SHA-256={BODY_SHA256.rstrip('=')}",
        f"unknown=:abc:, sha-256=:{BODY_SHA256}:",
        content_digest(BODY, "sha-512"),
        f"{content_digest(BODY, 'sha-512')}, sha-256=:{BODY_SHA256}:;param=1",
    ],
)
def test_digest_matches_accepts_both_forms_for_the_same_body(digest: str) -> None:
    assert digest_matches(digest, BODY) is True


def test_digest_matches_is_false_for_another_body() -> None:
    assert digest_matches(f"sha-256=:{BODY_SHA256}:", b'{"prompt":"HELLO"}') is False


@pytest.mark.parametrize(
    "digest",
    [
        f"sha-256=:{BODY_SHA256}:, sha-512=:AAAA:",  # one known member fails: refuse
        "sha-256=:not base64!:",
        "sha-256=",
        "sha-256=:YQ:",
    ],
)
def test_digest_matches_is_false_when_any_known_member_fails_or_is_malformed(digest: str) -> None:
    assert digest_matches(digest, BODY) is False


@pytest.mark.parametrize("digest", ["md5=:abc:", "", "garbage", "sha-384=:abc:"])
def test_digest_matches_is_none_when_no_algorithm_is_known(digest: str) -> None:
    assert digest_matches(digest, BODY) is None
