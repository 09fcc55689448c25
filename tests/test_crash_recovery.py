"""Crash tests with real processes: a durable batch job killed with SIGKILL at random moments.

The job (tests/crash_job.py) is restarted until it finishes. Between a kill and the restart the
test reads the journal the dead process left, and checks afterwards that

* the final outputs equal those of an uninterrupted run;
* every input was committed exactly once;
* no durable call whose completion was journaled ran again (the ledger shows every real run);
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
from pathlib import Path

from flink_agents_async.journal.records import COMPLETED, INPUT_COMMITTED, CallRecord, OutputsRecord
from flink_agents_async.journal.sqlite import read_journal

JOB = Path(__file__).with_name("crash_job.py")
KILLS = int(os.environ.get("FLINK_AGENTS_ASYNC_SOAK_KILLS", "20"))
INPUTS = max(400, KILLS * 16)
START_TIMEOUT = 60.0


def start(directory: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable, str(JOB), str(directory / "journal"), str(directory / "ledger"),
            str(directory / "effects"), str(directory / "result.json"),
            "--inputs", str(INPUTS),
        ],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def wait_ready(process: subprocess.Popen[str]) -> None:
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line.strip() == "ready", process.stderr.read() if process.stderr else line


def journaled_calls(journal: Path) -> set[tuple[int, int]]:
    """(input, slot) of every call whose completion the journal holds."""
    if not (journal / "journal.sqlite3").exists():
        return set()
    stored = read_journal(journal)
    done = {
        (seq, slot)
        for seq, slot, data in stored.calls
        if CallRecord.unpack(slot, data).status == COMPLETED
    }
    for seq, _, _, data in stored.outputs:  # committed runs: all their calls
        done.update((seq, slot) for slot in range(OutputsRecord.unpack(data).calls))
    return done


def ledger_lines(directory: Path) -> list[tuple[int, int]]:
    path = directory / "ledger"
    if not path.exists():
        return []
    entries = []
    for line in path.read_text().split():
        item, slot = line.split(":")
        entries.append((int(item), int(slot)))
    return entries


def by_key(outputs: list[list[object]]) -> dict[object, list[object]]:
    grouped: dict[object, list[object]] = {}
    for key, value in outputs:
        grouped.setdefault(key, []).append(value)
    return grouped


def run_uninterrupted(directory: Path) -> list[list[object]]:
    directory.mkdir()
    process = start(directory)
    _, errors = process.communicate(timeout=300)
    assert process.returncode == 0, errors
    return json.loads((directory / "result.json").read_text())


def test_sigkill_at_random_moments_loses_nothing_and_repeats_nothing(tmp_path: Path) -> None:
    expected = run_uninterrupted(tmp_path / "reference")
    directory = tmp_path / "crashed"
    directory.mkdir()
    rng = random.Random(20261124)
    kills = 0
    violations: list[str] = []
    while True:
        journaled = journaled_calls(directory / "journal")
        seen_before = len(ledger_lines(directory))
        process = start(directory)
        wait_ready(process)
        if kills < KILLS:
            time.sleep(rng.uniform(0.02, 0.12))  # the workload runs; we pick a random moment
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=START_TIMEOUT)
            if process.returncode == -signal.SIGKILL:
                kills += 1
            repeated = [entry for entry in ledger_lines(directory)[seen_before:]
                        if entry in journaled]  # fmt: skip
            if repeated:
                violations.append(f"after kill {kills}: journaled calls ran again: {repeated}")
            if process.returncode == 0:
                break  # it finished before the signal landed
            continue
        _, errors = process.communicate(timeout=300)
        assert process.returncode == 0, errors
        repeated = [entry for entry in ledger_lines(directory)[seen_before:] if entry in journaled]
        if repeated:
            violations.append(f"in the final run: journaled calls ran again: {repeated}")
        break

    assert kills >= min(KILLS, 20), f"only {kills} kills landed"
    assert violations == []
    result = json.loads((directory / "result.json").read_text())
    # keys run concurrently, so only each key's own order is fixed
    assert by_key(result) == by_key(expected)
    assert len(result) == INPUTS

    stored = read_journal(directory / "journal")
    committed = [seq for seq, _, status, _ in stored.inputs if status == INPUT_COMMITTED]
    assert sorted(committed) == list(range(INPUTS))
    assert sorted(seq for seq, *_ in stored.outputs) == list(range(INPUTS))  # once each

    effects = (directory / "effects").read_text().split()
    assert sorted(effects) == sorted(f"effect-{n}" for n in range(INPUTS))  # exactly once
    ledger = ledger_lines(directory)
    assert {entry for entry in ledger} == {(n, slot) for n in range(INPUTS) for slot in range(3)}
