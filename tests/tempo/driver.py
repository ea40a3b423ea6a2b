"""Drive a Tempo method's effect generators in tests.

``FakeRpc`` answers JSON-RPC calls from canned handlers and records every call; ``ChainRpc``
sends them to a real node. ``drive`` runs a generator against either and records every effect
(checkpoints included) in order, so tests can assert what was signed and what was sent.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

import httpx

from mpp_client.effects import Checkpoint, HttpCall, HttpReply, Sleep
from mpp_client.errors import EffectFailed
from mpp_client.testing import ManualClock

from .challenges import NOW


class RpcFault(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


@dataclass
class FakeRpc:
    """Canned JSON-RPC: ``handlers[method](params) -> result`` (raise RpcFault for errors)."""

    handlers: dict[str, Callable[[list[Any]], Any]] = field(default_factory=dict)
    calls: list[tuple[str, list[Any]]] = field(default_factory=list)

    @classmethod
    def chain(
        cls,
        chain_id: int = 42431,
        gas_price: int = 20 * 10**9,
        block_time: Callable[[], float] | float | None = None,
    ) -> FakeRpc:
        """A chain whose latest block is stamped ``block_time`` (Unix seconds, or a function
        returning them, e.g. a ManualClock's ``time``; default: the tests' pinned NOW)."""
        stamp = block_time if block_time is not None else NOW.timestamp()

        def latest_block(params: list[Any]) -> dict[str, Any]:
            assert params == ["latest", False]
            seconds = stamp() if callable(stamp) else stamp
            return {"number": "0x10", "timestamp": hex(int(seconds))}

        return cls(
            {
                "eth_chainId": lambda p: hex(chain_id),
                "eth_gasPrice": lambda p: hex(gas_price),
                "eth_getBlockByNumber": latest_block,
            }
        )

    def methods(self) -> list[str]:
        return [method for method, _ in self.calls]

    def __call__(self, call: HttpCall) -> HttpReply:
        assert call.method == "POST"
        body = json.loads(call.content)
        assert body["jsonrpc"] == "2.0" and isinstance(body["id"], int)
        method, params = body["method"], body["params"]
        self.calls.append((method, params))
        handler = self.handlers.get(method)
        if handler is None:
            answer: dict[str, Any] = {"error": {"code": -32601, "message": "Method not found"}}
        else:
            try:
                answer = {"result": handler(params)}
            except RpcFault as fault:
                answer = {"error": {"code": fault.code, "message": fault.message}}
        payload = {"jsonrpc": "2.0", "id": body["id"], **answer}
        return HttpReply(200, {"content-type": "application/json"}, json.dumps(payload).encode())


class ChainRpc:
    """Sends HttpCalls to a real endpoint with one reused httpx client."""

    def __init__(self) -> None:
        self.client = httpx.Client(timeout=30.0)
        self.calls: list[str] = []

    def __call__(self, call: HttpCall) -> HttpReply:
        self.calls.append(json.loads(call.content)["method"])
        try:
            response = self.client.request(
                call.method, call.url, headers=dict(call.headers), content=call.content
            )
        except httpx.TransportError as exc:
            raise EffectFailed(str(exc), delivered=not isinstance(exc, httpx.ConnectError)) from exc
        return HttpReply(response.status_code, dict(response.headers), response.content)

    def close(self) -> None:
        self.client.close()


@dataclass
class Trace:
    effects: list[Any] = field(default_factory=list)

    @property
    def checkpoints(self) -> list[Checkpoint]:
        return [e for e in self.effects if isinstance(e, Checkpoint)]

    @property
    def sleeps(self) -> list[Sleep]:
        return [e for e in self.effects if isinstance(e, Sleep)]


def drive(
    gen: Generator[Any, Any, Any],
    http: Callable[[HttpCall], HttpReply],
    clock: ManualClock | None = None,
) -> tuple[Any, Trace]:
    """Run ``gen``; HttpCalls go to ``http``; exceptions from ``http`` are thrown back in.
    A ``Sleep`` advances ``clock`` (when given) instead of waiting."""
    trace = Trace()
    reply: Any = None
    error: BaseException | None = None
    while True:
        try:
            effect = gen.throw(error) if error is not None else gen.send(reply)
        except StopIteration as stop:
            return stop.value, trace
        trace.effects.append(effect)
        reply, error = None, None
        if isinstance(effect, HttpCall):
            try:
                reply = http(effect)
            except Exception as exc:
                error = exc
        elif isinstance(effect, Sleep):
            if clock is not None:
                clock.advance(effect.seconds)
        elif isinstance(effect, Checkpoint):
            reply = None
        else:
            raise AssertionError(f"unexpected effect {effect!r}")


def run_to_end(gen: Generator[Any, Any, Any], http: Callable[[HttpCall], HttpReply]) -> Any:
    return drive(gen, http)[0]
