"""A small multi-call agent for the exhaustive crash-point test.

Run as ``python crash_points_job.py JOURNAL_DIR LEDGER PHASE NUMBER``: the journal store's fault
hook ends the process (exit status 75, like a kill) ``"before"`` write group NUMBER is applied or
``"after"`` it committed. The test imports ``make_agent`` and ``INPUTS`` to run the clean job
and the recovery in its own process.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from flink_agents_async import (
    Agent,
    AgentsExecutionEnvironment,
    InputEvent,
    OutputEvent,
    RunnerContext,
)
from flink_agents_async.journal import SQLiteJournalStore

CRASHED = 75
INPUTS = [
    {"key": "a", "value": 1},
    {"key": "b", "value": 2},
    {"key": "a", "value": 3},
]


def make_agent(ledger: Path) -> Agent:
    def note(line: str) -> None:
        with open(ledger, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")

    def double(value: int) -> int:
        note(f"double {value}")
        return 2 * value

    async def remote_add(value: int, amount: int) -> int:
        note(f"add {value}")
        return value + amount

    async def act(event: InputEvent, ctx: RunnerContext) -> None:
        memory = ctx.short_term_memory
        total = memory.get("total") or 0
        doubled = ctx.durable_execute(double, event.input)
        added = await ctx.durable_execute_async(
            remote_add, doubled, total, reconciler=lambda: doubled + total
        )
        memory.set("total", added)
        memory.set("history", [*(memory.get("history") or []), event.input])
        ctx.send_event(OutputEvent(output={"input": event.input, "total": added}))

    return Agent().add_action("act", [InputEvent], act)


async def run(directory: Path, ledger: Path, store: SQLiteJournalStore | None = None) -> Any:
    store = store or SQLiteJournalStore(directory, "sync")
    env = AgentsExecutionEnvironment.get_execution_environment(journal_store=store)
    outputs = env.from_list(list(INPUTS)).apply(make_agent(ledger)).to_list()
    await env.execute()
    return outputs


def main() -> None:
    directory, ledger, phase, number = (
        Path(sys.argv[1]),
        Path(sys.argv[2]),
        sys.argv[3],
        sys.argv[4],
    )

    def crash_at(at_phase: str, at_number: int) -> None:
        if at_phase == phase and at_number == int(number):
            os._exit(CRASHED)

    asyncio.run(run(directory, ledger, SQLiteJournalStore(directory, "sync", crash_at)))


if __name__ == "__main__":
    main()
