"""The Nostr primitives under NWC: NIP-01 event ids and signatures, NIP-04 and NIP-44 v2."""

from __future__ import annotations

import base64

import pytest

from mpp_client.methods.lightning import nostr

ALICE = bytes.fromhex("00" * 31 + "01")
BOB = bytes.fromhex("00" * 31 + "02")


def test_nip44_matches_the_published_v2_vector():
    # NIP-44 test vector "valid/encrypt_decrypt" #1: sec1=1, sec2=2, nonce=1, plaintext "a".
    payload = nostr.nip44_encrypt(
        ALICE, nostr.public_key_of(BOB), "a", nonce=bytes.fromhex("00" * 31 + "01")
    )
    assert payload == (
        "AgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAABee0G5VSK0/9YypIObAtDKfYEAjD35uVkHyB0F4Dwr"
        "cNaCXlCWZKaArsGrY6M9wnuTMxWfp1RTN9Xga8no+kF5Vsb"
    )
    assert nostr.nip44_decrypt(BOB, nostr.public_key_of(ALICE), payload) == "a"


@pytest.mark.parametrize("text", ["a", "x" * 32, "x" * 33, "ünïcode " * 40, "y" * 65535])
def test_nip44_round_trips_and_pads_to_the_specified_length(text):
    payload = nostr.nip44_encrypt(ALICE, nostr.public_key_of(BOB), text)
    raw = base64.b64decode(payload)
    assert len(raw) - 1 - 32 - 32 - 2 == nostr._padded_length(len(text.encode()))
    assert nostr.nip44_decrypt(BOB, nostr.public_key_of(ALICE), payload) == text


@pytest.mark.parametrize(
    ("length", "padded"), [(1, 32), (32, 32), (33, 64), (257, 320), (65535, 65536)]
)
def test_nip44_padding_lengths(length, padded):
    assert nostr._padded_length(length) == padded


def test_nip44_rejects_a_tampered_ciphertext():
    payload = bytearray(
        base64.b64decode(nostr.nip44_encrypt(ALICE, nostr.public_key_of(BOB), "pay"))
    )
    payload[40] ^= 1
    with pytest.raises(nostr.NostrCryptoError, match="MAC"):
        nostr.nip44_decrypt(BOB, nostr.public_key_of(ALICE), base64.b64encode(payload).decode())


def test_nip44_rejects_a_third_party():
    payload = nostr.nip44_encrypt(ALICE, nostr.public_key_of(BOB), "pay")
    with pytest.raises(nostr.NostrCryptoError):
        nostr.nip44_decrypt(bytes.fromhex("00" * 31 + "03"), nostr.public_key_of(ALICE), payload)


def test_nip04_round_trip_and_garbage():
    payload = nostr.nip04_encrypt(ALICE, nostr.public_key_of(BOB), "hello")
    assert "?iv=" in payload
    assert nostr.nip04_decrypt(BOB, nostr.public_key_of(ALICE), payload) == "hello"
    with pytest.raises(nostr.NostrCryptoError):
        nostr.nip04_decrypt(BOB, nostr.public_key_of(ALICE), "bm90?iv=short")


def test_signed_event_verifies_and_tampering_is_detected():
    event = nostr.sign_event(ALICE, 23194, "content", [["p", "ab" * 32]], created_at=1700000000)
    assert event["pubkey"] == nostr.public_key_of(ALICE)
    assert nostr.verify_event(event)
    assert not nostr.verify_event({**event, "content": "other"})
    assert not nostr.verify_event({**event, "pubkey": nostr.public_key_of(BOB)})
    assert not nostr.verify_event({**event, "sig": "00" * 64})
    assert not nostr.verify_event({"id": "x"})
