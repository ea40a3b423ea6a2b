"""The key store: where a wallet's secrets live (Tempo private keys, Lightning backend secrets
such as NWC URIs, macaroons, runes and API keys, Stripe keys, HandCash tokens).

Two stores, one interface (``KeyStore``):

* ``KeyringKeyStore``: the operating system's keyring through the ``keyring`` package (macOS
  Keychain, Windows Credential Locker, the freedesktop Secret Service). Backends that would keep
  secrets in plain text or drop them (``keyrings.alt``'s ``PlaintextKeyring``, the ``fail`` and
  ``null`` backends, a chain of only those) are refused with ``KeyStoreError``.
* ``EncryptedFileKeyStore``: for headless machines. One file, scrypt key derivation and
  AES-256-GCM (``cryptography``), mode 0600, replaced atomically. The passphrase comes from an
  argument, ``$MPP_KEYSTORE_PASSPHRASE``, a file named by ``$MPP_KEYSTORE_PASSPHRASE_FILE``, a
  systemd credential (``$CREDENTIALS_DIRECTORY/mpp-keystore-passphrase``), or a prompt when a
  terminal is attached; never a default.

  A key file is read as hostile input: anything but a well-formed file of this format is a
  ``KeyStoreError`` naming the file, and the file is left as it is. Refused: a file other users
  may read or write (the error says ``chmod 600 PATH``), a file of a newer format version
  (reported as newer, never rewritten), scrypt parameters that are not ``N`` a power of two,
  ``r >= 1``, ``p >= 1`` within the cost bounds below (``_MAX_SCRYPT_MEMORY``), and a file over
  ``_MAX_FILE_BYTES``. Writers wait at most ``lock_timeout`` seconds for another writer; the
  error names the process holding the lock.

``open_keystore()`` picks the keyring when a safe backend is available, else the file.
Secrets come back as ``Secret`` values whose ``repr`` and ``str`` are redacted; ``reveal()``
returns the text.
"""

from __future__ import annotations

import abc
import base64
import contextlib
import getpass
import hmac
import json
import os
import secrets
import socket
import stat
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Final, NoReturn

from mpp_client.errors import KeyStoreError, MissingExtra
from mpp_client.extras import require_extra

__all__ = [
    "EncryptedFileKeyStore",
    "KeyStore",
    "KeyringKeyStore",
    "Secret",
    "SecretKind",
    "default_keystore_path",
    "keyring_problem",
    "open_keystore",
]


class SecretKind:
    """Names for the kinds of secret a wallet holds (free text is allowed too)."""

    TEMPO_PRIVATE_KEY: Final = "tempo-private-key"
    LIGHTNING_NWC_URI: Final = "lightning-nwc-uri"
    LIGHTNING_MACAROON: Final = "lightning-macaroon"
    LIGHTNING_RUNE: Final = "lightning-rune"
    LIGHTNING_API_KEY: Final = "lightning-api-key"
    STRIPE_KEY: Final = "stripe-key"
    HANDCASH_TOKEN: Final = "handcash-token"  # noqa: S105 - a label
    OTHER: Final = "other"


class Secret:
    """A secret value that never shows itself: ``repr``/``str``/f-strings print
    ``<redacted>``; ``reveal()`` returns the text. Compared in constant time; not picklable."""

    __slots__ = ("_value", "kind")

    def __init__(self, value: str, kind: str = SecretKind.OTHER) -> None:
        if not isinstance(value, str):
            raise TypeError("a Secret holds text")
        self._value = value
        self.kind = kind

    def reveal(self) -> str:
        """The secret text. Pass it straight to what needs it; do not log it."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret(kind={self.kind!r}, value=<redacted>)"

    def __str__(self) -> str:
        return "<redacted>"

    def __format__(self, spec: str) -> str:
        return "<redacted>"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return self.kind == other.kind and hmac.compare_digest(
            self._value.encode(), other._value.encode()
        )

    __hash__ = None  # type: ignore[assignment]  # hashing would make secrets guessable keys

    def __reduce__(self) -> NoReturn:
        raise TypeError("secrets are not picklable")


class KeyStore(abc.ABC):
    """Named secrets of several kinds. Names are short identifiers (``"tempo/main"``)."""

    @abc.abstractmethod
    def get(self, name: str) -> Secret:
        """The secret called ``name``; ``KeyError`` when there is none."""

    @abc.abstractmethod
    def set(self, name: str, value: str | Secret, *, kind: str | None = None) -> None:
        """Store (or replace) ``name``. ``kind`` defaults to the ``Secret``'s kind."""

    @abc.abstractmethod
    def delete(self, name: str) -> None:
        """Remove ``name``; ``KeyError`` when there is none."""

    @abc.abstractmethod
    def names(self) -> dict[str, str]:
        """Every stored name with its kind (no values)."""

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self.names()


def _check_name(name: str) -> None:
    if not name or len(name) > 200 or any(ord(c) < 32 for c in name) or name.startswith("__"):
        raise KeyStoreError(f"invalid secret name {name!r}")


def _secret_of(value: str | Secret, kind: str | None) -> Secret:
    if isinstance(value, Secret):
        return Secret(value.reveal(), kind or value.kind)
    return Secret(value, kind or SecretKind.OTHER)


# --- OS keyring --------------------------------------------------------------------------------

_UNSAFE_MODULES = ("keyring.backends.fail", "keyring.backends.null")


def _unsafe(backend: Any) -> str | None:
    cls = type(backend)
    module, name = cls.__module__, cls.__name__
    if module.startswith(_UNSAFE_MODULES):
        return f"{module}.{name} stores nothing"
    if module.startswith("keyrings.alt") and "Plaintext" in name:
        return f"{module}.{name} keeps secrets in plain text"
    return None


def keyring_problem(backend: Any = None) -> str | None:
    """Why the keyring ``backend`` (default: ``keyring.get_keyring()``) must not hold wallet
    secrets, or ``None`` when it is acceptable."""
    try:
        import keyring
        from keyring.backends import chainer
    except ImportError:
        try:
            require_extra("keyring", "the OS keyring")
        except MissingExtra as exc:
            return str(exc)
        raise
    if backend is None:
        try:
            backend = keyring.get_keyring()
        except Exception as exc:  # a broken keyring config: report, do not crash
            return f"no keyring backend: {type(exc).__name__}"
    if isinstance(backend, chainer.ChainerBackend):
        members = list(backend.backends)
        if not members:
            return "the keyring chain has no usable backend"
        for member in members:
            if (reason := _unsafe(member)) is not None:
                return f"the keyring chain includes {reason}"
        return None
    return _unsafe(backend)


class KeyringKeyStore(KeyStore):
    """Secrets in the OS keyring, under ``service``. Each secret is one keyring entry (the value
    with its kind, as JSON); an index entry lists the names, because keyrings cannot list.

    ``backend``: a ``keyring`` backend object (default: ``keyring.get_keyring()``); an unsafe
    backend raises ``KeyStoreError`` here, before anything is stored.
    """

    _INDEX = "__index__"

    def __init__(self, service: str = "mpp-client", *, backend: Any = None) -> None:
        problem = keyring_problem(backend)
        if problem is not None:
            raise KeyStoreError(f"the OS keyring cannot hold wallet secrets: {problem}")
        import keyring

        self.service = service
        self._backend = backend if backend is not None else keyring.get_keyring()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"KeyringKeyStore(service={self.service!r}, backend={type(self._backend).__name__})"

    def _call(self, what: str, func: Callable[..., Any], *args: Any) -> Any:
        try:
            return func(*args)
        except Exception as exc:
            # Keyring errors can quote what was passed; only the type is reported.
            raise KeyStoreError(f"the OS keyring failed to {what}: {type(exc).__name__}") from None

    def _index(self) -> dict[str, str]:
        raw = self._call("read", self._backend.get_password, self.service, self._INDEX)
        if not raw:
            return {}
        try:
            data = json.loads(raw)
        except ValueError:
            raise KeyStoreError("the keyring index entry is corrupt") from None
        return {str(k): str(v) for k, v in data.items()}

    def _write_index(self, index: dict[str, str]) -> None:
        text = json.dumps(index, sort_keys=True)
        self._call("write", self._backend.set_password, self.service, self._INDEX, text)

    def get(self, name: str) -> Secret:
        _check_name(name)
        raw = self._call("read", self._backend.get_password, self.service, name)
        if raw is None:
            raise KeyError(name)
        try:
            data = json.loads(raw)
            return Secret(str(data["value"]), str(data["kind"]))
        except (ValueError, KeyError, TypeError):
            raise KeyStoreError(f"keyring entry {name!r} is not an mpp-client secret") from None

    def set(self, name: str, value: str | Secret, *, kind: str | None = None) -> None:
        _check_name(name)
        secret = _secret_of(value, kind)
        text = json.dumps({"kind": secret.kind, "value": secret.reveal()})
        with self._lock:
            self._call("write", self._backend.set_password, self.service, name, text)
            index = self._index()
            index[name] = secret.kind
            self._write_index(index)

    def delete(self, name: str) -> None:
        _check_name(name)
        with self._lock:
            index = self._index()
            if (
                name not in index
                and self._call("read", self._backend.get_password, self.service, name) is None
            ):
                raise KeyError(name)
            with contextlib.suppress(KeyStoreError):
                self._call("delete", self._backend.delete_password, self.service, name)
            index.pop(name, None)
            self._write_index(index)

    def names(self) -> dict[str, str]:
        return self._index()


# --- encrypted file ----------------------------------------------------------------------------

_FORMAT = "mpp-client-keystore"
PASSPHRASE_ENV = "MPP_KEYSTORE_PASSPHRASE"  # noqa: S105 - a variable name
PASSPHRASE_FILE_ENV = "MPP_KEYSTORE_PASSPHRASE_FILE"  # noqa: S105 - a variable name
_SYSTEMD_CREDENTIAL = "mpp-keystore-passphrase"
_VERSION = 1
# scrypt cost: 128 * r * N bytes of memory and time in proportion to 128 * r * N * p. The
# default, N=2**15, r=8, p=1, is 32 MiB and ~0.1 s per unlock. A key file names its own
# parameters, so a planted or corrupted file could ask for 4 GiB or an hour of CPU: files
# needing more than 256 MiB of memory (128 * r * N) or more than 256 MiB worth of work
# (128 * r * N * p, about 1 s here) are refused before anything is derived.
DEFAULT_SCRYPT_N = 2**15
_SCRYPT_R = 8
_MAX_SCRYPT_MEMORY = 256 * 2**20
#: The largest N for new files (with r=8: 128 * 8 * 2**18 = 256 MiB).
_MAX_SCRYPT_N = _MAX_SCRYPT_MEMORY // (128 * _SCRYPT_R)
# A key file holds a few secrets (kilobytes); reading a planted multi-gigabyte file would only
# exhaust memory.
_MAX_FILE_BYTES = 16 * 2**20
#: Default of ``EncryptedFileKeyStore(lock_timeout=...)``: a writer holds the lock for one
#: scrypt derivation and one atomic write (well under a second).
DEFAULT_LOCK_TIMEOUT = 30.0


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _scrypt_problem(n: Any, r: Any, p: Any) -> str | None:
    """Why scrypt parameters from a file must not be used, or ``None``."""
    if not (_is_int(n) and _is_int(r) and _is_int(p)):
        return "scrypt parameters n, r and p must be integers"
    if n < 2 or n & (n - 1):
        return f"scrypt n={n} is not a power of two"
    if r < 1 or p < 1:
        return "scrypt r and p must be at least 1"
    if 128 * r * n > _MAX_SCRYPT_MEMORY:
        return (
            f"scrypt n={n}, r={r} needs {128 * r * n // 2**20} MiB "
            f"(at most {_MAX_SCRYPT_MEMORY // 2**20} MiB)"
        )
    if 128 * r * n * p > _MAX_SCRYPT_MEMORY:
        return f"scrypt n={n}, r={r}, p={p} is too costly to derive"
    return None


def default_keystore_path() -> str:
    """``$MPP_KEYSTORE_FILE``, else ``keystore.json`` next to the default journal."""
    if env := os.environ.get("MPP_KEYSTORE_FILE"):
        return env
    from mpp_client.wallet.journal import default_journal_path

    return os.path.join(os.path.dirname(default_journal_path()), "keystore.json")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: Any) -> bytes:
    if not isinstance(text, str):
        raise ValueError("expected base64 text")
    return base64.b64decode(text, validate=True)


class EncryptedFileKeyStore(KeyStore):
    """Secrets in one file encrypted with AES-256-GCM under a key derived from a passphrase with
    scrypt. The file is created with mode 0600 and replaced atomically on every change; writers
    in several processes are serialised with a lock file.

    ``passphrase``: the text, a ``Secret``, or a callable returning it; when ``None`` it is read
    from ``$MPP_KEYSTORE_PASSPHRASE``, the file named by ``$MPP_KEYSTORE_PASSPHRASE_FILE``
    (``passphrase_file`` overrides), a systemd credential, or a terminal prompt
    (``prompt=True``). ``scrypt_n`` is the scrypt cost for NEW files (a power of two between
    2**10 and 2**18, so at most 256 MiB). ``lock_timeout``: how long a writer waits, seconds,
    for another process changing the file before ``KeyStoreError`` names that process.

    The file must not be readable or writable by other users (``chmod 600``); a file that is
    not a well-formed key file of a version this code reads is refused, untouched.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        passphrase: str | Secret | Callable[[], str] | None = None,
        passphrase_file: str | os.PathLike[str] | None = None,
        prompt: bool = True,
        scrypt_n: int = DEFAULT_SCRYPT_N,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    ) -> None:
        require_extra("keyring", "the encrypted key file", modules=("cryptography",))
        if (
            not _is_int(scrypt_n)
            or scrypt_n < 2**10
            or scrypt_n > _MAX_SCRYPT_N
            or scrypt_n & (scrypt_n - 1)
        ):
            raise ValueError("scrypt_n must be a power of two between 2**10 and 2**18")
        if not lock_timeout >= 0:
            raise ValueError("lock_timeout must be at least 0 seconds")
        self.path = os.fspath(path) if path is not None else default_keystore_path()
        self._passphrase_arg = passphrase
        self._passphrase_file = passphrase_file
        self._prompt = prompt
        self._scrypt_n = scrypt_n
        self._lock_timeout = float(lock_timeout)
        self._key: tuple[bytes, bytes] | None = None  # (salt, key)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"EncryptedFileKeyStore({self.path!r})"

    # passphrase -----------------------------------------------------------------------------

    def _passphrase(self) -> str:
        given = self._passphrase_arg
        if isinstance(given, Secret):
            return given.reveal()
        if isinstance(given, str):
            return given
        if callable(given):
            return str(given())
        if env := os.environ.get(PASSPHRASE_ENV):
            return env
        file = self._passphrase_file or os.environ.get(PASSPHRASE_FILE_ENV)
        if not file and (creds := os.environ.get("CREDENTIALS_DIRECTORY")):
            candidate = os.path.join(creds, _SYSTEMD_CREDENTIAL)
            file = candidate if os.path.exists(candidate) else None
        if file:
            try:
                with open(file, encoding="utf-8") as handle:
                    text = handle.read().rstrip("\r\n")
            except OSError as exc:
                raise KeyStoreError(f"cannot read the passphrase file: {exc.strerror}") from None
            except UnicodeDecodeError:
                raise KeyStoreError(f"the passphrase file {file} is not UTF-8 text") from None
            if text:
                return text
            raise KeyStoreError("the passphrase file is empty")
        if self._prompt and sys.stdin is not None and sys.stdin.isatty():
            return getpass.getpass(f"Passphrase for {self.path}: ")
        raise KeyStoreError(
            f"no passphrase for the key file: set {PASSPHRASE_ENV} or {PASSPHRASE_FILE_ENV}"
        )

    def _derive(self, salt: bytes, n: int, r: int, p: int) -> bytes:
        from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

        if self._key is not None and self._key[0] == salt:
            return self._key[1]
        passphrase = self._passphrase()
        if not passphrase:
            raise KeyStoreError("the key file passphrase is empty")
        key = Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase.encode())
        self._key = (salt, key)
        return key

    # file format ----------------------------------------------------------------------------

    def _read(self) -> tuple[dict[str, dict[str, str]], dict[str, Any] | None]:
        """(secrets, header) — header is ``None`` when the file does not exist yet. Nothing here
        writes: a file refused for any reason is left exactly as it is."""
        raw = self._read_bytes()
        if raw is None:
            return {}, None
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        header, salt, nonce, ciphertext = self._parse(raw)
        kdf = header["kdf"]
        key = self._derive(salt, kdf["n"], kdf["r"], kdf["p"])
        try:
            plain = AESGCM(key).decrypt(nonce, ciphertext, _aad(header))
        except InvalidTag:
            self._key = None
            raise KeyStoreError(
                f"wrong passphrase, or the key file {self.path} was modified"
            ) from None
        return self._secrets(plain), header

    def _read_bytes(self) -> bytes | None:
        try:
            with open(self.path, "rb") as handle:
                info = os.fstat(handle.fileno())
                if not stat.S_ISREG(info.st_mode):
                    raise KeyStoreError(f"the key file {self.path} is not a regular file")
                if os.name != "nt" and info.st_mode & 0o077:
                    # Like ssh with private keys: a file others may read (or replace) is not
                    # used, and the fix is the owner's to make, not ours to guess.
                    raise KeyStoreError(
                        f"the key file {self.path} is accessible by other users "
                        f"(mode {stat.S_IMODE(info.st_mode):04o}); run `chmod 600 {self.path}`"
                    )
                raw = handle.read(_MAX_FILE_BYTES + 1)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise KeyStoreError(f"cannot read the key file {self.path}: {exc.strerror}") from None
        if len(raw) > _MAX_FILE_BYTES:
            raise KeyStoreError(
                f"the key file {self.path} is larger than {_MAX_FILE_BYTES // 2**20} MiB; "
                "it is not an mpp-client key file"
            )
        return raw

    def _damaged(self, why: str) -> KeyStoreError:
        return KeyStoreError(f"the key file {self.path} is damaged: {why}; it was left unchanged")

    def _parse(self, raw: bytes) -> tuple[dict[str, Any], bytes, bytes, bytes]:
        """(header, salt, nonce, ciphertext) of a key file, checked before any key is derived."""
        try:
            document = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise self._damaged("it is not UTF-8 text") from None
        except ValueError:
            raise self._damaged("it is not JSON (truncated, or overwritten)") from None
        if not isinstance(document, dict) or document.get("format") != _FORMAT:
            raise KeyStoreError(f"{self.path} is not an mpp-client key file; it was left unchanged")
        version = document.get("version")
        if isinstance(version, int) and not isinstance(version, bool) and version > _VERSION:
            # Rewriting it in our format would drop what the newer version stores.
            raise KeyStoreError(
                f"the key file {self.path} has format version {version}, newer than this "
                f"mpp-client reads ({_VERSION}): upgrade mpp-client; the file was left unchanged"
            )
        if version != _VERSION or not _is_int(version):
            raise self._damaged(f"unknown format version {version!r}")
        kdf = document.get("kdf")
        if not isinstance(kdf, dict) or kdf.get("name") != "scrypt":
            raise self._damaged("the key derivation is not scrypt")
        if (problem := _scrypt_problem(kdf.get("n"), kdf.get("r"), kdf.get("p"))) is not None:
            raise self._damaged(f"unsupported key derivation parameters ({problem})")
        if document.get("cipher") != "aes-256-gcm":
            raise self._damaged("the cipher is not aes-256-gcm")
        try:
            salt = _unb64(kdf.get("salt"))
            nonce = _unb64(document.get("nonce"))
            ciphertext = _unb64(document.get("ciphertext"))
        except ValueError:
            raise self._damaged("the salt, nonce or ciphertext is not base64") from None
        if not salt or len(nonce) != 12 or len(ciphertext) < 16:
            raise self._damaged("the salt, nonce or ciphertext has the wrong length")
        header = {k: document[k] for k in ("format", "version", "kdf", "cipher")}
        return header, salt, nonce, ciphertext

    def _secrets(self, plain: bytes) -> dict[str, dict[str, str]]:
        # Authenticated, so only a writer holding the passphrase could have made it wrong; still
        # a clean error rather than a traceback.
        try:
            data = json.loads(plain)
            stored = data["secrets"]
            if not isinstance(stored, dict) or not all(
                isinstance(name, str)
                and isinstance(entry, dict)
                and isinstance(entry.get("kind"), str)
                and isinstance(entry.get("value"), str)
                for name, entry in stored.items()
            ):
                raise ValueError
        except (ValueError, KeyError, TypeError):
            raise self._damaged("the decrypted contents are not a list of secrets") from None
        return dict(stored)

    def _write(self, stored: dict[str, dict[str, str]], header: dict[str, Any] | None) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        if header is None:
            salt = secrets.token_bytes(16)
            header = {
                "format": _FORMAT,
                "version": _VERSION,
                "kdf": {
                    "name": "scrypt",
                    "n": self._scrypt_n,
                    "r": _SCRYPT_R,
                    "p": 1,
                    "salt": _b64(salt),
                },
                "cipher": "aes-256-gcm",
            }
        kdf = header["kdf"]
        key = self._derive(_unb64(kdf["salt"]), kdf["n"], kdf["r"], kdf["p"])
        nonce = secrets.token_bytes(12)
        plain = json.dumps({"secrets": stored}, sort_keys=True).encode()
        ciphertext = AESGCM(key).encrypt(nonce, plain, _aad(header))
        document = {**header, "nonce": _b64(nonce), "ciphertext": _b64(ciphertext)}
        try:
            _replace_atomically(self.path, json.dumps(document, indent=1).encode() + b"\n")
        except OSError as exc:
            raise KeyStoreError(f"cannot write the key file {self.path}: {exc.strerror}") from None

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        """Hold the writers' lock (``PATH.lock``) for at most ``lock_timeout`` seconds of
        waiting. The holder writes its pid and host into the lock file so a writer that gives
        up can say who holds it. ``flock`` locks die with their process: a lock that is held
        is held by a live process (a hung one, or one on another host sharing the file)."""
        lock_path = self.path + ".lock"
        deadline = time.monotonic() + self._lock_timeout
        wait = -1 if self._lock_timeout == float("inf") else self._lock_timeout
        if not self._lock.acquire(timeout=wait):
            raise self._lock_error(lock_path, None)
        try:
            directory = os.path.dirname(os.path.abspath(self.path))
            try:
                os.makedirs(directory, mode=0o700, exist_ok=True)
                fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | _O_NOFOLLOW, 0o600)
            except OSError as exc:
                raise KeyStoreError(
                    f"cannot open the lock file {lock_path}: {exc.strerror}"
                ) from None
            try:
                _lock_file(fd, deadline, lambda: self._lock_error(lock_path, fd))
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, 0)
                    os.pwrite(fd, _holder_text().encode(), 0)
                try:
                    yield
                finally:
                    with contextlib.suppress(OSError):
                        os.ftruncate(fd, 0)
            finally:
                os.close(fd)  # releases the flock
        finally:
            self._lock.release()

    def _lock_error(self, lock_path: str, fd: int | None) -> KeyStoreError:
        holder = "another thread of this process" if fd is None else _read_holder(fd)
        return KeyStoreError(
            f"the key file {self.path} is locked by {holder}, which is changing it; gave up "
            f"after {self._lock_timeout:g} s. Try again when it has finished, or stop it "
            f"(lock file {lock_path})"
        )

    # KeyStore -------------------------------------------------------------------------------

    def get(self, name: str) -> Secret:
        _check_name(name)
        stored, _ = self._read()
        if name not in stored:
            raise KeyError(name)
        entry = stored[name]
        return Secret(entry["value"], entry["kind"])

    def set(self, name: str, value: str | Secret, *, kind: str | None = None) -> None:
        _check_name(name)
        secret = _secret_of(value, kind)
        with self._exclusive():
            stored, header = self._read()
            stored[name] = {"kind": secret.kind, "value": secret.reveal()}
            self._write(stored, header)

    def delete(self, name: str) -> None:
        _check_name(name)
        with self._exclusive():
            stored, header = self._read()
            if name not in stored:
                raise KeyError(name)
            del stored[name]
            self._write(stored, header)

    def names(self) -> dict[str, str]:
        stored, _ = self._read()
        return {name: entry["kind"] for name, entry in sorted(stored.items())}

    def change_passphrase(self, new: str | Secret) -> None:
        """Re-encrypt every secret under ``new`` (with a fresh salt)."""
        with self._exclusive():
            stored, _ = self._read()
            self._passphrase_arg = new
            self._key = None
            self._write(stored, None)


_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def _holder_text() -> str:
    return json.dumps({"pid": os.getpid(), "host": socket.gethostname()}) + "\n"


def _read_holder(fd: int) -> str:
    """Who holds the lock, from what it wrote into the lock file (text from another process:
    only a number and a short printable host name are shown)."""
    try:
        data = json.loads(os.pread(fd, 4096, 0))
        pid, host = data["pid"], data["host"]
    except (OSError, ValueError, KeyError, TypeError):
        return "another process (it did not say which)"
    if not _is_int(pid) or not isinstance(host, str) or not host.isprintable() or len(host) > 255:
        return "another process (it did not say which)"
    return f"pid {pid} on host {host}"


def _lock_file(fd: int, deadline: float, error: Callable[[], KeyStoreError]) -> None:
    """``flock(fd, LOCK_EX)``, giving up at ``deadline`` (``time.monotonic()``) with
    ``error()``. ``flock`` has no timed wait, so a non-blocking attempt is repeated with a
    short, growing pause."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: one process at a time
        return
    pause = 0.005
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        except OSError as exc:
            raise KeyStoreError(f"cannot lock the key file: {exc.strerror}") from None
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise error()
        time.sleep(min(pause, remaining))
        pause = min(pause * 2, 0.1)


def _aad(header: dict[str, Any]) -> bytes:
    # The header is authenticated, so KDF parameters or the format cannot be swapped.
    return json.dumps(header, sort_keys=True, separators=(",", ":")).encode()


def _replace_atomically(path: str, data: bytes) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    temp = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    with contextlib.suppress(OSError):
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def open_keystore(
    path: str | os.PathLike[str] | None = None,
    *,
    service: str = "mpp-client",
    passphrase: str | Secret | Callable[[], str] | None = None,
) -> KeyStore:
    """The OS keyring when a safe backend is available, else the encrypted file at ``path``
    (default ``default_keystore_path()``). ``$MPP_KEYSTORE=file`` or ``=keyring`` forces one
    (``keyring`` then raises ``KeyStoreError`` when it is not safe)."""
    forced = os.environ.get("MPP_KEYSTORE", "").lower()
    if forced not in ("", "file", "keyring"):
        raise KeyStoreError("MPP_KEYSTORE must be 'file' or 'keyring'")
    if forced != "file":
        try:
            return KeyringKeyStore(service)
        except KeyStoreError:
            if forced == "keyring":
                raise
    return EncryptedFileKeyStore(path, passphrase=passphrase)
