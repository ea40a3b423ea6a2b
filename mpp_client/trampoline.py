"""The two trampolines that run a payment flow: one sync, one async, used by every driver.

A flow (``mpp_client.flow.payment_flow``) and the generators it delegates to (a method's
``pay``, the wallet's ``reserve``) yield effects and receive their results. A driver supplies
two callables: ``send`` performs the flow's own ``Send`` effect (the paid retry; a transport
failure is raised as ``SendFailed``) and ``perform`` every other effect (``HttpCall``,
``Await``, ``Sleep``). An ordinary exception from either is thrown back into the flow, which
decides what it means for the money.

Every exit closes the flow. When the caller goes away mid-flight (``asyncio`` cancellation,
``KeyboardInterrupt``, any ``BaseException``), the exception is first thrown into the flow so
it records the truth in the journal (released if nothing left the process, else unknown and
held), then it goes on to the caller unchanged.

The async trampoline may also run part of the flow in the driver's journal worker thread: from
a journal step marked ``resume_in_worker`` (the hold) through the steps that follow it (the
signing, the ``sent`` step) in one hand-off (``_Stretch``). Each hand-off costs a thread
wake-up and a loop wake-up; a payment made one per journal step.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import threading
from collections.abc import Awaitable, Callable, Generator
from typing import Any, TypeVar

from mpp_client.effects import Checkpoint, JournalAccess, hold_back, release_hold
from mpp_client.flow import Send

__all__ = ["drive", "drive_async"]

T = TypeVar("T")


def _interrupt(flow: Generator[Any, Any, Any], exc: BaseException) -> None:
    """Let the flow see ``exc`` where it is suspended, so it can record the outcome."""
    try:
        flow.throw(exc)
    except BaseException as seen:  # the flow re-raises it (or what it became): expected
        if seen is not exc and not isinstance(seen, StopIteration):
            raise
    else:
        return


def _resume(flow: Generator[Any, Any, Any], pending: list[Any]) -> tuple[bool, Any]:
    """Send ``pending``'s reply into ``flow``, or throw its error (``[reply, error]``, cleared
    first): ``(False, the next effect)`` or ``(True, what the flow returned)``. Cleared because
    a traceback formatted with its frames' locals must not show the last answer a backend gave
    (an SDK object may carry what the backend echoed)."""
    reply, error = pending
    pending[0] = pending[1] = None
    try:
        return False, (flow.throw(error) if error is not None else flow.send(reply))
    except StopIteration as stop:
        return True, stop.value
    except BaseException:
        reply = error = None
        raise


def drive(
    flow: Generator[Any, Any, T],
    perform: Callable[[Any], Any],
    send: Callable[[Any], Any] | None = None,
) -> T:
    """Run ``flow`` to completion synchronously. ``send`` handles the flow's ``Send``
    effects (``None``: the flow yields none); ``perform`` everything else."""
    pending: list[Any] = [None, None]
    try:
        while True:
            done, effect = _resume(flow, pending)
            if done:
                return effect  # type: ignore[no-any-return]
            if isinstance(effect, Checkpoint):
                continue  # not I/O: only a flow that journals them cares
            try:
                if send is not None and isinstance(effect, Send):
                    pending[0] = send(effect)
                else:
                    pending[0] = perform(effect)
            except Exception as exc:  # thrown into the flow, which decides what it means
                pending[1] = exc
            except BaseException as exc:
                _interrupt(flow, exc)
                raise
    finally:
        flow.close()


#: What a stretch run in the journal worker ended with (``_Stretch.outcome``).
_REPLY, _AWAIT, _ERROR, _AHEAD, _RETURNED, _RAISED = range(6)
_NOTHING: tuple[int, Any] = (_REPLY, None)


def _worker_step(effect: object) -> bool:
    """Whether the journal worker may perform ``effect`` inside a stretch: a journal step with
    no deadline of its own (a thread cannot be cancelled; steps with one go through ``perform``,
    which arms it)."""
    return isinstance(effect, JournalAccess) and effect.timeout is None


class _Stretch:
    """A journal step marked ``resume_in_worker`` and the flow after it, run in the async
    driver's journal worker: each journal step the flow reaches is performed there too, until
    it yields anything else (or a step not so marked is done, or it ends). The loop gets one
    wake-up for the whole stretch instead of one per step.

    The flow never runs on two threads at once: the loop waits for the stretch, also when its
    task is cancelled meanwhile (the flow then sees the cancellation where the stretch left
    it, every step it began written; ``stop`` keeps the stretch from delivering the step's
    result, so nothing is signed against a hold after the caller went away). If the driver
    goes away without waiting (its coroutine closed), the worker ends the flow itself once
    the stretch is over (``abandon``).
    """

    __slots__ = ("_abandoned", "_done", "_lock", "_stop", "effect", "flow", "held", "outcome")

    def __init__(self, flow: Generator[Any, Any, Any], effect: JournalAccess) -> None:
        self.flow = flow
        self.effect = effect
        #: Hooks the flow called meanwhile, for the loop to run (``on_driver_thread``).
        self.held: list[Callable[[], None]] = []
        self.outcome: tuple[int, Any] = _NOTHING
        self._lock = threading.Lock()
        self._done = False
        self._abandoned: BaseException | None = None
        #: The caller went away: hand no more results to the flow (``stop``).
        self._stop = False

    def run(self) -> None:
        """In the journal worker (in a copy of the driver's context)."""
        token = hold_back(self.held)
        try:
            self.outcome = self._advance()
        finally:
            release_hold(token)
        with self._lock:
            self._done = True
            abandoned = self._abandoned
        if abandoned is not None:
            # Nobody waits for this flow any more: let it record the truth here, then end it.
            held, self.held = self.held, []
            for call in held:
                call()
            if self.outcome[0] not in (_RETURNED, _RAISED):
                with contextlib.suppress(BaseException):
                    _interrupt(self.flow, abandoned)
            with contextlib.suppress(BaseException):
                self.flow.close()
            self.discard_awaitable()

    def _advance(self) -> tuple[int, Any]:
        effect, flow = self.effect, self.flow
        while True:
            try:
                value = effect.function()
            except BaseException as exc:  # thrown into the flow by the loop, as perform does
                return _ERROR, exc
            if inspect.isawaitable(value):
                return _AWAIT, value  # awaited on the loop, where it belongs
            if self._stop or not getattr(effect, "resume_in_worker", False):
                # Stopped: the flow must not go on (sign against a hold, send) for a caller
                # that is gone; it sees the cancellation at this step, its result undelivered.
                return _REPLY, value
            try:
                following = flow.send(value)
                while isinstance(following, Checkpoint):
                    following = flow.send(None)
            except StopIteration as stop:
                return _RETURNED, stop.value
            except BaseException as exc:
                return _RAISED, exc
            if not _worker_step(following):
                return _AHEAD, following
            effect = following

    def discard_awaitable(self) -> None:
        """Close a coroutine a step gave that will not be awaited now (no "never awaited")."""
        kind, value = self.outcome
        if kind == _AWAIT and inspect.iscoroutine(value):
            value.close()
        self.outcome = _NOTHING

    def stop(self) -> None:
        """The caller was cancelled: end the stretch after the step it is in."""
        self._stop = True

    def abandon(self, exc: BaseException) -> bool:
        """The driver goes away with ``exc`` without waiting. ``True``: the stretch still runs
        and the worker ends the flow after it; ``False``: it is over, the caller ends it."""
        with self._lock:
            if self._done:
                return False
            self._abandoned = exc
            self._stop = True
            return True


async def _wait_out(future: asyncio.Future[Any]) -> None:
    """Wait for a stretch to end, whatever cancellations arrive meanwhile."""
    while not future.done():
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(future)


async def drive_async(
    flow: Generator[Any, Any, T],
    perform: Callable[[Any], Awaitable[Any]],
    send: Callable[[Any], Awaitable[Any]] | None = None,
    offload: Callable[[Callable[[], Any]], asyncio.Future[Any]] | None = None,
) -> T:
    """``drive`` for async drivers: ``perform`` and ``send`` are awaited. ``offload`` runs a
    function in the driver's journal worker thread (in a copy of the caller's context) and
    gives a future of its result: given, a journal step marked ``resume_in_worker`` runs there
    with the flow after it (``_Stretch``)."""
    pending: list[Any] = [None, None]  # the reply or error for the flow (``_resume``)
    ahead: Any = None  # an effect the flow yielded in the worker, not performed yet
    ended = False  # the worker ends the flow (the driver went away mid-stretch)
    try:
        while True:
            if ahead is not None:
                effect, ahead = ahead, None
            else:
                done, effect = _resume(flow, pending)
                if done:
                    return effect  # type: ignore[no-any-return]
            if isinstance(effect, Checkpoint):
                continue
            if (
                offload is not None
                and getattr(effect, "resume_in_worker", False)
                and _worker_step(effect)
            ):
                stretch = _Stretch(flow, effect)
                future = offload(stretch.run)
                try:
                    await asyncio.shield(future)
                except asyncio.CancelledError as exc:
                    stretch.stop()
                    await _wait_out(future)  # the flow is ours again only then
                    stretch.discard_awaitable()
                    _run_held(stretch)
                    _interrupt(flow, exc)
                    raise
                except BaseException as exc:  # closed: no waiting possible
                    ended = stretch.abandon(exc)
                    if not ended:
                        stretch.discard_awaitable()
                        _run_held(stretch)
                        _interrupt(flow, exc)
                    raise
                _run_held(stretch)
                kind, value = stretch.outcome
                stretch.outcome = _NOTHING
                if kind == _RETURNED:
                    return value  # type: ignore[no-any-return]
                if kind == _RAISED:
                    raise value
                if kind == _AHEAD:
                    ahead = value
                elif kind == _REPLY:
                    pending[0] = value
                elif kind == _ERROR and isinstance(value, Exception):
                    pending[1] = value
                elif kind == _ERROR:
                    _interrupt(flow, value)
                    raise value
                else:  # _AWAIT: the step gave an awaitable, awaited here as perform does
                    try:
                        pending[0] = await value
                    except Exception as exc:
                        pending[1] = exc
                    except BaseException as exc:
                        _interrupt(flow, exc)
                        raise
                value = None  # not in a formatted traceback's locals (see ``_resume``)
                continue
            try:
                if send is not None and isinstance(effect, Send):
                    pending[0] = await send(effect)
                else:
                    pending[0] = await perform(effect)
            except Exception as exc:
                pending[1] = exc
            except BaseException as exc:  # cancelled: record the truth, then go on
                _interrupt(flow, exc)
                raise
    finally:
        if not ended:
            flow.close()


def _run_held(stretch: _Stretch) -> None:
    """Run, on the loop, the hooks the flow called during a stretch."""
    held, stretch.held = stretch.held, []
    for call in held:
        call()
