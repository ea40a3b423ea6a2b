"""Effects: the I/O a payment flow asks its driver to perform.

All payment logic (the 402 flow, every method's ``pay``) is written once, as generators that
*yield* effects and receive their results, like ``httpx.Auth.auth_flow``. A sync driver and an
async driver run the same generators; tests feed canned results with no network at all.

``HttpCall`` -> ``HttpReply``
    An HTTP request the method needs (a JSON-RPC call, a REST call to a Lightning node or Stripe).
    Drivers run it on one reused client per driver and retry connect-phase failures with
    jittered backoff; other transport errors are thrown back into the generator.
``Await`` -> the value
    Call a function that may be sync or async (NWC over websockets, the Spark SDK, user hooks).
    The async driver awaits it; the sync driver runs it on one background event-loop thread.
``Sleep`` -> ``None``
    Wait, e.g. between polls for a transaction receipt.
``JournalWrite`` -> ``None``, ``JournalRead`` -> the value
    An ``Await`` that writes one payment step to the journal, or reads it (the wallet's policy
    check); blocking, so the async driver runs it in its journal worker thread, one per driver,
    in the order yielded, never on the event loop. ``resume_in_worker``: the generator may go
    on in that thread up to its next effect that is not a journal step (see ``JournalAccess``).
``Checkpoint`` -> ``None``
    Not I/O: a method tells the flow that it has signed (or broadcast) something, so the journal
    records the reference *before* the value can move. Handled by the flow, never by drivers.
"""

from __future__ import annotations

import contextvars
import json
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, TypeAlias

__all__ = [
    "Await",
    "Checkpoint",
    "Effect",
    "EffectGen",
    "HttpCall",
    "HttpReply",
    "JournalAccess",
    "JournalRead",
    "JournalWrite",
    "Sleep",
    "on_driver_thread",
]


@dataclass(frozen=True, slots=True)
class HttpCall:
    """An HTTP request a payment method needs. ``timeout`` is in seconds.

    ``retry_safe`` says whether the call may be retried after the request may have been
    received (reads such as ``eth_call``); connect-phase failures are always retried.
    """

    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    content: bytes = b""
    timeout: float = 10.0
    retry_safe: bool = False

    @classmethod
    def json_post(
        cls,
        url: str,
        body: Any,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float = 10.0,
        retry_safe: bool = False,
    ) -> HttpCall:
        """A POST with a JSON body."""
        merged = {"content-type": "application/json", **(headers or {})}
        content = json.dumps(body, separators=(",", ":")).encode()
        return cls("POST", url, merged, content, timeout, retry_safe)

    def __repr__(self) -> str:
        # Bodies and headers may hold API keys or signed transactions: keep them out of reprs.
        return f"HttpCall({self.method} {self.url.split('?', 1)[0]})"


@dataclass(frozen=True, slots=True)
class HttpReply:
    """The answer to an ``HttpCall``: status, lower-cased headers, whole body."""

    status: int
    headers: Mapping[str, str]
    content: bytes

    def json(self) -> Any:
        """The body decoded as JSON."""
        return json.loads(self.content)

    def __repr__(self) -> str:
        return f"HttpReply(status={self.status}, {len(self.content)} bytes)"


@dataclass(frozen=True, slots=True)
class Await:
    """Call ``function()``; if it returns an awaitable, await it. The result is sent back.

    ``blocking`` marks a sync function that may block: the async driver runs it in a worker
    thread instead of on the event loop.
    """

    function: Callable[[], Any]
    blocking: bool = False
    #: Seconds to wait before the runner gives up (``EffectFailed(delivered=True)``: the call
    #: may have had an effect); ``None`` uses the runner's own limit.
    timeout: float | None = None


@dataclass(frozen=True, slots=True)
class JournalAccess(Await):
    """A call into the journal (SQLite, PostgreSQL): blocking, maybe with an fsync.

    The async driver runs these in one worker thread of its own, in order, off the event loop;
    the sync drivers run them inline.

    ``resume_in_worker``: the code the generator runs after this step, up to its next effect,
    may run in that worker thread too, and so may the journal steps it reaches on the way: one
    thread hand-off instead of one per step (each costs a thread wake-up and a loop wake-up,
    ~0.1 ms of wall time). Only for a step after which the generator runs plain code: no
    event-loop objects, and any hook it calls goes through ``on_driver_thread``.
    """

    blocking: bool = True
    resume_in_worker: bool = False


@dataclass(frozen=True, slots=True)
class JournalWrite(JournalAccess):
    """Write one step of a payment to the journal.

    A separate type so tests can tell the journal's steps from a method's own calls.
    """


@dataclass(frozen=True, slots=True)
class JournalRead(JournalAccess):
    """Read the journal without writing, e.g. the wallet's policy check of a quote (running
    totals, pins); the value the function returns is sent back."""


@dataclass(frozen=True, slots=True)
class Sleep:
    """Wait ``seconds`` before continuing."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A method reports progress so the journal is written before value can move.

    ``stage`` is ``"signed"`` (a credential or transaction exists) or ``"broadcast"`` (the method
    itself is about to send value, e.g. push mode or a Lightning payment). ``reference`` is the
    method's payment reference (transaction hash, payment hash, token id), never a secret.
    """

    stage: Literal["signed", "broadcast"]
    reference: str | None = None
    #: When what was signed can no longer settle (a Tempo transaction's ``valid_before``), if
    #: the method knows; recorded so that reconciliation can prove an unused credential void.
    void_after: datetime | None = None


#: Calls held back while an async driver runs a generator in its journal worker thread
#: (``JournalAccess.resume_in_worker``); ``None`` everywhere else.
_HELD_BACK: contextvars.ContextVar[list[Callable[[], None]] | None] = contextvars.ContextVar(
    "mpp_client_held_back", default=None
)


def on_driver_thread(call: Callable[[], None]) -> None:
    """Run ``call`` on the driver's own thread: now, or, while an async driver runs this part
    of the generator in its journal worker, on the event loop as soon as that part ends (before
    the driver performs the next effect or hands the result on). For user hooks, which are
    promised to run where the caller's code runs."""
    held = _HELD_BACK.get()
    if held is None:
        call()
    else:
        held.append(call)


def hold_back(held: list[Callable[[], None]]) -> contextvars.Token[list[Callable[[], None]] | None]:
    """Make ``on_driver_thread`` append to ``held`` in the current context (for the async
    driver's worker; ``release_hold`` undoes it)."""
    return _HELD_BACK.set(held)


def release_hold(token: contextvars.Token[list[Callable[[], None]] | None]) -> None:
    _HELD_BACK.reset(token)


Effect: TypeAlias = HttpCall | Await | Sleep | Checkpoint
EffectGen: TypeAlias = Generator[Effect, Any, Any]
"""A generator that yields effects and returns a value."""
