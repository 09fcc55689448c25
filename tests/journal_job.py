"""A durable job for the journal file tests, run as a subprocess.

Usage: python journal_job.py JOURNAL_DIR LEDGER [options]

Every input makes one durable call that appends ``"<input>"`` to LEDGER (fsynced) when it
really runs, so a test can tell a replayed call from a repeated one. The job prints one JSON
line at its end: ``{"outputs": ..., "error": [type, message] or null}``.

* ``--exit-at N``: the process ends abruptly (``os._exit(75)``, as a kill would) when input N
  starts, after the inputs before it committed.
* ``--file-limit BYTES``: no file may grow beyond BYTES (``RLIMIT_FSIZE``), which is how a full
  disk looks to the journal.
* ``--serve``: feed the inputs to ``env.serve()`` one by one (``send``) instead of a batch.
* ``--hold``: open the journal with ``serve()``, print ``ready``, and wait for a line on stdin.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import signal
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

EXITED = 75


def append_line(path: Path, line: str) -> None:
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(line + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def make_agent(ledger: Path, exit_at: int | None) -> Agent:
    def effect(item: int) -> str:
        append_line(ledger, str(item))
        return f"done-{item}"

    async def act(event: InputEvent, ctx: RunnerContext) -> None:
        if event.input == exit_at:
            os._exit(EXITED)
        result = await ctx.durable_execute_async(effect, event.input)
        ctx.short_term_memory.set("last", event.input)
        ctx.send_event(OutputEvent(output=result))

    return Agent().add_action("act", [InputEvent], act)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    env = AgentsExecutionEnvironment.get_execution_environment(
        journal_dir=args.journal, durability=args.durability
    )
    agent = make_agent(args.ledger, args.exit_at)
    items = [{"key": f"k{n % 3}", "value": n} for n in range(args.inputs)]
    if args.hold:
        async with env.serve(agent):
            print("ready", flush=True)
            await asyncio.to_thread(sys.stdin.readline)
        return {"outputs": [], "error": None}
    if args.serve:
        outputs: list[Any] = []
        try:
            async with env.serve(agent) as runtime:
                for item in items:
                    outputs.extend(await runtime.send(item["key"], item["value"]))
        except Exception as error:
            return {"outputs": outputs, "error": [type(error).__name__, str(error)]}
        return {"outputs": outputs, "error": None}
    collected = env.from_list(items).apply(agent).to_list()
    try:
        await env.execute()
    except Exception as error:
        return {"outputs": collected, "error": [type(error).__name__, str(error)]}
    return {"outputs": collected, "error": None}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("journal", type=Path)
    parser.add_argument("ledger", type=Path)
    parser.add_argument("--inputs", type=int, default=30)
    parser.add_argument("--exit-at", type=int, default=None)
    parser.add_argument("--file-limit", type=int, default=None)
    parser.add_argument("--durability", default="sync")
    parser.add_argument("--serve", action="store_true")
    parser.add_argument("--hold", action="store_true")
    args = parser.parse_args()
    args.ledger.touch()
    if args.file_limit is not None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG)
        resource.setrlimit(resource.RLIMIT_FSIZE, (args.file_limit, args.file_limit))
    result = asyncio.run(run(args))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
