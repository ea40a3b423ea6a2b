"""A paid MCP server for the tests, built with the official ``mcp`` server SDK (low-level
``Server``). It charges through the ``test`` method (``TestMethod``'s HMAC proof) with
stateless HMAC-bound challenges and single-use credentials, and answers the shapes real
servers use. Run over stdio with ``python -m tests.mcp.paid_server``; ``http_app()`` is the
Streamable HTTP application.

Tools: ``free``; ``caps`` (the client's capabilities as JSON); ``paid`` (-32042 error),
``paid_iserror`` (an ``isError`` result with the payment-required ``_meta``), ``paid_meta``
(a plain result with it); ``reject`` (every credential refused with -32043 and a fresh
challenge); ``lose`` (the payment is taken, then the answer is lost: over stdio the process
exits, over HTTP ``DropPaidAnswers`` swallows it); ``malformed`` (-32602 after paying);
``internal`` (-32603 after taking the payment); ``notify`` (sends a notification that looks
like a payment requirement, then answers for free).
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import mcp_types as types
from mcp.server.lowlevel import Server
from mcp.shared.exceptions import MCPError

from mpp_client.protocol import b64url_encode, canonical_json, compute_challenge_id
from mpp_client.protocol.timestamps import format_timestamp
from mpp_client.testing import test_proof

SECRET = b"mcp-paid-test-server-secret-0123456789"
REALM = "mcp.test"
CREDENTIAL = "org.paymentauth/credential"
RECEIPT = "org.paymentauth/receipt"
REQUIRED = "org.paymentauth/payment-required"
PAID_TOOLS = ("paid", "paid_iserror", "paid_meta", "reject", "lose", "malformed", "internal")


class PaidTools:
    """The server's state: used challenge ids, accepted payments, what clients sent."""

    def __init__(self, *, on_lose: Callable[[], Awaitable[None]] | None = None) -> None:
        self.on_lose = on_lose
        self.reset()

    def reset(self) -> None:
        self.used: set[str] = set()
        self.accepted: list[str] = []
        self.credentials: list[dict[str, Any]] = []
        self.capabilities: list[dict[str, Any] | None] = []

    def challenge(self, tool: str, amount: str = "1000") -> dict[str, Any]:
        request = {"amount": amount, "currency": "usd-test", "recipient": "merchant"}
        expires = format_timestamp(datetime.now(UTC) + timedelta(minutes=5))
        opaque = {"nonce": secrets.token_hex(8), "tool": tool}  # an object, as pympp sends
        return {
            "id": self._id(request, expires, opaque),
            "realm": REALM,
            "method": "test",
            "intent": "charge",
            "request": request,
            "expires": expires,
            "opaque": opaque,
            "description": f"{amount} base units for {tool}",
        }

    @staticmethod
    def _id(request: Any, expires: Any, opaque: Any) -> str:
        return compute_challenge_id(
            SECRET,
            realm=REALM,
            method="test",
            intent="charge",
            request=b64url_encode(canonical_json(request)),
            expires=expires,
            opaque=canonical_json(opaque).decode(),
        )

    def required(self, tool: str, **extra: Any) -> dict[str, Any]:
        return {"httpStatus": 402, "challenges": [self.challenge(tool)], **extra}

    def refuse(self, tool: str, reason: str) -> MCPError:
        data = self.required(tool, failure={"reason": reason, "detail": reason})
        return MCPError(-32043, "Payment Verification Failed", data)

    def verify(self, tool: str, credential: Any) -> str:
        """The challenge id of a valid, unused credential (now used); raises the MCP error."""
        if not isinstance(credential, dict):
            raise MCPError(-32602, "Malformed credential")
        challenge, payload = credential.get("challenge"), credential.get("payload")
        if not isinstance(challenge, dict) or not isinstance(payload, dict):
            raise MCPError(-32602, "Malformed credential")
        try:
            expected = self._id(challenge["request"], challenge["expires"], challenge["opaque"])
        except (KeyError, TypeError, ValueError):
            raise MCPError(-32602, "Malformed credential") from None
        challenge_id = challenge.get("id")
        if challenge_id != expected or challenge.get("realm") != REALM:
            raise self.refuse(tool, "invalid-challenge")
        if datetime.fromisoformat(challenge["expires"].replace("Z", "+00:00")) < datetime.now(UTC):
            raise self.refuse(tool, "expired")
        if challenge_id in self.used:
            raise self.refuse(tool, "challenge already used")
        if payload.get("proof") != test_proof(challenge_id):
            raise self.refuse(tool, "verification-failed")
        self.used.add(challenge_id)
        self.accepted.append(challenge_id)
        return challenge_id

    @staticmethod
    def receipt(challenge_id: str) -> dict[str, Any]:
        return {
            "status": "success",
            "method": "test",
            "timestamp": format_timestamp(datetime.now(UTC)),
            "reference": "test-ref-" + challenge_id[:12],
            "challengeId": challenge_id,
        }

    async def call(self, ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        tool = params.name
        meta: MutableMapping[str, Any] = dict(params.meta or {})
        if tool == "free":
            return _text("free")
        if tool == "caps":
            caps = ctx.session.client_capabilities
            dumped = caps.model_dump(by_alias=True, exclude_none=True) if caps else None
            self.capabilities.append(dumped)
            return _text(json.dumps(dumped))
        if tool == "notify":
            # A notification that looks like a payment requirement: nothing answers it.
            token = meta.get("progressToken", meta.get("progress_token"))
            data = {"code": -32042, "data": self.required(tool), REQUIRED: self.required(tool)}
            if token is not None:
                await ctx.session.send_progress_notification(
                    token, 0.5, 1.0, json.dumps(data), related_request_id=ctx.request_id
                )
            return _text("notified")
        if tool not in PAID_TOOLS:
            raise MCPError(-32602, f"unknown tool {tool}")
        credential = meta.get(CREDENTIAL)
        if credential is None:
            if tool == "paid_iserror":
                return types.CallToolResult(
                    content=[types.TextContent(type="text", text="Payment Required")],
                    is_error=True,
                    _meta={REQUIRED: self.required(tool)},
                )
            if tool == "paid_meta":
                return types.CallToolResult(
                    content=[types.TextContent(type="text", text="payment required")],
                    _meta={REQUIRED: self.required(tool)},
                )
            raise MCPError(-32042, "Payment Required", self.required(tool))
        if isinstance(credential, dict):
            self.credentials.append(credential)
        if tool == "reject":
            raise self.refuse(tool, "verification-failed")
        if tool == "malformed":
            raise MCPError(-32602, "Malformed credential")
        challenge_id = self.verify(tool, credential)
        if tool == "internal":
            raise MCPError(-32603, "settlement failed after broadcast")
        if tool == "lose" and self.on_lose is not None:
            await self.on_lose()
        args = json.dumps(params.arguments or {}, sort_keys=True)
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=f"{tool} {args}")],
            _meta={RECEIPT: self.receipt(challenge_id)},
        )


def _text(text: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)])


def build(tools: PaidTools) -> Server[Any]:
    async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
        names = ("free", "caps", "notify", *PAID_TOOLS)
        return types.ListToolsResult(
            tools=[types.Tool(name=n, input_schema={"type": "object"}) for n in names]
        )

    return Server("mpp-paid-test", on_list_tools=list_tools, on_call_tool=tools.call)


class DropPaidAnswers:
    """ASGI wrapper: the answer to a paid ``lose`` call is swallowed (the response starts, its
    body never comes), like a connection lost after the server took the payment."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.dropped = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        messages, body, more = [], b"", True
        while more:
            message = await receive()
            messages.append(message)
            body += message.get("body", b"")
            more = message.get("more_body", False)

        async def replay() -> Any:
            return messages.pop(0) if messages else await receive()

        if not _is_paid_lose(body):
            await self.app(scope, replay, send)
            return
        self.dropped += 1

        async def swallow(message: Any) -> None:
            if message["type"] == "http.response.start":
                await send(message)
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                await send({"type": "http.response.body", "body": b"", "more_body": False})

        await self.app(scope, replay, swallow)


def _is_paid_lose(body: bytes) -> bool:
    try:
        message = json.loads(body)
    except ValueError:
        return False
    params = message.get("params") if isinstance(message, dict) else None
    return (
        isinstance(params, dict)
        and message.get("method") == "tools/call"
        and params.get("name") == "lose"
        and CREDENTIAL in (params.get("_meta") or {})
    )


def http_app(tools: PaidTools) -> Any:
    server = build(tools)
    return DropPaidAnswers(server.streamable_http_app(streamable_http_path="/mcp"))


async def _stdio_main() -> None:
    from mcp.server.stdio import stdio_server

    async def lose() -> None:
        os._exit(3)  # the payment is taken; the answer never leaves

    tools = PaidTools(on_lose=lose)
    server = build(tools)
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


if __name__ == "__main__":
    anyio.run(_stdio_main)
