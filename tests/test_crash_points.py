"""Exhaustive crash points: die before and after every journal write, then recover.

For every write group of a clean run of a small multi-call agent, a subprocess is ended (as a
kill would) just before the group is applied and just after it committed; a recovery run on
the journal it left must end with the same outputs and memory as the clean run.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
from crash_points_job import CRASHED, run

from flink_agents_async.journal import Codec, SQLiteJournalStore
from flink_agents_async.journal.records import SnapshotRecord
from flink_agents_async.journal.sqlite import read_journal

JOB = Path(__file__).with_name("crash_points_job.py")


def final_memory(directory: Path) -> dict[object, object]:
    """Every key's memory as the finished journal holds it (compacted into snapshots)."""
    stored = read_journal(directory)
    codec = Codec()
    memory = {}
    for key_bytes, data in stored.snapshots:
        snapshot = SnapshotRecord.unpack(key_bytes, data)
        memory[codec.decode(key_bytes)] = codec.decode(snapshot.memory)
    assert stored.commits == []  # everything folded at the clean end of the job
    return memory


def per_key(outputs: list[dict[object, object]]) -> dict[object, list[object]]:
    grouped: dict[object, list[object]] = {}
    for entry in outputs:
        for key, value in entry.items():
            grouped.setdefault(key, []).append(value)
    return grouped


class CountingStore(SQLiteJournalStore):
    """Counts the write groups of a clean run."""

    writes = 0

    def write(self, ops):  # type: ignore[no-untyped-def]
        CountingStore.writes += 1
        return super().write(ops)


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, object, int]:
    directory = tmp_path_factory.mktemp("clean")
    CountingStore.writes = 0
    store = CountingStore(directory / "journal", "sync")
    outputs = asyncio.run(run(directory / "journal", directory / "ledger", store))
    return outputs, final_memory(directory / "journal"), CountingStore.writes


def test_the_clean_run_makes_enough_writes_to_be_interesting(clean_run) -> None:  # type: ignore[no-untyped-def]
    _, _, writes = clean_run
    assert writes >= 12


@pytest.mark.slow
@pytest.mark.parametrize("phase", ["before", "after"])
def test_every_crash_point_recovers_to_the_clean_result(
    phase: str,
    clean_run,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    expected_outputs, expected_memory, writes = clean_run
    outcomes = []
    for number in range(1, writes + 1):
        directory = tmp_path / f"{phase}-{number}"
        crashed = subprocess.run(
            [sys.executable, str(JOB), str(directory / "journal"), str(directory / "ledger"),
             phase, str(number)],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert crashed.returncode == CRASHED, (number, crashed.stderr)
        outputs = asyncio.run(run(directory / "journal", directory / "ledger"))
        memory = final_memory(directory / "journal")
        # keys run concurrently: only each key's own order is fixed
        same_outputs = per_key(outputs) == per_key(expected_outputs)
        outcomes.append((number, same_outputs, memory == expected_memory))
    assert outcomes == [(number, True, True) for number in range(1, writes + 1)]
