"""A small test driver for effect generators: runs HttpCall through an httpx transport (so fake
nodes are httpx handlers speaking the real wire shapes), Await on an event loop, and records
every effect in order."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

import httpx

from mpp_client.effects import Await, Checkpoint, HttpCall, HttpReply, Sleep
from mpp_client.errors import EffectFailed


@dataclass
class Recorder:
    effects: list[Any] = field(default_factory=list)

    @property
    def checkpoints(self) -> list[Checkpoint]:
        return [e for e in self.effects if isinstance(e, Checkpoint)]

    @property
    def http_calls(self) -> list[HttpCall]:
        return [e for e in self.effects if isinstance(e, HttpCall)]


def _to_reply(client: httpx.Client, call: HttpCall) -> HttpReply:
    response = client.request(
        call.method,
        call.url,
        headers=dict(call.headers),
        content=call.content,
        timeout=call.timeout,
    )
    return HttpReply(
        response.status_code,
        {k.lower(): v for k, v in response.headers.items()},
        response.content,
    )


def run(
    gen: Generator[Any, Any, Any],
    handler: Callable[[httpx.Request], httpx.Response] | None = None,
    *,
    recorder: Recorder | None = None,
    client: httpx.Client | None = None,
) -> Any:
    """Drive ``gen`` to completion; HTTP goes to ``handler`` (an httpx MockTransport handler)
    or to ``client``; transport errors are thrown back as ``EffectFailed``."""
    recorder = recorder if recorder is not None else Recorder()
    own = client is None
    if client is None:
        client = httpx.Client(transport=httpx.MockTransport(handler or _no_http))
    loop: asyncio.AbstractEventLoop | None = None
    try:
        value: Any = None
        error: BaseException | None = None
        while True:
            try:
                effect = gen.throw(error) if error is not None else gen.send(value)
            except StopIteration as stop:
                return stop.value
            value, error = None, None
            recorder.effects.append(effect)
            if isinstance(effect, Checkpoint | Sleep):
                continue
            if isinstance(effect, HttpCall):
                try:
                    value = _to_reply(client, effect)
                except httpx.ConnectError as exc:
                    error = EffectFailed(f"connect failed: {type(exc).__name__}", delivered=False)
                except httpx.TransportError as exc:
                    error = EffectFailed(f"transport failed: {type(exc).__name__}", delivered=True)
                continue
            if isinstance(effect, Await):
                try:
                    result = effect.function()
                    if inspect.isawaitable(result):
                        if loop is None:
                            loop = asyncio.new_event_loop()
                        result = loop.run_until_complete(result)
                    value = result
                except Exception as exc:
                    error = exc
                continue
            raise AssertionError(f"unexpected effect {effect!r}")
    finally:
        if own:
            client.close()
        if loop is not None:
            loop.close()


async def arun(gen: Generator[Any, Any, Any], *, recorder: Recorder | None = None) -> Any:
    """Drive ``gen`` inside a running event loop (Await results are awaited; no HTTP)."""
    recorder = recorder if recorder is not None else Recorder()
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            effect = gen.throw(error) if error is not None else gen.send(value)
        except StopIteration as stop:
            return stop.value
        value, error = None, None
        recorder.effects.append(effect)
        if isinstance(effect, Checkpoint | Sleep):
            continue
        if isinstance(effect, Await):
            try:
                result = effect.function()
                value = await result if inspect.isawaitable(result) else result
            except Exception as exc:
                error = exc
            continue
        raise AssertionError(f"unexpected effect {effect!r}")


def _no_http(request: httpx.Request) -> httpx.Response:
    raise AssertionError(f"unexpected HTTP call {request.method} {request.url}")
