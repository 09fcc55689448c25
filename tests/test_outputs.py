"""``outputs()`` streams are bounded and go away with their reader.

A reader that is slow, or never reads, holds at most ``max_buffered`` outputs: a long-lived
runtime drops the oldest (counted), a batch holds new inputs back. A stream left by ``break``,
closed with ``aclose()`` or by its ``async with`` block stops receiving at once.
"""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest
from journal_helpers import GUARD_TIMEOUT
from structlog.testing import capture_logs

from flink_agents_async import (
    Agent,
    AgentsExecutionEnvironment,
    InputEvent,
    OutputEvent,
    RunnerContext,
    RuntimeBusyError,
)


def counting_agent(started: list[Any]) -> Agent:
    def act(event: InputEvent, ctx: RunnerContext) -> None:
        started.append(event.input)
        ctx.send_event(OutputEvent(output=event.input))

    return Agent().add_action("act", [InputEvent], act)


# -- a long-lived runtime ----------------------------------------------------------------------


async def test_a_stream_nobody_reads_keeps_only_its_newest_outputs_and_counts_the_rest() -> None:
    env = AgentsExecutionEnvironment.get_execution_environment()
    async with env.serve(counting_agent([]), max_pending=100) as runtime:
        unread = runtime.outputs(max_buffered=100)
        with capture_logs() as logs:
            for n in range(1000):
                await runtime.send(f"k{n % 7}", n)
        assert unread.buffered == 100 and unread.dropped == 900
        assert len([log for log in logs if "too slow" in log["event"]]) == 1
    assert [output async for _, output in unread] == list(range(900, 1000))


async def test_streams_left_by_break_hold_nothing() -> None:
    env = AgentsExecutionEnvironment.get_execution_environment()
    async with env.serve(counting_agent([])) as runtime:
        streams = [runtime.outputs() for _ in range(50)]
        assert runtime.stats()["output_streams"] == 50

        async def first_output(stream: Any) -> Any:
            async for pair in stream:
                return pair  # leaves the loop, as break does
            return None  # pragma: no cover

        readers = asyncio.gather(*(first_output(stream) for stream in streams))
        await runtime.send("k", 1)
        assert await asyncio.wait_for(readers, GUARD_TIMEOUT) == [("k", 1)] * 50
        del streams, readers  # the readers' last references, as at the end of their scope
        gc.collect()
        assert runtime.stats()["output_streams"] == 0
        for n in range(1000):  # nobody holds on to these
            await runtime.send("k", n)
        assert runtime.stats()["output_streams"] == 0


async def test_aclose_and_async_with_unsubscribe() -> None:
    env = AgentsExecutionEnvironment.get_execution_environment()
    async with env.serve(counting_agent([])) as runtime:
        stream = runtime.outputs()
        async with runtime.outputs() as scoped:
            assert runtime.stats()["output_streams"] == 2
            await runtime.send("k", 1)
            assert await scoped.__anext__() == ("k", 1)
        assert runtime.stats()["output_streams"] == 1
        await stream.aclose()
        assert runtime.stats()["output_streams"] == 0
        assert [pair async for pair in stream] == []  # closed: ends at once


async def test_a_waiting_stream_holds_inputs_back_until_its_reader_catches_up() -> None:
    env = AgentsExecutionEnvironment.get_execution_environment()
    async with env.serve(counting_agent([])) as runtime:
        stream = runtime.outputs(max_buffered=2, overflow="wait")
        await runtime.send("k", 1)
        await runtime.send("k", 2)
        with pytest.raises(RuntimeBusyError, match="outputs"):
            await runtime.send("k", 3, nowait=True)
        late = asyncio.ensure_future(runtime.send("k", 3))
        await asyncio.sleep(0)
        assert not late.done()  # waits for room
        assert await stream.__anext__() == ("k", 1)
        assert await asyncio.wait_for(late, GUARD_TIMEOUT) == [3]
        assert stream.dropped == 0


def test_overflow_policy_and_size_are_checked() -> None:
    env = AgentsExecutionEnvironment.get_execution_environment()
    runtime = env.serve(counting_agent([]))
    with pytest.raises(ValueError, match="overflow"):
        runtime.outputs(overflow="block")
    with pytest.raises(ValueError, match="max_buffered"):
        runtime.outputs(max_buffered=0)


# -- a batch -----------------------------------------------------------------------------------


async def test_a_slow_batch_reader_holds_new_inputs_back() -> None:
    started: list[Any] = []
    env = AgentsExecutionEnvironment.get_execution_environment()
    builder = env.from_list([{"key": f"k{n % 5}", "value": n} for n in range(500)])
    stream = builder.apply(counting_agent(started)).outputs(max_buffered=10)
    read = 0
    async for _ in stream:
        read += 1
        # runs that never await commit as they are fed, so each started one has an output
        assert len(started) - read <= 10
    assert read == 500 and len(started) == 500


async def test_a_batch_stream_that_drops_never_holds_the_job_back() -> None:
    env = AgentsExecutionEnvironment.get_execution_environment()
    builder = env.from_list([{"key": "k", "value": n} for n in range(1000)])
    builder.apply(counting_agent([]))
    stream = builder.outputs(max_buffered=5, overflow="drop-oldest")
    await asyncio.wait_for(env.execute(), GUARD_TIMEOUT)
    assert [output async for _, output in stream] == list(range(995, 1000))
    assert stream.dropped == 995


async def test_a_batch_stream_closed_early_stops_the_job_it_started() -> None:
    started: list[Any] = []
    env = AgentsExecutionEnvironment.get_execution_environment()
    builder = env.from_list([{"key": "k", "value": n} for n in range(10_000)])
    async with builder.apply(counting_agent(started)).outputs(max_buffered=10) as stream:
        assert await stream.__anext__() == ("k", 0)
    assert len(started) < 100  # held back, then stopped
