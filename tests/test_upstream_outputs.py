"""Outputs as upstream tests read them: ``to_list()`` in input order, any value without a
journal, PyFlink rows through a durable journal."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from journal_helpers import GUARD_TIMEOUT

from flink_agents_async import (
    Agent,
    AgentsExecutionEnvironment,
    InputEvent,
    OutputEvent,
    RunnerContext,
)
from flink_agents_async.journal.codec import JournalEncodeError


async def execute(env: Any) -> None:
    await asyncio.wait_for(env.execute(), GUARD_TIMEOUT)


def late_first_agent(released: asyncio.Event, finished: list[str]) -> Agent:
    """Input ``"first"`` waits until input ``"second"`` (another key) has finished, so it
    finishes last; each input emits two outputs."""

    async def act(event: InputEvent, ctx: RunnerContext) -> None:
        if event.input == "first":
            await released.wait()
        ctx.send_event(OutputEvent(output=f"{event.input}-1"))
        ctx.send_event(OutputEvent(output=f"{event.input}-2"))
        finished.append(event.input)
        if event.input == "second":
            released.set()

    return Agent().add_action("act", [InputEvent], act)


async def test_to_list_is_in_input_order_however_the_runs_finished() -> None:
    released, finished = asyncio.Event(), []
    env = AgentsExecutionEnvironment.get_execution_environment()
    builder = env.from_list(
        [{"key": "a", "value": "first"}, {"key": "b", "value": "second"}]
    ).apply(late_first_agent(released, finished))
    in_order = builder.to_list()
    streamed: list[tuple[object, object]] = []

    async def read() -> None:
        async for pair in builder.outputs():
            streamed.append(pair)

    async with asyncio.timeout(GUARD_TIMEOUT):
        reader = asyncio.create_task(read())
        await env.execute()
        await reader

    assert finished == ["second", "first"]  # the keys did run concurrently
    assert in_order == [{"a": "first-1"}, {"a": "first-2"}, {"b": "second-1"}, {"b": "second-2"}]
    assert streamed == [("b", "second-1"), ("b", "second-2"), ("a", "first-1"), ("a", "first-2")]


async def test_to_list_keeps_input_order_within_one_key_and_around_failures() -> None:
    def act(event: InputEvent, ctx: RunnerContext) -> None:
        if event.input == 2:
            raise ValueError("two")
        ctx.send_event(OutputEvent(output=event.input))

    env = AgentsExecutionEnvironment.get_execution_environment()
    items = [{"key": str(n % 3), "value": n} for n in range(9)]
    outputs = env.from_list(items).apply(Agent().add_action("act", [InputEvent], act)).to_list()
    with pytest.raises(ValueError, match="two"):
        await execute(env)
    assert outputs == [{str(n % 3): n} for n in range(9) if n != 2]


def path_agent() -> Agent:
    """Emits a ``pathlib.Path``: JSON-serialisable (an event may carry it), but not a value
    the journal's codec encodes."""

    def act(event: InputEvent, ctx: RunnerContext) -> None:
        ctx.send_event(OutputEvent(output=Path("/data") / event.input))

    return Agent().add_action("act", [InputEvent], act)


async def test_without_a_journal_an_output_need_not_be_journal_encodable() -> None:
    env = AgentsExecutionEnvironment.get_execution_environment()
    outputs = env.from_list([{"key": "a", "value": "x"}]).apply(path_agent()).to_list()
    await execute(env)
    assert outputs == [{"a": Path("/data/x")}]


async def test_serve_without_a_journal_returns_any_output() -> None:
    env = AgentsExecutionEnvironment.get_execution_environment()
    async with env.serve(path_agent(), drain_timeout=1) as runtime:
        outputs = await asyncio.wait_for(runtime.send("a", "y"), GUARD_TIMEOUT)
    assert outputs == [Path("/data/y")]


async def test_with_a_durable_journal_an_unencodable_output_still_fails_clearly(
    tmp_path: Path,
) -> None:
    env = AgentsExecutionEnvironment.get_execution_environment(journal_dir=tmp_path)
    outputs = env.from_list([{"key": "a", "value": "x"}]).apply(path_agent()).to_list()
    with pytest.raises(JournalEncodeError, match="Path cannot be journaled"):
        await execute(env)
    assert outputs == []


def row_agent() -> Agent:
    from pyflink.common import Row, RowKind

    def act(event: InputEvent, ctx: RunnerContext) -> None:
        named = Row(name=event.input, score=[1.5, 2])
        positional = Row(event.input, 7)
        positional.set_row_kind(RowKind.UPDATE_AFTER)
        ctx.send_event(OutputEvent(output=named))
        ctx.send_event(OutputEvent(output=positional))

    return Agent().add_action("act", [InputEvent], act)


async def test_a_durable_journal_keeps_pyflink_rows_without_pickle(tmp_path: Path) -> None:
    from pyflink.common import Row, RowKind

    items = [{"key": "a", "value": "x"}]
    env = AgentsExecutionEnvironment.get_execution_environment(journal_dir=tmp_path)
    first = env.from_list(items).apply(row_agent()).to_list()
    await execute(env)

    # Run the same job on the same journal: its outputs come back from the journal.
    again = AgentsExecutionEnvironment.get_execution_environment(journal_dir=tmp_path)
    second = again.from_list(items).apply(row_agent()).to_list()
    await execute(again)

    for outputs in (first, second):
        named, positional = (entry["a"] for entry in outputs)
        assert named == Row(name="x", score=[1.5, 2]) and named.name == "x"
        assert list(positional) == ["x", 7] and getattr(positional, "_fields", None) is None
        assert positional.get_row_kind() == RowKind.UPDATE_AFTER
