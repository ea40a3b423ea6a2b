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
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from typing import Any, TypeVar

from mpp_client.effects import Checkpoint
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


def drive(
    flow: Generator[Any, Any, T],
    perform: Callable[[Any], Any],
    send: Callable[[Any], Any] | None = None,
) -> T:
    """Run ``flow`` to completion synchronously. ``send`` handles the flow's ``Send``
    effects (``None``: the flow yields none); ``perform`` everything else."""
    reply: Any = None
    error: BaseException | None = None
    try:
        while True:
            try:
                effect = flow.throw(error) if error is not None else flow.send(reply)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
            except BaseException:
                # A traceback formatted with its frames' locals must not show the last answer
                # a backend gave (an SDK object may carry what the backend echoed).
                reply = error = None
                raise
            reply, error = None, None
            if isinstance(effect, Checkpoint):
                continue  # not I/O: only a flow that journals them cares
            try:
                if send is not None and isinstance(effect, Send):
                    reply = send(effect)
                else:
                    reply = perform(effect)
            except Exception as exc:  # thrown into the flow, which decides what it means
                error = exc
            except BaseException as exc:
                _interrupt(flow, exc)
                raise
    finally:
        flow.close()


async def drive_async(
    flow: Generator[Any, Any, T],
    perform: Callable[[Any], Awaitable[Any]],
    send: Callable[[Any], Awaitable[Any]] | None = None,
) -> T:
    """``drive`` for async drivers: ``perform`` and ``send`` are awaited."""
    reply: Any = None
    error: BaseException | None = None
    try:
        while True:
            try:
                effect = flow.throw(error) if error is not None else flow.send(reply)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
            except BaseException:
                # A traceback formatted with its frames' locals must not show the last answer
                # a backend gave (an SDK object may carry what the backend echoed).
                reply = error = None
                raise
            reply, error = None, None
            if isinstance(effect, Checkpoint):
                continue
            try:
                if send is not None and isinstance(effect, Send):
                    reply = await send(effect)
                else:
                    reply = await perform(effect)
            except Exception as exc:
                error = exc
            except BaseException as exc:  # cancelled: record the truth, then go on
                _interrupt(flow, exc)
                raise
    finally:
        flow.close()
