"""A real pympp 0.16 MCP server (``mpp.extensions.mcp`` on the official ``mcp`` 1.x server SDK)
with one paid tool, charging a Tempo charge on the local anvil chain, for the interop test
tests/mcp/test_pympp_interop.py.

It runs in its own virtualenv (pympp[mcp] needs mcp < 2; scripts/install-pympp-mcp.sh makes
.tools/pympp-mcp/venv), never in the project's:

    .tools/pympp-mcp/venv/bin/python tests/peers/pympp_mcp_server.py --port P \
        --anvil URL --chain-id N --recipient ADDR        # Streamable HTTP at /mcp, /health
    .tools/pympp-mcp/venv/bin/python tests/peers/pympp_mcp_server.py --stdio \
        --anvil URL --chain-id N --recipient ADDR        # stdio

Tools: ``echo`` (free, returns ``text``) and ``premium`` (0.01 pathUSD through
``verify_or_challenge(mpp.charge(amount="0.01"), tool="premium")``: -32042 with the
challenges, -32043 on a rejected credential, the receipt in the result's ``_meta``).

The tool handler is registered as the raw ``CallToolRequest`` handler: mcp 1.x's
``@server.call_tool()`` decorator turns every exception into an ``isError`` text result,
which would hide pympp's -32042/-32043 errors.

pympp reaches anvil through an in-process JSON-RPC shim (an httpx transport given to
``tempo.charge(http_client=...)``), because anvil 1.7.1 rejects pympp's extra timeout
parameter of ``eth_sendRawTransactionSync`` and has no ``tempo_simulateV1`` (the same shim as
tests/peers/pympp_server.py). Everything listens on 127.0.0.1 only. Test keys only.
"""

from __future__ import annotations

import argparse
import json
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
import mcp.types as types
import uvicorn
from mcp.server.lowlevel import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mpp.extensions.mcp import payment_capabilities, verify_or_challenge
from mpp.extensions.mcp.errors import PaymentRequiredError
from mpp.methods.tempo import server as tempo
from mpp.server import Mpp
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

PATH_USD = "0x20c0000000000000000000000000000000000000"
SECRET = "pympp-mcp-peer-secret-for-mpp-client-tests-only"
PRICE = "0.01"


class AnvilShim(httpx.AsyncBaseTransport):
    """pympp's JSON-RPC calls, adapted to anvil and forwarded to it."""

    def __init__(self, anvil: str) -> None:
        self.anvil = anvil
        self.client = httpx.AsyncClient(timeout=30.0)

    async def forward(self, body: dict[str, Any]) -> dict[str, Any]:
        answer = await self.client.post(self.anvil, json=body)
        return answer.json()  # type: ignore[no-any-return]

    async def answer(self, body: dict[str, Any]) -> dict[str, Any]:
        method = body.get("method")
        if method == "eth_sendRawTransactionSync":
            body["params"] = body["params"][:1]
        if method != "tempo_simulateV1":
            return await self.forward(body)
        tx = body["params"][0]["blockStateCalls"][0]["calls"][0]
        calls = [*tx.get("calls", []), {"to": tx["to"], "data": tx["data"]}]
        for call in calls:
            probe = {"from": tx["from"], "to": call["to"], "data": call["data"]}
            answer = await self.forward(
                {"jsonrpc": "2.0", "id": 1, "method": "eth_call", "params": [probe, "latest"]}
            )
            if "error" in answer:
                status: dict[str, Any] = {"status": "0x0", "error": answer["error"]}
                break
        else:
            status = {"status": "0x1"}
        return {"jsonrpc": "2.0", "id": body.get("id"), "result": {"blocks": [{"calls": [status]}]}}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(await request.aread())
        if isinstance(body, list):
            return httpx.Response(200, json=[await self.answer(one) for one in body])
        return httpx.Response(200, json=await self.answer(body))


def build(args: argparse.Namespace) -> tuple[Server[Any, Any], Any]:
    """The MCP server and its initialization options."""
    rpc = httpx.AsyncClient(transport=AnvilShim(args.anvil), timeout=30.0)
    mpp = Mpp(
        methods=tempo.charge(
            recipient=args.recipient,
            chain_id=args.chain_id,
            rpc_url="http://anvil-shim/",  # never dialled: the shim transport answers
            currencies=[PATH_USD],
            http_client=rpc,
        ),
        realm="127.0.0.1",
        secret_key=SECRET,
    )
    server: Server[Any, Any] = Server("pympp-mcp-peer")

    @server.list_tools()  # type: ignore[misc, no-untyped-call]
    async def list_tools() -> list[types.Tool]:
        schema = {"type": "object", "properties": {"text": {"type": "string"}}}
        return [
            types.Tool(name="echo", description="free", inputSchema=schema),
            types.Tool(name="premium", description=f"{PRICE} pathUSD", inputSchema=schema),
        ]

    async def call_tool(request: types.CallToolRequest) -> types.ServerResult:
        params = request.params
        if params.name == "echo":
            text = str((params.arguments or {}).get("text", ""))
            return types.ServerResult(
                types.CallToolResult(content=[types.TextContent(type="text", text=text)])
            )
        if params.name != "premium":
            raise ValueError(f"unknown tool {params.name}")
        meta = params.meta.model_dump(exclude_none=True) if params.meta else None
        # Raises PaymentVerificationError (-32043) / MalformedCredentialError (-32602).
        result = await verify_or_challenge(mpp.charge(amount=PRICE), tool="premium", meta=meta)
        if isinstance(result, list):
            raise PaymentRequiredError(challenges=result)
        _credential, receipt = result
        paid = types.CallToolResult.model_validate(
            {"content": [{"type": "text", "text": "premium content"}], "_meta": receipt.to_meta()}
        )
        return types.ServerResult(paid)

    server.request_handlers[types.CallToolRequest] = call_tool
    # Advertise experimental.payment on every transport (the Streamable HTTP session manager
    # calls create_initialization_options() itself, with no arguments).
    default_options = server.create_initialization_options

    def with_payment(notification_options: Any = None, experimental: Any = None) -> Any:
        return default_options(
            notification_options, {**payment_capabilities(mpp), **(experimental or {})}
        )

    server.create_initialization_options = with_payment  # type: ignore[method-assign]
    return server, server.create_initialization_options()


class _Endpoint:
    """The session manager as a plain ASGI endpoint (no /mcp -> /mcp/ redirect)."""

    def __init__(self, manager: StreamableHTTPSessionManager) -> None:
        self.manager = manager

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.manager.handle_request(scope, receive, send)


def http_app(args: argparse.Namespace) -> Starlette:
    server, _options = build(args)
    manager = StreamableHTTPSessionManager(app=server)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> Any:
        async with manager.run():
            yield

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    return Starlette(
        routes=[
            Route("/mcp", _Endpoint(manager), methods=["GET", "POST", "DELETE"]),
            Route("/health", health),
        ],
        lifespan=lifespan,
    )


async def stdio_main(args: argparse.Namespace) -> None:
    from mcp.server.stdio import stdio_server

    server, options = build(args)
    async with stdio_server() as (read, write):
        await server.run(read, write, options)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int)
    parser.add_argument("--stdio", action="store_true")
    parser.add_argument("--anvil", required=True)
    parser.add_argument("--chain-id", type=int, required=True)
    parser.add_argument("--recipient", required=True)
    args = parser.parse_args()
    if args.stdio:
        anyio.run(stdio_main, args)
        return
    if args.port is None:
        parser.error("give --port (Streamable HTTP) or --stdio")
    uvicorn.run(http_app(args), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
