"""A SIGKILL between long-term memory writes and the run's commit: after recovery the memory
holds each item once (no copy from the run running again), and if the recovered run fails, it
holds none of its items (no orphans)."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("apsw")
pytest.importorskip("sqlite_vec")

from flink_agents_async.integrations.local_vector_store import (
    LocalVectorStore,
)

JOB = Path(__file__).with_name("ltm_crash_job.py")

pytestmark = pytest.mark.slow


def start(journal: Path, store: Path, *options: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(JOB), str(journal), str(store), *options],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def kill_after_the_writes(journal: Path, store: Path) -> None:
    crashed = start(journal, store, "--hang")
    assert crashed.stdout is not None
    for line in crashed.stdout:  # log lines may come first
        if line.strip() == "added":
            break
    else:
        pytest.fail(f"the job ended before writing: {crashed.stderr.read()}")  # type: ignore[union-attr]
    crashed.send_signal(signal.SIGKILL)
    crashed.wait(timeout=60)
    assert crashed.returncode == -signal.SIGKILL


def stored(store: Path) -> list[str]:
    async def read() -> list[str]:
        local = LocalVectorStore(path=str(store))
        try:
            return sorted(doc.content for doc in await local.aget(limit=None))
        finally:
            await local.aclose()

    return asyncio.run(read())


def test_recovery_writes_no_second_copy(tmp_path: Path) -> None:
    journal, store = tmp_path / "journal", tmp_path / "store"
    kill_after_the_writes(journal, store)
    written = [f"fact {n} ({how})" for n in range(3) for how in ("direct", "durable")]
    assert stored(store) == sorted(written)  # written before the commit that never came

    resumed = start(journal, store)
    out, errors = resumed.communicate(timeout=120)

    assert resumed.returncode == 0, errors
    assert json.loads(out.strip().splitlines()[-1]) == [{f"customer-{n}": 2} for n in range(3)]
    assert stored(store) == sorted(written)


def test_a_recovered_run_that_fails_leaves_no_orphans(tmp_path: Path) -> None:
    journal, store = tmp_path / "journal", tmp_path / "store"
    kill_after_the_writes(journal, store)

    failed = start(journal, store, "--fail")
    out, errors = failed.communicate(timeout=120)

    assert failed.returncode == 0, errors
    assert json.loads(out.strip().splitlines()[-1]) == []
    assert stored(store) == []
