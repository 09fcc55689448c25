"""The options of ``env.serve(agent, ...)``, with their defaults and checks in one place."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BUSY_POLICIES", "DEFAULT_SERVE_SETTINGS", "ServeSettings"]

BUSY_POLICIES = ("queue", "reject")


@dataclass(frozen=True)
class ServeSettings:
    """How a long-lived runtime takes inputs and closes; see ``serve()``."""

    drain_timeout: float = 30.0
    """Seconds the end of ``async with`` waits for unfinished inputs."""
    max_pending: int = 10_000
    """Unfinished inputs the runtime holds at most; ``submit`` waits beyond."""
    busy_policy: str = "queue"
    """``queue`` an input for a busy key, or ``reject`` it at once."""
    idle_timeout: float | None = None
    """Seconds after which an idle key is passivated (None: never)."""

    def __post_init__(self) -> None:
        if self.busy_policy not in BUSY_POLICIES:
            raise ValueError(
                f"busy_policy must be one of {BUSY_POLICIES}, got {self.busy_policy!r}"
            )
        if self.max_pending < 1:
            raise ValueError(f"max_pending must be at least 1, got {self.max_pending}")
        if self.drain_timeout < 0:
            raise ValueError(f"drain_timeout must not be negative, got {self.drain_timeout}")
        if self.idle_timeout is not None and self.idle_timeout <= 0:
            raise ValueError(f"idle_timeout must be positive, got {self.idle_timeout}")


DEFAULT_SERVE_SETTINGS = ServeSettings()
