"""The journal's files under hostile but realistic use: a second runtime on the same journal, a
lost or damaged ``-wal`` file, a foreign or half-made file, a full disk, a record too big.

Each case uses real files and, where a process matters, a real subprocess (``journal_job.py``)
that is ended abruptly or limited in what it may write.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from journal_helpers import GUARD_TIMEOUT

from flink_agents_async import (
    ActionFailedError,
    Agent,
    AgentsExecutionEnvironment,
    InputEvent,
    JournalError,
    JournalLockedError,
    OutputEvent,
    RunnerContext,
)
from flink_agents_async.journal import JournalEncodeError
from flink_agents_async.journal.records import COMPLETED, CallRecord
from flink_agents_async.journal.sqlite import read_journal
from flink_agents_async.journal.sqlite_file import COMMITS_FILE, JOURNAL_FILE

JOB = Path(__file__).with_name("journal_job.py")
EXITED = 75


def job(
    directory: Path, *options: str, stdin: Any = None
) -> subprocess.CompletedProcess[str] | subprocess.Popen[str]:
    command = [sys.executable, str(JOB), str(directory / "journal"), str(directory / "ledger"),
               *options]  # fmt: skip
    if stdin is not None:
        return subprocess.Popen(
            command, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def result_of(process: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert process.returncode == 0, process.stderr
    return json.loads(process.stdout.strip().splitlines()[-1])


def ledger(directory: Path) -> Counter[int]:
    path = directory / "ledger"
    return Counter(int(line) for line in path.read_text().split()) if path.exists() else Counter()


def journaled(journal: Path) -> set[int]:
    """The inputs whose durable call the journal holds as done (a batch input is its seq)."""
    stored = read_journal(journal)
    done = {
        seq for seq, slot, data in stored.calls if CallRecord.unpack(slot, data).status == COMPLETED
    }
    return done | {seq for seq, *_ in stored.outputs}


def files_of(journal: Path) -> dict[str, str]:
    """Name -> content digest of every file that holds journal data: not the lock (it names
    its holder), nor SQLite's shared-memory index (``-shm``), nor an empty ``-wal`` file (a
    read-only SQLite connection may leave both; neither holds data)."""
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(journal.iterdir())
        if path.is_file()
        and path.name != "journal.lock"
        and not path.name.endswith("-shm")
        and not (path.name.endswith("-wal") and path.stat().st_size == 0)
    }


def crashed_journal(directory: Path, exit_at: int = 12) -> Path:
    """A journal left by a process that died at input ``exit_at`` (commits in its -wal)."""
    crashed = job(directory, "--exit-at", str(exit_at))
    assert crashed.returncode == EXITED, crashed.stderr
    journal = directory / "journal"
    assert (journal / f"{JOURNAL_FILE}-wal").stat().st_size > 0
    return journal


def echo_agent() -> Agent:
    def act(event: InputEvent, ctx: RunnerContext) -> None:
        ctx.send_event(OutputEvent(output=event.input))

    return Agent().add_action("act", [InputEvent], act)


async def run_batch(directory: Path, inputs: list[dict[str, Any]], **kwargs: Any) -> Any:
    env = AgentsExecutionEnvironment.get_execution_environment(journal_dir=directory, **kwargs)
    outputs = env.from_list(inputs).apply(echo_agent()).to_list()
    await asyncio.wait_for(env.execute(), GUARD_TIMEOUT)
    return outputs


# -- one runtime per journal -------------------------------------------------------------------


async def test_a_second_process_on_a_journal_is_refused_naming_the_holder(tmp_path: Path) -> None:
    holder = job(tmp_path, "--hold", stdin=subprocess.PIPE)
    assert isinstance(holder, subprocess.Popen)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        with pytest.raises(JournalLockedError) as caught:
            await run_batch(tmp_path / "journal", [{"key": "a", "value": 1}])
        message = str(caught.value)
        assert str(tmp_path / "journal") in message
        assert f"pid {holder.pid}" in message and "journal_job.py" in message
    finally:
        holder.kill()  # SIGKILL: the OS releases the lock with the process
        holder.wait(timeout=60)
    env = AgentsExecutionEnvironment.get_execution_environment(journal_dir=tmp_path / "journal")
    async with env.serve(echo_agent()) as runtime:
        assert await runtime.send("a", 1) == [1]


async def test_two_runtimes_of_one_process_cannot_share_a_journal(tmp_path: Path) -> None:
    env = AgentsExecutionEnvironment.get_execution_environment(journal_dir=tmp_path)
    async with env.serve(echo_agent()) as runtime:
        with pytest.raises(JournalLockedError, match="this process"):
            async with env.serve(echo_agent()):
                pass
        with pytest.raises(JournalLockedError):
            await run_batch(tmp_path, [{"key": "a", "value": 1}])
        assert await runtime.send("b", 2) == [2]  # the first one is unharmed
    # released when the block ended
    assert await run_batch(tmp_path / "other", [{"key": "a", "value": 1}]) == [{"a": 1}]
    env2 = AgentsExecutionEnvironment.get_execution_environment(journal_dir=tmp_path)
    async with env2.serve(echo_agent()) as runtime:
        assert await runtime.send("c", 3) == [3]


# -- committed writes cannot silently vanish ---------------------------------------------------


def test_a_lost_wal_file_is_refused_instead_of_running_committed_work_again(
    tmp_path: Path,
) -> None:
    journal = crashed_journal(tmp_path)
    before = ledger(tmp_path)
    (journal / f"{JOURNAL_FILE}-wal").unlink()
    (journal / f"{JOURNAL_FILE}-shm").unlink(missing_ok=True)
    refused = result_of(job(tmp_path))
    assert refused["error"][0] == "JournalError"
    assert f"{JOURNAL_FILE}-wal" in refused["error"][1] and "missing" in refused["error"][1]
    assert ledger(tmp_path) == before  # nothing ran again


@pytest.mark.parametrize("damage", ["truncated", "bit flip"])
def test_a_damaged_wal_file_is_refused(tmp_path: Path, damage: str) -> None:
    journal = crashed_journal(tmp_path)
    before = ledger(tmp_path)
    wal = journal / f"{JOURNAL_FILE}-wal"
    content = bytearray(wal.read_bytes())
    if damage == "truncated":
        content = content[: len(content) // 2]
    else:
        content[len(content) // 3] ^= 0x10  # inside an early frame: later commits get lost
    wal.write_bytes(bytes(content))
    refused = result_of(job(tmp_path))
    assert refused["error"][0] == "JournalError"
    assert "committed writes are missing" in refused["error"][1]
    assert ledger(tmp_path) == before


def test_a_copy_of_the_main_file_alone_made_while_running_is_refused(tmp_path: Path) -> None:
    journal = crashed_journal(tmp_path)
    copy = tmp_path / "copy" / "journal"
    copy.mkdir(parents=True)
    (copy / JOURNAL_FILE).write_bytes((journal / JOURNAL_FILE).read_bytes())
    refused = result_of(job(tmp_path / "copy"))
    assert refused["error"][0] == "JournalError"
    assert "not closed cleanly" in refused["error"][1] and COMMITS_FILE in refused["error"][1]
    assert ledger(tmp_path / "copy") == Counter()


def test_a_copy_of_the_main_file_after_a_clean_end_resumes(tmp_path: Path) -> None:
    first = result_of(job(tmp_path, "--inputs", "5"))
    assert first["error"] is None
    copy = tmp_path / "copy" / "journal"
    copy.mkdir(parents=True)
    (copy / JOURNAL_FILE).write_bytes((tmp_path / "journal" / JOURNAL_FILE).read_bytes())
    again = result_of(job(tmp_path / "copy", "--inputs", "5"))
    assert again["error"] is None and again["outputs"] == first["outputs"]
    assert ledger(tmp_path / "copy") == Counter()  # all five were committed in the copy


def test_allow_lost_writes_resumes_a_journal_that_lost_its_wal(tmp_path: Path) -> None:
    journal = crashed_journal(tmp_path, exit_at=6)
    (journal / f"{JOURNAL_FILE}-wal").unlink()
    env_script = (
        "import sys; sys.path.insert(0, sys.argv[3]);"
        "from journal_job import make_agent;"
        "from pathlib import Path;"
        "from flink_agents_async import AgentsExecutionEnvironment as E;"
        "env = E.get_execution_environment(journal_dir=sys.argv[1],"
        " config={'journal.allow-lost-writes': True});"
        "out = env.from_list([{'key': f'k{n % 3}', 'value': n} for n in range(10)])"
        ".apply(make_agent(Path(sys.argv[2]), None)).to_list();"
        "env.execute(); print(len(out))"
    )
    resumed = subprocess.run(
        [sys.executable, "-c", env_script, str(journal), str(tmp_path / "ledger"),
         str(Path(__file__).parent)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.split()[-1] == "10"
    assert "may have lost committed writes" in resumed.stdout + resumed.stderr


def test_an_empty_journal_file_is_refused_and_left_alone(tmp_path: Path) -> None:
    journal = crashed_journal(tmp_path)
    (journal / JOURNAL_FILE).write_bytes(b"")
    (journal / f"{JOURNAL_FILE}-wal").unlink()
    before = files_of(journal)
    refused = result_of(job(tmp_path))
    assert refused["error"][0] == "JournalError" and "empty" in refused["error"][1]
    assert files_of(journal) == before


# -- recognising a file changes nothing --------------------------------------------------------


async def test_a_foreign_database_is_refused_without_being_touched(tmp_path: Path) -> None:
    path = tmp_path / JOURNAL_FILE
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
        connection.execute("INSERT INTO customers VALUES (1, 'Ada')")
    connection.close()
    before = files_of(tmp_path)
    with pytest.raises(JournalError, match="not a flink-agents-async journal"):
        await run_batch(tmp_path, [{"key": "a", "value": 1}])
    assert files_of(tmp_path) == before  # no WAL switch, no new table
    assert not (tmp_path / f"{JOURNAL_FILE}-wal").exists()
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    connection.close()


async def test_a_journal_with_missing_tables_is_refused_without_being_repaired(
    tmp_path: Path,
) -> None:
    await run_batch(tmp_path, [{"key": "a", "value": 1}])
    with sqlite3.connect(tmp_path / JOURNAL_FILE) as connection:
        connection.execute("DROP TABLE failures")
    connection.close()
    before = files_of(tmp_path)
    with pytest.raises(JournalError, match="failures are missing"):
        await run_batch(tmp_path, [{"key": "a", "value": 1}])
    assert files_of(tmp_path) == before


async def test_a_creation_cut_short_leaves_no_half_journal(tmp_path: Path) -> None:
    # What an interrupted creation leaves: only the file being built, under another name.
    (tmp_path / f"{JOURNAL_FILE}.new").write_bytes(b"SQLite format 3\x00 half written")
    assert await run_batch(tmp_path, [{"key": "a", "value": 1}]) == [{"a": 1}]
    assert not (tmp_path / f"{JOURNAL_FILE}.new").exists()
    stored = read_journal(tmp_path)
    assert stored.meta["format"] == b"flink-agents-async journal"


def test_the_cli_never_changes_a_journal(tmp_path: Path) -> None:
    journal = crashed_journal(tmp_path)
    before = files_of(journal)
    for arguments in ([str(journal)], [str(journal), "--key", "k1"]):
        shown = subprocess.run(
            [sys.executable, "-m", "flink_agents_async", "journal", *arguments],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert shown.returncode == 0, shown.stderr
    assert files_of(journal) == before  # the -wal file is still there, not checkpointed away


async def test_a_journal_locked_by_sqlite_is_not_called_corrupt(tmp_path: Path) -> None:
    await run_batch(tmp_path, [{"key": "a", "value": 1}])
    blocker = sqlite3.connect(tmp_path / JOURNAL_FILE, isolation_level=None)
    blocker.execute("PRAGMA locking_mode=EXCLUSIVE")
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(JournalError) as caught:
            await run_batch(tmp_path, [{"key": "a", "value": 1}])
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    message = str(caught.value)
    assert "lock" in message and "corrupt" not in message and "move it away" not in message


# -- a full disk -------------------------------------------------------------------------------


def test_a_full_disk_ends_the_batch_with_the_cause_and_a_restart_finishes_it(
    tmp_path: Path,
) -> None:
    full = job(tmp_path, "--inputs", "300", "--file-limit", "160000")
    assert full.returncode == 0, full.stderr  # it ended by itself, no hang
    ended = json.loads(full.stdout.strip().splitlines()[-1])
    assert ended["error"][0] == "JournalWriteError"
    assert "could not be written" in ended["error"][1]
    assert "rollback" not in ended["error"][1]
    assert "I/O error" in ended["error"][1] or "disk is full" in ended["error"][1]
    done = journaled(tmp_path / "journal")
    seen = ledger(tmp_path)
    finished = result_of(job(tmp_path, "--inputs", "300"))
    assert finished["error"] is None
    assert sorted(int(v.split("-")[1]) for e in finished["outputs"] for v in e.values()) == list(
        range(300)
    )
    repeated = {item for item in ledger(tmp_path) - seen if item in done}
    assert repeated == set()  # a call whose outcome was journaled never ran again
    assert set(ledger(tmp_path)) == set(range(300))
    assert sum(seen.values()) < 300  # the disk really filled up before the end


def test_a_full_disk_ends_serve_with_the_cause(tmp_path: Path) -> None:
    full = job(tmp_path, "--serve", "--inputs", "300", "--file-limit", "160000")
    assert full.returncode == 0, full.stderr
    ended = json.loads(full.stdout.strip().splitlines()[-1])
    assert ended["error"][0] == "JournalWriteError", ended
    assert 0 < len(ended["outputs"]) < 300
    finished = result_of(job(tmp_path, "--serve", "--inputs", "300"))
    assert finished["error"] is None


# -- a record too big --------------------------------------------------------------------------


async def test_a_record_over_the_limit_fails_its_run_and_the_journal_goes_on(
    tmp_path: Path,
) -> None:
    def payload(size: int) -> bytes:
        return b"x" * size

    async def act(event: InputEvent, ctx: RunnerContext) -> None:
        data = await ctx.durable_execute_async(payload, event.input)
        ctx.send_event(OutputEvent(output=len(data)))

    agent = Agent().add_action("act", [InputEvent], act)
    env = AgentsExecutionEnvironment.get_execution_environment(
        journal_dir=tmp_path, config={"journal.max-record-bytes": 100_000}
    )
    items = [{"key": "a", "value": 10}, {"key": "big", "value": 300_000}, {"key": "a", "value": 20}]
    outputs = env.from_list(items).apply(agent).to_list()
    with pytest.raises(JournalEncodeError, match=r"journal\.max-record-bytes") as caught:
        await asyncio.wait_for(env.execute(), GUARD_TIMEOUT)
    assert outputs == [{"a": 10}, {"a": 20}]
    (failure,) = caught.value.execution_failures
    assert failure.key == "big" and failure.cause is caught.value
    assert "100,000" in str(failure.cause) and "journal.max-record-bytes" in str(failure.cause)
    assert "input 1, run 1 of key 'big' failed in action 'act'" in caught.value.__notes__[0]
    assert await run_batch(tmp_path / "next", [{"key": "a", "value": 1}]) == [{"a": 1}]
    assert [row[0] for row in read_journal(tmp_path).failures] == [1]


async def test_an_output_over_the_limit_fails_its_run_with_memory_untouched(
    tmp_path: Path,
) -> None:
    def act(event: InputEvent, ctx: RunnerContext) -> None:
        if event.input == "probe":
            ctx.send_event(OutputEvent(output=ctx.short_term_memory.get("n")))
            return
        ctx.short_term_memory.set("n", event.input)
        ctx.send_event(OutputEvent(output="y" * event.input))

    agent = Agent().add_action("act", [InputEvent], act)
    env = AgentsExecutionEnvironment.get_execution_environment(
        journal_dir=tmp_path, config={"journal.max-record-bytes": 50_000}
    )
    async with env.serve(agent) as runtime:
        assert await runtime.send("a", 5) == ["yyyyy"]
        with pytest.raises(ActionFailedError) as caught:
            await runtime.send("a", 200_000)
        assert isinstance(caught.value.cause, JournalEncodeError)
        assert await runtime.send("a", "probe") == [5]  # the failed run left no trace
        assert await runtime.send("b", 7) == ["y" * 7]  # and the journal is still writable
