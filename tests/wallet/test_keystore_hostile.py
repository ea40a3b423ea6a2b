"""Hostile key files: anything but a well-formed key file of a known version is a
``KeyStoreError`` naming the file, before any key is derived, and the file is left untouched;
files others can read are refused with the fix; a held lock times out naming its holder."""

from __future__ import annotations

import base64
import json
import os
import socket
import stat
from pathlib import Path
from typing import Any

import pytest

from mpp_client.errors import KeyStoreError
from mpp_client.wallet import EncryptedFileKeyStore

FAST = 2**10  # scrypt cost for tests only
KEY = "0x" + "cd" * 32


def _valid(path: Path) -> dict[str, Any]:
    EncryptedFileKeyStore(path, passphrase="pw", scrypt_n=FAST).set("k", KEY)
    document: dict[str, Any] = json.loads(path.read_text())
    return document


def _never_asked() -> str:
    raise AssertionError("the passphrase was asked for: a key was about to be derived")


def _with(**changes: Any) -> Any:
    def mutate(document: dict[str, Any]) -> bytes:
        for dotted, value in changes.items():
            target = document
            *parents, last = dotted.split("__")
            for parent in parents:
                target = target[parent]
            if value is _DROP:
                del target[last]
            else:
                target[last] = value
        return json.dumps(document).encode()

    return mutate


_DROP = object()


def _raw(data: bytes) -> Any:
    return lambda document: data


def _b64(n: int) -> str:
    return base64.b64encode(b"\0" * n).decode()


# (case, how the file is made from a valid document, text the error must contain)
HOSTILE = [
    ("an empty list", _raw(b"[]"), "is not an mpp-client key file"),
    ("an empty object", _raw(b"{}"), "is not an mpp-client key file"),
    ("JSON null", _raw(b"null"), "is not an mpp-client key file"),
    ("a JSON string", _raw(b'"mpp-client-keystore"'), "is not an mpp-client key file"),
    ("a number", _raw(b"42"), "is not an mpp-client key file"),
    ("an empty file", _raw(b""), "is not JSON"),
    ("not JSON", _raw(b"hello, world"), "is not JSON"),
    ("not UTF-8", _raw(b'{"format": "\xff\xfe"}'), "is not UTF-8"),
    ("UTF-16", _raw('{"format": 1}'.encode("utf-16")), "is not UTF-8"),
    ("truncated", lambda d: json.dumps(d).encode()[:60], "is not JSON"),
    ("another format", _with(format="something-else"), "is not an mpp-client key file"),
    ("version 0", _with(version=0), "unknown format version 0"),
    ("version as text", _with(version="1"), "unknown format version '1'"),
    ("version true", _with(version=True), "unknown format version True"),
    ("no version", _with(version=_DROP), "unknown format version None"),
    ("kdf missing", _with(kdf=_DROP), "not scrypt"),
    ("kdf a list", _with(kdf=[]), "not scrypt"),
    ("kdf pbkdf2", _with(kdf__name="pbkdf2"), "not scrypt"),
    ("n not a power of two", _with(kdf__n=1000), "n=1000 is not a power of two"),
    ("n is 1", _with(kdf__n=1), "n=1 is not a power of two"),
    ("n negative", _with(kdf__n=-1024), "is not a power of two"),
    ("n as text", _with(kdf__n="1024"), "must be integers"),
    ("n a float", _with(kdf__n=1024.0), "must be integers"),
    ("r zero", _with(kdf__r=0), "r and p must be at least 1"),
    ("p zero", _with(kdf__p=0), "r and p must be at least 1"),
    ("r negative", _with(kdf__r=-8), "r and p must be at least 1"),
    ("4 GiB of memory", _with(kdf__n=2**22), "needs 4096 MiB (at most 256 MiB)"),
    ("512 MiB of memory", _with(kdf__n=2**16, kdf__r=64), "needs 512 MiB"),
    ("too much work", _with(kdf__n=2**17, kdf__p=64), "too costly"),
    ("no salt", _with(kdf__salt=_DROP), "not base64"),
    ("salt not base64", _with(kdf__salt="!!!"), "not base64"),
    ("empty salt", _with(kdf__salt=""), "wrong length"),
    ("nonce too short", _with(nonce=_b64(4)), "wrong length"),
    ("nonce not text", _with(nonce=12), "not base64"),
    ("ciphertext too short", _with(ciphertext=_b64(3)), "wrong length"),
    ("another cipher", _with(cipher="rot13"), "not aes-256-gcm"),
    ("no cipher", _with(cipher=_DROP), "not aes-256-gcm"),
    ("a newer format", _with(version=2), "format version 2, newer than this mpp-client reads (1)"),
    ("much newer", _with(version=99, kdf="argon2id"), "newer than this mpp-client reads"),
]


@pytest.mark.parametrize(("case", "make", "message"), HOSTILE, ids=[c[0] for c in HOSTILE])
def test_a_hostile_key_file_is_refused_untouched(tmp_path, case, make, message):
    path = tmp_path / "keys.json"
    path.write_bytes(make(_valid(path)))
    os.chmod(path, 0o600)  # the damage is under test, not the mode
    before = path.read_bytes()
    store = EncryptedFileKeyStore(path, passphrase=_never_asked, scrypt_n=FAST)
    for attempt in (
        lambda: store.get("k"),
        store.names,
        lambda: store.set("k", "replacement"),
        lambda: store.delete("k"),
        lambda: store.change_passphrase("new"),
    ):
        with pytest.raises(KeyStoreError) as refused:
            attempt()
        text = str(refused.value)
        assert message in text
        assert str(path) in text
        assert "Traceback" not in text
        # Raised from nothing: printing it shows one line, not a chain of internals.
        assert refused.value.__cause__ is None
        assert refused.value.__context__ is None or refused.value.__suppress_context__
    assert path.read_bytes() == before
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keys.json", "keys.json.lock"]


def test_a_newer_format_says_upgrade_and_is_never_rewritten(tmp_path):
    path = tmp_path / "keys.json"
    document = _valid(path)
    document["version"] = 2
    document["extra"] = "what version 2 keeps"
    path.write_text(json.dumps(document))
    before = path.read_bytes()
    store = EncryptedFileKeyStore(path, passphrase="pw", scrypt_n=FAST)
    with pytest.raises(KeyStoreError, match="upgrade mpp-client"):
        store.set("new", "value")
    assert path.read_bytes() == before


def test_an_oversized_file_is_not_read(tmp_path):
    path = tmp_path / "keys.json"
    with open(path, "wb") as handle:
        handle.truncate(16 * 2**20 + 1)  # sparse: no 16 MiB written
    os.chmod(path, 0o600)
    with pytest.raises(KeyStoreError, match="larger than 16 MiB"):
        EncryptedFileKeyStore(path, passphrase=_never_asked).names()


def test_a_directory_in_place_of_the_file(tmp_path):
    path = tmp_path / "keys.json"
    path.mkdir()
    with pytest.raises(KeyStoreError, match=r"keys\.json"):
        EncryptedFileKeyStore(path, passphrase=_never_asked).names()


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620, 0o602, 0o666])
def test_a_key_file_others_can_access_is_refused_with_the_fix(tmp_path, mode):
    path = tmp_path / "keys.json"
    _valid(path)
    os.chmod(path, mode)
    before = path.read_bytes()
    store = EncryptedFileKeyStore(path, passphrase=_never_asked, scrypt_n=FAST)
    for attempt in (lambda: store.get("k"), lambda: store.set("k", "x")):
        with pytest.raises(KeyStoreError) as refused:
            attempt()
        assert f"run `chmod 600 {path}`" in str(refused.value)
        assert f"mode {mode:04o}" in str(refused.value)
    assert path.read_bytes() == before
    assert stat.S_IMODE(os.stat(path).st_mode) == mode  # the fix is the owner's to make
    os.chmod(path, 0o600)
    assert EncryptedFileKeyStore(path, passphrase="pw").get("k").reveal() == KEY


def test_a_non_utf8_passphrase_file_is_a_key_store_error(tmp_path, monkeypatch):
    secret = tmp_path / "pass"
    secret.write_bytes(b"\xff\xfe\xfa")
    monkeypatch.delenv("MPP_KEYSTORE_PASSPHRASE", raising=False)
    store = EncryptedFileKeyStore(tmp_path / "keys.json", passphrase_file=secret, scrypt_n=FAST)
    with pytest.raises(KeyStoreError, match="not UTF-8"):
        store.set("k", KEY)


@pytest.mark.parametrize("n", [2**9, 2**19, 2**20, 3 * 2**12, True])
def test_new_files_take_bounded_costs_only(tmp_path, n):
    with pytest.raises(ValueError, match="power of two between 2\\*\\*10 and 2\\*\\*18"):
        EncryptedFileKeyStore(tmp_path / "keys.json", passphrase="pw", scrypt_n=n)


# --- the writers' lock ------------------------------------------------------------------------


def test_a_held_lock_times_out_naming_the_holder(tmp_path):
    path = tmp_path / "keys.json"
    _valid(path)
    before = path.read_bytes()
    holder = EncryptedFileKeyStore(path, passphrase="pw", scrypt_n=FAST)
    waiter = EncryptedFileKeyStore(path, passphrase="pw", scrypt_n=FAST, lock_timeout=0.05)
    with holder._exclusive():  # held by this test, as another `mpp` process would
        with pytest.raises(KeyStoreError) as refused:
            waiter.set("k2", "v")
        text = str(refused.value)
        assert f"locked by pid {os.getpid()} on host {socket.gethostname()}" in text
        assert "gave up after 0.05 s" in text and f"{path}.lock" in text
        assert waiter.get("k").reveal() == KEY  # readers take no lock
    assert path.read_bytes() == before
    waiter.set("k2", "v")  # released: the next writer gets it at once
    assert waiter.names() == {"k": "other", "k2": "other"}
    assert Path(f"{path}.lock").read_bytes() == b""  # the holder's name is cleared


def test_a_lock_holder_that_wrote_nothing_readable(tmp_path):
    fcntl = pytest.importorskip("fcntl")
    path = tmp_path / "keys.json"
    lock = Path(f"{path}.lock")
    lock.write_bytes(b"\x1b[31m{not json")
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        store = EncryptedFileKeyStore(path, passphrase="pw", scrypt_n=FAST, lock_timeout=0)
        with pytest.raises(KeyStoreError, match="another process \\(it did not say which\\)"):
            store.set("k", KEY)
    finally:
        os.close(fd)
    assert not path.exists()


def test_a_hostile_holder_name_is_not_echoed(tmp_path):
    fcntl = pytest.importorskip("fcntl")
    path = tmp_path / "keys.json"
    lock = Path(f"{path}.lock")
    lock.write_text(json.dumps({"pid": 1, "host": "evil\x1b[2J"}))
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        store = EncryptedFileKeyStore(path, passphrase="pw", scrypt_n=FAST, lock_timeout=0)
        with pytest.raises(KeyStoreError) as refused:
            store.set("k", KEY)
    finally:
        os.close(fd)
    assert "\x1b" not in str(refused.value)


def test_lock_timeout_must_be_a_number_of_seconds(tmp_path):
    with pytest.raises(ValueError, match="lock_timeout"):
        EncryptedFileKeyStore(tmp_path / "k.json", passphrase="pw", lock_timeout=-1)
    with pytest.raises(ValueError, match="lock_timeout"):
        EncryptedFileKeyStore(tmp_path / "k.json", passphrase="pw", lock_timeout=float("nan"))
