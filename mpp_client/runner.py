"""Run effect generators: one sync runner, one async runner, same semantics.

Payment logic yields effects (``mpp_client.effects``); these runners perform them. HTTP calls
go through one reused httpx client per runner (so a chain RPC endpoint keeps its connection) and
connect-phase failures are retried with jittered exponential backoff: a request that never
reached the server can always be sent again. Failures after the request may have arrived are
retried only for calls marked ``retry_safe`` (reads); otherwise they are thrown back into the
generator as ``EffectFailed(delivered=True)``, because a method that was broadcasting value must
then report an unknown outcome rather than try again.

The sync runner reaches async-only backends (NWC, the Spark SDK, async hooks) through one
background event-loop thread shared by the process.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import Any, TypeVar

import httpx
import tenacity

from mpp_client.effects import Await, Checkpoint, HttpCall, HttpReply, Sleep
from mpp_client.errors import EffectFailed

__all__ = ["AsyncRunner", "SyncRunner", "run_async", "run_sync"]

T = TypeVar("T")

#: Attempts for one HTTP call of a method (first try included).
CALL_ATTEMPTS = 3

# Errors raised before any byte of the request can have reached the server.
_NOT_DELIVERED: tuple[type[Exception], ...] = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.UnsupportedProtocol,
)
_MAYBE_DELIVERED: tuple[type[Exception], ...] = (httpx.TransportError,)


def _retry_policy(call: HttpCall) -> tenacity.retry_base:
    kinds = _MAYBE_DELIVERED if call.retry_safe else _NOT_DELIVERED
    return tenacity.retry_if_exception_type(kinds)


def _wait() -> tenacity.wait.wait_base:
    return tenacity.wait_random_exponential(multiplier=0.05, max=1.0)


def _reply(response: httpx.Response) -> HttpReply:
    return HttpReply(response.status_code, dict(response.headers.items()), response.content)


def _failure(call: HttpCall, exc: BaseException) -> EffectFailed:
    delivered = not isinstance(exc, _NOT_DELIVERED)
    host = httpx.URL(call.url).host
    return EffectFailed(
        f"{call.method} to {host} failed: {type(exc).__name__}", delivered=delivered
    )


class _LoopThread:
    """One daemon thread running an event loop, for sync callers of async backends."""

    _lock = threading.Lock()
    _loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def run(cls, awaitable: Awaitable[T]) -> T:
        with cls._lock:
            if cls._loop is None or cls._loop.is_closed():
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=loop.run_forever, name="mpp-client-async", daemon=True
                )
                thread.start()
                cls._loop = loop
            loop = cls._loop

        async def wrapper() -> T:
            return await awaitable

        return asyncio.run_coroutine_threadsafe(wrapper(), loop).result()


class SyncRunner:
    """Performs effects synchronously. ``client`` is used for HTTP calls (created on first use
    when not given, and then closed by ``close``)."""

    def __init__(self, client: httpx.Client | None = None) -> None:
        self._client = client
        self._owns_client = client is None
        self._lock = threading.Lock()

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = httpx.Client(timeout=10.0)
        return self._client

    def http(self, call: HttpCall) -> HttpReply:
        retrying = tenacity.Retrying(
            retry=_retry_policy(call),
            stop=tenacity.stop_after_attempt(CALL_ATTEMPTS),
            wait=_wait(),
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    response = self.client.request(
                        call.method,
                        call.url,
                        headers=dict(call.headers),
                        content=call.content or None,
                        timeout=call.timeout,
                    )
        except httpx.TransportError as exc:
            raise _failure(call, exc) from exc
        return _reply(response)

    def perform(self, effect: object) -> Any:
        """Perform one effect and return its result (``Checkpoint`` is not an I/O effect)."""
        if isinstance(effect, HttpCall):
            return self.http(effect)
        if isinstance(effect, Await):
            value = effect.function()
            if inspect.isawaitable(value):
                return _LoopThread.run(value)
            return value
        if isinstance(effect, Sleep):
            time.sleep(max(0.0, effect.seconds))
            return None
        raise TypeError(f"cannot perform {type(effect).__name__}")

    def run(self, gen: Generator[Any, Any, T]) -> T:
        """Drive ``gen`` to completion; ``Checkpoint`` effects are acknowledged with ``None``."""
        return _drive_sync(gen, self.perform)

    def close(self) -> None:
        if self._owns_client and self._client is not None:
            self._client.close()
            self._client = None


class AsyncRunner:
    """Performs effects on the running event loop (same semantics as ``SyncRunner``)."""

    def __init__(self, client: httpx.AsyncClient | None = None) -> None:
        self._client = client
        self._owns_client = client is None

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=10.0)
        return self._client

    async def http(self, call: HttpCall) -> HttpReply:
        retrying = tenacity.AsyncRetrying(
            retry=_retry_policy(call),
            stop=tenacity.stop_after_attempt(CALL_ATTEMPTS),
            wait=_wait(),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    response = await self.client.request(
                        call.method,
                        call.url,
                        headers=dict(call.headers),
                        content=call.content or None,
                        timeout=call.timeout,
                    )
        except httpx.TransportError as exc:
            raise _failure(call, exc) from exc
        return _reply(response)

    async def perform(self, effect: object) -> Any:
        if isinstance(effect, HttpCall):
            return await self.http(effect)
        if isinstance(effect, Await):
            if effect.blocking:
                value = await asyncio.to_thread(effect.function)
            else:
                value = effect.function()
            if inspect.isawaitable(value):
                return await value
            return value
        if isinstance(effect, Sleep):
            await asyncio.sleep(max(0.0, effect.seconds))
            return None
        raise TypeError(f"cannot perform {type(effect).__name__}")

    async def run(self, gen: Generator[Any, Any, T]) -> T:
        return await _drive_async(gen, self.perform)

    async def aclose(self) -> None:
        if self._owns_client and self._client is not None:
            await self._client.aclose()
            self._client = None


def _drive_sync(gen: Generator[Any, Any, T], perform: Callable[[Any], Any]) -> T:
    reply: Any = None
    error: BaseException | None = None
    while True:
        try:
            effect = gen.throw(error) if error is not None else gen.send(reply)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        reply, error = None, None
        if isinstance(effect, Checkpoint):
            continue
        try:
            reply = perform(effect)
        except Exception as exc:  # thrown into the generator, which decides what it means
            error = exc


async def _drive_async(
    gen: Generator[Any, Any, T], perform: Callable[[Any], Coroutine[Any, Any, Any]]
) -> T:
    reply: Any = None
    error: BaseException | None = None
    while True:
        try:
            effect = gen.throw(error) if error is not None else gen.send(reply)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        reply, error = None, None
        if isinstance(effect, Checkpoint):
            continue
        try:
            reply = await perform(effect)
        except Exception as exc:
            error = exc


def run_sync(gen: Generator[Any, Any, T], client: httpx.Client | None = None) -> T:
    """Run an effect generator to completion synchronously (e.g. a method's ``lookup``)."""
    runner = SyncRunner(client)
    try:
        return runner.run(gen)
    finally:
        runner.close()


async def run_async(gen: Generator[Any, Any, T], client: httpx.AsyncClient | None = None) -> T:
    """Run an effect generator to completion on the running event loop."""
    runner = AsyncRunner(client)
    try:
        return await runner.run(gen)
    finally:
        await runner.aclose()
