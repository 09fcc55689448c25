"""The bridge's loop host on its own: who drives the event loop, and what lands in an outbox.

No Flink here: the Flink thread is the test's thread, which is all ``LoopHost`` assumes of it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from pathlib import Path
from typing import Any

import pytest

from bridge.host import LoopHost
from bridge.outbox import Outbox, OutboxEntry, RunDone, SnapshotWritten
from flink_agents_async import Agent, InputEvent, OutputEvent, RunnerContext, action
from flink_agents_async.agent import AgentPlan
from flink_agents_async.config import Configuration
from flink_agents_async.errors import RuntimeClosedError


class DoubleAgent(Agent):
    @action(InputEvent)
    @staticmethod
    def double(event: InputEvent, ctx: RunnerContext) -> None:
        ctx.short_term_memory.set("last", event.input)
        ctx.send_event(OutputEvent(output=event.input * 2))


class LoopAskingAgent(Agent):
    """A sync action that asks for the running loop, as it may on the local host."""

    @action(InputEvent)
    @staticmethod
    def ask(event: InputEvent, ctx: RunnerContext) -> None:
        loop = asyncio.get_running_loop()
        ctx.send_event(OutputEvent(output=type(loop).__name__))


class GateAgent(Agent):
    """Awaits a gate the test opens from its own thread."""

    gate: asyncio.Event | None = None

    @action(InputEvent)
    @staticmethod
    async def wait(event: InputEvent, ctx: RunnerContext) -> None:
        if GateAgent.gate is None:
            GateAgent.gate = asyncio.Event()
        await GateAgent.gate.wait()
        ctx.send_event(OutputEvent(output=event.input))


class EchoInputAgent(Agent):
    """Outputs its input as it is."""

    @action(InputEvent)
    @staticmethod
    def echo(event: InputEvent, ctx: RunnerContext) -> None:
        ctx.send_event(OutputEvent(output=event.input))


@pytest.fixture(params=["inline", "loop-turns"])
def host_of(request: pytest.FixtureRequest) -> Any:
    """Hosts that run work on their parked loop inline (the fast way, with asyncio internals)
    or by loop turns (the public way): every case must come out the same both ways."""
    hosts: list[LoopHost] = []
    inline = request.param == "inline"

    def make(agent: Agent) -> LoopHost:
        host = LoopHost(
            AgentPlan.from_agent(agent, {}), Configuration(), {"agent": "test"}, inline=inline
        )
        assert host._parked.inline is inline
        hosts.append(host)
        return host

    yield make
    for host in hosts:
        host.close(timeout=5.0)
    GateAgent.gate = None


def _take_until_done(host: LoopHost, outbox: Outbox, runs: int = 1) -> list[OutboxEntry]:
    """Everything ``outbox`` gets until ``runs`` inputs are done, waiting as the bridge does."""
    taken: list[OutboxEntry] = []
    while sum(isinstance(entry, RunDone) for entry in taken) < runs:
        if not outbox:
            host.wait_for(outbox, timeout=5.0)
        while outbox:
            taken.append(outbox.popleft())
    return taken


def test_a_parked_host_runs_a_sync_input_before_start_returns(host_of: Any) -> None:
    host = host_of(DoubleAgent())
    outbox: Outbox = deque()
    host.start("k", 0, 21, None, None, True, outbox)
    kinds = [type(entry) for entry in outbox]
    assert kinds == [SnapshotWritten, RunDone]
    assert outbox[-1] == RunDone([42], None)
    assert host.parked  # nothing in flight: the loop never left this thread


def test_a_sync_action_run_on_the_flink_thread_sees_the_running_loop(host_of: Any) -> None:
    host = host_of(LoopAskingAgent())
    outbox: Outbox = deque()
    host.start("k", 0, None, None, None, True, outbox)
    assert outbox[-1] == RunDone([type(host.loop).__name__], None)
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()  # and only while it runs


def test_an_awaiting_input_goes_on_on_the_loop_thread_which_then_parks(host_of: Any) -> None:
    host = host_of(GateAgent())
    outbox: Outbox = deque()
    host.start("k", 0, "x", None, None, True, outbox)
    assert not outbox  # waiting at the gate
    host.hand_off()
    assert not host.parked
    host.loop.call_soon_threadsafe(lambda: GateAgent.gate.set())  # type: ignore[union-attr]
    assert _take_until_done(host, outbox)[-1] == RunDone(["x"], None)
    with host._turn:  # the loop thread parks the loop once nothing is in flight
        assert host._turn.wait_for(lambda: host.parked, timeout=5.0)
    later: Outbox = deque()
    host.start("k", 1, "y", None, None, False, later)
    assert later[-1] == RunDone(["y"], None)  # the gate is open: it ran right here


def test_inputs_sent_while_the_loop_thread_drives_run_there_in_order(host_of: Any) -> None:
    host = host_of(GateAgent())
    held: Outbox = deque()
    host.start("held", 0, "gate", None, None, True, held)
    host.hand_off()
    assert not host.parked
    outbox: Outbox = deque()
    for seq, value in enumerate(["a", "b", "c"], start=1):
        host.start("k", seq, value, None, None, seq == 1, outbox)
    assert not any(isinstance(entry, RunDone) for entry in outbox)  # queued behind the gate
    host.loop.call_soon_threadsafe(lambda: GateAgent.gate.set())  # type: ignore[union-attr]
    taken = _take_until_done(host, outbox, runs=3)
    assert [entry.outputs for entry in taken if isinstance(entry, RunDone)] == [["a"], ["b"], ["c"]]
    assert _take_until_done(host, held)[-1] == RunDone(["gate"], None)


def test_closing_cancels_a_run_in_flight_and_reports_it(host_of: Any) -> None:
    host = host_of(GateAgent())
    outbox: Outbox = deque()
    host.start("k", 0, "x", None, None, True, outbox)
    host.hand_off()
    host.close(timeout=5.0)
    done = outbox[-1]
    assert isinstance(done, RunDone) and done.outputs is None
    assert isinstance(done.error, RuntimeClosedError)


@pytest.mark.parametrize("output", [7, 2**70, "text", b"raw", 1.5, None, True, [1, {"a": (2,)}]])
def test_outputs_the_journal_can_hold_are_emitted(host_of: Any, output: Any) -> None:
    host = host_of(EchoInputAgent())
    outbox: Outbox = deque()
    host.start("k", 0, output, None, None, True, outbox)
    assert outbox[-1] == RunDone([output], None)


@pytest.mark.parametrize("output", [Path("/data/x"), [1, Path("/data/y")]])
def test_an_output_the_journal_cannot_hold_is_emitted_as_flink_state_never_holds_outputs(
    host_of: Any, output: Any
) -> None:
    host = host_of(EchoInputAgent())
    outbox: Outbox = deque()
    host.start("k", 0, output, None, None, True, outbox)
    assert outbox[-1] == RunDone([output], None)
