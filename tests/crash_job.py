"""A durable batch job for the crash tests, run as a subprocess and killed with SIGKILL.

Usage: python crash_job.py JOURNAL_DIR LEDGER EFFECTS RESULT [--inputs N] [--keys K]

Every input makes three durable calls. Each call appends ``"<input>:<slot>"`` to the LEDGER
file (fsynced) when it really runs, so the test can tell a replayed call from a re-executed one.
The third call is an external effect that is not idempotent by itself (it appends to EFFECTS);
its reconciler checks EFFECTS first, so with PENDING journaled before it runs, every effect lands
exactly once. When the job finishes, its ``to_list()`` is written to RESULT as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

from flink_agents_async import (
    Agent,
    AgentsExecutionEnvironment,
    InputEvent,
    OutputEvent,
    RunnerContext,
)


def append_line(path: Path, line: str) -> None:
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(line + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def make_agent(ledger: Path, effects: Path) -> Agent:
    def record(item: int, slot: int) -> str:
        append_line(ledger, f"{item}:{slot}")
        return f"{item}/{slot}"

    def slow_record(item: int, slot: int) -> str:
        time.sleep(0.01)  # a blocking client call, run in the thread pool
        return record(item, slot)

    def apply_effect(item: int) -> str:
        append_line(ledger, f"{item}:2")
        append_line(effects, f"effect-{item}")
        return f"effect-{item}"

    def reconcile_effect(item: int) -> str:
        if f"effect-{item}" in effects.read_text(encoding="utf-8").split():
            return f"effect-{item}"
        return apply_effect(item)

    async def act(event: InputEvent, ctx: RunnerContext) -> None:
        item = event.input
        memory = ctx.short_term_memory
        visits = (memory.get("visits") or 0) + 1
        memory.set("visits", visits)
        first = ctx.durable_execute(record, item, 0)
        second = await ctx.durable_execute_async(slow_record, item, 1)
        effect = await ctx.durable_execute_async(
            apply_effect, item, reconciler=lambda: reconcile_effect(item)
        )
        memory.set("last", [first, second, effect])
        ctx.send_event(OutputEvent(output=[visits, first, second, effect]))

    return Agent().add_action("act", [InputEvent], act)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("journal", type=Path)
    parser.add_argument("ledger", type=Path)
    parser.add_argument("effects", type=Path)
    parser.add_argument("result", type=Path)
    parser.add_argument("--inputs", type=int, default=400)
    parser.add_argument("--keys", type=int, default=4)
    args = parser.parse_args()
    for path in (args.ledger, args.effects):
        path.touch()
    env = AgentsExecutionEnvironment.get_execution_environment(journal_dir=args.journal)
    items = [{"key": f"key-{n % args.keys}", "value": n} for n in range(args.inputs)]
    outputs = env.from_list(items).apply(make_agent(args.ledger, args.effects)).to_list()
    print("ready", flush=True)
    await env.execute()
    result = [[key, value] for entry in outputs for key, value in entry.items()]
    temporary = args.result.with_suffix(".tmp")
    temporary.write_text(json.dumps(result), encoding="utf-8")
    os.replace(temporary, args.result)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
