"""Resumable batch jobs on the SQLite journal, and bad journal input."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from flink_agents_async import (
    Agent,
    AgentsExecutionEnvironment,
    InputEvent,
    JournalError,
    OutputEvent,
    ReplayedError,
    RunnerContext,
)
from flink_agents_async.journal import JournalEncodeError
from flink_agents_async.journal.sqlite import JOURNAL_FILE

GUARD_TIMEOUT = 20.0


class Crash(BaseException):
    """Stands for the process dying (nothing catches it)."""


class Job:
    """A counting agent: per key a visit counter in memory, one durable call per input."""

    def __init__(self) -> None:
        self.action_calls: Counter[Any] = Counter()
        self.durable_calls: Counter[Any] = Counter()
        self.crash_on: Any = None

    def lookup(self, value: Any) -> str:
        self.durable_calls[value] += 1
        return f"looked up {value}"

    def agent(self) -> Agent:
        def act(event: InputEvent, ctx: RunnerContext) -> None:
            self.action_calls[event.input] += 1
            memory = ctx.short_term_memory
            visits = (memory.get("visits") or 0) + 1
            memory.set("visits", visits)
            looked_up = ctx.durable_execute(self.lookup, event.input)
            if event.input == self.crash_on:
                raise Crash  # after the durable call was journaled
            ctx.send_event(OutputEvent(output=[visits, looked_up]))

        return Agent().add_action("act", [InputEvent], act)


def inputs() -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = [{"key": f"k{n % 3}", "value": n} for n in range(12)]
    items.insert(5, {"value": "keyless"})
    return items


async def run(job: Job, directory: Path, items: list[dict[str, Any]], **kwargs: Any) -> list[Any]:
    env = AgentsExecutionEnvironment.get_execution_environment(journal_dir=directory, **kwargs)
    outputs = env.from_list(items).apply(job.agent()).to_list()
    await asyncio.wait_for(env.execute(), GUARD_TIMEOUT)
    return outputs


def normalized(outputs: list[dict[Any, Any]]) -> list[tuple[Any, Any]]:
    """Outputs with the keyless item's random key replaced by a marker."""
    result = []
    for entry in outputs:
        ((key, value),) = entry.items()
        result.append(("<uuid>" if isinstance(key, uuid.UUID) else key, value))
    return result


async def test_resumed_job_gives_the_uninterrupted_result(tmp_path: Path) -> None:
    clean = await run(Job(), tmp_path / "clean", inputs())

    job = Job()
    job.crash_on = 7
    with pytest.raises(Crash):
        await run(job, tmp_path / "crashed", inputs())
    before = dict(job.action_calls)
    job.crash_on = None
    resumed = await run(job, tmp_path / "crashed", inputs())

    assert normalized(resumed) == normalized(clean)
    # committed inputs never ran again; the crashed one ran again, its durable call replayed
    ran_twice = [value for value, count in job.action_calls.items() if count > 1]
    assert ran_twice == [7]
    assert all(count == 1 for count in job.durable_calls.values())
    assert set(before) == {0, 1, 2, 3, 4, 5, 6, 7, "keyless"}


async def test_keyless_input_keeps_its_key_across_a_crash(tmp_path: Path) -> None:
    job = Job()
    job.crash_on = "keyless"
    with pytest.raises(Crash):
        await run(job, tmp_path, inputs())
    job.crash_on = None
    resumed = await run(job, tmp_path, inputs())
    keyless = [key for entry in resumed for key in entry if isinstance(key, uuid.UUID)]
    assert len(keyless) == 1
    env_keys = {key for entry in resumed for key in entry}
    assert env_keys == {"k0", "k1", "k2", keyless[0]}
    assert job.durable_calls["keyless"] == 1


async def test_finished_job_runs_nothing_again_and_returns_its_outputs(tmp_path: Path) -> None:
    job = Job()
    first = await run(job, tmp_path, inputs())
    calls = dict(job.action_calls)
    again = await run(job, tmp_path, inputs())
    assert again == first
    assert dict(job.action_calls) == calls


async def test_journal_of_other_input_is_refused_before_anything_runs(tmp_path: Path) -> None:
    job = Job()
    await run(job, tmp_path, inputs())
    changed = inputs()
    changed[3] = {"key": "k0", "value": 1000}
    fresh = Job()
    with pytest.raises(JournalError) as caught:
        await run(fresh, tmp_path, changed)
    assert "item 3" in str(caught.value) and "different input" in str(caught.value)
    assert str(tmp_path) in str(caught.value)
    assert fresh.action_calls == Counter()


async def test_journal_with_more_inputs_than_the_source_is_refused(tmp_path: Path) -> None:
    await run(Job(), tmp_path, inputs())
    fresh = Job()
    with pytest.raises(JournalError) as caught:
        await run(fresh, tmp_path, inputs()[:4])
    assert "only 4 items" in str(caught.value)
    assert str(tmp_path) in str(caught.value)  # which journal it is
    assert fresh.action_calls == Counter()


async def test_journal_of_another_agent_is_refused(tmp_path: Path) -> None:
    await run(Job(), tmp_path, inputs())

    class OtherAgent(Agent):
        pass

    other = OtherAgent().add_action("act", [InputEvent], lambda event, ctx: None)
    env = AgentsExecutionEnvironment.get_execution_environment(journal_dir=tmp_path)
    env.from_list(inputs()).apply(other)
    with pytest.raises(JournalError) as caught:
        await env.execute()
    assert "OtherAgent" in str(caught.value) and "Agent" in str(caught.value)


async def test_a_failed_run_is_not_rerun_and_still_reported(tmp_path: Path) -> None:
    attempts: Counter[int] = Counter()

    def act(event: InputEvent, ctx: RunnerContext) -> None:
        attempts[event.input] += 1
        if event.input == 2:
            raise ValueError("bad input 2")
        ctx.send_event(OutputEvent(output=event.input))

    agent = Agent().add_action("act", [InputEvent], act)
    items = [{"key": "a", "value": n} for n in range(4)]
    # the first start raises the action's own error, the next one the failure it journaled,
    # rebuilt as its class (loaded here) without running its __init__
    for raised in (ValueError, ValueError):
        env = AgentsExecutionEnvironment.get_execution_environment(journal_dir=tmp_path)
        outputs = env.from_list(items).apply(agent).to_list()
        with pytest.raises(raised, match="bad input 2") as caught:
            await env.execute()
        assert type(caught.value) is raised
        assert outputs == [{"a": 0}, {"a": 1}, {"a": 3}]
        (failure,) = caught.value.execution_failures
        assert failure.cause is caught.value
        assert (failure.key, failure.run, failure.action, failure.input_index) == ("a", 3, "act", 2)
        assert "input 2, run 3 of key 'a' failed in action 'act'" in caught.value.__notes__[0]
    assert attempts == {0: 1, 1: 1, 2: 1, 3: 1}
    assert failure.cause.args == ("bad input 2",)


class Outer:
    class NestedError(Exception):
        def __init__(self, code: int) -> None:  # never run when rebuilt from the journal
            raise AssertionError("rebuilt without __init__")


def test_a_journaled_failure_comes_back_as_its_class_when_loaded() -> None:
    from flink_agents_async.journal.replay import recorded_error as _recorded_error

    nested = _recorded_error(f"{__name__}.Outer.NestedError", "code 7")
    assert type(nested) is Outer.NestedError and nested.args == ("code 7",)
    assert type(_recorded_error("builtins.KeyError", "k")) is KeyError
    gone = _recorded_error("no_such_module.GoneError", "lost")
    assert isinstance(gone, ReplayedError) and gone.type_name == "no_such_module.GoneError"
    assert isinstance(_recorded_error("builtins.SystemExit", "x"), ReplayedError)  # not re-raised


class Opaque:
    """Not something a journal can hold."""


async def test_unjournalable_durable_result_fails_at_the_call_and_is_not_rerun(tmp_path: Path):
    made: list[int] = []

    def make() -> Opaque:
        made.append(1)
        return Opaque()

    def act(event: InputEvent, ctx: RunnerContext) -> None:
        try:
            ctx.durable_execute(make)
        except JournalEncodeError as error:
            ctx.send_event(OutputEvent(output=str(error)))
        if event.input == "crash":
            raise Crash

    agent = Agent().add_action("act", [InputEvent], act)
    items = [{"key": "a", "value": "crash"}]
    env = AgentsExecutionEnvironment.get_execution_environment(journal_dir=tmp_path)
    env.from_list(items).apply(agent)
    with pytest.raises(Crash):
        await env.execute()

    def act_after(event: InputEvent, ctx: RunnerContext) -> None:
        try:
            ctx.durable_execute(make)
        except JournalEncodeError as error:
            ctx.send_event(OutputEvent(output=f"replayed: {error}"))

    env = AgentsExecutionEnvironment.get_execution_environment(journal_dir=tmp_path)
    builder = env.from_list(items).apply(Agent().add_action("act", [InputEvent], act_after))
    outputs = builder.to_list()
    await env.execute()
    (message,) = [value for entry in outputs for value in entry.values()]
    assert message.startswith("replayed: ")
    assert "Opaque" in message and "slot 0" in message
    assert made == [1]


async def test_unjournalable_output_fails_the_run_and_rolls_it_back(tmp_path: Path) -> None:
    def act(event: InputEvent, ctx: RunnerContext) -> None:
        ctx.short_term_memory.set("seen", event.input)
        if event.input == 1:  # an event may carry it (no JSON check), the journal may not
            ctx.send_event(OutputEvent.model_construct(output=Opaque()))
        else:
            ctx.send_event(OutputEvent(output=ctx.short_term_memory.get("seen")))

    env = AgentsExecutionEnvironment.get_execution_environment(journal_dir=tmp_path)
    outputs = (
        env.from_list([{"key": "a", "value": n} for n in range(3)])
        .apply(Agent().add_action("act", [InputEvent], act))
        .to_list()
    )
    with pytest.raises(JournalEncodeError) as caught:
        await env.execute()
    assert outputs == [{"a": 0}, {"a": 2}]
    (failure,) = caught.value.execution_failures
    cause = failure.cause
    assert cause is caught.value
    assert (failure.key, failure.run, failure.input_index) == ("a", 2, 1)
    assert "Opaque" in str(cause) and "output" in str(cause) and "'a'" in str(cause)


async def test_unjournalable_input_is_refused_before_anything_runs(tmp_path: Path) -> None:
    job = Job()
    items = inputs()
    items[4] = {"key": "k1", "value": Opaque()}
    with pytest.raises(JournalEncodeError) as caught:
        await run(job, tmp_path, items)
    assert "input item 4" in str(caught.value) and "Opaque" in str(caught.value)
    assert job.action_calls == Counter()


async def test_compaction_prunes_commits_and_recovery_still_restores_memory(tmp_path: Path):
    job = Job()
    job.crash_on = 10
    with pytest.raises(Crash):
        await run(job, tmp_path, inputs(), config={"journal.compaction.interval": 3})
    with sqlite3.connect(tmp_path / JOURNAL_FILE) as db:
        commits = db.execute("SELECT COUNT(*) FROM commits").fetchone()[0]
        snapshots = db.execute("SELECT COUNT(*) FROM snapshots").fetchone()[0]
    assert commits == 0  # the crash path still compacts on close
    assert snapshots == 4  # three keys and the keyless one
    job.crash_on = None
    resumed = await run(job, tmp_path, inputs(), config={"journal.compaction.interval": 3})
    clean = await run(Job(), tmp_path / "clean", inputs())
    assert normalized(resumed) == normalized(clean)


@pytest.mark.parametrize("durability", ["sync", "batch", "none"])
async def test_every_durability_mode_resumes(durability: str, tmp_path: Path) -> None:
    job = Job()
    job.crash_on = 4
    with pytest.raises(Crash):
        await run(job, tmp_path, inputs(), durability=durability)
    job.crash_on = None
    resumed = await run(job, tmp_path, inputs(), durability=durability)
    clean = await run(Job(), tmp_path / "clean", inputs())
    assert normalized(resumed) == normalized(clean)


async def test_unknown_durability_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(JournalError) as caught:
        await run(Job(), tmp_path, inputs(), durability="eventually")
    assert "eventually" in str(caught.value) and "sync" in str(caught.value)


async def test_journal_dir_from_configuration(tmp_path: Path) -> None:
    env = AgentsExecutionEnvironment.get_execution_environment(
        config={"journal.dir": str(tmp_path / "from-config")}
    )
    env.from_list(inputs()).apply(Job().agent())
    await env.execute()
    assert (tmp_path / "from-config" / JOURNAL_FILE).is_file()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"this is not a database at all" * 100, "not an SQLite database"),
        (b"SQLite format 3\x00" + b"\x00" * 50, "journal"),
    ],
)
async def test_corrupt_journal_file_is_reported_with_its_path(
    content: bytes, expected: str, tmp_path: Path
) -> None:
    (tmp_path / JOURNAL_FILE).write_bytes(content)
    job = Job()
    with pytest.raises(JournalError) as caught:
        await run(job, tmp_path, inputs())
    assert str(tmp_path / JOURNAL_FILE) in str(caught.value)
    assert job.action_calls == Counter()
    assert (tmp_path / JOURNAL_FILE).read_bytes() == content  # left as it was


async def test_truncated_journal_is_reported_and_a_copy_of_the_intact_one_still_resumes(
    tmp_path: Path,
) -> None:
    job = Job()
    job.crash_on = 9
    with pytest.raises(Crash):
        await run(job, tmp_path / "journal", inputs())
    intact = (tmp_path / "journal" / JOURNAL_FILE).read_bytes()
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / JOURNAL_FILE).write_bytes(intact[: len(intact) // 2])
    with pytest.raises(JournalError) as caught:
        await run(Job(), broken, inputs())
    assert str(broken / JOURNAL_FILE) in str(caught.value)
    job.crash_on = None
    resumed = await run(job, tmp_path / "journal", inputs())  # the intact journal lost nothing
    clean = await run(Job(), tmp_path / "clean", inputs())
    assert normalized(resumed) == normalized(clean)


async def test_foreign_sqlite_database_is_refused(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / JOURNAL_FILE) as db:
        db.execute("CREATE TABLE customers (id INTEGER)")
    with pytest.raises(JournalError) as caught:
        await run(Job(), tmp_path, inputs())
    assert "not a flink-agents-async journal" in str(caught.value)
    assert str(tmp_path / JOURNAL_FILE) in str(caught.value)
