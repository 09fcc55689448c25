"""A durable job for the crash tests, run as a subprocess and killed with SIGKILL.

Usage: python crash_job.py JOURNAL_DIR LEDGER EFFECTS RESULT [--inputs N] [--keys K]
       [--retry] [--serve ACKS]

Every input makes three durable calls. Each call appends ``"<input>:<slot>"`` to the LEDGER
file (fsynced) when it really runs, so the test can tell a replayed call from a re-executed one.
The third call is an external effect that is not idempotent by itself (it appends to EFFECTS);
its reconciler checks EFFECTS first, so with PENDING journaled before it runs, every effect lands
exactly once. When the job finishes, its result is written to RESULT as JSON.

* ``--retry``: ``error-handling-strategy: retry``, and every fifth input fails once after its
  three calls (remembered in ``LEDGER.failed``, across kills): the retry must replay the calls.
* ``--serve ACKS``: the inputs go through ``env.serve()``; each one acknowledged (``submit``
  returned) is appended to ACKS, and a restart submits only the ones not acknowledged yet. An
  input journaled but not acknowledged before a kill is then submitted twice; the agent knows
  the inputs it has done (in short-term memory) and skips a repeated one, as an application
  with idempotency keys does. The result is every key's list of inputs done.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from flink_agents_async import (
    Agent,
    AgentsExecutionEnvironment,
    InputEvent,
    OutputEvent,
    RunnerContext,
)

PROBE = "probe"


def append_line(path: Path, line: str) -> None:
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(line + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").split() if path.exists() else []


def make_agent(ledger: Path, effects: Path, fail_once: Path | None = None) -> Agent:
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
        if f"effect-{item}" in lines(effects):
            return f"effect-{item}"
        return apply_effect(item)

    async def act(event: InputEvent, ctx: RunnerContext) -> None:
        item = event.input
        memory = ctx.short_term_memory
        done = memory.get("done") or []
        if item == PROBE:
            ctx.send_event(OutputEvent(output=done))
            return
        if item in done:  # submitted again after a kill: done already
            return
        visits = (memory.get("visits") or 0) + 1
        memory.set("visits", visits)
        first = ctx.durable_execute(record, item, 0)
        second = await ctx.durable_execute_async(slow_record, item, 1)
        effect = await ctx.durable_execute_async(
            apply_effect, item, reconciler=lambda: reconcile_effect(item)
        )
        if fail_once is not None and item % 5 == 0 and str(item) not in lines(fail_once):
            append_line(fail_once, str(item))
            raise RuntimeError(f"input {item} fails once")
        memory.set("last", [first, second, effect])
        memory.set("done", [*done, item])
        ctx.send_event(OutputEvent(output=[visits, first, second, effect]))

    return Agent().add_action("act", [InputEvent], act)


def key_of(item: int, keys: int) -> str:
    return f"key-{item % keys}"


async def run_batch(args: argparse.Namespace, agent: Agent, config: dict[str, Any]) -> Any:
    env = AgentsExecutionEnvironment.get_execution_environment(journal_dir=args.journal, **config)
    items = [{"key": key_of(n, args.keys), "value": n} for n in range(args.inputs)]
    outputs = env.from_list(items).apply(agent).to_list()
    print("ready", flush=True)
    await env.execute()
    return [[key, value] for entry in outputs for key, value in entry.items()]


async def run_service(args: argparse.Namespace, agent: Agent, config: dict[str, Any]) -> Any:
    env = AgentsExecutionEnvironment.get_execution_environment(
        journal_dir=args.journal,
        # Commits stay apart until the runtime closes, so the test can read every one.
        config={"journal.compaction.interval": 10**9},
        **config,
    )
    acked = set(lines(args.serve))
    async with env.serve(agent) as runtime:
        print("ready", flush=True)
        handles = []
        for item in range(args.inputs):
            if str(item) in acked:
                continue
            handles.append(await runtime.submit(key_of(item, args.keys), item))
            append_line(args.serve, str(item))
        await asyncio.gather(*handles)
        done = {}
        for n in range(args.keys):
            (done[key_of(n, args.keys)],) = await runtime.send(key_of(n, args.keys), PROBE)
    return done


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("journal", type=Path)
    parser.add_argument("ledger", type=Path)
    parser.add_argument("effects", type=Path)
    parser.add_argument("result", type=Path)
    parser.add_argument("--inputs", type=int, default=400)
    parser.add_argument("--keys", type=int, default=4)
    parser.add_argument("--retry", action="store_true")
    parser.add_argument("--serve", type=Path, default=None)
    args = parser.parse_args()
    for path in (args.ledger, args.effects):
        path.touch()
    fail_once = args.ledger.with_suffix(".failed") if args.retry else None
    config: dict[str, Any] = (
        {"error_handling_strategy": "retry", "max_retries": 3} if args.retry else {}
    )
    agent = make_agent(args.ledger, args.effects, fail_once)
    if args.serve is not None:
        result = await run_service(args, agent, config)
    else:
        result = await run_batch(args, agent, config)
    temporary = args.result.with_suffix(".tmp")
    temporary.write_text(json.dumps(result), encoding="utf-8")
    os.replace(temporary, args.result)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
