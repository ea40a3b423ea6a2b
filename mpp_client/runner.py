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
import concurrent.futures
import contextlib
import contextvars
import inspect
import os
import queue
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Generator
from typing import Any, ClassVar, TypeVar

import httpx
import tenacity

from mpp_client.effects import Await, HttpCall, HttpReply, JournalAccess, Sleep
from mpp_client.errors import EffectFailed
from mpp_client.trampoline import drive, drive_async

__all__ = ["AsyncRunner", "SyncRunner", "TransportFailed", "run_async", "run_sync"]

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


class TransportFailed(EffectFailed):
    """An HTTP call of a method failed in transport (``EffectFailed``), described without the
    httpx error itself: that error's ``.request`` carries the call's headers (macaroons, runes,
    API keys, app secrets; httpx masks only ``Authorization``), so it is never kept as
    ``__cause__`` or ``__context__``. ``cause_type`` is its class name (``"ConnectError"``,
    ``"ReadTimeout"``); ``status`` is an HTTP status when the failure had one (a transport
    error has none: ``None``)."""

    def __init__(
        self, reason: str, *, delivered: bool, cause_type: str, status: int | None = None
    ) -> None:
        super().__init__(reason, delivered=delivered)
        self.cause_type = cause_type
        self.status = status


def _failure(call: HttpCall, exc: BaseException) -> TransportFailed:
    delivered = not isinstance(exc, _NOT_DELIVERED)
    host = httpx.URL(call.url).host
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    # Only the class name and the host: the exception's text and its request may hold
    # secrets (a URL with a key, headers), and the caller needs only what kind of failure.
    return TransportFailed(
        f"{call.method} to {host} failed: {type(exc).__name__}",
        delivered=delivered,
        cause_type=type(exc).__name__,
        status=status if isinstance(status, int) else None,
    )


def _await_timeout(effect: Await, default: float | None) -> float | None:
    """Seconds an ``Await`` may take: its own ``timeout`` if the effect has one, else the
    runner's."""
    own = getattr(effect, "timeout", None)
    return default if own is None else float(own)


def _timed_out(timeout: float | None) -> EffectFailed:
    # delivered=True: the backend may have acted (sent a payment) before it stalled, so a
    # method must treat the outcome as unknown, exactly as for an HTTP read timeout.
    return EffectFailed(
        f"an async backend call did not finish within {timeout:g} s (cancelled); "
        "it may have taken effect",
        delivered=True,
    )


class _LoopThread:
    """One daemon thread running an event loop, for sync callers of async backends.

    Started on first use and shared by the process. After ``os.fork()`` the child has the
    parent's loop object but not its thread, so the child forgets both and starts its own on
    first use (see ``_after_fork``).
    """

    _lock = threading.Lock()
    _loop: asyncio.AbstractEventLoop | None = None
    # Loops inherited through fork: never closed (``close`` refuses a loop that believes it is
    # running) and kept referenced so collecting them does not warn about an unclosed loop.
    _abandoned: ClassVar[list[asyncio.AbstractEventLoop]] = []

    @classmethod
    def _running_loop(cls) -> asyncio.AbstractEventLoop:
        with cls._lock:
            if cls._loop is None or cls._loop.is_closed():
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=loop.run_forever, name="mpp-client-async", daemon=True
                )
                thread.start()
                cls._loop = loop
            return cls._loop

    @classmethod
    def _after_fork(cls) -> None:
        # Only the forking thread survives in the child: the loop thread is gone, so anything
        # scheduled on the inherited loop would wait forever, and the lock may have been held
        # by a thread that no longer exists. Start over with a fresh lock and no loop.
        cls._lock = threading.Lock()
        if cls._loop is not None:
            cls._abandoned.append(cls._loop)
        cls._loop = None

    @classmethod
    def run(cls, awaitable: Awaitable[T], timeout: float | None = None) -> T:
        """Await ``awaitable`` on the loop thread and return its result.

        The task runs in a copy of the caller's ``contextvars`` context, as if awaited where
        the caller stands. ``timeout`` is in seconds (``None``: wait as long as it takes); when
        it passes, the task is cancelled and ``EffectFailed(delivered=True)`` is raised, since
        the backend may already have acted (sent a payment) before it stalled.
        """
        loop = cls._running_loop()
        context = contextvars.copy_context()
        result: concurrent.futures.Future[T] = concurrent.futures.Future()
        tasks: list[asyncio.Future[T]] = []

        async def wrapper() -> T:
            return await awaitable

        def start() -> None:  # on the loop thread
            if result.cancelled():
                # Timed out before the loop got to it: never start it.
                if inspect.iscoroutine(awaitable):
                    awaitable.close()
                return
            # This callback runs in ``context`` and a new task copies the current context, so
            # the task sees the caller's context variables.
            task = asyncio.ensure_future(wrapper())
            tasks.append(task)
            task.add_done_callback(lambda done: _settle(done, result))

        def cancel() -> None:  # on the loop thread, always after ``start``
            for task in tasks:
                task.cancel()

        loop.call_soon_threadsafe(start, context=context)
        done, _ = concurrent.futures.wait([result], timeout=timeout)
        if not done and result.cancel():
            loop.call_soon_threadsafe(cancel)
            raise _timed_out(timeout)
        # Done, or it finished just as the timeout passed (``cancel`` lost): the outcome is here.
        return result.result()


def _settle(task: asyncio.Future[T], result: concurrent.futures.Future[T]) -> None:
    """Copy a finished task's outcome to the caller's future (unless the caller gave up)."""
    if task.cancelled():
        result.cancel()
        return
    # Read even when the caller gave up, so asyncio does not log "exception never retrieved".
    error = task.exception()
    # ``result`` stays pending until now, so the caller's ``cancel`` either won (then nobody
    # waits for this outcome) or fails from here on and the caller reads what is set below.
    if not result.set_running_or_notify_cancel():
        return
    if error is not None:
        result.set_exception(error)
    else:
        result.set_result(task.result())


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_LoopThread._after_fork)


class SyncRunner:
    """Performs effects synchronously. ``client`` is used for HTTP calls (created on first use
    when not given, and then closed by ``close``).

    ``await_timeout`` (seconds, ``None``: no limit) bounds how long an ``Await`` of an async
    backend may take; past it the call is cancelled and ``EffectFailed(delivered=True)`` is
    thrown into the generator, which decides what an unfinished call means (a payment whose
    outcome is unknown, a lookup to retry).
    """

    def __init__(
        self, client: httpx.Client | None = None, *, await_timeout: float | None = None
    ) -> None:
        self._client = client
        self._owns_client = client is None
        self._lock = threading.Lock()
        self._await_timeout = await_timeout

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = httpx.Client(timeout=10.0)
        return self._client

    def http(self, call: HttpCall) -> HttpReply:
        try:
            response = self._send(call)
        except httpx.TransportError as exc:
            # Built here, raised below: raised inside this block it would get the httpx error
            # as ``__context__`` (even ``from None`` keeps it there), and that error's
            # ``.request.headers`` shows the method's credentials. The retry loop runs in
            # ``_send`` so that no frame of this traceback holds tenacity's record of it.
            failure = _failure(call, exc)
        else:
            return _reply(response)
        raise failure

    def _send(self, call: HttpCall) -> httpx.Response:
        retrying = tenacity.Retrying(
            retry=_retry_policy(call),
            stop=tenacity.stop_after_attempt(CALL_ATTEMPTS),
            wait=_wait(),
            reraise=True,
        )
        for attempt in retrying:
            with attempt:
                return self.client.request(
                    call.method,
                    call.url,
                    headers=dict(call.headers),
                    content=call.content or None,
                    timeout=call.timeout,
                )
        raise AssertionError("unreachable: tenacity re-raises the last failure")

    def perform(self, effect: object) -> Any:
        """Perform one effect and return its result (``Checkpoint`` is not an I/O effect)."""
        if isinstance(effect, HttpCall):
            return self.http(effect)
        if isinstance(effect, Await):
            value = effect.function()
            if inspect.isawaitable(value):
                return _LoopThread.run(value, _await_timeout(effect, self._await_timeout))
            return value
        if isinstance(effect, Sleep):
            time.sleep(max(0.0, effect.seconds))
            return None
        raise TypeError(f"cannot perform {type(effect).__name__}")

    def run(self, gen: Generator[Any, Any, T]) -> T:
        """Drive ``gen`` to completion; ``Checkpoint`` effects are acknowledged with ``None``."""
        return drive(gen, self.perform)

    def close(self) -> None:
        if self._owns_client and self._client is not None:
            self._client.close()
            self._client = None


_Job = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", contextvars.Context, Any]


def _resolve(future: asyncio.Future[Any], error: BaseException | None, value: Any) -> None:
    """Hand a journal step's outcome to its awaiting task (on the loop; unless cancelled)."""
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)


class _JournalWorker:
    """One thread running journal steps in the order they were submitted, off the event loop.

    A plain queue and ``call_soon_threadsafe`` instead of ``run_in_executor``: about half the
    cost per hand-off (a payment makes one: the hold, the signing and the ``sent`` step run as
    one stretch, see ``mpp_client.trampoline``), with the same guarantees: the step runs in
    a copy of the caller's ``contextvars`` context, its outcome (or error) is set on the
    awaiting future, and steps already queued still run after ``shutdown``. Non-daemon, like
    an executor's thread, so queued steps also finish when the interpreter exits.
    """

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        # The thread holds the queue, not this object: a runner dropped without ``aclose``
        # still ends its thread (after the queued steps) when it is collected.
        self._thread = threading.Thread(target=_serve, args=(self._queue,), name="mpp-journal")
        self._thread.start()
        weakref.finalize(self, self._queue.put, None)
        _live_workers.add(self)

    def submit(self, function: Any) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        # As asyncio.to_thread does: the call sees the caller's context (budget scopes).
        self._queue.put((loop, future, contextvars.copy_context(), function))
        return future

    def shutdown(self) -> None:
        self._queue.put(None)
        _live_workers.discard(self)


def _serve(jobs: queue.SimpleQueue[_Job | None]) -> None:
    """A journal worker's thread: run each step, hand its outcome to the loop; ``None`` ends."""
    while (job := jobs.get()) is not None:
        loop, future, context, function = job
        error: BaseException | None = None
        value: Any = None
        try:
            value = context.run(function)
        except StopIteration as stop:  # a future refuses StopIteration itself
            error = RuntimeError(f"a journal step raised StopIteration: {stop!r}")
        except BaseException as exc:  # handed to the awaiting task
            error = exc
        del job, function, context  # hold nothing of a finished step while idle
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(_resolve, future, error, value)
        del future, error, value, loop


#: Workers not shut down: asked to stop at interpreter exit (after their queued steps), as
#: ``concurrent.futures`` does for its threads, so a forgotten ``aclose`` never hangs exit.
_live_workers: weakref.WeakSet[_JournalWorker] = weakref.WeakSet()


def _stop_workers() -> None:
    for worker in list(_live_workers):
        worker.shutdown()


threading._register_atexit(_stop_workers)  # type: ignore[attr-defined]


class AsyncRunner:
    """Performs effects on the running event loop (same semantics as ``SyncRunner``, including
    ``await_timeout``; a ``blocking`` function past it keeps running in its worker thread, as
    threads cannot be cancelled, but the generator is no longer kept waiting)."""

    def __init__(
        self, client: httpx.AsyncClient | None = None, *, await_timeout: float | None = None
    ) -> None:
        self._client = client
        self._owns_client = client is None
        self._await_timeout = await_timeout
        # The journal's worker: one thread, so journal steps run in the order they were yielded
        # and concurrent payments do not spread over (and fight for the GIL in) a pool.
        self._journal_worker: _JournalWorker | None = None

    def _in_journal_worker(self, function: Any) -> asyncio.Future[Any]:
        worker = self._journal_worker
        if worker is None:
            worker = self._journal_worker = _JournalWorker()
        return worker.submit(function)

    @property
    def offload(self) -> Callable[[Callable[[], Any]], asyncio.Future[Any]] | None:
        """Runs a function in the journal worker: ``drive_async`` runs a journal step marked
        ``resume_in_worker`` there together with the flow after it, up to its next effect
        that is not a journal step (one hand-off instead of several). ``None`` under an
        ``await_timeout``: a stretch in a thread could not be cut short at the deadline."""
        return self._in_journal_worker if self._await_timeout is None else None

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=10.0)
        return self._client

    async def http(self, call: HttpCall) -> HttpReply:
        try:
            response = await self._send(call)
        except httpx.TransportError as exc:
            # Built here, raised below: raised inside this block it would get the httpx error
            # as ``__context__`` (even ``from None`` keeps it there), and that error's
            # ``.request.headers`` shows the method's credentials. The retry loop runs in
            # ``_send`` so that no frame of this traceback holds tenacity's record of it.
            failure = _failure(call, exc)
        else:
            return _reply(response)
        raise failure

    async def _send(self, call: HttpCall) -> httpx.Response:
        retrying = tenacity.AsyncRetrying(
            retry=_retry_policy(call),
            stop=tenacity.stop_after_attempt(CALL_ATTEMPTS),
            wait=_wait(),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await self.client.request(
                    call.method,
                    call.url,
                    headers=dict(call.headers),
                    content=call.content or None,
                    timeout=call.timeout,
                )
        raise AssertionError("unreachable: tenacity re-raises the last failure")

    async def perform(self, effect: object) -> Any:
        if isinstance(effect, HttpCall):
            return await self.http(effect)
        if isinstance(effect, Await):
            timeout = _await_timeout(effect, self._await_timeout)
            if timeout is None and isinstance(effect, JournalAccess):
                # The common case (every journal step, no limit): no deadline to arm.
                value = await self._in_journal_worker(effect.function)
                return (await value) if inspect.isawaitable(value) else value
            deadline = asyncio.timeout(timeout)
            try:
                async with deadline:
                    if isinstance(effect, JournalAccess):
                        value = await self._in_journal_worker(effect.function)
                    elif effect.blocking:
                        value = await asyncio.to_thread(effect.function)
                    else:
                        value = effect.function()
                    if inspect.isawaitable(value):
                        return await value
                    return value
            except TimeoutError:
                # A backend may raise TimeoutError of its own; only ours becomes EffectFailed.
                if not deadline.expired():
                    raise
                raise _timed_out(timeout) from None
        if isinstance(effect, Sleep):
            await asyncio.sleep(max(0.0, effect.seconds))
            return None
        raise TypeError(f"cannot perform {type(effect).__name__}")

    async def run(self, gen: Generator[Any, Any, T]) -> T:
        return await drive_async(gen, self.perform, offload=self.offload)

    async def aclose(self) -> None:
        worker, self._journal_worker = self._journal_worker, None
        if worker is not None:
            worker.shutdown()  # queued steps still run; the thread ends after them
        if self._owns_client and self._client is not None:
            await self._client.aclose()
            self._client = None


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
