"""Helpers for journal tests: run a job on a given store, and stop it the way a crash would."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flink_agents_async import Agent, AgentsExecutionEnvironment
from flink_agents_async.journal import JournalStore, MemoryJournalStore, SQLiteJournalStore

GUARD_TIMEOUT = 20.0


def make_store(kind: str, tmp_path: Path) -> Callable[[], JournalStore]:
    """A factory of stores that all see the same journal (one memory store, or one directory)."""
    if kind == "memory":
        shared = MemoryJournalStore()
        return lambda: shared
    return lambda: SQLiteJournalStore(tmp_path / "journal", "sync")


async def run_job(
    store: JournalStore, agent: Agent, inputs: Any, **kwargs: Any
) -> list[dict[Any, Any]]:
    env = AgentsExecutionEnvironment.get_execution_environment(journal_store=store, **kwargs)
    outputs = env.from_list(inputs).apply(agent).to_list()
    await asyncio.wait_for(env.execute(), GUARD_TIMEOUT)
    return outputs


async def crash_job(
    store: JournalStore, agent: Agent, inputs: Any, crashed: asyncio.Event, **kwargs: Any
) -> list[dict[Any, Any]]:
    """Run a job until ``crashed`` is set (by the agent), then stop it like a crash: running
    inputs stay accepted with whatever they journaled."""
    env = AgentsExecutionEnvironment.get_execution_environment(journal_store=store, **kwargs)
    outputs = env.from_list(inputs).apply(agent).to_list()
    job = asyncio.ensure_future(env.execute())
    await asyncio.wait_for(crashed.wait(), GUARD_TIMEOUT)
    job.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await job
    return outputs
