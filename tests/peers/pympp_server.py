"""A real pympp 0.16 MPP server (tempo/charge) for interop tests, run as its own process.

    python tests/peers/pympp_server.py --port P --anvil URL --chain-id N --recipient ADDR \
        --split-recipient ADDR --fee-payer-key KEY

Routes (all GET): ``/free``; ``/paid`` (pull or push, ``?amount=0.01`` in dollars);
``/sponsored`` (the server pays the fee as fee payer); ``/split`` (0.01 + a 0.0025 split);
``/paid?chain=4217`` (another chain), ``/paid?currency=ADDR`` (another token),
``/paid?expires_in=2`` (a challenge that expires in 2 s). ``/health`` answers when ready.

pympp talks to anvil through a small JSON-RPC shim at ``/_rpc`` on the same server, because
anvil 1.7.1 rejects pympp's extra timeout parameter of ``eth_sendRawTransactionSync`` and has no
``tempo_simulateV1``: the shim drops the parameter and answers the simulation with ``eth_call``
per call. Everything listens on 127.0.0.1 only. Test keys only.
"""

from __future__ import annotations

import argparse
import json
from datetime import timedelta
from typing import Any

import httpx
import uvicorn
from mpp.methods.tempo import server as tempo
from mpp.methods.tempo.account import TempoAccount
from mpp.server import Mpp
from mpp.server.http import PaymentRequired
from mpp.server.http import Request as MppRequest
from mpp.server.http import Response as MppResponse
from starlette.applications import Starlette
from starlette.requests import Request as StarletteRequest
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

PATH_USD = "0x20c0000000000000000000000000000000000000"
SECRET = "pympp-peer-secret-for-mpp-client-tests-only"


def build_app(args: argparse.Namespace) -> Starlette:
    rpc = httpx.AsyncClient(timeout=30.0)
    shim_url = f"http://127.0.0.1:{args.port}/_rpc"
    mpp = Mpp(
        methods=tempo.charge(
            recipient=args.recipient,
            chain_id=args.chain_id,
            rpc_url=shim_url,
            currencies=[PATH_USD],
            fee_payer=TempoAccount.from_key(args.fee_payer_key),
            fee_token=PATH_USD,
            allowed_fee_tokens=[PATH_USD],
        ),
        realm="127.0.0.1",
        secret_key=SECRET,
    )

    async def forward(body: dict[str, Any]) -> dict[str, Any]:
        answer = await rpc.post(args.anvil, json=body)
        return answer.json()  # type: ignore[no-any-return]

    async def shim(request: StarletteRequest) -> JSONResponse:
        body = json.loads(await request.body())
        method = body.get("method")
        if method == "eth_sendRawTransactionSync":
            body["params"] = body["params"][:1]
        if method == "tempo_simulateV1":
            tx = body["params"][0]["blockStateCalls"][0]["calls"][0]
            calls = [*tx.get("calls", []), {"to": tx["to"], "data": tx["data"]}]
            results = []
            for call in calls:
                probe = {"from": tx["from"], "to": call["to"], "data": call["data"]}
                answer = await forward(
                    {"jsonrpc": "2.0", "id": 1, "method": "eth_call", "params": [probe, "latest"]}
                )
                if "error" in answer:
                    results.append({"status": "0x0", "error": answer["error"]})
                    break
            status = {"status": "0x1"} if not results else results[0]
            return JSONResponse(
                {
                    "jsonrpc": "2.0",
                    "id": body.get("id"),
                    "result": {"blocks": [{"calls": [status]}]},
                }
            )
        return JSONResponse(await forward(body))

    async def charge(request: StarletteRequest, **options: Any) -> Response:
        query = request.query_params
        options.setdefault("amount", query.get("amount", "0.01"))
        if "chain" in query:
            options["chain_id"] = int(query["chain"])
        if "currency" in query:
            options["currency"] = query["currency"]
        if "expires_in" in query:
            options["expires_in"] = timedelta(seconds=float(query["expires_in"]))
        handler = mpp["tempo/charge"](**options)
        mpp_request = MppRequest(
            request.method,
            str(request.url),
            headers=list(request.headers.items()),
            body=await request.body(),
            route=request.url.path,
        )
        result = await handler(mpp_request)
        if isinstance(result, PaymentRequired):
            return _to_starlette(result.challenge)
        paid = result.with_receipt(MppResponse.json({"paid": True, "path": request.url.path}))
        return _to_starlette(paid)

    async def paid(request: StarletteRequest) -> Response:
        return await charge(request)

    async def sponsored(request: StarletteRequest) -> Response:
        return await charge(request, fee_payer=True)

    async def split(request: StarletteRequest) -> Response:
        splits = [{"amount": "2500", "recipient": args.split_recipient}]
        return await charge(request, splits=splits)

    async def free(request: StarletteRequest) -> Response:
        return JSONResponse({"free": True})

    return Starlette(
        routes=[
            Route("/_rpc", shim, methods=["POST"]),
            Route("/paid", paid),
            Route("/sponsored", sponsored),
            Route("/split", split),
            Route("/free", free),
            Route("/health", free),
        ]
    )


def _to_starlette(response: MppResponse) -> Response:
    return Response(
        content=response.body or b"",
        status_code=response.status,
        headers=dict(response.headers.items()),
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--anvil", required=True)
    parser.add_argument("--chain-id", type=int, required=True)
    parser.add_argument("--recipient", required=True)
    parser.add_argument("--split-recipient", required=True)
    parser.add_argument("--fee-payer-key", required=True)
    args = parser.parse_args()
    uvicorn.run(build_app(args), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
