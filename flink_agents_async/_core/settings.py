"""The runtime's settings, read from the configuration once, when a runtime opens.

Every bad value is refused here, by its key, before anything runs; the actor system and its
actors, runs and hosts then read plain attributes.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import (
    AgentExecutionOptions,
    ConfigOption,
    ErrorHandlingStrategy,
    ReadableConfiguration,
    ShortTermMemoryOptions,
    ShortTermMemoryTtlUpdate,
    at_least,
)
from ..errors import ConfigurationError
from .admission import Admission

__all__ = ["RuntimeSettings"]


@dataclass(frozen=True)
class RuntimeSettings:
    """What the actor system reads of its configuration; see ``from_config``."""

    admission: Admission
    """How many inputs each key holds in memory (``mailbox-capacity``)."""
    async_threads: int
    """Threads for sync functions run by ``durable_execute_async`` (``num-async-threads``)."""
    max_events_per_run: int
    error_strategy: ErrorHandlingStrategy
    max_retries: int
    action_timeout: float | None
    """Seconds an action may take (None: no limit)."""
    run_timeout: float | None
    """Seconds a run may take (None: no limit)."""
    memory_ttl: float | None
    """Seconds a short-term memory value lives after its last write (None: for ever)."""
    ttl_refreshed_on_read: bool
    """Whether reading a value restarts its TTL too."""

    @classmethod
    def from_config(cls, config: ReadableConfiguration) -> RuntimeSettings:
        """Read and check every setting (raises ``ConfigurationError`` naming the key)."""
        strategy = config.get(AgentExecutionOptions.ERROR_HANDLING_STRATEGY)
        assert strategy is not None  # the option has a default
        ttl, refreshed_on_read = _memory_ttl(config)
        return cls(
            admission=Admission.from_config(config),
            async_threads=at_least(config, AgentExecutionOptions.NUM_ASYNC_THREADS, 1),
            max_events_per_run=at_least(config, AgentExecutionOptions.MAX_EVENTS_PER_RUN, 1),
            error_strategy=strategy,
            max_retries=max(0, config.get(AgentExecutionOptions.MAX_RETRIES) or 0),
            action_timeout=_timeout(config, AgentExecutionOptions.ACTION_TIMEOUT),
            run_timeout=_timeout(config, AgentExecutionOptions.RUN_TIMEOUT),
            memory_ttl=ttl,
            ttl_refreshed_on_read=refreshed_on_read,
        )


def _timeout(config: ReadableConfiguration, option: ConfigOption[float]) -> float | None:
    """A timeout in seconds, None when off (0, the default)."""
    seconds = config.get(option) or 0
    if seconds < 0:
        raise ConfigurationError(
            f"configuration key {option.key!r} must be 0 (off) or a positive number of "
            f"seconds, got {seconds}"
        )
    return float(seconds) or None


def _memory_ttl(config: ReadableConfiguration) -> tuple[float | None, bool]:
    milliseconds = config.get(ShortTermMemoryOptions.STATE_TTL_MS) or 0
    update = config.get(ShortTermMemoryOptions.STATE_TTL_UPDATE_TYPE)
    config.get(ShortTermMemoryOptions.STATE_TTL_VISIBILITY)  # refused early if malformed
    if milliseconds < 0:
        raise ConfigurationError(
            f"configuration key {ShortTermMemoryOptions.STATE_TTL_MS.key!r} must be 0 (off) or "
            f"a positive number of milliseconds, got {milliseconds}"
        )
    refreshed_on_read = update is ShortTermMemoryTtlUpdate.ON_READ_AND_WRITE
    return (milliseconds / 1000 if milliseconds else None), refreshed_on_read
