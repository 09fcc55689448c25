"""Retrying model calls: backoff that honours ``Retry-After``, without blocking the loop.

Providers answer an overloaded or rate-limited caller with 429, 5xx or a dropped connection,
often saying how long to wait (``Retry-After``, in seconds or as an HTTP date, or OpenAI's and
Anthropic's ``retry-after-ms``). ``RetryPolicy.run`` calls an async function until it succeeds,
fails with an error that retrying cannot fix, or runs out of attempts, waiting in between with
``asyncio.sleep`` (or the ``sleep`` given, so tests run on an injected clock). It reports how many
retries it made and how long it waited in total, which the chat action puts on its
``ChatResponseEvent`` (``retry_count``, ``total_retry_wait_sec``).

What counts as retryable is decided by ``classify(error)``, which each provider integration
supplies (it knows its SDK's exception types); ``Retryable`` carries the server's wait hint.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = ["RetryOutcome", "RetryPolicy", "Retryable", "retry_after_seconds"]

T = TypeVar("T")

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Retryable:
    """An error worth retrying, with how long the server asked to wait (None: not said)."""

    wait_hint: float | None = None


@dataclass(slots=True)
class RetryOutcome:
    """What ``RetryPolicy.run`` did besides returning the result."""

    retries: int = 0
    waited: float = 0.0


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with full jitter, capped, honouring the server's wait hints.

    ``max_retries`` retries at most (so ``max_retries + 1`` attempts); the n-th wait is a random
    time up to ``min(max_delay, base_delay * 2 ** n)``, or the server's hint if it gave one
    (capped by ``max_wait_hint``: a hint of an hour is not waited out inside a run).
    """

    max_retries: int = 3
    base_delay: float = 0.5
    max_delay: float = 20.0
    max_wait_hint: float = 60.0

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError(f"max_retries must not be negative, got {self.max_retries}")
        if self.base_delay < 0 or self.max_delay < 0 or self.max_wait_hint < 0:
            raise ValueError("retry delays must not be negative")

    def delay(self, retry: int, hint: float | None, rng: random.Random | None = None) -> float:
        """How long to wait before retry number ``retry`` (0-based)."""
        if hint is not None:
            return max(0.0, min(hint, self.max_wait_hint))
        ceiling = min(self.max_delay, self.base_delay * (2**retry))
        return (rng or random).uniform(0, ceiling)

    async def run(
        self,
        attempt: Callable[[], Awaitable[T]],
        classify: Callable[[BaseException], Retryable | None],
        *,
        sleep: Sleep = asyncio.sleep,
        outcome: RetryOutcome | None = None,
    ) -> T:
        """``await attempt()`` until it succeeds; retry what ``classify`` calls retryable.

        ``outcome`` (if given) is filled with the retries made and the seconds waited, also
        when the call finally fails."""
        outcome = outcome if outcome is not None else RetryOutcome()
        while True:
            try:
                return await attempt()
            except Exception as error:
                verdict = classify(error)
                if verdict is None or outcome.retries >= self.max_retries:
                    raise
                wait = self.delay(outcome.retries, verdict.wait_hint)
                outcome.retries += 1
                outcome.waited += wait
                await sleep(wait)


def retry_after_seconds(
    headers: Mapping[str, Any] | None, now: float | None = None
) -> float | None:
    """The wait a response's headers ask for: ``retry-after-ms``, else ``Retry-After`` in
    seconds or as an HTTP date; None when absent or unreadable."""
    if not headers:
        return None
    lowered = {str(name).lower(): value for name, value in headers.items()}
    milliseconds = lowered.get("retry-after-ms")
    if milliseconds is not None:
        try:
            return max(0.0, float(milliseconds) / 1000)
        except ValueError:
            pass
    value = lowered.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(str(value))
    except (TypeError, ValueError):
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)
