"""``PaymentSession``: an ``mcp.ClientSession`` whose ``call_tool`` pays (protocol README §18).

Wrap the official SDK's session (any transport: stdio, Streamable HTTP)::

    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        paying = PaymentSession(session, server="mcp-stdio://weather", wallet=wallet)
        await paying.initialize()            # advertises capabilities.experimental.payment
        paid = await paying.call_tool("forecast", {"city": "Oslo"})
        paid.result                          # the CallToolResult (None if an error came back)
        paid.payment                         # the Payment (None when nothing was asked)

A tool call answered with a payment requirement (a -32042 error whose ``data.challenges`` holds
challenges, or a result carrying ``_meta["org.paymentauth/payment-required"]``, ``isError`` or
not) goes through the same payment flow as HTTP (``mpp_client.flow``): the same wallet, policy,
budgets, journal, hooks, dry run, one credential per call, and an unknown outcome when the
answer to the paid call is lost. The credential travels in
``params._meta["org.paymentauth/credential"]``, echoing the server's challenge object unchanged.
Only ``tools/call`` requests are ever paid; notifications never carry a credential.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import quote, urlsplit

import httpx2
import mcp_types as types
from mcp.client.session import ClientSession
from mcp.shared.exceptions import MCPError
from mcp_types import CONNECTION_CLOSED, REQUEST_TIMEOUT, RequestParamsMeta

from mpp_client.driver import PAYMENT_KEY, build_config, url_origin
from mpp_client.errors import MethodError
from mpp_client.flow import (
    Payment,
    PaymentHooks,
    RequestFacts,
    ResponseHead,
    Send,
    SendFailed,
    payment_flow,
)
from mpp_client.guard import PaymentOptions
from mpp_client.mcp.capability import PAYMENT_CAPABILITY, payment_capability
from mpp_client.mcp.challenges import (
    CREDENTIAL_META_KEY,
    INVALID_PARAMS_CODE,
    PAYMENT_REQUIRED_CODE,
    PAYMENT_REQUIRED_META_KEY,
    RECEIPT_META_KEY,
    VERIFICATION_FAILED_CODE,
    McpChallenges,
    credential_meta,
    payment_required_data,
    problem_body,
    receipt_header,
)
from mpp_client.protocol import parse_credential
from mpp_client.runner import AsyncRunner
from mpp_client.trampoline import drive_async

if TYPE_CHECKING:
    import httpx
    from mcp.shared.dispatcher import ProgressFnT

    from mpp_client.guard import PaymentGuard
    from mpp_client.methods.base import PaymentMethod
    from mpp_client.wallet import Wallet

__all__ = [
    "STDIO_SCHEME",
    "PaidToolResult",
    "PaymentSession",
    "paying_http_client",
    "stdio_server",
]

logger = logging.getLogger("mpp_client")

#: Scheme of the pseudo-origin naming a server reached over stdio (``mcp-stdio://<name>``).
STDIO_SCHEME = "mcp-stdio"
_PAYMENT_CODES = (PAYMENT_REQUIRED_CODE, VERIFICATION_FAILED_CODE)
#: Errors the SDK makes up when no answer came (never sent by a server): the send failed.
_NO_ANSWER = (CONNECTION_CLOSED, REQUEST_TIMEOUT)
_PROBLEM = ("content-type", "application/problem+json")


def stdio_server(name: str) -> str:
    """The pseudo-origin ``mcp-stdio://<name>`` for a server reached over stdio: budgets,
    policy and the journal key on it as they key on an HTTP origin. ``name`` is lower-cased
    and may hold letters, digits, ``.``, ``-`` and ``_``."""
    host = name.strip().lower()
    if not host or any(not (c.isalnum() or c in ".-_") for c in host):
        raise ValueError(f"stdio server name {name!r}: use letters, digits, '.', '-' or '_'")
    return f"{STDIO_SCHEME}://{host}"


@dataclass(frozen=True, slots=True)
class PaidToolResult:
    """What a paying ``call_tool`` returns.

    ``result``: the tool's result (``None`` when the last answer was a JSON-RPC error, e.g. a
    payment requirement that was not paid or a rejected credential; it is in ``error``).
    ``payment``: what happened to the payment (``mpp_client.Payment``: ``"paid"`` with the
    receipt, ``"quoted"`` on a dry run, ``"rejected"``, ``"unknown"``, ...), ``None`` when the
    server asked for none.
    """

    result: types.CallToolResult | None
    payment: Payment | None
    error: MCPError | None = None

    @property
    def receipt(self) -> Any:
        """The server's receipt, parsed (``mpp_client.protocol.Receipt``), or ``None``."""
        return self.payment.receipt if self.payment is not None else None


class PaymentSession:
    """Pays the MCP tool calls of ``session`` (an ``mcp.ClientSession``) that ask for it.

    ``server``: who is paid, as the policy, budgets and journal see it: the Streamable HTTP
    URL (``https://api.example.com/mcp``; plain http only to loopback unless
    ``allow_insecure_http``) or ``stdio_server("<name>")`` for a server over stdio (a local
    pipe, so no https is required). The other options are those of ``PaymentTransport``:
    ``wallet`` (or ``methods=``/``guard=``), ``prefer``, ``hooks``, ``expiry_margin``,
    ``io_client`` (an ``httpx.AsyncClient`` for the methods' own calls).

    Create it before ``initialize()``: it adds ``capabilities.experimental.payment`` (the
    wallet's methods and intents) to what the session advertises (``advertise=False`` to
    leave the session's capabilities alone). Every other attribute is the session's own.
    """

    def __init__(
        self,
        session: ClientSession,
        *,
        server: str,
        wallet: Wallet | None = None,
        methods: Sequence[PaymentMethod] = (),
        guard: PaymentGuard | None = None,
        prefer: Iterable[str] = (),
        hooks: PaymentHooks | None = None,
        expiry_margin: float = 5.0,
        allow_insecure_http: bool = False,
        io_client: httpx.AsyncClient | None = None,
        advertise: bool = True,
    ) -> None:
        self._session = session
        self._origin, self._base, _ = _server_identity(server)
        config = build_config(
            wallet=wallet,
            methods=methods,
            guard=guard,
            prefer=prefer,
            hooks=hooks,
            expiry_margin=expiry_margin,
            allow_insecure_http=allow_insecure_http,
        )
        # A stdio server's pseudo-origin ``mcp-stdio://name`` is local to the flow: its "no
        # plain http" rule is about networks.
        self._config = config
        self._runner = AsyncRunner(io_client)
        self.capability = payment_capability(config.methods)
        if advertise:
            _advertise(session, self.capability)

    @property
    def session(self) -> ClientSession:
        """The wrapped session."""
        return self._session

    @property
    def origin(self) -> str:
        """The origin (or ``mcp-stdio://`` pseudo-origin) payments are made to."""
        return self._origin

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)

    async def initialize(self) -> types.InitializeResult:
        """The session's ``initialize`` (with the payment capability advertised)."""
        return await self._session.initialize()

    async def call_tool(
        self,
        name: str,
        arguments: dict[str, Any] | None = None,
        read_timeout_seconds: float | None = None,
        progress_callback: ProgressFnT | None = None,
        *,
        meta: RequestParamsMeta | None = None,
        options: PaymentOptions | None = None,
    ) -> PaidToolResult:
        """Call tool ``name``; pay when the server asks, within the wallet's limits.

        ``options``: per-call ``PaymentOptions`` (``max_amount``, ``dry_run``, ``never_pay``,
        ``max_payments``, ``label``). Raises what the HTTP drivers raise: a
        ``PaymentRefused`` subclass when nothing was signed (policy, budget, expiry, a vetoing
        hook), ``PaymentOutcomeUnknown`` when a credential left and no usable answer came
        back (the journal entry stays unknown and held). A JSON-RPC error that is not a
        payment requirement is raised unchanged (``mcp.shared.exceptions.MCPError``).
        """
        first: types.CallToolResult | MCPError
        try:
            result = await self._session.call_tool(
                name, arguments, read_timeout_seconds, progress_callback, meta=meta
            )
        except MCPError as exc:
            data = payment_required_data(exc.error.data) if exc.code in _PAYMENT_CODES else None
            if data is None:
                raise
            first = exc
        else:
            data = payment_required_data((result.meta or {}).get(PAYMENT_REQUIRED_META_KEY))
            if data is None:
                return PaidToolResult(result, None)
            first = result
        call = _ToolCall(name, arguments, read_timeout_seconds, progress_callback, meta)
        return await self._pay(call, first, data, options or PaymentOptions())

    async def _pay(
        self,
        call: _ToolCall,
        first: types.CallToolResult | MCPError,
        data: Mapping[str, Any],
        options: PaymentOptions,
    ) -> PaidToolResult:
        challenges = McpChallenges()
        head = ResponseHead(
            402,
            (_PROBLEM, *challenges.headers(data)),
            problem_body("payment-required", 402, problem=data.get("problem")),
        )
        facts = RequestFacts(
            method="POST",
            url=f"{self._base}/tools/{quote(call.name, safe='')}",
            origin=self._origin,
            first_origin=self._origin,
            headers={},
            body=call.body(),
            body_problem=None,
            options=options,
        )
        last: types.CallToolResult | MCPError = first

        async def send(effect: Send) -> ResponseHead:
            nonlocal last
            meta = self._credential(effect, challenges, call.meta)
            try:
                answer: types.CallToolResult | MCPError = await self._session.call_tool(
                    call.name,
                    call.arguments,
                    call.read_timeout_seconds,
                    call.progress_callback,
                    meta=meta,
                )
            except MCPError as exc:
                if exc.code in _NO_ANSWER:
                    raise SendFailed(exc) from exc
                answer = exc
            except Exception as exc:  # the transport failed, or the answer was unreadable
                raise SendFailed(exc) from exc
            last = answer
            return _answer_head(answer, challenges)

        flow = payment_flow(self._config, facts, head)
        payment = await drive_async(flow, self._runner.perform, send)
        if payment is None:  # never_pay, or nothing in the requirement could be read
            if isinstance(first, MCPError):
                raise first
            return PaidToolResult(first, None)
        if isinstance(last, MCPError):
            return PaidToolResult(None, payment, error=last)
        return PaidToolResult(last, payment)

    @staticmethod
    def _credential(
        effect: Send, challenges: McpChallenges, meta: RequestParamsMeta | None
    ) -> RequestParamsMeta:
        """``params._meta`` for the paid call: the caller's ``_meta`` plus the credential."""
        header = next(
            (
                value
                for name, value in effect.set_headers.items()
                if name in ("authorization", "payment-authorization")
                and value[:8].lower() == "payment "
            ),
            None,
        )
        if header is None:
            # A method that answers with its own headers (a compatibility mode) has no MCP form.
            raise MethodError("the payment method's credential cannot be sent over MCP")
        credential = parse_credential(header)
        original = challenges.original(credential.challenge.id)
        if original is None:
            raise MethodError("the credential answers a challenge this call never received")
        merged: dict[str, Any] = dict(meta or {})
        merged[CREDENTIAL_META_KEY] = credential_meta(original, credential)
        return cast(RequestParamsMeta, merged)

    async def aclose(self) -> None:
        """Close the HTTP client of the methods' own calls (not the session)."""
        await self._runner.aclose()

    async def __aenter__(self) -> PaymentSession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


@dataclass(frozen=True, slots=True)
class _ToolCall:
    name: str
    arguments: dict[str, Any] | None
    read_timeout_seconds: float | None
    progress_callback: ProgressFnT | None
    meta: RequestParamsMeta | None

    def body(self) -> bytes:
        """The replayable "request body" the flow and journal see: the JSON-RPC params."""
        params = {"name": self.name, "arguments": self.arguments or {}}
        text = json.dumps(
            params, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
        )
        return text.encode("utf-8")


def _server_identity(server: str) -> tuple[str, str, bool]:
    """(origin, base of the journal's tool URLs, whether it is a stdio server)."""
    parts = urlsplit(server)
    scheme = parts.scheme.lower()
    if scheme in ("http", "https") and parts.hostname:
        endpoint = server.split("#", 1)[0]
        return url_origin(endpoint), endpoint + "#", False
    if scheme == STDIO_SCHEME and parts.hostname:
        origin = stdio_server(parts.hostname)
        return origin, origin, True
    raise ValueError(
        f"server={server!r}: give the Streamable HTTP URL (https://host/mcp) or "
        'stdio_server("<name>") for a server over stdio'
    )


def _advertise(session: ClientSession, capability: Mapping[str, Any]) -> None:
    """Add ``experimental.payment`` to the capabilities ``session`` sends.

    mcp 2.x builds them in ``ClientSession._build_capabilities`` (for ``initialize`` and for
    the per-request envelope of 2026-07-28 connections) and offers no public way to set
    ``experimental``; the wrapper extends that one method on this instance only.
    """
    build = getattr(session, "_build_capabilities", None)
    if build is None:
        logger.warning("this mcp version cannot advertise the payment capability")
        return
    if session.initialize_result is not None or session.discover_result is not None:
        logger.warning("the session is already initialized: the payment capability is not sent")

    def with_payment(version: str) -> types.ClientCapabilities:
        capabilities = cast(types.ClientCapabilities, build(version))
        experimental = dict(capabilities.experimental or {})
        experimental[PAYMENT_CAPABILITY] = dict(capability)
        return capabilities.model_copy(update={"experimental": experimental})

    session._build_capabilities = with_payment  # type: ignore[method-assign]


def _answer_head(
    answer: types.CallToolResult | MCPError, challenges: McpChallenges
) -> ResponseHead:
    """The answer to a paid tool call as the flow reads an HTTP answer."""
    if isinstance(answer, MCPError):
        return _error_head(answer, challenges)
    meta = answer.meta or {}
    required = payment_required_data(meta.get(PAYMENT_REQUIRED_META_KEY))
    if required is not None:
        fields = challenges.headers(required)
        body = problem_body("verification-failed", 402, problem=required.get("problem"))
        return ResponseHead(402, (_PROBLEM, *fields), body)
    receipt = receipt_header(meta.get(RECEIPT_META_KEY))
    if answer.is_error and receipt is None:
        # mppx answers a refused credential with an isError text result and no _meta, like a
        # tool that failed after it was paid: whether the payment settled cannot be told.
        detail = "the paid tool call returned an error result without a receipt"
        body = problem_body("internal-payment-error", 500, detail=detail)
        return ResponseHead(500, (_PROBLEM,), body)
    return ResponseHead(200, (("payment-receipt", receipt),) if receipt is not None else ())


def _error_head(error: MCPError, challenges: McpChallenges) -> ResponseHead:
    data = error.error.data
    details = data if isinstance(data, Mapping) else {}
    if error.code in _PAYMENT_CODES:
        status = 403 if details.get("httpStatus") == 403 else 402
        required = payment_required_data(details)
        fields = challenges.headers(required) if required is not None else []
        failure = details.get("failure")
        detail = error.message
        if isinstance(failure, Mapping):
            detail = str(failure.get("detail") or failure.get("reason") or detail)
        kind = "payment-required" if error.code == PAYMENT_REQUIRED_CODE else "verification-failed"
        body = problem_body(kind, status, detail=detail, problem=details.get("problem"))
        return ResponseHead(status, (_PROBLEM, *fields), body)
    if error.code == INVALID_PARAMS_CODE:
        body = problem_body("malformed-credential", 400, detail=error.message)
        return ResponseHead(400, (_PROBLEM,), body)
    # -32603 (a processor failure) and anything else: the settlement is unknown.
    body = problem_body("internal-payment-error", 500, detail=f"{error.code}: {error.message}")
    return ResponseHead(500, (_PROBLEM,), body)


def paying_http_client(
    wallet: Wallet | None = None,
    *,
    headers: Mapping[str, str] | None = None,
    timeout: httpx2.Timeout | None = None,
    **options: Any,
) -> httpx2.AsyncClient:
    """An ``httpx2.AsyncClient`` (the HTTP client of mcp 2.x) whose requests go through an
    ``AsyncPaymentTransport``: for ``streamable_http_client(url, http_client=...)``, so a 402
    answered to the HTTP POST itself (by the server or a proxy in front of it, with
    ``WWW-Authenticate: Payment``) is paid by the same wallet, policy, budgets and journal::

        async with (
            paying_http_client(wallet) as http,
            streamable_http_client(url, http_client=http) as (read, write),
            ClientSession(read, write) as session,
        ):
            paying = PaymentSession(session, server=url, wallet=wallet)  # the -32042 path

    ``options`` are ``AsyncPaymentTransport``'s (``methods=``, ``guard=``, ``hooks=``,
    ``inner=`` an ``httpx.AsyncBaseTransport``, ...); ``headers`` and ``timeout`` are the
    client's (default: the MCP SDK's 30 s, and 300 s to read a stream). A payment the wallet
    refuses (or whose outcome is unknown) cannot be raised through the SDK's transport task:
    the request gets a JSON-RPC error instead (``MCPError`` code -32603, ``data.mppError``
    naming the ``mpp_client`` error class); the journal and hooks have the details. Close the
    client (``async with``/``aclose()``): the SDK does not close a client it was given.
    """
    from mcp.shared._httpx_utils import MCP_DEFAULT_SSE_READ_TIMEOUT, MCP_DEFAULT_TIMEOUT

    from mpp_client.transport import AsyncPaymentTransport

    payer = AsyncPaymentTransport(wallet=wallet, **options)
    if timeout is None:
        timeout = httpx2.Timeout(MCP_DEFAULT_TIMEOUT, read=MCP_DEFAULT_SSE_READ_TIMEOUT)
    return httpx2.AsyncClient(
        transport=_Httpx2Bridge(payer), headers=dict(headers or {}), timeout=timeout
    )


class _Httpx2Bridge(httpx2.AsyncBaseTransport):
    """An httpx2 transport sending through an httpx one (``AsyncPaymentTransport``); the
    response body streams through unread (SSE)."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self._inner = inner

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        import httpx

        from mpp_client.errors import MppError

        extensions = {k: v for k, v in request.extensions.items() if k == "timeout"}
        outgoing = httpx.Request(
            request.method,
            str(request.url),
            headers=request.headers.raw,
            content=await request.aread(),
            extensions=extensions,
        )
        try:
            response = await self._inner.handle_async_request(outgoing)
        except httpx.TransportError as exc:
            error = getattr(httpx2, type(exc).__name__, httpx2.TransportError)
            raise error(str(exc), request=request) from exc
        except MppError as exc:
            logger.warning("HTTP-level MCP payment not completed: %s: %s", type(exc).__name__, exc)
            return _refused(request, exc)
        kept = ("http_version", "reason_phrase", PAYMENT_KEY)
        return httpx2.Response(
            response.status_code,
            headers=response.headers.raw,
            stream=_Httpx2Body(response),
            extensions={k: v for k, v in response.extensions.items() if k in kept},
        )

    async def aclose(self) -> None:
        await self._inner.aclose()


class _Httpx2Body(httpx2.AsyncByteStream):
    def __init__(self, response: httpx.Response) -> None:
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self._response.is_stream_consumed:  # the transport read it (a 402 it answered)
            yield self._response.content
            return
        async for chunk in self._response.aiter_raw():
            yield chunk

    async def aclose(self) -> None:
        await self._response.aclose()


def _refused(request: httpx2.Request, exc: Exception) -> httpx2.Response:
    """A JSON-RPC error answering the request whose HTTP-level payment was not made (the SDK
    takes it as the request's answer; ``id`` is set back to the request's by the SDK)."""
    status = getattr(getattr(exc, "response", None), "status_code", 402)
    error = {
        "code": -32603,
        "message": f"HTTP-level payment not completed: {type(exc).__name__}: {exc}",
        "data": {"mppError": type(exc).__name__, "httpStatus": status},
    }
    return httpx2.Response(
        402, json={"jsonrpc": "2.0", "id": None, "error": error}, request=request
    )
