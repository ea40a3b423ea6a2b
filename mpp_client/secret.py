"""Secrets in memory, and the one place that takes them out of text.

``Secret`` holds a credential (a macaroon, a rune, an API key or password, an app secret, a
Stripe key, an NWC secret, a private key) so that it cannot show itself by accident: ``repr``,
``str``, f-strings, ``vars()`` of the object holding it, ``dataclasses.asdict`` and a traceback
formatted with ``capture_locals=True`` all print ``<secret>``; ``reveal()`` returns the value
and is called only where the value is handed to what needs it (a request header, a signing
call). Comparison is in constant time (``hmac.compare_digest``) and pickling is refused, since
a pickle would write the value out.

``Secrets`` is the registry of one payment method or backend instance: every secret it was
configured with, plus derived values (the ``Basic`` token of a password). ``scrub`` is the one
function that turns text from outside (a backend's error body, a relay's reason) into a short,
safe detail: every registered secret is removed in each form a backend might echo it in (as
given, lower/upper case, hex, base64, base64url, with and without padding, URL-encoded,
JSON-escaped), and so is the value of anything that looks like a secret-bearing header or
field (``Authorization``, ``Grpc-Metadata-macaroon``, ``Rune``, ``X-Api-Key``, ``app-secret``,
``password``, ``secret``, ...) or a Stripe key; whitespace is collapsed and the result is capped
at ``DETAIL_LIMIT`` characters. Backends never copy an error body whole: they record the status
and a ``scrub``-bed detail.

What stays out of our hands:

- An ``io_client`` (``httpx.Client``/``AsyncClient``) you pass to a transport or session is
  yours: its event hooks, its transport, its logging and any proxy see the requests our methods
  make, auth headers included (httpx itself masks only ``Authorization`` in its reprs). Do not
  log request headers from such hooks.
- The secret's value is in memory (Python strings cannot be wiped) and on the wire to the
  backend it authenticates to; a debugger, a core dump or a compromised machine can read it.
- A backend that mangles a secret beyond the forms above (splits it, re-encodes it otherwise)
  before echoing it defeats ``scrub``; the length cap limits how much of anything passes.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hmac
import json
import re
from collections.abc import Iterable, Iterator
from typing import Any, Generic, NoReturn, TypeVar
from urllib.parse import quote, quote_plus

__all__ = ["DETAIL_LIMIT", "REDACTED", "Secret", "Secrets", "reveal", "scrub", "secret_forms"]

T = TypeVar("T")

#: What a removed secret is replaced with.
REDACTED = "[redacted]"
#: Longest detail ``scrub`` returns (characters), so a backend's body is never copied whole.
DETAIL_LIMIT = 200
# Text longer than this is cut before scanning: an error detail needs no more, and the regex
# then runs in bounded time on a hostile multi-megabyte body.
_SCAN_LIMIT = 16 * 1024
# Forms shorter than this are not searched for: they would blank out ordinary words.
_MIN_FORM = 4

# The value after a secret-bearing header or field name, in the shapes backends echo them:
# ``Rune: abc``, ``"x-api-key": "abc"``, ``'app-secret': 'abc'``, ``password=abc``,
# ``Authorization: Basic abc``. Over-matching only hides more.
_FIELD = re.compile(
    r"""(?ix)
    (?P<name>\b(?:proxy-)?authorization|\bgrpc-metadata-macaroon|\bmacaroon|\brune
      |\bx-api-key|\bapi[-_]?key|\badmin[-_]?key|\bapp[-_]?secret|\bauth[-_]?token
      |\bhttp-password|\bpassword|\bsecret(?:[-_]?key)?|\bcookie|\bset-cookie|\baccess[-_]?token)
    (?P<sep>\\?["']?\s*[:=]\s*\\?["']?)
    (?P<value>(?:(?:basic|bearer|token)\s+)?[^\s"',;&}\]\\]+)
    """
)
# Stripe secret, restricted and publishable keys, and NWC connection strings, wherever they are.
_KEY_LIKE = re.compile(r"(?i)\b(?:sk|rk|pk)_(?:test|live)_[A-Za-z0-9*]+|nostr\+walletconnect://\S+")


class Secret(Generic[T]):
    """A value that never shows itself; ``reveal()`` returns it.

    ``also`` lists other text or bytes whose forms ``scrub`` removes along with the value's own
    (e.g. the raw bytes of a private key held as a key object). A ``Secret`` (or anything with
    ``reveal()``, such as the key store's secrets) given as ``value`` is unwrapped.
    """

    __slots__ = ("_also", "_value")

    def __init__(self, value: T | Secret[T], *, also: Iterable[str | bytes] = ()) -> None:
        unwrapped: Any = value
        if not isinstance(value, str | bytes) and callable(getattr(value, "reveal", None)):
            unwrapped = getattr(value, "reveal")()  # noqa: B009 - any object with reveal()
        self._value: T = unwrapped
        self._also = tuple(also)

    def reveal(self) -> T:
        """The value. Hand it straight to what needs it; never log or format it."""
        return self._value

    def forms(self) -> frozenset[str]:
        """Every textual form of the value (and of ``also``) that ``scrub`` removes."""
        found: set[str] = set()
        for item in (self._value, *self._also):
            if isinstance(item, str | bytes):
                found |= secret_forms(item)
        return frozenset(found)

    def __repr__(self) -> str:
        return "<secret>"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return "<secret>"

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        # Constant time, so a comparison cannot be timed to guess the value byte by byte.
        mine = _comparable(self._value)
        theirs = _comparable(other.reveal() if isinstance(other, Secret) else other)
        if mine is None or theirs is None:
            return NotImplemented
        return hmac.compare_digest(mine, theirs)

    def __hash__(self) -> int:
        # Equal secrets must hash alike; a hash of the value would be a cheap oracle for it.
        return hash(Secret)

    def __copy__(self) -> Secret[T]:
        return self  # immutable: copies (dataclasses.asdict deep-copies) share the value

    def __deepcopy__(self, memo: dict[int, Any]) -> Secret[T]:
        return self

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Secret is not picklable (the pickle would hold its value)")


def _comparable(value: object) -> bytes | None:
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, bytes):
        return value
    return None


def reveal(value: Any) -> Any:
    """``value.reveal()`` for a ``Secret`` (or the key store's), else ``value`` itself."""
    return value.reveal() if callable(getattr(value, "reveal", None)) else value


def secret_forms(value: str | bytes) -> frozenset[str]:
    """The forms in which a backend may echo ``value``: the text itself; for its bytes (the
    UTF-8 of text, or the bytes a hex string stands for) their hex, base64 and base64url with
    and without padding; and each of those URL-encoded and JSON-escaped."""
    texts: set[str] = set()
    raws: list[bytes] = []
    if isinstance(value, bytes):
        raws.append(value)
    else:
        texts.add(value)
        raws.append(value.encode())
        candidate = value.removeprefix("0x")
        if len(candidate) % 2 == 0 and len(candidate) >= 2 * _MIN_FORM:
            with contextlib.suppress(binascii.Error, ValueError):
                raws.append(binascii.unhexlify(candidate))
    for raw in raws:
        if not raw:
            continue
        texts.add(raw.hex())
        texts.add("0x" + raw.hex())
        for encoded in (base64.b64encode(raw), base64.urlsafe_b64encode(raw)):
            text = encoded.decode("ascii")
            texts.add(text)
            texts.add(text.rstrip("="))
    forms: set[str] = set()
    for text in texts:
        forms.update({text, quote(text, safe=""), quote_plus(text), text.replace("/", "\\/")})
    return frozenset(f for f in forms if len(f) >= _MIN_FORM)


class Secrets:
    """The secrets of one method or backend instance, and ``scrub`` over them.

    ``add`` wraps a value in ``Secret`` (unless it is one) and returns it, so a constructor
    writes ``self._key = self._secrets.add(key)``.
    """

    __slots__ = ("_pattern", "_secrets")

    def __init__(self, *values: object) -> None:
        self._secrets: list[Secret[Any]] = []
        # The compiled regex spells out every form of every secret: held as a Secret too.
        self._pattern: Secret[re.Pattern[str]] | None = None
        for value in values:
            self.add(value)

    def add(self, value: Any, *, also: Iterable[str | bytes] = ()) -> Secret[Any]:
        """Register ``value`` (wrapped in a ``Secret`` unless it is one) and return it."""
        secret = value if isinstance(value, Secret) and not also else Secret(value, also=also)
        self._secrets.append(secret)
        self._pattern = None
        return secret

    def __iter__(self) -> Iterator[Secret[Any]]:
        return iter(self._secrets)

    def __len__(self) -> int:
        return len(self._secrets)

    def __repr__(self) -> str:
        return f"<{len(self._secrets)} secrets>"

    def pattern(self) -> Secret[re.Pattern[str]] | None:
        """One regex of every form of every secret (longest first), as a ``Secret``, or
        ``None`` when there is nothing to look for."""
        if self._pattern is None and self._secrets:
            forms = set().union(*(s.forms() for s in self._secrets))
            if forms:
                ordered = sorted(forms, key=len, reverse=True)
                # Case-insensitive: a hex secret may come back upper-cased; hiding a little
                # more of a base64 text than needed costs nothing.
                self._pattern = Secret(re.compile("|".join(map(re.escape, ordered)), re.IGNORECASE))
        return self._pattern

    def scrub(self, value: object, *, limit: int = DETAIL_LIMIT) -> str:
        """``scrub(value, self, limit=limit)``."""
        return scrub(value, self, limit=limit)


def scrub(
    value: object,
    secrets: Secrets | Iterable[Secret[Any]] = (),
    *,
    limit: int = DETAIL_LIMIT,
) -> str:
    """A short, one-line, safe rendering of ``value`` (text from outside: an error message, a
    body): every form of every secret in ``secrets`` and every secret-bearing header or field
    value replaced with ``[redacted]``, whitespace collapsed, at most ``limit`` characters.

    Non-text values are rendered as JSON first (bytes are decoded as UTF-8 with replacement).
    """
    if isinstance(value, bytes):
        text = value[: _SCAN_LIMIT * 4].decode("utf-8", errors="replace")
    elif isinstance(value, str):
        text = value
    else:
        try:
            text = json.dumps(value, default=str)
        except (TypeError, ValueError):
            text = "<unreadable>"
    text = text[:_SCAN_LIMIT]
    registry = secrets if isinstance(secrets, Secrets) else Secrets(*secrets)
    pattern = registry.pattern()
    # Secrets first (they may sit anywhere, not only after a field name), then field values.
    if pattern is not None:
        text = pattern.reveal().sub(REDACTED, text)
    text = _FIELD.sub(lambda m: f"{m.group('name')}{m.group('sep')}{REDACTED}", text)
    text = _KEY_LIKE.sub(REDACTED, text)
    text = " ".join(text.split())
    # Cut after scrubbing: a secret cut in two by the cap would no longer match.
    if len(text) > limit:
        text = text[: max(0, limit - 3)] + "..."
    return text
