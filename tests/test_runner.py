"""The sync runner's background event-loop thread: fork safety, timeouts, contextvars."""

from __future__ import annotations

import asyncio
import contextvars
import os
import sys
import threading

import pytest

from mpp_client.effects import Await
from mpp_client.errors import EffectFailed
from mpp_client.runner import AsyncRunner, SyncRunner, _LoopThread

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="unset")

# Bound for waits that only fail when the code under test is broken; never a synchronisation.
PATIENCE = 10.0


async def _answer(value: object) -> object:
    await asyncio.sleep(0)
    return value


def test_run_returns_the_result_and_raises_the_error():
    assert _LoopThread.run(_answer(42)) == 42

    async def broken() -> None:
        raise ValueError("backend says no")

    with pytest.raises(ValueError, match="backend says no"):
        _LoopThread.run(broken())


# --- fork ---------------------------------------------------------------------------------------


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork (POSIX)")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # 3.12+: fork of a threaded process
def test_a_forked_child_gets_its_own_loop_thread():
    assert _LoopThread.run(_answer("parent")) == "parent"  # the parent's loop thread exists
    pid = os.fork()
    if pid == 0:  # child: report through the exit code only, never return into pytest
        code = 1
        try:
            # Without the fork reset this is scheduled on a loop whose thread does not exist in
            # the child: the timeout turns that hang into a failure.
            value = _LoopThread.run(_answer("child"), timeout=PATIENCE)
            runner = SyncRunner()
            again = runner.perform(Await(lambda: _answer("effect")))
            code = 0 if (value, again) == ("child", "effect") else 2
        except BaseException as exc:
            print(f"child failed: {exc!r}", file=sys.stderr)
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert _LoopThread.run(_answer("parent again")) == "parent again"  # parent unaffected


# --- timeouts -----------------------------------------------------------------------------------


def test_a_stuck_coroutine_times_out_and_is_cancelled():
    cancelled = threading.Event()

    async def stuck() -> None:
        try:
            await asyncio.Event().wait()  # never set
        except asyncio.CancelledError:
            cancelled.set()
            raise

    with pytest.raises(EffectFailed, match=r"did not finish within 0\.05 s") as failed:
        _LoopThread.run(stuck(), timeout=0.05)
    assert failed.value.delivered is True  # it may have acted: the outcome is unknown
    assert cancelled.wait(PATIENCE)
    assert _LoopThread.run(_answer("still serving")) == "still serving"


def test_a_timeout_is_thrown_into_the_generator():
    def method():
        try:
            yield Await(lambda: asyncio.Event().wait())
        except EffectFailed as failed:
            return ("unknown outcome", failed.delivered)
        return "paid"

    assert SyncRunner(await_timeout=0.05).run(method()) == ("unknown outcome", True)


def test_a_backends_own_timeout_error_is_not_relabelled():
    async def backend_timeout() -> None:
        raise TimeoutError("relay did not answer")

    with pytest.raises(TimeoutError, match="relay did not answer"):
        _LoopThread.run(backend_timeout(), timeout=PATIENCE)
    with pytest.raises(TimeoutError, match="relay did not answer"):
        SyncRunner(await_timeout=PATIENCE).perform(Await(backend_timeout))

    async def on_loop() -> None:
        await AsyncRunner(await_timeout=PATIENCE).perform(Await(backend_timeout))

    with pytest.raises(TimeoutError, match="relay did not answer"):
        asyncio.run(on_loop())


def test_the_async_runner_times_out_the_same_way():
    async def on_loop() -> None:
        await AsyncRunner(await_timeout=0.05).perform(Await(lambda: asyncio.Event().wait()))

    with pytest.raises(EffectFailed, match=r"did not finish within 0\.05 s") as failed:
        asyncio.run(on_loop())
    assert failed.value.delivered is True


def test_no_timeout_by_default():
    assert SyncRunner().perform(Await(lambda: _answer("done"))) == "done"


# --- contextvars --------------------------------------------------------------------------------


def test_the_coroutine_runs_in_the_callers_context():
    async def read_and_change() -> str:
        seen = REQUEST_ID.get()
        REQUEST_ID.set("changed on the loop")
        return seen

    def caller(value: str, out: list[str]) -> None:
        REQUEST_ID.set(value)
        out.append(SyncRunner().perform(Await(read_and_change)))
        out.append(REQUEST_ID.get())  # the task's change stays in the task's copy

    results: dict[str, list[str]] = {name: [] for name in ("a", "b")}
    threads = [threading.Thread(target=caller, args=(n, results[n])) for n in results]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(PATIENCE)
    assert results == {"a": ["a", "a"], "b": ["b", "b"]}
    assert REQUEST_ID.get() == "unset"
