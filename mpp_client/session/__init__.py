"""The session core: what every session payment method (Tempo channels, Lightning prepaid
sessions) shares with the drivers.

How a session request flows
---------------------------
1. The ordinary 402 flow (``mpp_client.flow``) pays the FIRST request of a session like any
   payment: the method's ``quote`` prices it (an ``open`` quotes the deposit; a request on a
   session already open quotes what it adds), the wallet reserves it as a normal journal entry,
   ``pay`` returns the credential, the paid retry is sent.
2. When that paid answer is ``text/event-stream``, the driver (``PaymentTransport``,
   ``AsyncPaymentTransport``, ``PaymentSession``) calls ONE function of
   ``mpp_client.session.stream`` (``attach_httpx_sync`` / ``attach_httpx_async`` /
   ``attach_requests``). If a configured method implements ``SessionMethod`` and returns a
   ``StreamHandler``, the body the caller reads (``client.stream(...)``, ``iter_lines()``,
   ``aiter_lines()``, requests ``stream=True``/``iter_lines()``) is parsed as it passes: the
   handler's ``control_events`` go to ``handler.on_event`` (and are not passed on), every other
   byte reaches the caller unchanged.
3. ``on_event`` is a generator of effects (``mpp_client.effects``: ``HttpCall``, ``Await``,
   ``Sleep``, ``JournalWrite``) run by the driver's own runner while the stream waits, plus
   ``SideRequest``: a request to the stream's origin (default: its URL) sent through the
   driver's INNER transport, never through the paying flow, answered with an ``HttpReply``. A
   top-up that moves money reserves it through ``context.guard`` (the wallet) like any payment.
4. The final ``payment-receipt`` event is parsed (``receipt_from_event``), validated by the
   handler and stored in ``SessionStream.receipt``; ``session_of(response)`` returns that
   state (httpx: ``response.extensions["mpp.session"]``; requests: ``response.mpp_session``).
   An exception from the handler (e.g. ``SessionStreamError`` when the server asks for more
   than agreed) ends the stream and is raised to the reader.

Interface (all in ``mpp_client.session``)
-----------------------------------------
``SessionMethod`` (protocol, on the method object)::

    def stream_handler(self, context: StreamContext) -> StreamHandler | None

``StreamHandler`` (protocol)::

    control_events: frozenset[str]           # e.g. {"payment-need-voucher", "payment-receipt"}
    def on_event(self, event: SseEvent) -> Generator[effect, reply, None]
    def on_end(self, complete: bool) -> Generator[effect, reply, None]

``StreamContext`` (frozen): ``url``, ``http_method``, ``origin``, ``request_headers`` (lower
case, payment credentials removed), ``response_headers`` (tuple of pairs), ``payment`` (the
flow's ``Payment``: ``payment.quote`` holds the method's quote and details), ``guard``,
``clock``, ``stream`` (the ``SessionStream`` to fill), ``header(name)``.

``SessionStream`` (mutable): ``receipt``, ``control_events``, ``error``, ``ended``,
``complete``, ``details`` (free dict for the method, e.g. cumulative totals).

``SideRequest(method, headers={}, content=b"", url=None, timeout=30.0)`` -> ``HttpReply``.

A handler whose ``wake_at`` (an int) is reached by ``SessionStream.data_events`` gets
``on_units(data_events)`` (a generator, run like ``on_event``): Tempo uses it to post the next
prepaid voucher before the server has to pause.

``SseParser`` / ``SseEvent`` (``mpp_client.session.sse``): an incremental WHATWG parser with
line and event limits; ``feed(bytes) -> list[SseEvent]``; ``feed_raw`` also returns the
pass-through bytes.

Durable records: ``mpp_client.wallet.channels.ChannelStore`` (in the journal's SQLite file):
``open(NewChannel)``, ``record_voucher(id, cumulative, signature)`` (durable compare-and-set,
never lower), ``sign_next(id, target, sign)`` (read, sign and compare-and-set in one
transaction), ``accept(id, accepted)``, ``topped_up(id, deposit, ref)``, ``set_state``,
``settle_close(id, paid=, refund=)`` (releases the refund from the budgets),
``set_secret``/``secret`` (a bearer secret no listing shows), ``get``/``find``/``channels``.
A method gets the store of its wallet's journal through ``use_journal(journal, clock)``
(called by ``Wallet.__init__`` for every method that has it):
``ChannelStore.for_journal(journal, clock=clock)``.

Reference implementation: ``mpp_client.methods.tempo.session`` (``TempoSession`` and its
``_StreamHandler``: need-voucher, top-up through ``context.guard.reserve``, receipt event).
"""

from mpp_client.session.base import (
    MAX_SIDE_BODY,
    SESSION_KEY,
    SessionMethod,
    SessionStream,
    SessionStreamError,
    SideRequest,
    StreamContext,
    StreamHandler,
    receipt_from_event,
    session_of,
)
from mpp_client.session.sse import SseError, SseEvent, SseParser

__all__ = [
    "MAX_SIDE_BODY",
    "SESSION_KEY",
    "SessionMethod",
    "SessionStream",
    "SessionStreamError",
    "SideRequest",
    "SseError",
    "SseEvent",
    "SseParser",
    "StreamContext",
    "StreamHandler",
    "receipt_from_event",
    "session_of",
]
