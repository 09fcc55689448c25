"""What every model connection that talks to a service over the network shares.

``RemoteService`` is a mixin of chat and embedding model connections: an async client per event
loop (async clients belong to the loop they were made on), a bound on the requests in flight
(``max_concurrency``), retries of 429, 5xx and connection errors with backoff honouring
``Retry-After`` (``RetryPolicy``), a timeout per request, and closing the clients at shutdown.

``run_async_from_sync`` serves upstream's sync entry points (``chat``, ``embed``) on connections
whose primary contract is async.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import anyio.from_thread
from pydantic import Field, PrivateAttr

from ..logging import library_logger
from ..resources import Resource
from .retry import Retryable, RetryOutcome, RetryPolicy

logger = library_logger()
T = TypeVar("T")

__all__ = ["RemoteService", "overrides", "run_async_from_sync"]


def overrides(cls: type, name: str, base: type) -> bool:
    """Whether ``cls`` defines ``name`` itself rather than inheriting ``base``'s."""
    return getattr(cls, name) is not getattr(base, name)


class RemoteService(Resource):
    """A client of a model service: bounded in-flight requests, retries with backoff honouring
    ``Retry-After``, a timeout per request, one async client per event loop.

    ``max_retries`` retries after the first attempt; ``retry_wait_interval`` is the backoff's
    base (seconds, doubling each retry, capped at ``max_retry_wait``, a server's
    ``Retry-After`` wins); ``max_concurrency`` bounds the requests in flight at once (None: no
    bound); ``timeout`` is per request, in seconds (0 or None: none).
    """

    max_retries: int = Field(default=3, ge=0)
    timeout: float | None = Field(default=60.0, ge=0)
    max_concurrency: int | None = Field(default=None, ge=1)
    retry_wait_interval: float = Field(default=1.0, ge=0)
    max_retry_wait: float = Field(default=20.0, ge=0)
    _limits: weakref.WeakKeyDictionary[Any, asyncio.Semaphore] = PrivateAttr(
        default_factory=weakref.WeakKeyDictionary
    )
    _clients: weakref.WeakKeyDictionary[Any, Any] = PrivateAttr(
        default_factory=weakref.WeakKeyDictionary
    )
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @property
    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            max_retries=self.max_retries,
            base_delay=self.retry_wait_interval,
            max_delay=self.max_retry_wait,
        )

    @property
    def request_timeout(self) -> float | None:
        """The per-request timeout to give a client (None: wait as long as it takes)."""
        return self.timeout or None

    async def call_with_retries(
        self,
        request: Callable[[], Awaitable[T]],
        classify: Callable[[BaseException], Retryable | None],
        outcome: RetryOutcome,
    ) -> T:
        """``request()`` in a concurrency slot, retried as ``classify`` says; the retries made
        are in ``outcome``, and on the error too (``retry_count``, ``retry_wait_sec``, which
        are journaled with it) when every retry failed."""
        try:
            async with self._slot():
                return await self.retry_policy.run(request, classify, outcome=outcome)
        except Exception as error:
            if outcome.retries:
                with contextlib.suppress(AttributeError, TypeError):
                    error.retry_count = outcome.retries  # type: ignore[attr-defined]
                    error.retry_wait_sec = outcome.waited  # type: ignore[attr-defined]
            raise

    @contextlib.asynccontextmanager
    async def _slot(self) -> AsyncIterator[None]:
        if self.max_concurrency is None:
            yield
            return
        loop = asyncio.get_running_loop()
        with self._lock:
            limit = self._limits.get(loop)
            if limit is None:
                limit = self._limits[loop] = asyncio.Semaphore(self.max_concurrency)
        async with limit:
            yield

    # -- clients ---------------------------------------------------------------------------

    def client_for_loop(self, make: Callable[[], Any]) -> Any:
        """The async client of this connection for the running event loop (made with ``make``
        on first use): async clients belong to the loop they were made on."""
        loop = asyncio.get_running_loop()
        with self._lock:
            client = self._clients.get(loop)
            if client is None:
                client = self._clients[loop] = make()
        return client

    def clients(self) -> list[Any]:
        """The clients ``client_for_loop`` made and that are not closed yet."""
        with self._lock:
            return list(self._clients.values())

    async def _close_client(self, client: Any) -> None:
        """Close one client made by ``client_for_loop`` (the official SDKs' async clients all
        close with ``await client.close()``)."""
        closer = getattr(client, "aclose", None) or getattr(client, "close", None)
        if callable(closer):
            result = closer()
            if asyncio.iscoroutine(result):
                await result

    def close(self) -> None:
        """Close the clients. Sync: a client of the running loop is closed by a task on it, one
        of another running loop by that loop, one of a stopped loop on it here."""
        for loop, client in self._take_clients():
            _close_on(loop, self._close_client(client))

    async def aclose(self) -> None:
        """Close the clients, awaiting the close of those of the running loop."""
        running = asyncio.get_running_loop()
        for loop, client in self._take_clients():
            if loop is running:
                await self._close_client(client)
            else:
                _close_on(loop, self._close_client(client))

    async def release_loop(self) -> None:
        """Close the client of the running loop: a sync call ran on a loop of its own, which
        closes next."""
        loop = asyncio.get_running_loop()
        with self._lock:
            client = self._clients.pop(loop, None)
        if client is not None:
            await self._close_client(client)

    def _take_clients(self) -> list[tuple[asyncio.AbstractEventLoop, Any]]:
        with self._lock:
            owned = list(self._clients.items())
            self._clients.clear()
        return owned


def run_async_from_sync(
    call: Callable[[], Coroutine[Any, Any, T]],
    release_loop: Callable[[], Awaitable[None]],
) -> T:
    """Run ``call`` from sync code: on the event loop that started this worker thread (the
    runtime's thread pool), else on a loop of its own, calling ``release_loop`` (to close what
    was made for that loop) before it closes."""
    if _in_worker_thread():
        return anyio.from_thread.run(call)

    async def on_own_loop() -> T:
        try:
            return await call()
        finally:
            await release_loop()

    return asyncio.run(on_own_loop())


def _in_worker_thread() -> bool:
    """Whether this thread is an anyio worker thread of a running event loop."""
    try:
        # Outside a worker thread this raises RuntimeError (NoEventLoopError in newer anyio);
        # inside one it raises only if the waiting task was cancelled, which ends the call.
        anyio.from_thread.check_cancelled()
    except RuntimeError:
        return False
    return True


_closing: set[asyncio.Task[Any]] = set()  # the event loop holds tasks only weakly


def _close_on(loop: asyncio.AbstractEventLoop, closing: Coroutine[Any, Any, None]) -> None:
    """Run ``closing`` (a client's close) on ``loop``, the loop its client belongs to."""
    try:
        running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if loop is running:
        task = loop.create_task(closing)
        _closing.add(task)
        task.add_done_callback(_closed)
    elif loop.is_running():
        asyncio.run_coroutine_threadsafe(closing, loop)
    elif running is None and not loop.is_closed():
        loop.run_until_complete(closing)
    else:
        closing.close()  # its loop is gone, and the client's connections with it


def _closed(task: asyncio.Task[Any]) -> None:
    _closing.discard(task)
    if not task.cancelled() and task.exception() is not None:
        logger.warning("closing a model client failed", error=repr(task.exception()))
