"""Agents of the Flink tests, at module level so that the Python workers import them by name."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from pyflink.datastream import KeySelector, RuntimeContext

from flink_agents_async import Agent, InputEvent, OutputEvent, RunnerContext, action


class RowAgent(Agent):
    """Counts rows per id and upper-cases their text (inputs are Table rows)."""

    @action(InputEvent)
    @staticmethod
    def handle(event: InputEvent, ctx: RunnerContext) -> None:
        row = event.input
        seen = (ctx.short_term_memory.get("seen") or 0) + 1
        ctx.short_term_memory.set("seen", seen)
        ctx.send_event(OutputEvent(output={"id": row.id, "text": row.text.upper(), "n": seen}))


class TagAgent(Agent):
    """Outputs ``"<key>:<input>#<count>"`` strings."""

    @action(InputEvent)
    @staticmethod
    def tag(event: InputEvent, ctx: RunnerContext) -> None:
        count = (ctx.short_term_memory.get("count") or 0) + 1
        ctx.short_term_memory.set("count", count)
        ctx.send_event(OutputEvent(output=f"{ctx.key}:{event.input}#{count}"))


class Prefix(KeySelector):
    """Keys a string by its first ``width`` characters, a width only known once opened."""

    def open(self, runtime_context: RuntimeContext) -> None:
        self.width = 1

    def get_key(self, value: str) -> str:
        return value[: self.width]


class BrokenAgent(Agent):
    @action(InputEvent)
    @staticmethod
    def explode(event: InputEvent, ctx: RunnerContext) -> None:
        if event.input == 3:
            raise RuntimeError("input three is not welcome")
        ctx.send_event(OutputEvent(output=event.input))


_in_flight = 0


class RendezvousAgent(Agent):
    """Every run waits until ``expected`` runs of its subtask are in flight at once: this can
    only finish if the runs of different keys await concurrently (serial runs time out)."""

    @action(InputEvent)
    @staticmethod
    async def meet(event: InputEvent, ctx: RunnerContext) -> None:
        global _in_flight
        expected = event.input["expected"]
        _in_flight += 1
        try:
            async with asyncio.timeout(60):
                while _in_flight < expected:  # noqa: ASYNC110 - a counter shared by runs
                    await asyncio.sleep(0.005)
        except TimeoutError:
            raise RuntimeError(f"only {_in_flight} of {expected} runs were in flight") from None
        ctx.send_event(OutputEvent(output=event.input["n"]))


def charge(effects: str, n: int) -> str:
    """A side effect: appends one line per real execution."""
    with open(effects, "a", encoding="utf-8") as file:
        file.write(f"{n}\n")

    return f"charged {n}"


class ChargeAgent(Agent):
    """Per input: one journaled charge, a short-term running total, and for one chosen input
    a long pause after its charge so that a checkpoint holds the journaled call while the run
    is still going."""

    @action(InputEvent)
    @staticmethod
    async def charge_once(event: InputEvent, ctx: RunnerContext) -> None:
        spec: dict[str, Any] = event.input
        receipt = await ctx.durable_execute_async(charge, spec["effects"], spec["n"])
        if spec["n"] == spec["pause_at"]:
            await asyncio.sleep(spec["pause_s"])
        total = (ctx.short_term_memory.get("total") or 0) + spec["n"]
        ctx.short_term_memory.set("total", total)
        ctx.send_event(OutputEvent(output=(spec["n"], receipt, total)))


class SometimesSlowAgent(Agent):
    """Inputs ``(name, wait_s)``: the run awaits ``wait_s`` seconds when it is not 0, else it
    ends without awaiting anything."""

    @action(InputEvent)
    @staticmethod
    async def answer(event: InputEvent, ctx: RunnerContext) -> None:
        name, wait_s = event.input
        if wait_s:
            await asyncio.sleep(wait_s)
        ctx.send_event(OutputEvent(output=name))


class TallyAgent(Agent):
    """A sync action: a short-term running total per key, output with each input."""

    @action(InputEvent)
    @staticmethod
    def tally(event: InputEvent, ctx: RunnerContext) -> None:
        total = (ctx.short_term_memory.get("total") or 0) + event.input
        ctx.short_term_memory.set("total", total)
        ctx.send_event(OutputEvent(output=(event.input, total)))


def fail_once(marker: str, fail_at: int, n: int) -> int:
    """Raises the first time it sees ``fail_at`` (a marker file remembers it)."""
    if n == fail_at and not Path(marker).exists():
        Path(marker).write_text("failed once\n", encoding="utf-8")
        raise RuntimeError(f"failing on purpose at {n}")
    return n


def pid() -> int:
    return os.getpid()
