"""Key stores: the encrypted file always; the real OS keyring (Secret Service) headless; unsafe
keyring backends refused; secrets never shown."""

from __future__ import annotations

import json
import logging
import os
import pickle
import stat

import pytest

from mpp_client.errors import KeyStoreError
from mpp_client.wallet import (
    EncryptedFileKeyStore,
    KeyringKeyStore,
    Secret,
    SecretKind,
    open_keystore,
)
from mpp_client.wallet.keystore import keyring_problem

from .secret_service import secret_service

KEY = "0x" + "ab" * 32
FAST = 2**10  # scrypt cost for tests only


def test_secret_is_redacted_everywhere(caplog):
    secret = Secret(KEY, SecretKind.TEMPO_PRIVATE_KEY)
    logging.getLogger("t").warning("key %s %r", secret, secret)
    shown = [repr(secret), str(secret), f"{secret}", f"{secret!r}", caplog.text]
    assert all(KEY not in text for text in shown)
    assert "tempo-private-key" in repr(secret)
    assert secret.reveal() == KEY
    assert secret == Secret(KEY, SecretKind.TEMPO_PRIVATE_KEY) != Secret("x", "other")
    with pytest.raises(TypeError):
        pickle.dumps(secret)
    with pytest.raises(TypeError):
        hash(secret)


def test_encrypted_file_round_trip(tmp_path):
    path = tmp_path / "keys.json"
    store = EncryptedFileKeyStore(path, passphrase="correct horse", scrypt_n=FAST)
    store.set("tempo/main", KEY, kind=SecretKind.TEMPO_PRIVATE_KEY)
    store.set("lnd/macaroon", Secret("0201036c6e64", SecretKind.LIGHTNING_MACAROON))
    store.set("nwc", "nostr+walletconnect://abc?secret=def", kind=SecretKind.LIGHTNING_NWC_URI)
    assert store.names() == {
        "lnd/macaroon": "lightning-macaroon",
        "nwc": "lightning-nwc-uri",
        "tempo/main": "tempo-private-key",
    }
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    raw = path.read_bytes()
    assert KEY.encode() not in raw and b"walletconnect" not in raw and b"0201036c6e64" not in raw
    document = json.loads(raw)
    assert document["kdf"]["name"] == "scrypt" and document["cipher"] == "aes-256-gcm"

    reopened = EncryptedFileKeyStore(path, passphrase="correct horse")
    assert reopened.get("tempo/main") == Secret(KEY, SecretKind.TEMPO_PRIVATE_KEY)
    reopened.delete("nwc")
    assert "nwc" not in reopened and "tempo/main" in reopened
    with pytest.raises(KeyError):
        reopened.get("nwc")
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_wrong_passphrase_is_refused(tmp_path):
    path = tmp_path / "keys.json"
    EncryptedFileKeyStore(path, passphrase="right", scrypt_n=FAST).set("k", KEY)
    with pytest.raises(KeyStoreError, match="wrong passphrase"):
        EncryptedFileKeyStore(path, passphrase="wrong").get("k")


def test_tampered_header_is_refused(tmp_path):
    path = tmp_path / "keys.json"
    EncryptedFileKeyStore(path, passphrase="pw", scrypt_n=FAST).set("k", KEY)
    document = json.loads(path.read_text())
    document["cipher"] = "aes-256-gcm "  # authenticated data changes
    path.write_text(json.dumps(document))
    with pytest.raises(KeyStoreError):
        EncryptedFileKeyStore(path, passphrase="pw").get("k")


def test_absurd_kdf_cost_is_refused(tmp_path):
    path = tmp_path / "keys.json"
    EncryptedFileKeyStore(path, passphrase="pw", scrypt_n=FAST).set("k", KEY)
    document = json.loads(path.read_text())
    document["kdf"]["n"] = 2**30
    path.write_text(json.dumps(document))
    with pytest.raises(KeyStoreError, match="damaged"):
        EncryptedFileKeyStore(path, passphrase="pw").get("k")


def test_passphrase_from_env_and_file(tmp_path, monkeypatch):
    path = tmp_path / "keys.json"
    monkeypatch.setenv("MPP_KEYSTORE_PASSPHRASE", "from-env")
    EncryptedFileKeyStore(path, scrypt_n=FAST).set("k", KEY)
    monkeypatch.delenv("MPP_KEYSTORE_PASSPHRASE")
    secret_file = tmp_path / "pass.txt"
    secret_file.write_text("from-env\n")
    monkeypatch.setenv("MPP_KEYSTORE_PASSPHRASE_FILE", str(secret_file))
    assert EncryptedFileKeyStore(path).get("k").reveal() == KEY


def test_no_passphrase_and_no_terminal_is_an_error(tmp_path, monkeypatch):
    monkeypatch.delenv("MPP_KEYSTORE_PASSPHRASE", raising=False)
    monkeypatch.delenv("MPP_KEYSTORE_PASSPHRASE_FILE", raising=False)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    store = EncryptedFileKeyStore(tmp_path / "keys.json", prompt=False, scrypt_n=FAST)
    with pytest.raises(KeyStoreError, match="MPP_KEYSTORE_PASSPHRASE"):
        store.set("k", KEY)


def test_change_passphrase(tmp_path):
    path = tmp_path / "keys.json"
    store = EncryptedFileKeyStore(path, passphrase="old", scrypt_n=FAST)
    store.set("k", KEY)
    store.change_passphrase("new")
    assert EncryptedFileKeyStore(path, passphrase="new").get("k").reveal() == KEY
    with pytest.raises(KeyStoreError):
        EncryptedFileKeyStore(path, passphrase="old").get("k")


def test_repr_of_stores_shows_no_secret(tmp_path):
    store = EncryptedFileKeyStore(tmp_path / "k.json", passphrase="hunter2", scrypt_n=FAST)
    assert "hunter2" not in repr(store)


# --- unsafe keyring backends --------------------------------------------------------------------


def test_fail_and_null_backends_are_refused():
    from keyring.backends import fail, null

    for backend in (fail.Keyring(), null.Keyring()):
        assert keyring_problem(backend) is not None
        with pytest.raises(KeyStoreError):
            KeyringKeyStore(backend=backend)


def test_plaintext_backend_is_refused():
    # keyrings.alt is not installed (on purpose); a class from that module is refused by name.
    plaintext = type("PlaintextKeyring", (), {"__module__": "keyrings.alt.file"})()
    assert "plain text" in keyring_problem(plaintext)


def test_chain_of_only_unsafe_backends_is_refused():
    from keyring.backends import chainer, fail

    chain = chainer.ChainerBackend.__new__(chainer.ChainerBackend)
    chain.__dict__["backends"] = [fail.Keyring()]
    assert keyring_problem(chain) is not None
    empty = chainer.ChainerBackend.__new__(chainer.ChainerBackend)
    empty.__dict__["backends"] = []
    assert keyring_problem(empty) is not None


def test_open_keystore_falls_back_to_the_file_without_a_keyring(tmp_path, monkeypatch):
    monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS", raising=False)
    monkeypatch.setenv("MPP_KEYSTORE", "file")
    store = open_keystore(tmp_path / "k.json", passphrase="pw")
    assert isinstance(store, EncryptedFileKeyStore)
    monkeypatch.setenv("MPP_KEYSTORE", "bogus")
    with pytest.raises(KeyStoreError):
        open_keystore(tmp_path / "k.json")


# --- the real Secret Service --------------------------------------------------------------------


def test_real_secret_service_headless(tmp_path, monkeypatch):
    from keyring.backends import SecretService

    with secret_service(tmp_path / "home") as env:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        backend = SecretService.Keyring()
        assert keyring_problem(backend) is None
        store = KeyringKeyStore("mpp-client-test", backend=backend)
        store.set("tempo/main", KEY, kind=SecretKind.TEMPO_PRIVATE_KEY)
        store.set("stripe", "sk_test_123", kind=SecretKind.STRIPE_KEY)
        assert store.get("tempo/main") == Secret(KEY, SecretKind.TEMPO_PRIVATE_KEY)
        assert store.names() == {"stripe": "stripe-key", "tempo/main": "tempo-private-key"}
        # It really is in the Secret Service, not in our process.
        assert (
            json.loads(backend.get_password("mpp-client-test", "stripe"))["value"] == "sk_test_123"
        )
        store.delete("stripe")
        assert store.names() == {"tempo/main": "tempo-private-key"}
        with pytest.raises(KeyError):
            store.get("stripe")
        assert "sk_test" not in repr(store)
