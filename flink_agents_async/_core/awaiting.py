"""Calls that block in a plain script and are awaited in async code, as ``env.execute()`` is.

Upstream scripts call ``env.execute()`` and expect it to return when the job is done; async
code writes ``await env.execute()``. The same method serves both: with no event loop running it
runs the job itself, inside one it returns an awaitable. The risk is the upstream idiom inside a
running loop (a notebook cell, an async test): the awaitable is dropped and nothing runs.
Python's own "coroutine was never awaited" warning is easy to miss and names no fix, so the
awaitable returned here says loudly what happened and what to write instead.
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Coroutine, Generator
from typing import Any, TypeVar

from ..logging import library_logger

__all__ = ["MustAwait", "loop_is_running"]

T = TypeVar("T")

logger = library_logger()


def loop_is_running() -> bool:
    """Whether the calling thread is inside a running event loop.

    A plain boolean, so that callers run their blocking path outside any ``except`` block: an
    error raised there would otherwise carry a misleading "no running event loop" context.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class MustAwait(Coroutine[Any, Any, T]):
    """A coroutine that warns, naming the fix, when it is dropped without being awaited.

    It is a ``collections.abc.Coroutine``, so ``await``, ``asyncio.create_task``,
    ``asyncio.gather`` and anyio task groups all take it as they take the coroutine it wraps.
    """

    __slots__ = ("_call", "_coroutine", "_started")

    def __init__(self, coroutine: Coroutine[Any, Any, T], call: str) -> None:
        self._coroutine = coroutine
        self._call = call
        self._started = False

    def send(self, value: Any) -> Any:
        self._started = True
        return self._coroutine.send(value)

    def throw(self, typ: Any, value: Any = None, traceback: Any = None) -> Any:
        self._started = True
        if value is None and traceback is None:
            return self._coroutine.throw(typ)
        return self._coroutine.throw(typ, value, traceback)  # pragma: no cover - legacy form

    def close(self) -> None:
        self._started = True  # closing on purpose is not forgetting to await
        self._coroutine.close()

    def __await__(self) -> Generator[Any, None, T]:
        self._started = True
        return self._coroutine.__await__()

    def __del__(self) -> None:
        if self._started:
            return
        self._coroutine.close()  # instead of Python's vaguer "never awaited" warning
        message = (
            f"{self._call} was called inside a running event loop and never awaited, so "
            f"nothing ran: write `await {self._call}` (in a notebook cell or an async function "
            "alike); a plain call runs the job only where no event loop is running"
        )
        logger.error("execute() was never awaited", call=self._call, fix=f"await {self._call}")
        warnings.warn(message, RuntimeWarning, stacklevel=2)
