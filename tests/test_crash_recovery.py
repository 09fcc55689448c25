"""Crash tests with real processes: durable jobs killed with SIGKILL at random moments.

The job (tests/crash_job.py) is restarted until it finishes: a batch, a batch whose runs fail
once and are retried, and a long-lived runtime (``serve``) fed one input at a time, also with
retries. Before each restart the test marks the ledger of real calls and reads the journal the
dead process left, and checks afterwards that

* the final result equals an uninterrupted run's (every accepted input done, exactly once);
* no durable call whose completion was journaled ran again, and no call ran twice within one
  process (a retry replays what its failed attempt completed);
* the effect guarded by a reconciler landed exactly once per input.

``FLINK_AGENTS_ASYNC_SOAK_KILLS=300`` turns it into a soak run with that many kills.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from flink_agents_async.journal import Codec
from flink_agents_async.journal.records import (
    COMPLETED,
    INPUT_COMMITTED,
    CallRecord,
    InputRecord,
    OutputsRecord,
)
from flink_agents_async.journal.sqlite import read_journal

JOB = Path(__file__).with_name("crash_job.py")
KILLS = int(os.environ.get("FLINK_AGENTS_ASYNC_SOAK_KILLS", "20"))
INPUTS = max(400, KILLS * 16)
START_TIMEOUT = 60.0
SEPARATOR = "restart"

VARIANTS = {
    "batch": ([], KILLS),
    "batch-retry": (["--retry"], max(KILLS // 2, 10)),
    "serve-retry": (["--retry", "--serve", "ACKS"], max(KILLS // 2, 10)),
}


def start(directory: Path, options: list[str]) -> subprocess.Popen[str]:
    options = [str(directory / "acks") if option == "ACKS" else option for option in options]
    return subprocess.Popen(
        [
            sys.executable, str(JOB), str(directory / "journal"), str(directory / "ledger"),
            str(directory / "effects"), str(directory / "result.json"),
            "--inputs", str(INPUTS), *options,
        ],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def wait_ready(process: subprocess.Popen[str]) -> None:
    """Wait for the job's ``ready`` line (log lines may come first)."""
    assert process.stdout is not None
    seen = []
    for line in process.stdout:
        if line.strip() == "ready":
            return
        seen.append(line)
    pytest.fail(f"the job ended before it was ready: {seen} {process.stderr.read()}")  # type: ignore[union-attr]


def journaled_calls(journal: Path) -> set[tuple[int, int]]:
    """(input item, slot) of every call whose completion the journal holds."""
    if not (journal / "journal.sqlite3").exists():
        return set()
    stored = read_journal(journal)
    codec = Codec()
    item_of = {
        seq: codec.decode(InputRecord.unpack(seq, status, data).item)[1]
        for seq, _, status, data in stored.inputs
    }
    done = {
        (item_of[seq], slot)
        for seq, slot, data in stored.calls
        if CallRecord.unpack(slot, data).status == COMPLETED
    }
    for seq, _, _, data in stored.outputs:  # committed runs: all their calls
        done.update((item_of[seq], slot) for slot in range(OutputsRecord.unpack(data).calls))
    return done


def ledger_segments(directory: Path) -> list[list[tuple[int, int]]]:
    """The calls that really ran, per process (restarts separate them)."""
    path = directory / "ledger"
    segments: list[list[tuple[int, int]]] = [[]]
    for line in path.read_text().split() if path.exists() else []:
        if line == SEPARATOR:
            segments.append([])
            continue
        item, slot = line.split(":")
        segments[-1].append((int(item), int(slot)))
    return segments


def mark_restart(directory: Path) -> None:
    with open(directory / "ledger", "a", encoding="utf-8") as handle:
        handle.write(SEPARATOR + "\n")


def by_key(outputs: list[list[object]]) -> dict[object, list[object]]:
    grouped: dict[object, list[object]] = {}
    for key, value in outputs:
        grouped.setdefault(key, []).append(value)
    return grouped


def run_uninterrupted(directory: Path, options: list[str]) -> object:
    directory.mkdir()
    process = start(directory, options)
    _, errors = process.communicate(timeout=300)
    assert process.returncode == 0, errors
    return json.loads((directory / "result.json").read_text())


def kill_until_finished(directory: Path, options: list[str], kills_wanted: int) -> list[str]:
    """Start, kill at a random moment, restart ... until it finishes; the violations seen."""
    rng = random.Random(20261124)
    kills = 0
    violations: list[str] = []
    while True:
        journaled = journaled_calls(directory / "journal")
        mark_restart(directory)
        process = start(directory, options)
        wait_ready(process)
        if kills < kills_wanted:
            time.sleep(rng.uniform(0.02, 0.12))  # the workload runs; we pick a random moment
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=START_TIMEOUT)
            if process.returncode == -signal.SIGKILL:
                kills += 1
        else:
            _, errors = process.communicate(timeout=300)
            assert process.returncode == 0, errors
        repeated = [entry for entry in ledger_segments(directory)[-1] if entry in journaled]
        if repeated:
            violations.append(f"after {kills} kills: journaled calls ran again: {repeated}")
        if process.returncode == 0:
            break
    assert kills >= min(kills_wanted, 10), f"only {kills} kills landed"
    for number, segment in enumerate(ledger_segments(directory)):
        twice = [entry for entry, count in Counter(segment).items() if count > 1]
        if twice:
            violations.append(f"process {number} ran calls twice: {twice}")
    return violations


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS)
def test_sigkill_at_random_moments_loses_nothing_and_repeats_nothing(
    tmp_path: Path, variant: str
) -> None:
    options, kills_wanted = VARIANTS[variant]
    expected = run_uninterrupted(tmp_path / "reference", options)
    directory = tmp_path / "crashed"
    directory.mkdir()
    violations = kill_until_finished(directory, options, kills_wanted)
    assert violations == []

    result = json.loads((directory / "result.json").read_text())
    if "--serve" in options:
        assert result == expected  # every key's inputs, each done once, in order
        assert sorted(item for done in result.values() for item in done) == list(range(INPUTS))
    else:
        # keys run concurrently, so only each key's own order is fixed
        assert by_key(result) == by_key(expected)
        assert len(result) == INPUTS
        stored = read_journal(directory / "journal")
        committed = [seq for seq, _, status, _ in stored.inputs if status == INPUT_COMMITTED]
        assert sorted(committed) == list(range(INPUTS))
        assert sorted(seq for seq, *_ in stored.outputs) == list(range(INPUTS))  # once each

    effects = (directory / "effects").read_text().split()
    assert sorted(effects) == sorted(f"effect-{n}" for n in range(INPUTS))  # exactly once
    ran = {entry for segment in ledger_segments(directory) for entry in segment}
    assert ran == {(n, slot) for n in range(INPUTS) for slot in range(3)}
