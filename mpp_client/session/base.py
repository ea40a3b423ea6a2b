"""The interface between the drivers and a session payment method (see the package docstring).

A paid response that is a ``text/event-stream`` of a session method is read through a
``StreamHandler``, which the method makes with ``SessionMethod.stream_handler``. The handler
sees every event (parsed by ``mpp_client.session.sse``) whose type is in its
``control_events``; its ``on_event`` is a generator of effects, run by the driver's own runner
while the stream waits. Besides the ordinary effects (``HttpCall``, ``Await``, ``Sleep``,
``JournalWrite``) it may yield ``SideRequest``: a request to the stream's origin sent through
the driver's INNER transport (never through the paying flow again), answered with an
``HttpReply``.

A handler may also watch the units (data events) going by: when its ``wake_at`` attribute is
an int and ``SessionStream.data_events`` reaches it (checked before the first chunk and after
each one), the driver runs ``on_units(data_events)`` like ``on_event``.
"""

from __future__ import annotations

import json
from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from mpp_client.errors import MppError, PaymentFailed
from mpp_client.protocol import Receipt

if TYPE_CHECKING:
    from mpp_client.clock import Clock
    from mpp_client.flow import Payment
    from mpp_client.guard import PaymentGuard
    from mpp_client.session.sse import SseEvent

__all__ = [
    "SESSION_KEY",
    "MAX_SIDE_BODY",
    "SessionMethod",
    "SessionStream",
    "SessionStreamError",
    "SideRequest",
    "StreamContext",
    "StreamHandler",
    "receipt_from_event",
    "session_of",
]

#: Key under which an httpx response carries its ``SessionStream`` (``response.extensions``);
#: requests responses carry it as the attribute ``response.mpp_session``.
SESSION_KEY = "mpp.session"
#: Largest body (bytes) of a side request's answer that is read.
MAX_SIDE_BODY = 64 * 1024


@dataclass(frozen=True, slots=True)
class SideRequest:
    """Effect: send a request to the stream's own origin through the driver's inner transport
    while the stream stays open (a voucher, a top-up, a fresh challenge). ``url`` ``None``
    means the stream's URL. Answered with an ``HttpReply`` (lower-case headers, repeated ones
    joined with ``", "``, the body up to ``MAX_SIDE_BODY`` bytes); a transport failure is
    thrown into the handler as the transport's own exception. ``timeout`` is in seconds."""

    method: str
    headers: Mapping[str, str] = field(default_factory=dict)
    content: bytes = b""
    url: str | None = None
    timeout: float = 30.0

    def __repr__(self) -> str:
        # Headers carry credentials: names only.
        return f"SideRequest({self.method} {sorted(self.headers)})"


@dataclass(slots=True)
class SessionStream:
    """What happened on one paid event stream; attached to the response (``session_of``).

    ``receipt``: the final ``payment-receipt`` event, parsed and validated by the handler
    (``None`` until it arrives). ``control_events``: how many control events the handler
    consumed. ``data_events``: how many other events went to the reader (a handler's unit
    count). ``error``: what ended the stream early (also raised to the reader). ``ended``:
    the stream reached its end (``complete`` says whether the server ended it cleanly).
    ``details``: method facts the handler keeps for the caller (e.g. ``acceptedCumulative``).
    ``spent``: what this stream cost so far, in base units of the paid quote's currency
    (``payment.quote.amount.currency``): Tempo, the cumulative signed above what was signed
    before the request; Lightning, what the server reported spent. ``None`` until the handler
    knows. A deposit or top-up is not spent: it stays in the channel.
    """

    receipt: Receipt | None = None
    control_events: int = 0
    data_events: int = 0
    error: BaseException | None = None
    ended: bool = False
    complete: bool = False
    details: dict[str, Any] = field(default_factory=dict)
    spent: int | None = None


@dataclass(frozen=True, slots=True)
class StreamContext:
    """What a handler knows about the stream it reads.

    ``url``/``http_method``/``origin`` are the caller's request (after same-origin redirects);
    ``request_headers`` its headers with lower-case names and WITHOUT payment credentials;
    ``response_headers`` those of the paid answer (lower-case names, repeats kept);
    ``payment`` what the flow recorded; ``guard`` the wallet (to reserve a top-up as a normal
    journal entry); ``clock`` the one clock; ``stream`` the state attached to the response.
    """

    url: str
    http_method: str
    origin: str
    request_headers: Mapping[str, str]
    response_headers: tuple[tuple[str, str], ...]
    payment: Payment
    guard: PaymentGuard
    clock: Clock
    stream: SessionStream

    def header(self, name: str) -> str | None:
        """The first response header ``name`` (lower case), or ``None``."""
        for key, value in self.response_headers:
            if key == name:
                return value
        return None


class StreamHandler(Protocol):
    """Consumes the control events of one paid event stream.

    ``control_events``: the event types it consumes; they are NOT passed on to the caller
    (every other event, comment and byte goes through unchanged). ``on_event`` runs while the
    stream waits; an exception from it ends the stream: the reader gets it (typed, from
    ``mpp_client.errors``) and the connection is closed. ``on_end`` runs once at the end
    (``complete``: the server ended the stream; ``False``: the reader stopped early or the
    connection broke); it must not raise for an ordinary end.
    """

    control_events: frozenset[str]

    def on_event(self, event: SseEvent) -> Generator[Any, Any, None]: ...

    def on_end(self, complete: bool) -> Generator[Any, Any, None]: ...


@runtime_checkable
class SessionMethod(Protocol):
    """A payment method whose paid answers may be metered event streams.

    The drivers call ``stream_handler`` when a PAID answer (``payment.status == "paid"``) of
    this method is ``text/event-stream``; ``None`` reads the stream as is."""

    def stream_handler(self, context: StreamContext) -> StreamHandler | None: ...


class SessionStreamError(PaymentFailed):
    """A metered stream ended because its payment could not go on (the server asked for more
    than was agreed, a voucher or top-up was refused). ``money_moved`` says what the last
    step did to the money; what was signed is in the journal's channel record."""


def session_of(response: Any) -> SessionStream | None:
    """The ``SessionStream`` of a paid event-stream response (httpx or requests), or
    ``None``."""
    extensions = getattr(response, "extensions", None)
    if isinstance(extensions, dict):
        found = extensions.get(SESSION_KEY)
        if isinstance(found, SessionStream):
            return found
    found = getattr(response, "mpp_session", None)
    return found if isinstance(found, SessionStream) else None


def receipt_from_event(data: str) -> Receipt:
    """A receipt sent as the JSON data of a ``payment-receipt`` event (the same fields as a
    ``Payment-Receipt`` header, not base64url). Raises ``MppError`` (a ``ParseError``) when
    it is not a receipt."""
    from mpp_client.errors import ParseError

    try:
        document = json.loads(data)
    except ValueError:
        raise ParseError("the payment-receipt event is not JSON") from None
    if not isinstance(document, dict):
        raise ParseError("the payment-receipt event is not a JSON object")
    core = {}
    for name in ("status", "method", "timestamp", "reference"):
        value = document.get(name)
        if not isinstance(value, str) or not value:
            raise ParseError(f"the payment-receipt event has no {name}")
        core[name] = value
    challenge_id = document.get("challengeId")
    if challenge_id is not None and not isinstance(challenge_id, str):
        raise ParseError("the payment-receipt event's challengeId is not a string")
    extra = {
        k: v
        for k, v in document.items()
        if k not in ("status", "method", "timestamp", "reference", "challengeId")
    }
    try:
        receipt = Receipt(
            status=core["status"],
            method=core["method"],
            timestamp=core["timestamp"],
            reference=core["reference"],
            challenge_id=challenge_id,
            extra=extra,
        )
        receipt.timestamp_at  # noqa: B018 - validates the RFC 3339 timestamp
    except MppError:
        raise
    except ValueError as exc:
        raise ParseError(f"the payment-receipt event's timestamp is invalid: {exc}") from None
    return receipt
