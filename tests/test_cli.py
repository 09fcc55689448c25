"""The ``flink-agents-async journal DIR`` command, run as a real subprocess on real journals."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack
import pytest

import flink_agents_async
from flink_agents_async import (
    Agent,
    AgentsExecutionEnvironment,
    InputEvent,
    OutputEvent,
    RunnerContext,
)
from flink_agents_async.journal.sqlite import JOURNAL_FILE

REPO_ROOT = Path(flink_agents_async.__file__).resolve().parents[1]
GUARD_TIMEOUT = 20.0


# -- durable functions (module level, so their function ids are readable) --------------------


def double(value: int) -> dict[str, int]:
    return {"doubled": value * 2}


def reject(value: int) -> None:
    raise ValueError(f"value {value} is not allowed")


def long_text(size: int) -> str:
    return "y" * size


class Crash(BaseException):
    """Stands for the process dying inside a durable function (nothing catches it)."""


def crash_now() -> None:
    raise Crash


@dataclass
class Point:
    x: int
    y: int


def make_point(x: int) -> Point:
    return Point(x, x + 2)


def checking_agent() -> Agent:
    """Doubles every input durably; an input of 3 is then rejected by a durable call."""

    def check(event: InputEvent, ctx: RunnerContext) -> None:
        result = ctx.durable_execute(double, event.input)
        if event.input == 3:
            ctx.durable_execute(reject, event.input)
        ctx.send_event(OutputEvent(output=result["doubled"]))

    return Agent().add_action("check", [InputEvent], check)


def crashing_agent() -> Agent:
    """Slot 0 completes; slot 1 (with a reconciler) is written PENDING and then the process
    'dies' inside the function, from a sync action, so the crash leaves execute()."""

    def act(event: InputEvent, ctx: RunnerContext) -> None:
        ctx.durable_execute(double, event.input)
        ctx.durable_execute(crash_now, reconciler=lambda: None)

    return Agent().add_action("act", [InputEvent], act)


def crashing_point_agent() -> Agent:
    def act(event: InputEvent, ctx: RunnerContext) -> None:
        ctx.durable_execute(make_point, event.input)
        ctx.durable_execute(crash_now, reconciler=lambda: None)

    return Agent().add_action("act", [InputEvent], act)


def crashing_agent_with_long_result() -> Agent:
    def act(event: InputEvent, ctx: RunnerContext) -> None:
        ctx.durable_execute(long_text, 500)
        ctx.durable_execute(crash_now, reconciler=lambda: None)

    return Agent().add_action("act", [InputEvent], act)


async def run(directory: Path, agent: Agent, inputs: list[dict[str, Any]]) -> list[Any]:
    env = AgentsExecutionEnvironment.get_execution_environment(journal_dir=directory)
    outputs = env.from_list(inputs).apply(agent).to_list()
    await asyncio.wait_for(env.execute(), GUARD_TIMEOUT)
    return outputs


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flink_agents_async", "journal", *args],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=60,
    )


def row_of(stdout: str, key_repr: str) -> list[str]:
    """The cells of the listing row of a key."""
    rows = [line.split() for line in stdout.splitlines() if line.startswith(key_repr + " ")]
    assert len(rows) == 1, stdout
    return rows[0]


@pytest.fixture
async def checked_journal(tmp_path: Path) -> Path:
    """A journal of key 'a' (two committed runs, one call each), key 'b' (a failed run) and
    key 'c' (one committed run)."""
    directory = tmp_path / "journal"
    inputs = [
        {"key": "a", "value": 1},
        {"key": "b", "value": 3},
        {"key": "a", "value": 2},
        {"key": "c", "value": 10},
    ]
    with pytest.raises(ValueError, match="value 3 is not allowed") as caught:
        await run(directory, checking_agent(), inputs)
    # the journal holds what we think it holds
    assert [failure.key for failure in caught.value.execution_failures] == ["b"]
    return directory


@pytest.fixture
async def crashed_journal(tmp_path: Path) -> Path:
    """A journal whose only run was left pending: slot 0 completed, slot 1 PENDING."""
    directory = tmp_path / "crashed"
    with pytest.raises(Crash):
        await run(directory, crashing_agent(), [{"key": "p", "value": 5}])
    return directory


# -- listing -----------------------------------------------------------------------------------


async def test_listing_shows_every_key_with_run_counts_and_calls(checked_journal: Path) -> None:
    result = cli(str(checked_journal))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stdout.splitlines()
    assert "3 key(s)" in lines[0]
    assert lines[1].split() == ["KEY", "RUNS", "COMMITTED", "FAILED", "PENDING", "CALLS"]
    # KEY, RUNS, COMMITTED, FAILED, PENDING, CALLS
    assert row_of(result.stdout, "'a'") == ["'a'", "2", "2", "0", "0", "2"]
    assert row_of(result.stdout, "'b'")[:5] == ["'b'", "1", "0", "1", "0"]
    assert row_of(result.stdout, "'c'") == ["'c'", "1", "1", "0", "0", "1"]
    assert len(lines) == 2 + 3


async def test_listing_counts_the_calls_of_a_failed_run(checked_journal: Path) -> None:
    """Key 'b''s run made two durable calls (double, then reject) before it failed."""
    result = cli(str(checked_journal))
    assert result.returncode == 0, result.stderr
    assert row_of(result.stdout, "'b'")[5] == "2"
    detail = cli(str(checked_journal), "--key", "b")
    assert "2 durable call(s)" in detail.stdout


async def test_key_detail_shows_each_committed_run(checked_journal: Path) -> None:
    result = cli(str(checked_journal), "--key", "a")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("key 'a'") and "2 run(s)" in lines[0]
    runs = [line for line in lines if line.strip().startswith("input ")]
    assert len(runs) == 2
    assert "(run 1, committed), 1 durable call(s)" in runs[0]
    assert "(run 2, committed), 1 durable call(s)" in runs[1]
    assert "'b'" not in result.stdout and "'c'" not in result.stdout


async def test_key_detail_of_a_failed_run_names_action_and_error(checked_journal: Path) -> None:
    result = cli(str(checked_journal), "--key", "b")
    assert result.returncode == 0, result.stderr
    failure_lines = [line for line in result.stdout.splitlines() if "failed in action" in line]
    assert len(failure_lines) == 1
    line = failure_lines[0]
    assert "'check'" in line
    assert "ValueError" in line
    assert "value 3 is not allowed" in line
    assert "(run 1, failed)" in result.stdout


async def test_key_given_as_its_repr_also_matches(checked_journal: Path) -> None:
    result = cli(str(checked_journal), "--key", "'c'")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("key 'c'")


async def test_pending_run_shows_its_recorded_and_pending_slots(crashed_journal: Path) -> None:
    listing = cli(str(crashed_journal))
    assert listing.returncode == 0, listing.stderr
    assert row_of(listing.stdout, "'p'") == ["'p'", "1", "0", "0", "1", "2"]

    result = cli(str(crashed_journal), "--key", "p")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stdout.splitlines()
    assert any("pending" in line and "2 durable call(s)" in line for line in lines)
    slot_lines = [line.split(None, 3) for line in lines if line.strip().startswith("slot ")]
    assert [cells[:2] for cells in slot_lines] == [["slot", "0"], ["slot", "1"]]
    assert slot_lines[0][2] == f"{__name__}.double"
    assert slot_lines[0][3] == "-> {'doubled': 10}"
    assert slot_lines[1][2] == f"{__name__}.crash_now"
    assert slot_lines[1][3] == "PENDING"


async def test_long_results_are_summarised_on_one_readable_line(tmp_path: Path) -> None:
    directory = tmp_path / "long"
    with pytest.raises(Crash):
        await run(directory, crashing_agent_with_long_result(), [{"key": "p", "value": 1}])
    result = cli(str(directory), "--key", "p")
    assert result.returncode == 0, result.stderr
    slot_zero = next(line for line in result.stdout.splitlines() if "slot 0" in line)
    assert "long_text" in slot_zero and "-> 'yyy" in slot_zero
    assert slot_zero.endswith("...")
    assert len(slot_zero) < 160
    assert "y" * 100 not in result.stdout


async def test_values_of_classes_the_cli_does_not_load_are_still_shown(tmp_path: Path) -> None:
    """The CLI process never imports this test module; a dataclass result is shown by name."""
    directory = tmp_path / "classes"
    with pytest.raises(Crash):
        await run(directory, crashing_point_agent(), [{"key": "p", "value": 1}])
    result = cli(str(directory), "--key", "p")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    slot_zero = next(line for line in result.stdout.splitlines() if "slot 0" in line)
    assert "Point" in slot_zero and "3" in slot_zero


# -- errors ------------------------------------------------------------------------------------


def assert_reported(result: subprocess.CompletedProcess[str], path: Path) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert str(path) in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_nonexistent_directory_is_reported_with_its_path(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "dir"
    assert_reported(cli(str(missing)), missing)


def test_directory_without_a_journal_is_reported(tmp_path: Path) -> None:
    assert_reported(cli(str(tmp_path)), tmp_path)


def test_garbage_journal_file_is_reported_with_its_path(tmp_path: Path) -> None:
    path = tmp_path / JOURNAL_FILE
    path.write_bytes(b"this is not a database at all\x00\xff" * 200)
    assert_reported(cli(str(tmp_path)), path)


def test_empty_journal_file_is_reported_with_its_path(tmp_path: Path) -> None:
    path = tmp_path / JOURNAL_FILE
    path.write_bytes(b"")
    assert_reported(cli(str(tmp_path)), path)


def test_foreign_sqlite_database_is_reported_with_its_path(tmp_path: Path) -> None:
    path = tmp_path / JOURNAL_FILE
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
        connection.execute("INSERT INTO customers VALUES (1, 'Ada')")
    connection.close()
    assert_reported(cli(str(tmp_path)), path)


def test_foreign_database_with_a_meta_table_is_reported(tmp_path: Path) -> None:
    path = tmp_path / JOURNAL_FILE
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE meta (name TEXT PRIMARY KEY, value BLOB NOT NULL)")
        connection.execute("INSERT INTO meta VALUES ('format', X'00')")
    connection.close()
    assert_reported(cli(str(tmp_path)), path)


def corrupt(directory: Path, table: str, record: bytes) -> None:
    connection = sqlite3.connect(directory / JOURNAL_FILE)
    try:
        connection.execute(f"UPDATE {table} SET record = ?", (record,))
        connection.commit()
    finally:
        connection.close()


@pytest.mark.parametrize(
    "record",
    [b"\xc1 not msgpack", b"\x96\x63\xa1f\xc4\x00\x01\xc3\xc4\x00"],
    ids=["garbage", "format version 99"],
)
async def test_corrupt_call_record_is_reported_with_the_journal_path(
    crashed_journal: Path, record: bytes
) -> None:
    corrupt(crashed_journal, "calls", record)
    result = cli(str(crashed_journal), "--key", "p")
    assert_reported(result, crashed_journal)


@pytest.mark.parametrize("table", ["failures", "outputs"])
async def test_corrupt_run_record_is_reported_with_the_journal_path(
    checked_journal: Path, table: str
) -> None:
    corrupt(checked_journal, table, b"\xc1 not msgpack")
    result = cli(str(checked_journal))
    assert_reported(result, checked_journal)


async def test_unknown_key_exits_1_listing_the_keys(checked_journal: Path) -> None:
    result = cli(str(checked_journal), "--key", "zz")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "'zz'" in result.stderr
    for key in ("'a'", "'b'", "'c'"):
        assert key in result.stderr
    assert result.stdout == ""


def test_missing_directory_argument_is_a_usage_error() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "flink_agents_async", "journal"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=60,
    )
    assert result.returncode == 2
    assert "usage" in result.stderr.lower()
    assert "Traceback" not in result.stderr


# -- hostile rows: reported, never a traceback ------------------------------------------------


def rewrite(directory: Path, statement: str, *parameters: Any) -> None:
    connection = sqlite3.connect(directory / JOURNAL_FILE)
    try:
        connection.execute(statement, parameters)
        connection.commit()
    finally:
        connection.close()


async def test_an_agent_name_that_is_not_utf8_is_shown_not_a_traceback(
    checked_journal: Path,
) -> None:
    rewrite(checked_journal, "UPDATE meta SET value = ? WHERE name = 'agent'", b"Agent\xff\xfe")
    result = cli(str(checked_journal))
    assert result.returncode == 0, result.stderr
    assert "agent Agent\ufffd\ufffd" in result.stdout
    assert "Traceback" not in result.stderr


async def test_a_sealed_record_with_fields_of_the_wrong_type_is_reported(
    crashed_journal: Path,
) -> None:
    from flink_agents_async.journal.records import FORMAT_VERSION
    from flink_agents_async.journal.sqlite_file import seal

    seq, slot = (
        sqlite3.connect(crashed_journal / JOURNAL_FILE)
        .execute("SELECT seq, slot FROM calls LIMIT 1")
        .fetchone()
    )
    # a record that unpacks fine but whose function id is a number and payload a string
    record = msgpack.packb([FORMAT_VERSION, 42, b"d" * 16, 1, True, "not bytes"])
    rewrite(
        crashed_journal,
        "UPDATE calls SET record = ? WHERE seq = ? AND slot = ?",
        seal(record, seq, slot), seq, slot,
    )  # fmt: skip
    result = cli(str(crashed_journal), "--key", "p")
    assert_reported(result, crashed_journal)
    assert "corrupt" in result.stderr and "int, not a str" in result.stderr


async def test_a_column_of_the_wrong_type_is_reported(checked_journal: Path) -> None:
    rewrite(checked_journal, "UPDATE outputs SET key = 'text, not a blob'")
    result = cli(str(checked_journal))
    assert_reported(result, checked_journal / JOURNAL_FILE)
    assert "damaged" in result.stderr


async def test_a_journal_that_lost_commits_is_shown_with_a_warning(crashed_journal: Path) -> None:
    counter = crashed_journal / "journal.commits"
    counter.write_text(f"{int(counter.read_text()) + 5:020d}\n")
    result = cli(str(crashed_journal))
    assert result.returncode == 0, result.stderr
    assert "warning" in result.stderr and "missing" in result.stderr


async def test_a_crafted_record_nested_too_deeply_is_reported_not_a_crash(
    crashed_journal: Path,
) -> None:
    from flink_agents_async.journal.records import COMPLETED, CallRecord
    from flink_agents_async.journal.sqlite_file import seal

    nested = msgpack.packb(1)
    for _ in range(2000):  # a tuple in a tuple in ...: far deeper than the codec writes
        nested = msgpack.packb(msgpack.ExtType(1, b"\x91" + nested))
    seq, slot, function_id = _first_call(crashed_journal)
    record = CallRecord(slot, function_id, b"d" * 16, COMPLETED, True, nested).pack()
    rewrite(
        crashed_journal,
        "UPDATE calls SET record = ? WHERE seq = ? AND slot = ?",
        seal(record, seq, slot), seq, slot,
    )  # fmt: skip
    result = cli(str(crashed_journal), "--key", "p")
    assert result.returncode == 0, result.stderr  # shown as unreadable, the rest as usual
    assert "unreadable" in result.stdout and "nests more than 100" in result.stdout
    assert "Traceback" not in result.stderr


def _first_call(directory: Path) -> tuple[int, int, str]:
    from flink_agents_async.journal.records import CallRecord
    from flink_agents_async.journal.sqlite_file import unseal

    connection = sqlite3.connect(directory / JOURNAL_FILE)
    try:
        seq, slot, blob = connection.execute("SELECT seq, slot, record FROM calls").fetchone()
    finally:
        connection.close()
    return seq, slot, CallRecord.unpack(slot, unseal(blob, (seq, slot), "a call")).function_id
