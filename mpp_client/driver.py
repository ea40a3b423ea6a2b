"""What the three drivers share: configuration, origin pinning across redirects, and the
payment result attached to responses.

A driver is the only place that does I/O for the payment flow. The httpx transports and the
requests session differ in how they send; everything they decide is decided here or in
``mpp_client.flow``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar
from urllib.parse import urljoin, urlsplit

# The flow, the guard and the clock are imported where they are used, not here: the transports
# import this module, and a program that never meets a 402 should not load the flow.
if TYPE_CHECKING:
    from mpp_client.flow import FlowConfig, Payment, PaymentHooks
    from mpp_client.guard import PaymentGuard, PaymentOptions
    from mpp_client.methods.base import PaymentMethod
    from mpp_client.protocol import Receipt
    from mpp_client.wallet import Wallet

__all__ = ["PAYMENT_KEY", "build_config", "payment_of", "receipt_of"]

#: Key under which a response carries its ``Payment`` (httpx ``response.extensions``; the
#: requests session sets the attribute ``response.mpp_payment``).
PAYMENT_KEY = "mpp.payment"
#: Key in ``request.extensions`` for per-request ``PaymentOptions``.
OPTIONS_KEY = "mpp"
# Private: the origin of the caller's first request and the URL its redirect points to.
PIN_KEY = "mpp.pin"
# Private: a payment made on a hop that answered with a redirect, carried to the end of the
# redirect chain (and a guard against paying a second time within it).
CARRY_KEY = "mpp.carry"

R = TypeVar("R")


class OnFirstUse(Generic[R]):
    """A value made the first time it is asked for, once even when threads race (a driver's
    effect runner: making it loads tenacity and asyncio, which only a 402 needs)."""

    def __init__(self, make: Callable[[], R]) -> None:
        self._make = make
        self._lock = threading.Lock()
        #: The value once made, else None.
        self.made: R | None = None

    def get(self) -> R:
        """The value, made now if this is the first use."""
        made = self.made
        if made is None:
            with self._lock:
                made = self.made
                if made is None:
                    made = self.made = self._make()
        return made


#: Largest request body (bytes) buffered so it can be replayed on the paid retry. A larger
#: streaming body is sent unbuffered, and a 402 for it is refused before anything is signed.
DEFAULT_BODY_CAP = 8 * 1024 * 1024
#: Largest 402 body (bytes) read for an RFC 9457 problem or a compatibility challenge.
MAX_402_BODY = 64 * 1024


def build_config(
    *,
    wallet: Wallet | None,
    methods: Sequence[PaymentMethod],
    guard: PaymentGuard | None,
    prefer: Iterable[str],
    hooks: PaymentHooks | None,
    expiry_margin: float,
    allow_insecure_http: bool,
) -> FlowConfig:
    """Resolve a driver's keyword options into one ``FlowConfig``.

    A ``wallet`` brings its methods, preference and policy. ``methods`` alone get a ``Wallet``
    with the default (safe) policy. ``guard`` replaces the wallet's policy entirely (tests).
    """
    from mpp_client.clock import Clock
    from mpp_client.flow import FlowConfig

    if wallet is not None:
        if methods or guard is not None:
            raise TypeError("pass either wallet= or methods=/guard=, not both")
        return FlowConfig.build(
            wallet.methods,
            wallet,
            prefer=tuple(prefer) or wallet.prefer,
            hooks=hooks,
            expiry_margin=expiry_margin,
            allow_insecure_http=allow_insecure_http,
            clock=wallet.clock,  # one clock for the flow, the wallet and its journal
        )
    if guard is None:
        from mpp_client.wallet import Wallet

        wallet = Wallet(methods, prefer=tuple(prefer))
        guard = wallet
    clock = getattr(guard, "clock", None)
    return FlowConfig.build(
        methods,
        guard,
        prefer=prefer,
        hooks=hooks,
        expiry_margin=expiry_margin,
        allow_insecure_http=allow_insecure_http,
        clock=clock if isinstance(clock, Clock) else None,
    )


def options_from(extensions: Any) -> PaymentOptions:
    """The ``PaymentOptions`` a request carries (``extensions["mpp"]``), or the defaults."""
    from mpp_client.guard import PaymentOptions

    options = extensions.get(OPTIONS_KEY) if extensions else None
    if options is None:
        return PaymentOptions()
    if not isinstance(options, PaymentOptions):
        raise TypeError('request.extensions["mpp"] must be a mpp_client.PaymentOptions')
    return options


def url_origin(url: str) -> str:
    """The origin of an absolute URL."""
    from mpp_client.flow import origin_of

    parts = urlsplit(url)
    return origin_of(parts.scheme.lower(), (parts.hostname or "").lower(), parts.port)


def first_origin(extensions: dict[str, Any], url: object) -> str | None:
    """The origin of the caller's first request if ``url`` is the target of its redirect."""
    pin = extensions.get(PIN_KEY)
    if pin is not None and pin[1] == str(url):
        return str(pin[0])
    return None


def remember_redirect(
    extensions: dict[str, Any], url: str, status: int, location: str | None, pinned: str | None
) -> None:
    """Pin the first origin across a redirect, and forget it when the logical request ends.

    httpx hands the same ``extensions`` dict to every redirect hop, and a caller may reuse one
    dict for several requests: the pin names the exact next URL so only a real hop inherits it.
    """
    if 300 <= status < 400 and location:
        extensions[PIN_KEY] = (pinned or url_origin(url), urljoin(url, location))
    else:
        extensions.pop(PIN_KEY, None)
        extensions.pop(CARRY_KEY, None)


def payment_of(response: Any) -> Payment | None:
    """The ``Payment`` made for ``response`` (httpx or requests), or ``None`` if none was made.

    ``payment.status`` says what happened, ``payment.receipt`` holds the server's receipt,
    ``payment.quote.amount`` what was paid (base units of its currency).
    """
    extensions = getattr(response, "extensions", None)
    found = extensions.get(PAYMENT_KEY) if isinstance(extensions, dict) else None
    if found is None:
        found = getattr(response, "mpp_payment", None)
        if found is None:
            return None  # nothing was paid: no need to load the flow to say so
    from mpp_client.flow import Payment

    if isinstance(found, Payment):
        return found
    found = getattr(response, "mpp_payment", None)
    return found if isinstance(found, Payment) else None


def receipt_of(response: Any) -> Receipt | None:
    """The parsed ``Payment-Receipt`` of a paid response, or ``None``."""
    payment = payment_of(response)
    return payment.receipt if payment is not None else None
