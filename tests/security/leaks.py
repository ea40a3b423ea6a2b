"""Find any form of a secret in any text a payment leaves behind, and count where we looked."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import traceback
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from urllib.parse import quote, quote_plus


def forms(secret: str | bytes, *, basic: Iterable[str] = ()) -> set[str]:
    """Every form of ``secret`` a backend or a log might show: as given; the hex, base64 and
    base64url (padded or not) of its bytes (and of the bytes a hex secret stands for); those
    URL-encoded; its first 12 characters (a truncated copy); and each ``basic`` text's base64
    (the Basic-auth token of ``user:password``)."""
    texts: set[str] = set()
    raws = [secret] if isinstance(secret, bytes) else [secret.encode()]
    if isinstance(secret, str):
        texts.add(secret)
        texts.add(secret[:12])
        with contextlib.suppress(ValueError):
            raws.append(bytes.fromhex(secret.removeprefix("0x")))
    raws += [b.encode() for b in basic]
    for raw in raws:
        texts.add(raw.hex())
        for encoded in (base64.b64encode(raw), base64.urlsafe_b64encode(raw)):
            texts.add(encoded.decode())
            texts.add(encoded.decode().rstrip("="))
    for text in list(texts):
        texts.add(quote(text, safe=""))
        texts.add(quote_plus(text))
    return {t for t in texts if len(t) >= 8}


@dataclass
class Tally:
    """How many places were searched, how many (place, secret) checks, and what leaked."""

    places: int = 0
    checks: int = 0
    leaks: list[str] = field(default_factory=list)


TALLY = Tally()


class Inspector:
    """Collects named texts (the places) and checks each for every form of every secret."""

    def __init__(self, secrets: dict[str, set[str]]) -> None:
        self.secrets = secrets
        self.places: list[tuple[str, str]] = []

    def add(self, where: str, text: object) -> None:
        self.places.append((where, text if isinstance(text, str) else repr(text)))

    def exception(self, where: str, exc: BaseException) -> None:
        """The exception's text, its standard traceback (with its chain), a traceback with
        captured locals, and every exception of its ``__cause__``/``__context__`` chain (even a
        suppressed context) with its attributes and any httpx request's headers."""
        self.add(f"{where}: str", str(exc))
        self.add(f"{where}: format_exception", "".join(traceback.format_exception(exc)))
        with_locals = traceback.TracebackException.from_exception(exc, capture_locals=True)
        self.add(f"{where}: traceback with locals", "".join(with_locals.format()))
        for depth, link in enumerate(_chain(exc)):
            name = f"{where}: chain[{depth}] {type(link).__name__}"
            self.add(f"{name} repr", repr(link))
            self.add(f"{name} vars", repr(getattr(link, "__dict__", {})))
            request = _httpx_request(link)
            if request is not None:
                self.add(f"{name} .request.headers", repr(list(request.headers.raw)))
                self.add(f"{name} .request.content", repr(request.content))
            locals_ = traceback.TracebackException.from_exception(link, capture_locals=True)
            self.add(f"{name} locals", "".join(locals_.format(chain=False)))

    def object(self, where: str, obj: object, depth: int = 3) -> None:
        """``repr``/``str`` of ``obj``, ``vars()`` (or its slots), ``dataclasses.asdict`` and
        the same for the objects it holds, ``depth`` levels down."""
        seen: set[int] = set()

        def visit(name: str, value: object, level: int) -> None:
            if id(value) in seen or level < 0 or isinstance(value, str | bytes | int | float):
                return
            seen.add(id(value))
            self.add(f"{name} repr", repr(value))
            self.add(f"{name} str", str(value))
            if dataclasses.is_dataclass(value) and not isinstance(value, type):
                with contextlib.suppress(TypeError):
                    self.add(f"{name} asdict", repr(dataclasses.asdict(value)))
            for attr, item in _attributes(value):
                self.add(f"{name}.{attr}", repr(item))
                visit(f"{name}.{attr}", item, level - 1)

        visit(where, obj, depth)

    def check(self) -> list[str]:
        """Every (place, secret) pair where a form of the secret appears; tallied."""
        found = []
        for where, text in self.places:
            lowered = text.lower()
            TALLY.places += 1
            for secret_name, secret_forms in self.secrets.items():
                TALLY.checks += 1
                hits = [f for f in secret_forms if f.lower() in lowered]
                if hits:
                    found.append(f"{secret_name} in {where}: {sorted(hits)[0]!r}")
        TALLY.leaks += found
        return found


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    todo = [exc]
    while todo:
        link = todo.pop()
        if id(link) in seen:
            continue
        seen.add(id(link))
        yield link
        todo += [e for e in (link.__cause__, link.__context__) if e is not None]


def _httpx_request(exc: BaseException) -> object | None:
    try:
        return exc.request  # type: ignore[attr-defined]
    except (AttributeError, RuntimeError):
        return None


def _attributes(value: object) -> Iterator[tuple[str, object]]:
    if isinstance(value, dict):
        yield from ((repr(k), v) for k, v in value.items())
        return
    if isinstance(value, list | tuple | set | frozenset):
        yield from ((str(i), v) for i, v in enumerate(value))
        return
    if type(value).__module__.split(".")[0] not in ("mpp_client", "tests"):
        return
    if type(value).__name__ == "Secret":
        return  # its slot IS the value (what reveal() returns): only its repr/str count
    names = list(getattr(value, "__dict__", {}))
    for klass in type(value).__mro__:
        names += [s for s in getattr(klass, "__slots__", ()) if isinstance(s, str)]
    for attr in dict.fromkeys(names):
        try:
            yield attr, getattr(value, attr)
        except AttributeError:
            continue
