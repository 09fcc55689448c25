"""The long-lived runtime: ``async with env.serve(agent) as runtime``.

send / submit / outputs / stats, draining, crash recovery through the journal, backpressure,
busy policy, passivation, short-term memory TTL and bad input. Runs are held with
``asyncio.Event`` gates; the only timed waits are for timers under test (drain timeouts,
passivation, TTL) and are bounded.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Hashable
from pathlib import Path
from typing import Any

import pytest

from flink_agents_async import (
    ActionFailedError,
    Agent,
    AgentsExecutionEnvironment,
    ConfigurationError,
    Event,
    InputEvent,
    OutputEvent,
    RunHandle,
    RunnerContext,
    RuntimeBusyError,
    RuntimeClosedError,
    action,
)
from flink_agents_async.clock import MockClock
from flink_agents_async.journal import (
    InputOp,
    JournalEncodeError,
    MemoryJournalStore,
    SQLiteJournalStore,
)

GUARD = 5.0  # only ever reached when the behaviour under test is broken
FENCE = "__fence__"


# -- helpers -----------------------------------------------------------------------------------


def make_env(**kwargs: Any) -> AgentsExecutionEnvironment:
    return AgentsExecutionEnvironment.get_execution_environment(**kwargs)


def gated_agent(
    gates: dict[Any, asyncio.Event],
    log: list[tuple[Any, Any]] | None = None,
    started: dict[Any, asyncio.Event] | None = None,
) -> Agent:
    """Outputs its input. An input with a gate waits for it first; ``log`` records every run
    start, ``started`` events are set when a run of that input begins."""

    class Gated(Agent):
        @action(InputEvent)
        @staticmethod
        async def work(event: InputEvent, ctx: RunnerContext) -> None:
            value = event.input
            if log is not None:
                log.append((ctx.key, value))
            hashable = isinstance(value, Hashable)
            if started is not None and hashable and value in started:
                started[value].set()
            gate = gates.get(value) if hashable else None
            if gate is not None:
                await gate.wait()
            ctx.send_event(OutputEvent(output=value))

    return Gated()


def counter_agent(gates: dict[Any, asyncio.Event] | None = None) -> Agent:
    """Counts its runs in short-term memory and outputs ``(input, count)``; ``"boom"`` fails
    the run after writing memory and sending an output."""
    gates = gates if gates is not None else {}

    class Counter(Agent):
        @action(InputEvent)
        @staticmethod
        async def count(event: InputEvent, ctx: RunnerContext) -> None:
            memory = ctx.short_term_memory
            count = (memory.get("count") or 0) + 1
            memory.set("count", count)
            memory.set(f"seen.{event.input}", True)
            gate = gates.get(event.input)
            if gate is not None:
                await gate.wait()
            ctx.send_event(OutputEvent(output=(event.input, count)))
            if event.input == "boom":
                raise ValueError(f"boom in key {ctx.key}")

    return Counter()


async def read(stream: AsyncIterator[Any], count: int, within: float = 2.0) -> list[Any]:
    """The next ``count`` items of an ``outputs()`` stream (fails if they do not come)."""
    items: list[Any] = []
    try:
        async with asyncio.timeout(within):
            while len(items) < count:
                items.append(await anext(stream))
    except TimeoutError:
        raise AssertionError(
            f"outputs() delivered {items} within {within}s, expected {count} items"
        ) from None
    return items


async def read_until_fence(runtime: Any, stream: AsyncIterator[Any]) -> list[Any]:
    """Send a fence input and return everything the stream delivers before its output: what
    was still to come, without duplicates hiding behind a count."""
    await runtime.send(FENCE, FENCE)
    items: list[Any] = []
    async with asyncio.timeout(GUARD):
        async for key, output in stream:
            if key == FENCE:
                return items
            items.append((key, output))
    raise AssertionError(f"outputs() ended before the fence; got {items}")


async def drain(stream: AsyncIterator[Any]) -> list[Any]:
    """The rest of a stream of a closed runtime (it must end)."""
    async with asyncio.timeout(GUARD):
        return [item async for item in stream]


class Collector:
    """A task that reads ``runtime.outputs()`` until it ends."""

    def __init__(self, runtime: Any) -> None:
        self.items: list[Any] = []
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._ready = asyncio.Event()
        self.task = asyncio.create_task(self._consume(runtime))

    async def _consume(self, runtime: Any) -> None:
        stream = runtime.outputs()
        self._ready.set()  # the iteration below subscribes before this task yields
        async for item in stream:
            self.items.append(item)
            self._queue.put_nowait(item)

    async def started(self) -> Collector:
        await self._ready.wait()
        return self

    async def take(self, count: int, within: float = 2.0) -> list[Any]:
        """The next ``count`` items (fails if they do not come)."""
        taken: list[Any] = []
        try:
            async with asyncio.timeout(within):
                while len(taken) < count:
                    taken.append(await self._queue.get())
        except TimeoutError:
            raise AssertionError(
                f"outputs() delivered {taken} within {within}s, expected {count} items"
            ) from None
        return taken

    async def finished(self) -> list[Any]:
        await asyncio.wait_for(self.task, GUARD)
        return self.items


async def wait_until(
    condition: Callable[[], bool], what: Callable[[], Any], within: float = 2.0
) -> None:
    """Poll a condition driven by a timer (passivation), bounded."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {within}s: {what()}")
        await asyncio.sleep(0.01)


async def yield_loop(turns: int = 20) -> None:
    """Let every ready task run a few steps (used only to show that something does NOT
    happen on its own)."""
    for _ in range(turns):
        await asyncio.sleep(0)


async def finish_cancelled(task: asyncio.Task[Any]) -> None:
    """Wait (bounded) for a cancelled task to end, and check that it ended cancelled."""
    await asyncio.wait([task], timeout=GUARD)
    assert task.done(), "the cancelled task is still running"
    assert task.cancelled(), f"the task was not cancelled: {task!r}"


def journal_kwargs(kind: str, tmp_path: Path, store: MemoryJournalStore | None = None) -> dict:
    if kind == "journal_dir":
        return {"journal_dir": tmp_path / "journal"}
    assert store is not None
    return {"journal_store": store}


# -- send / submit / outputs ---------------------------------------------------------------------


async def test_send_returns_that_runs_outputs() -> None:
    class Twice(Agent):
        @action(InputEvent)
        @staticmethod
        def first(event: InputEvent, ctx: RunnerContext) -> None:
            ctx.send_event(OutputEvent(output=f"{ctx.key}:{event.input}:1"))
            ctx.send_event(Event(type="Again", attributes={"v": event.input}))

        @action("Again")
        @staticmethod
        async def again(event: Event, ctx: RunnerContext) -> None:
            await asyncio.sleep(0)
            ctx.send_event(OutputEvent(output=f"{ctx.key}:{event.attributes['v']}:2"))

    async with make_env().serve(Twice()) as runtime:
        assert await runtime.send("a", "x") == ["a:x:1", "a:x:2"]
        assert await runtime.send("b", "y") == ["b:y:1", "b:y:2"]
        # concurrent sends each get their own run's outputs, not another's
        results = await asyncio.gather(*(runtime.send(f"k{i}", i) for i in range(20)))
        assert results == [[f"k{i}:{i}:1", f"k{i}:{i}:2"] for i in range(20)]
        results = await asyncio.gather(*(runtime.send("same", i) for i in range(10)))
        assert results == [[f"same:{i}:1", f"same:{i}:2"] for i in range(10)]


async def test_submit_returns_before_the_run_finishes() -> None:
    gate = asyncio.Event()
    started = {"slow": asyncio.Event()}
    async with make_env().serve(gated_agent({"slow": gate}, started=started)) as runtime:
        handle = await runtime.submit("k", "slow")
        assert isinstance(handle, RunHandle)
        assert handle.key == "k"
        assert isinstance(handle.seq, int)
        await asyncio.wait_for(started["slow"].wait(), GUARD)
        await yield_loop()
        assert not handle.done()
        with pytest.raises(asyncio.InvalidStateError):
            handle.result()
        gate.set()
        assert await asyncio.wait_for(handle, GUARD) == ["slow"]
        assert handle.done()
        assert handle.result() == ["slow"]
        # a handle can be awaited again
        assert await handle == ["slow"]
        second = await runtime.submit("k", "fast")
        assert second.seq > handle.seq
        assert await second == ["fast"]


async def test_failed_run_raises_from_send_and_rolls_back_only_that_key() -> None:
    gate = asyncio.Event()
    async with make_env().serve(counter_agent({"b-slow": gate})) as runtime:
        collector = await Collector(runtime).started()
        assert await runtime.send("a", "one") == [("one", 1)]
        assert await runtime.send("b", "one") == [("one", 1)]
        other = await runtime.submit("b", "b-slow")  # in flight while "a" fails
        with pytest.raises(ActionFailedError) as caught:
            await runtime.send("a", "boom")
        error = caught.value
        assert isinstance(error.__cause__, ValueError)
        assert str(error.__cause__) == "boom in key a"
        assert error.key == "a"
        assert "'a'" in str(error) and "count" in str(error)  # names key and action
        # the key is as before the failed run: its count and seen-markers were rolled back
        assert await runtime.send("a", "two") == [("two", 2)]
        gate.set()
        assert await asyncio.wait_for(other, GUARD) == [("b-slow", 2)]
        assert await runtime.send("b", "three") == [("three", 3)]
        stats = runtime.stats()
        assert stats["unfinished_inputs"] == 0 and stats["inflight_runs"] == 0
    items = await collector.finished()
    # the failed run's output was discarded; everything else arrived
    assert ("a", ("boom", 2)) not in items
    assert sorted(items) == sorted(
        [
            ("a", ("one", 1)),
            ("b", ("one", 1)),
            ("a", ("two", 2)),
            ("b", ("b-slow", 2)),
            ("b", ("three", 3)),
        ]
    )


async def test_failed_run_memory_really_rolled_back() -> None:
    class Memo(Agent):
        @action(InputEvent)
        @staticmethod
        def act(event: InputEvent, ctx: RunnerContext) -> None:
            memory = ctx.short_term_memory
            if event.input == "read":
                ctx.send_event(OutputEvent(output=sorted(memory.get_field_names())))
                return
            memory.set(event.input, 1)
            if event.input.startswith("bad"):
                raise RuntimeError("nope")

    async with make_env().serve(Memo()) as runtime:
        await runtime.send("k", "good")
        with pytest.raises(ActionFailedError) as caught:
            await runtime.send("k", "bad1")
        assert isinstance(caught.value.__cause__, RuntimeError)
        assert await runtime.send("k", "read") == [["good"]]


async def test_outputs_streams_every_output_in_commit_order_to_every_subscriber() -> None:
    gates = {"a1": asyncio.Event(), "b1": asyncio.Event()}
    started = {"a1": asyncio.Event(), "b1": asyncio.Event()}
    async with make_env().serve(gated_agent(gates, started=started)) as runtime:
        first = await Collector(runtime).started()
        second = await Collector(runtime).started()
        a1 = await runtime.submit("a", "a1")
        b1 = await runtime.submit("b", "b1")
        a2 = await runtime.submit("a", "a2")  # queued behind a1
        await asyncio.wait_for(started["b1"].wait(), GUARD)
        gates["b1"].set()  # b commits first although a was submitted first
        assert await asyncio.wait_for(b1, GUARD) == ["b1"]
        assert not a1.done() and not a2.done()
        gates["a1"].set()
        assert await asyncio.wait_for(a2, GUARD) == ["a2"]
        assert a1.result() == ["a1"]
        # many keys and inputs without gates: per-key order must hold
        handles = [await runtime.submit(f"k{n % 7}", n) for n in range(140)]
        await asyncio.wait_for(asyncio.gather(*handles), GUARD)
    one, two = await first.finished(), await second.finished()
    assert one == two
    assert one[:3] == [("b", "b1"), ("a", "a1"), ("a", "a2")]
    per_key: dict[Any, list[Any]] = defaultdict(list)
    for key, output in one[3:]:
        per_key[key].append(output)
    assert dict(per_key) == {f"k{k}": list(range(k, 140, 7)) for k in range(7)}


async def test_outputs_subscription_starts_when_outputs_is_called() -> None:
    """``outputs()`` streams every output committed from the call on, even if the caller
    sends before it starts iterating."""
    async with make_env().serve(gated_agent({})) as runtime:
        stream = runtime.outputs()
        await runtime.send("a", 1)
        assert await read(stream, 1, within=0.5) == [("a", 1)]
    assert await drain(stream) == []


async def test_outputs_ends_when_the_block_exits() -> None:
    async with make_env().serve(gated_agent({})) as runtime:
        stream = runtime.outputs()
        # start iterating (subscribes), then let the block end while the reader waits
        reader = asyncio.create_task(anext(stream, None))
        await yield_loop(3)
        assert not reader.done()
    assert await asyncio.wait_for(reader, GUARD) is None


async def test_outputs_of_a_closed_runtime_ends_at_once() -> None:
    async with make_env().serve(gated_agent({})) as runtime:
        await runtime.send("a", 1)
    assert await asyncio.wait_for(drain(runtime.outputs()), 1.0) == []


# -- stats ---------------------------------------------------------------------------------------


async def test_stats_in_a_controlled_situation() -> None:
    gates = {"k1-a": asyncio.Event(), "k2-a": asyncio.Event()}
    async with make_env().serve(gated_agent(gates)) as runtime:
        assert runtime.stats() == {
            "keys_active": 0,
            "keys_passivated": 0,
            "queued_inputs": 0,
            "inflight_runs": 0,
            "unfinished_inputs": 0,
            "output_streams": 0,
        }
        handles = [
            await runtime.submit("k1", "k1-a"),
            await runtime.submit("k2", "k2-a"),
            await runtime.submit("k1", "k1-b"),
            await runtime.submit("k1", "k1-c"),
            await runtime.submit("k2", "k2-b"),
        ]
        await yield_loop()
        assert runtime.stats() == {
            "keys_active": 2,
            "keys_passivated": 0,
            "queued_inputs": 3,
            "inflight_runs": 2,
            "unfinished_inputs": 5,
            "output_streams": 0,
        }
        gates["k2-a"].set()
        await asyncio.wait_for(handles[4], GUARD)
        assert runtime.stats()["queued_inputs"] == 2
        assert runtime.stats()["inflight_runs"] == 1
        assert runtime.stats()["unfinished_inputs"] == 3
        gates["k1-a"].set()
        await asyncio.wait_for(asyncio.gather(*handles), GUARD)
        assert runtime.stats() == {
            "keys_active": 2,
            "keys_passivated": 0,
            "queued_inputs": 0,
            "inflight_runs": 0,
            "unfinished_inputs": 0,
            "output_streams": 0,
        }


# -- lifecycle and draining ----------------------------------------------------------------------


async def test_runtime_refuses_input_outside_the_block() -> None:
    runtime = make_env().serve(gated_agent({}))
    with pytest.raises(RuntimeClosedError, match="async with"):
        await runtime.submit("a", 1)
    async with runtime:
        assert await runtime.send("a", 1) == [1]
    with pytest.raises(RuntimeClosedError, match="does not accept inputs"):
        await runtime.submit("a", 2)
    with pytest.raises(RuntimeClosedError):
        await runtime.send("a", 3)
    assert isinstance(RuntimeClosedError("x"), RuntimeError)


async def test_drain_lets_inflight_runs_finish_and_refuses_new_input() -> None:
    gate = asyncio.Event()
    refused: list[BaseException] = []

    async with make_env().serve(gated_agent({"slow": gate}), drain_timeout=GUARD) as runtime:
        collector = await Collector(runtime).started()
        handle = await runtime.submit("k", "slow")
        queued = await runtime.submit("k", "after")

        async def during_drain() -> None:
            # first runs once the block has been left, i.e. while the runtime drains
            try:
                await runtime.submit("other", "late")
            except RuntimeClosedError as error:
                refused.append(error)
            gate.set()

        releaser = asyncio.create_task(during_drain())
    await releaser
    assert len(refused) == 1 and "does not accept inputs" in str(refused[0])
    assert handle.done() and handle.result() == ["slow"]
    assert queued.done() and queued.result() == ["after"]
    assert await collector.finished() == [("k", "slow"), ("k", "after")]
    assert runtime.stats()["unfinished_inputs"] == 0


async def test_drain_timeout_cuts_off_a_stuck_run_and_next_start_reruns_it(
    tmp_path: Path,
) -> None:
    gate = asyncio.Event()
    in_action = asyncio.Event()
    effects: list[int] = []
    runs: list[Any] = []

    def effect(x: int) -> int:
        effects.append(x)
        return x * 10

    class Stuck(Agent):
        @action(InputEvent)
        @staticmethod
        async def work(event: InputEvent, ctx: RunnerContext) -> None:
            runs.append(event.input)
            result = ctx.durable_execute(effect, event.input)
            if event.input == 4:
                in_action.set()
                await gate.wait()
            ctx.send_event(OutputEvent(output=result))

    kwargs = {"journal_dir": tmp_path / "journal"}
    started = time.monotonic()
    async with make_env(**kwargs).serve(Stuck(), drain_timeout=0.05) as runtime:
        collector = await Collector(runtime).started()
        assert await runtime.send("done", 1) == [10]
        handle = await runtime.submit("stuck", 4)
        await asyncio.wait_for(in_action.wait(), GUARD)
    assert time.monotonic() - started < GUARD / 2
    with pytest.raises(RuntimeClosedError):
        await handle
    assert await collector.finished() == [("done", 10)]
    assert effects == [1, 4] and runs == [1, 4]

    gate.set()
    async with make_env(**kwargs).serve(Stuck()) as runtime:
        stream = runtime.outputs()
        assert await read(stream, 1) == [("stuck", 40)]
        assert await read_until_fence(runtime, stream) == []
    assert await drain(stream) == []
    assert runs == [1, 4, 4, FENCE]  # the cut-off input ran again ...
    # ... but its durable call was replayed, not made again
    assert effects == [1, 4, FENCE]

    # and it is finished now: a third start has nothing left to do
    runs.clear()
    async with make_env(**kwargs).serve(Stuck()) as runtime:
        await yield_loop()
        assert runtime.stats()["unfinished_inputs"] == 0
    assert runs == []


@pytest.mark.parametrize("kind", ["journal_dir", "memory_store"])
async def test_cancelled_block_leaves_inflight_input_for_next_start(
    kind: str, tmp_path: Path
) -> None:
    kwargs = journal_kwargs(kind, tmp_path, MemoryJournalStore())
    gates = {"c1": asyncio.Event()}
    started = {"c1": asyncio.Event()}
    log: list[Any] = []
    first_outputs: list[Any] = []
    entered = asyncio.Event()

    async def block() -> None:
        async with make_env(**kwargs).serve(
            gated_agent(gates, log, started), drain_timeout=0.05
        ) as runtime:
            collector = await Collector(runtime).started()
            handles = [
                await runtime.submit("a", "a1"),
                await runtime.submit("b", "b1"),
                await runtime.submit("c", "c1"),
                await runtime.submit("a", "a2"),
            ]
            first_outputs.extend(await collector.take(3))
            entered.set()
            await handles[2]  # cancelled here

    task = asyncio.create_task(block())
    await asyncio.wait_for(entered.wait(), GUARD)
    await asyncio.wait_for(started["c1"].wait(), GUARD)
    task.cancel()
    await finish_cancelled(task)
    assert sorted(first_outputs) == [("a", "a1"), ("a", "a2"), ("b", "b1")]

    gates.clear()
    log.clear()
    async with make_env(**kwargs).serve(gated_agent(gates, log)) as runtime:
        stream = runtime.outputs()
        # exactly the cut-off input, once; committed outputs are not delivered again
        assert await read(stream, 1) == [("c", "c1")]
        assert await read_until_fence(runtime, stream) == []
    assert await drain(stream) == []
    assert log == [("c", "c1"), (FENCE, FENCE)]


async def test_cancelled_drain_leaves_inputs_journaled_for_next_start(tmp_path: Path) -> None:
    kwargs = {"journal_dir": tmp_path / "journal"}
    gates = {"slow": asyncio.Event()}
    parked = asyncio.Event()
    draining = asyncio.Event()
    log: list[Any] = []

    async def block() -> None:
        # the default drain timeout is long: only the second cancel ends the drain
        async with make_env(**kwargs).serve(gated_agent(gates, log)) as runtime:
            await runtime.submit("k", "slow")
            await runtime.submit("k", "queued")
            try:
                parked.set()
                await asyncio.Event().wait()
            finally:
                draining.set()  # the block is being left: the drain starts right after

    task = asyncio.create_task(block())
    await asyncio.wait_for(parked.wait(), GUARD)
    task.cancel()  # leaves the block: the drain begins and waits for "slow"
    await asyncio.wait_for(draining.wait(), GUARD)
    await yield_loop(3)
    assert not task.done()  # draining
    task.cancel()  # cancels the drain
    await finish_cancelled(task)
    assert log == [("k", "slow")]

    gates.clear()
    async with make_env(**kwargs).serve(gated_agent(gates, log)) as runtime:
        stream = runtime.outputs()
        assert await read(stream, 2) == [("k", "slow"), ("k", "queued")]
        assert await read_until_fence(runtime, stream) == []
    assert await drain(stream) == []
    assert log == [("k", "slow"), ("k", "slow"), ("k", "queued"), (FENCE, FENCE)]


async def test_crash_without_drain_recovers_accepted_inputs() -> None:
    """The first runtime is abandoned mid-flight (no drain, no flush, no compaction): what
    the store holds at that moment is all a new runtime gets."""
    store = MemoryJournalStore()
    crashed_gate = asyncio.Event()  # never set while the first runtime matters
    current: dict[str, asyncio.Event | None] = {"gate": crashed_gate}

    class Stateful(Agent):
        @action(InputEvent)
        @staticmethod
        async def work(event: InputEvent, ctx: RunnerContext) -> None:
            gate = current["gate"] if event.input == "c1" else None
            memory = ctx.short_term_memory
            count = (memory.get("count") or 0) + 1
            memory.set("count", count)
            if gate is not None:
                await gate.wait()
            ctx.send_event(OutputEvent(output=[event.input, count]))

    crashed = make_env(journal_store=store).serve(Stateful(), drain_timeout=0)
    await crashed.__aenter__()
    try:
        collector = await Collector(crashed).started()
        for key, value in [("a", "a1"), ("b", "b1"), ("c", "c1"), ("a", "a2"), ("c", "c2")]:
            await crashed.submit(key, value)
        assert sorted(await collector.take(3)) == [
            ("a", ["a1", 1]),
            ("a", ["a2", 2]),
            ("b", ["b1", 1]),
        ]
        # --- crash: the first runtime is never closed ---
        current["gate"] = None
        async with make_env(journal_store=store).serve(Stateful()) as runtime:
            stream2 = runtime.outputs()
            assert await read(stream2, 2) == [("c", ["c1", 1]), ("c", ["c2", 2])]
            assert await read_until_fence(runtime, stream2) == []
            # committed memory survived the crash, uncommitted writes did not
            assert await runtime.send("a", "a3") == [["a3", 3]]
            assert await runtime.send("b", "b2") == [["b2", 2]]
            assert await runtime.send("c", "c3") == [["c3", 3]]
        assert await drain(stream2) == [("a", ["a3", 3]), ("b", ["b2", 2]), ("c", ["c3", 3])]
    finally:
        await crashed.__aexit__(None, None, None)
        await collector.finished()


async def test_recovered_input_that_completes_without_awaiting_reaches_outputs() -> None:
    """A recovered input whose rerun never awaits (here: a sync path) must still be
    delivered to ``outputs()`` of the new runtime."""
    store = MemoryJournalStore()
    gate = asyncio.Event()
    mode = {"hold": True}

    class Routed(Agent):
        @action(InputEvent)
        @staticmethod
        def route(event: InputEvent, ctx: RunnerContext) -> None:
            if mode["hold"]:
                ctx.send_event(Event(type="Hold", attributes={"v": event.input}))
            else:
                ctx.send_event(OutputEvent(output=event.input))

        @action("Hold")
        @staticmethod
        async def hold(event: Event, ctx: RunnerContext) -> None:
            await gate.wait()
            ctx.send_event(OutputEvent(output=event.attributes["v"]))

    async with make_env(journal_store=store).serve(Routed(), drain_timeout=0.01) as runtime:
        await runtime.submit("k", "held")
    mode["hold"] = False
    async with make_env(journal_store=store).serve(Routed()) as runtime:
        stream = runtime.outputs()
        assert await read(stream, 1, within=1.0) == [("k", "held")]
        assert await read_until_fence(runtime, stream) == []
    assert await drain(stream) == []


async def test_input_refused_at_close_is_not_run_at_next_start() -> None:
    """A send waiting for room in a full mailbox when the runtime closes is refused with
    RuntimeClosedError; the caller was told it was not accepted, so it must not run later."""
    store = MemoryJournalStore()
    gates = {"r1": asyncio.Event()}
    log: list[Any] = []
    env = make_env(journal_store=store, mailbox_capacity=1)
    async with env.serve(gated_agent(gates, log), drain_timeout=0.05) as runtime:
        await runtime.submit("k", "r1")
        queued = await runtime.submit("k", "r2")  # accepted, queued
        waiting = asyncio.create_task(runtime.send("k", "r3"))  # mailbox full: waits
        await yield_loop()
        assert not waiting.done()
    with pytest.raises(RuntimeClosedError):
        await asyncio.wait_for(waiting, GUARD)
    with pytest.raises(RuntimeClosedError):
        await queued
    gates.clear()
    log.clear()
    async with make_env(journal_store=store, mailbox_capacity=1).serve(
        gated_agent(gates, log)
    ) as runtime:
        stream = runtime.outputs()
        # the accepted inputs (cut off / queued) run at the next start ...
        assert await read(stream, 2) == [("k", "r1"), ("k", "r2")]
        # ... the refused one does not
        assert await read_until_fence(runtime, stream) == [], "a refused input ran later"
    await drain(stream)


class HeldAck:
    """An ack of the real store that the test also holds back: a disk as slow as the test
    needs, whatever the machine's disk is."""

    def __init__(self, ack: Any, released: asyncio.Event) -> None:
        self._ack = ack
        self._released = released

    @property
    def done(self) -> bool:
        return self._released.is_set() and self._ack.done

    def __await__(self) -> Any:
        return self._wait().__await__()

    async def _wait(self) -> None:
        await self._released.wait()
        await self._ack


class SlowDiskStore(SQLiteJournalStore):
    """The real SQLite journal, whose input writes become durable only once ``released`` is
    set."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory, "sync")
        self.released = asyncio.Event()

    def write(self, ops: Any) -> Any:
        ack = super().write(ops)
        if any(isinstance(op, InputOp) for op in ops):
            return HeldAck(ack, self.released)
        return ack


async def test_submit_cancelled_while_journaling_runs_now_or_never(tmp_path: Path) -> None:
    """A submit cancelled while it waits for the journal: its input may count as accepted
    or not, but it must not run only at some later start, after inputs sent after it."""
    directory = tmp_path / "journal"
    log: list[Any] = []
    store = SlowDiskStore(directory)
    async with make_env(journal_store=store).serve(gated_agent({}, log)) as runtime:
        submitting = asyncio.create_task(runtime.submit("k", "cancelled"))
        await yield_loop()  # the input is written, its ack is awaited
        assert not submitting.done()
        submitting.cancel()
        await asyncio.wait([submitting], timeout=GUARD)
        store.released.set()
        await runtime.send("k", "later")
        await yield_loop()
        assert runtime.stats()["unfinished_inputs"] == 0
    async with make_env(journal_dir=directory).serve(gated_agent({}, log)):
        pass  # whatever this start resumes, it finishes while draining
    assert log in ([("k", "later")], [("k", "cancelled"), ("k", "later")]), log


async def test_exception_in_the_block_still_drains() -> None:
    gate = asyncio.Event()
    with pytest.raises(LookupError, match="app failed"):
        async with make_env().serve(gated_agent({"slow": gate})) as runtime:
            collector = await Collector(runtime).started()
            handle = await runtime.submit("k", "slow")
            asyncio.get_running_loop().call_soon(gate.set)  # runs during the drain
            raise LookupError("app failed")
    assert handle.done() and handle.result() == ["slow"]
    assert await collector.finished() == [("k", "slow")]


# -- backpressure --------------------------------------------------------------------------------


async def test_max_pending_nowait_raises_and_submit_waits_for_room() -> None:
    gates = {"a": asyncio.Event(), "b": asyncio.Event()}
    async with make_env().serve(gated_agent(gates), max_pending=2) as runtime:
        a = await runtime.submit("ka", "a")
        b = await runtime.submit("kb", "b")
        with pytest.raises(RuntimeBusyError, match="max_pending"):
            await runtime.submit("kc", "c", nowait=True)
        with pytest.raises(RuntimeBusyError, match="max_pending"):
            await runtime.send("kc", "c", nowait=True)
        assert runtime.stats()["unfinished_inputs"] == 2
        waiting = asyncio.create_task(runtime.submit("kc", "c"))
        await yield_loop()
        assert not waiting.done()
        assert runtime.stats()["unfinished_inputs"] == 2
        gates["a"].set()
        assert await asyncio.wait_for(a, GUARD) == ["a"]
        c = await asyncio.wait_for(waiting, GUARD)
        assert await asyncio.wait_for(c, GUARD) == ["c"]
        assert not b.done()
        gates["b"].set()
        assert await asyncio.wait_for(b, GUARD) == ["b"]


async def test_full_mailbox_nowait_raises_and_send_waits() -> None:
    gates = {"first": asyncio.Event()}
    env = make_env(mailbox_capacity=1)
    async with env.serve(gated_agent(gates)) as runtime:
        first = await runtime.submit("k", "first")
        second = await runtime.submit("k", "second")  # queued: the mailbox is now full
        with pytest.raises(RuntimeBusyError, match="mailbox") as caught:
            await runtime.submit("k", "third", nowait=True)
        assert "'k'" in str(caught.value)
        assert await runtime.send("other", "x", nowait=True) == ["x"]  # other keys are fine
        waiting = asyncio.create_task(runtime.send("k", "third"))
        await yield_loop()
        assert not waiting.done()
        gates["first"].set()
        assert await asyncio.wait_for(waiting, GUARD) == ["third"]
        assert first.result() == ["first"] and second.result() == ["second"]


async def test_fast_producer_never_exceeds_max_pending() -> None:
    seen: dict[Any, list[int]] = defaultdict(list)
    peak = 0

    class Slow(Agent):
        @action(InputEvent)
        @staticmethod
        async def work(event: InputEvent, ctx: RunnerContext) -> None:
            for _ in range(3):
                await asyncio.sleep(0)
            seen[ctx.key].append(event.input)
            ctx.send_event(OutputEvent(output=event.input))

    async with make_env().serve(Slow(), max_pending=50) as runtime:
        handles = []
        for n in range(1000):
            handles.append(await runtime.submit(f"k{n % 30}", n))
            unfinished = runtime.stats()["unfinished_inputs"]
            assert unfinished <= 50
            peak = max(peak, unfinished)
        results = await asyncio.wait_for(asyncio.gather(*handles), GUARD)
    assert peak == 50  # the producer really was held back
    assert results == [[n] for n in range(1000)]
    assert dict(seen) == {f"k{k}": list(range(k, 1000, 30)) for k in range(30)}


async def test_max_pending_holds_with_producers_waiting_on_a_full_mailbox() -> None:
    """A producer parked on a full mailbox must not push the unfinished inputs past
    max_pending when it is let in."""
    hold = asyncio.Event()
    gates = {"k1": asyncio.Event(), "k2": hold, "k3": hold, "j1": hold, "m1": hold}
    env = make_env(mailbox_capacity=1)
    peak = 0
    async with env.serve(gated_agent(gates), max_pending=3, drain_timeout=0.05) as runtime:
        await runtime.submit("k", "k1")
        await runtime.submit("k", "k2")  # k's mailbox is full
        parked = asyncio.create_task(runtime.submit("k", "k3"))  # waits for k's mailbox
        await yield_loop()
        await runtime.submit("j", "j1")  # 3 unfinished: at max_pending
        waiting = asyncio.create_task(runtime.submit("m", "m1"))  # waits for max_pending
        await yield_loop()
        assert runtime.stats()["unfinished_inputs"] == 3
        gates["k1"].set()
        for _ in range(20):
            await asyncio.sleep(0)
            peak = max(peak, runtime.stats()["unfinished_inputs"])
        hold.set()
        await asyncio.wait_for(asyncio.gather(parked, waiting), GUARD)
    assert peak <= 3, f"{peak} unfinished inputs with max_pending=3"


async def test_max_pending_holds_with_concurrent_submits_on_a_durable_journal(
    tmp_path: Path,
) -> None:
    """Submits that wait for the journal ack must not all slip past max_pending."""
    gate = asyncio.Event()
    peak = 0
    async with make_env(journal_dir=tmp_path / "journal").serve(
        gated_agent({"x": gate}), max_pending=5, drain_timeout=0.05
    ) as runtime:

        async def producer(n: int) -> RunHandle:
            nonlocal peak
            handle = await runtime.submit(f"k{n}", "x")
            peak = max(peak, runtime.stats()["unfinished_inputs"])
            return handle

        producers = [asyncio.create_task(producer(n)) for n in range(40)]
        await wait_until(
            lambda: sum(task.done() for task in producers) >= 5, lambda: runtime.stats()
        )
        peak = max(peak, runtime.stats()["unfinished_inputs"])
        gate.set()
        handles = await asyncio.wait_for(asyncio.gather(*producers), GUARD)
        await asyncio.wait_for(asyncio.gather(*handles), GUARD)
    assert peak <= 5, f"{peak} unfinished inputs with max_pending=5"


async def test_busy_policy_reject() -> None:
    gates = {"a1": asyncio.Event()}
    async with make_env().serve(gated_agent(gates), busy_policy="reject") as runtime:
        a1 = await runtime.submit("a", "a1")
        with pytest.raises(RuntimeBusyError) as caught:
            await runtime.submit("a", "a2")
        assert "'a'" in str(caught.value)
        with pytest.raises(RuntimeBusyError):
            await runtime.send("a", "a2")
        assert await runtime.send("b", "b1") == ["b1"]  # other keys are accepted
        assert runtime.stats()["unfinished_inputs"] == 1
        gates["a1"].set()
        assert await asyncio.wait_for(a1, GUARD) == ["a1"]
        assert await runtime.send("a", "a3") == ["a3"]  # not busy any more


async def test_busy_policy_reject_holds_for_concurrent_submits_on_a_durable_journal(
    tmp_path: Path,
) -> None:
    """Two inputs for one idle key arriving together: the second arrives while the first is
    accepted and unfinished, so the key is busy and it is rejected."""
    gates = {"x": asyncio.Event(), "y": asyncio.Event()}
    async with make_env(journal_dir=tmp_path / "journal").serve(
        gated_agent(gates), busy_policy="reject", drain_timeout=0.05
    ) as runtime:
        results = await asyncio.gather(
            runtime.submit("k", "x"), runtime.submit("k", "y"), return_exceptions=True
        )
        rejected = [r for r in results if isinstance(r, RuntimeBusyError)]
        assert len(rejected) == 1, f"expected one rejection, got {results}"
        assert runtime.stats()["queued_inputs"] == 0
        gates["x"].set()
        gates["y"].set()


async def test_invalid_serve_options() -> None:
    env = make_env()
    with pytest.raises(ValueError, match="busy_policy"):
        env.serve(gated_agent({}), busy_policy="drop")
    with pytest.raises(ValueError, match="max_pending"):
        env.serve(gated_agent({}), max_pending=0)
    with pytest.raises(ValueError, match="drain_timeout"):
        env.serve(gated_agent({}), drain_timeout=-1)


# -- passivation ---------------------------------------------------------------------------------


def profile_agent() -> Agent:
    class Profile(Agent):
        @action(InputEvent)
        @staticmethod
        def visit(event: InputEvent, ctx: RunnerContext) -> None:
            memory = ctx.short_term_memory
            count = (memory.get("count") or 0) + 1
            memory.set("count", count)
            if count == 1:
                profile = memory.new_object("profile")
                profile.set("name", f"user-{ctx.key}")
                profile.set("tags", ["a", {"b": [1, 2.5, None, b"\x00"]}])
                profile.new_object("address").set("city", "Berlin")
            memory.set("profile.visits", count)
            memory.set(f"profile.history.v{count}", event.input)
            profile = memory.get("profile")
            ctx.send_event(
                OutputEvent(
                    output={
                        "count": count,
                        "fields": profile.get_field_names(),
                        "name": profile.get("name"),
                        "tags": profile.get("tags"),
                        "city": memory.get("profile.address.city"),
                        "visits": profile.get("visits"),
                        "history": memory.get("profile.history").get_fields(),
                    }
                )
            )

    return Profile()


def expected_profile(key: str, count: int) -> dict[str, Any]:
    return {
        "count": count,
        "fields": ["address", "history", "name", "tags", "visits"],
        "name": f"user-{key}",
        "tags": ["a", {"b": [1, 2.5, None, b"\x00"]}],
        "city": "Berlin",
        "visits": count,
        "history": {f"v{n}": f"{key}-{n}" for n in range(1, count + 1)},
    }


async def passivated(runtime: Any, clock: MockClock, seconds: float, **expected: int) -> None:
    """Move the clock on by ``seconds``, then wait (bounded) until the sweeper has passivated
    what the stats should show; no key may go before its time."""
    clock.advance(seconds)
    await wait_until(
        lambda: all(runtime.stats()[name] == count for name, count in expected.items()),
        runtime.stats,
    )


@pytest.mark.parametrize("kind", ["default", "memory_store", "journal_dir"])
async def test_passivated_key_is_reloaded_with_identical_memory(kind: str, tmp_path: Path) -> None:
    kwargs = {} if kind == "default" else journal_kwargs(kind, tmp_path, MemoryJournalStore())
    keys = [f"u{n}" for n in range(5)]
    clock = MockClock()
    async with make_env(clock=clock, **kwargs).serve(profile_agent(), idle_timeout=30) as runtime:
        for key in keys:
            for n in (1, 2):
                assert await runtime.send(key, f"{key}-{n}") == [expected_profile(key, n)]
        clock.advance(29.9)
        await yield_loop()
        assert runtime.stats()["keys_passivated"] == 0  # not before its time
        await passivated(runtime, clock, 0.1, keys_passivated=5, keys_active=0)
        assert await runtime.send("u0", "u0-3") == [expected_profile("u0", 3)]
        stats = runtime.stats()
        assert stats["keys_active"] == 1 and stats["keys_passivated"] == 4
        # reloaded concurrently: several inputs racing for one passivated key keep their order
        results = await asyncio.gather(*(runtime.send("u1", f"u1-{n}") for n in (3, 4, 5)))
        assert results == [[expected_profile("u1", n)] for n in (3, 4, 5)]
        # and passivated again, then reloaded again
        await passivated(runtime, clock, 30, keys_active=0)
        assert await runtime.send("u0", "u0-4") == [expected_profile("u0", 4)]
        assert await runtime.send("u1", "u1-6") == [expected_profile("u1", 6)]
    if kind == "default":
        return
    # the state (passivated or not) survives a restart
    async with make_env(**kwargs).serve(profile_agent()) as runtime:
        assert await runtime.send("u2", "u2-3") == [expected_profile("u2", 3)]
        assert await runtime.send("u0", "u0-5") == [expected_profile("u0", 5)]


async def test_failed_run_on_a_reloaded_key_rolls_back_to_the_reloaded_state() -> None:
    clock = MockClock()
    async with make_env(clock=clock).serve(counter_agent(), idle_timeout=20) as runtime:
        assert await runtime.send("k", "one") == [("one", 1)]
        await passivated(runtime, clock, 20, keys_passivated=1)
        with pytest.raises(ActionFailedError):
            await runtime.send("k", "boom")
        assert await runtime.send("k", "two") == [("two", 2)]


@pytest.mark.slow
async def test_memory_stays_bounded_with_many_keys() -> None:
    clock = MockClock()
    async with make_env(clock=clock).serve(counter_agent(), idle_timeout=20) as runtime:
        handles = [await runtime.submit(f"key-{n}", "hit") for n in range(2000)]
        await asyncio.wait_for(asyncio.gather(*handles), GUARD)
        await passivated(runtime, clock, 20, keys_active=0, keys_passivated=2000)
        assert await runtime.send("key-1999", "again") == [("again", 2)]


async def test_keys_recovered_at_start_are_passivated_too(tmp_path: Path) -> None:
    kwargs = {"journal_dir": tmp_path / "journal"}
    async with make_env(**kwargs).serve(counter_agent()) as runtime:
        for n in range(20):
            await runtime.send(f"k{n}", "one")
    clock = MockClock()
    async with make_env(clock=clock, **kwargs).serve(counter_agent(), idle_timeout=20) as runtime:
        # at once, without waiting for the timeout: nothing is resumed for them
        assert runtime.stats()["keys_active"] == 0
        assert runtime.stats()["keys_passivated"] == 20
        assert await runtime.send("k3", "two") == [("two", 2)]


# -- short-term memory TTL -----------------------------------------------------------------------


def ttl_agent() -> Agent:
    class Ttl(Agent):
        @action(InputEvent)
        @staticmethod
        def act(event: InputEvent, ctx: RunnerContext) -> None:
            op, value = event.input
            memory = ctx.short_term_memory
            if op in ("set", "fail"):
                memory.set("x", value)
            if op == "fail":
                raise RuntimeError("write, then fail")
            ctx.send_event(OutputEvent(output=[memory.get("x"), memory.is_exist("x")]))

    return Ttl()


def ttl_env(
    milliseconds: int, update_type: str | None = None, *, clock: MockClock, **kwargs: Any
) -> Any:
    config: dict[str, Any] = {"short-term-memory.state-ttl.ms": milliseconds}
    if update_type is not None:
        config["short-term-memory.state-ttl.update-type"] = update_type
    return make_env(config=config, clock=clock, **kwargs)


async def test_ttl_value_expires_in_a_later_run() -> None:
    clock = MockClock()
    async with ttl_env(50, clock=clock).serve(ttl_agent()) as runtime:
        assert await runtime.send("k", ("set", "v")) == [["v", True]]
        clock.advance(0.04)  # within the TTL
        assert await runtime.send("k", ("get", None)) == [["v", True]]
        clock.advance(0.06)  # past the TTL of that read's refresh
        assert await runtime.send("k", ("get", None)) == [[None, False]]
        assert await runtime.send("k", ("set", "w")) == [["w", True]]  # writable again


async def test_ttl_is_refreshed_on_write() -> None:
    clock = MockClock()
    async with ttl_env(100, "ON_CREATE_AND_WRITE", clock=clock).serve(ttl_agent()) as runtime:
        await runtime.send("k", ("set", 1))
        clock.advance(0.06)
        await runtime.send("k", ("set", 2))
        clock.advance(0.06)  # 120 ms after the first write, 60 ms after the second
        assert await runtime.send("k", ("get", None)) == [[2, True]]
        clock.advance(0.041)  # 101 ms after the second write
        assert await runtime.send("k", ("get", None)) == [[None, False]]


async def test_ttl_on_read_and_write_refreshes_on_read() -> None:
    clock = MockClock()
    async with ttl_env(100, "ON_READ_AND_WRITE", clock=clock).serve(ttl_agent()) as runtime:
        await runtime.send("k", ("set", "v"))
        for _ in range(5):  # 450 ms in all, each read 90 ms after the last
            clock.advance(0.09)
            assert await runtime.send("k", ("get", None)) == [["v", True]]


async def test_ttl_on_create_and_write_does_not_refresh_on_read() -> None:
    clock = MockClock()
    async with ttl_env(100, "ON_CREATE_AND_WRITE", clock=clock).serve(ttl_agent()) as runtime:
        await runtime.send("k", ("set", "v"))
        seen = []
        for _ in range(3):
            clock.advance(0.04)
            seen.append(await runtime.send("k", ("get", None)))
        assert seen == [[["v", True]], [["v", True]], [[None, False]]]  # 120 ms: expired


async def test_ttl_survives_passivation() -> None:
    clock = MockClock()
    env = ttl_env(300, "ON_CREATE_AND_WRITE", clock=clock)
    async with env.serve(ttl_agent(), idle_timeout=0.02) as rt:
        await rt.send("k", ("set", "v"))
        await passivated(rt, clock, 0.02, keys_passivated=1)
        clock.advance(0.23)
        assert await rt.send("k", ("get", None)) == [["v", True]]  # reloaded with its stamp
        await passivated(rt, clock, 0.02, keys_passivated=1)
        clock.advance(0.08)  # 350 ms after the write
        assert await rt.send("k", ("get", None)) == [[None, False]]


async def test_ttl_not_refreshed_by_a_failed_run() -> None:
    """A failed run leaves its key as before: its rolled-back write does not keep the
    committed value alive."""
    clock = MockClock()
    async with ttl_env(100, "ON_CREATE_AND_WRITE", clock=clock).serve(ttl_agent()) as runtime:
        await runtime.send("k", ("set", "v"))
        clock.advance(0.05)
        with pytest.raises(ActionFailedError):
            await runtime.send("k", ("fail", "w"))
        clock.advance(0.08)  # 130 ms after the only committed write
        assert await runtime.send("k", ("get", None)) == [[None, False]]


async def test_ttl_read_refresh_survives_a_crash() -> None:
    """With ON_READ_AND_WRITE a committed run's read refreshes the value; recovery restores
    keys to their last committed run, so the refresh must survive a crash."""
    store = MemoryJournalStore()
    clock = MockClock()
    crashed = ttl_env(300, "ON_READ_AND_WRITE", journal_store=store, clock=clock)
    crashed_runtime = crashed.serve(ttl_agent())
    await crashed_runtime.__aenter__()
    try:
        await crashed_runtime.send("k", ("set", "v"))
        clock.advance(0.2)
        assert await crashed_runtime.send("k", ("get", None)) == [["v", True]]  # +300 ms
        # --- crash: the first runtime is never closed ---
        env = ttl_env(300, "ON_READ_AND_WRITE", journal_store=store, clock=clock)
        async with env.serve(ttl_agent()) as runtime:
            clock.advance(0.15)  # 350 ms after the write, 150 ms after the refreshing read
            assert await runtime.send("k", ("get", None)) == [["v", True]]
            clock.advance(0.301)  # past the TTL of that read's own refresh
            assert await runtime.send("k", ("get", None)) == [[None, False]]
    finally:
        await crashed_runtime.__aexit__(None, None, None)


@pytest.mark.parametrize(
    ("config", "key"),
    [
        ({"short-term-memory.state-ttl.update-type": "ON_SOMETHING"}, "update-type"),
        ({"short-term-memory.state-ttl.ms": -5}, "state-ttl.ms"),
    ],
)
async def test_invalid_ttl_configuration_fails_at_serve_start(
    config: dict[str, Any], key: str
) -> None:
    runtime = make_env(config=config).serve(ttl_agent())
    with pytest.raises(ConfigurationError, match=key):
        async with runtime:
            pytest.fail("the runtime started with an invalid TTL configuration")


# -- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["default", "journal_dir"])
async def test_bad_input_is_refused_before_anything_runs(kind: str, tmp_path: Path) -> None:
    kwargs = {} if kind == "default" else {"journal_dir": tmp_path / "journal"}
    log: list[Any] = []
    async with make_env(**kwargs).serve(gated_agent({}, log)) as runtime:
        with pytest.raises(TypeError, match="hashable"):
            await runtime.submit(["not", "hashable"], 1)
        with pytest.raises(TypeError, match="hashable"):
            await runtime.send({"a": 1}, 1)

        class Opaque:
            pass

        with pytest.raises(JournalEncodeError) as caught:
            await runtime.submit("the-key", Opaque())
        assert isinstance(caught.value, TypeError)
        assert "'the-key'" in str(caught.value)
        assert "Opaque" in str(caught.value)
        with pytest.raises(TypeError):
            await runtime.send("the-key", {"nested": [Opaque()]})
        await yield_loop()
        assert log == []
        assert runtime.stats()["unfinished_inputs"] == 0
        assert runtime.stats()["keys_active"] == 0
        # the runtime is unharmed
        assert await runtime.send("the-key", {"fine": [1, "two"]}) == [{"fine": [1, "two"]}]
    if kind == "journal_dir":  # nothing of the refused inputs was journaled
        log.clear()
        async with make_env(**kwargs).serve(gated_agent({}, log)) as runtime:
            await yield_loop()
            assert runtime.stats()["unfinished_inputs"] == 0
        assert log == []
