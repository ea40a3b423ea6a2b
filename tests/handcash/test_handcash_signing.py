"""HandCash Connect request signing: byte-exact against the official SDK and against an
independent implementation (the ``cryptography`` package with RFC 6979 and low-S)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils

from mpp_client.methods.handcash import ConnectSigner, signing_payload
from mpp_client.methods.handcash.json_text import dump_json
from mpp_client.methods.handcash.signing import js_iso_timestamp

VECTORS = json.loads((Path(__file__).parent / "vectors" / "sdk_signatures.json").read_text())
_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def independent_signature(
    auth_token: str, method: str, path: str, timestamp: str, body: str, nonce: str
) -> str:
    """A second implementation: OpenSSL via ``cryptography`` (deterministic ECDSA, RFC 6979),
    normalised to low-S like libsecp256k1 and noble-curves."""
    key = ec.derive_private_key(int(auth_token, 16), ec.SECP256K1())
    message = f"{method}\n{path}\n{timestamp}\n{body}\n{nonce}".encode()
    digest = hashlib.sha256(message).digest()
    der = key.sign(digest, ec.ECDSA(utils.Prehashed(hashes.SHA256()), deterministic_signing=True))
    r, s = utils.decode_dss_signature(der)
    return utils.encode_dss_signature(r, min(s, _N - s)).hex()


@pytest.mark.parametrize("case", VECTORS["cases"], ids=lambda c: f"{c['method']} {c['url']}")
def test_signature_matches_the_official_sdk_byte_for_byte(case: dict[str, str]) -> None:
    signer = ConnectSigner(case["auth_token"])
    moment = datetime.strptime(case["timestamp"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    signed = signer.sign(
        case["method"], case["url"].split("?")[0], case["body"].encode(), now=moment,
        nonce=case["nonce"],
    )  # fmt: skip
    assert signed.public_key == case["public_key"]
    assert signed.timestamp == case["timestamp"]
    assert signed.signature == case["signature"]


@pytest.mark.parametrize("case", VECTORS["cases"], ids=lambda c: f"{c['method']} {c['url']}")
def test_independent_implementation_agrees_with_the_sdk(case: dict[str, str]) -> None:
    assert case["signature"] == independent_signature(
        case["auth_token"],
        case["method"],
        case["url"].split("?")[0],
        case["timestamp"],
        case["body"],
        case["nonce"],
    )


# Pinned: computed once with independent_signature() (OpenSSL) and checked against it below.
PINNED_TOKEN = hashlib.sha256(b"mpp-client pinned vector").hexdigest()
PINNED = {
    "method": "POST",
    "path": "/v3/connect/wallet/pay",
    "timestamp": "2026-11-22T02:17:57.405Z",
    "body": '{"instrumentCurrencyCode":"BSV","receivers":[{"sendAmount":0.05,"destination":"x"}]}',
    "nonce": "k2j4h5g6f7d",
}
PINNED_PUBLIC_KEY = "025666b06c421c1dfb0dbafd6affa57be489bd7125be1e6d1e20a30cb14fb3870b"
PINNED_SIGNATURE = (
    "3044022044731ceb5a4ea354eb46aa2aba59b763acbd37821d16c738a2c5a79e0121ae89"
    "02200ca0a9238db16cc72e0c336f28598ad5adbdcd8b7105931a259624b796f0596d"
)


def test_pinned_vector() -> None:
    signer = ConnectSigner(PINNED_TOKEN)
    moment = datetime(2026, 11, 22, 2, 17, 57, 405000, tzinfo=UTC)
    signed = signer.sign(
        PINNED["method"], PINNED["path"], PINNED["body"].encode(), now=moment,
        nonce=PINNED["nonce"],
    )  # fmt: skip
    assert signed.public_key == PINNED_PUBLIC_KEY
    assert signed.signature == PINNED_SIGNATURE
    assert independent_signature(PINNED_TOKEN, **PINNED) == PINNED_SIGNATURE


def test_pay_body_is_serialised_like_json_stringify() -> None:
    from decimal import Decimal

    pay = next(c for c in VECTORS["cases"] if c["method"] == "POST")
    body = {
        "instrumentCurrencyCode": "BSV",
        "denominationCurrencyCode": "USD",
        "note": "mpp:vector",
        "receivers": [
            {"sendAmount": Decimal(5).scaleb(-2), "destination": "merchant"},
            {"sendAmount": Decimal(1).scaleb(-2), "destination": "fee@handcash.io"},
        ],
        "attachment": {
            "format": "json",
            "value": {"mpp": {"id": "challenge-id-1", "realm": "api.example.com"}},
        },
    }
    assert dump_json(body).decode() == pay["body"]


@pytest.mark.parametrize(
    ("minor", "text"), [(5, "0.05"), (100, "1"), (1000, "10"), (123456, "1234.56"), (10, "0.1")]
)
def test_amounts_are_written_exactly(minor: int, text: str) -> None:
    from decimal import Decimal

    assert dump_json(Decimal(minor).scaleb(-2)) == text.encode()


def test_floats_are_never_written() -> None:
    with pytest.raises(TypeError):
        dump_json({"sendAmount": 0.05})


def test_timestamp_has_milliseconds_and_z() -> None:
    moment = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    assert js_iso_timestamp(moment) == "2026-01-02T03:04:05.678Z"


def test_query_strings_are_not_signed() -> None:
    with pytest.raises(ValueError):
        signing_payload("GET", "/v3/connect/wallet/payment?transactionId=1", "t", b"", "n")


@pytest.mark.parametrize("token", ["", "zz" * 32, "00" * 32, "ab" * 31, "ff" * 32])
def test_invalid_auth_tokens_are_rejected(token: str) -> None:
    with pytest.raises(ValueError) as caught:
        ConnectSigner(token)
    assert token not in str(caught.value) or not token


def test_repr_shows_only_the_public_key() -> None:
    signer = ConnectSigner(PINNED_TOKEN)
    assert PINNED_TOKEN not in repr(signer)
    assert signer.public_key in repr(signer)
