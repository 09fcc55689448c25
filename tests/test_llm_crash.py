"""A SIGKILL after the model answered: the resumed job replays the answers from the journal and
asks the model server nothing again."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from flink_agents_async.testing import ModelServer

JOB = Path(__file__).with_name("llm_crash_job.py")


def start(journal: Path, base_url: str, *options: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(JOB), str(journal), base_url, *options],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def test_model_answers_are_not_requested_again_after_a_sigkill(tmp_path: Path) -> None:
    with ModelServer() as server:
        base_url = server.url("openai")
        crashed = start(tmp_path / "journal", base_url, "--hang")
        assert crashed.stdout is not None
        for line in crashed.stdout:  # log lines may come first
            if line.strip() == "answered":
                break
        else:
            pytest.fail(f"the job ended before answering: {crashed.stderr.read()}")  # type: ignore[union-attr]
        crashed.send_signal(signal.SIGKILL)
        crashed.wait(timeout=60)
        assert crashed.returncode == -signal.SIGKILL
        asked = server.count()
        assert asked == 6  # three inputs, two questions each

        resumed = start(tmp_path / "journal", base_url)
        out, errors = resumed.communicate(timeout=120)
        assert resumed.returncode == 0, errors
        outputs = json.loads(out.strip().splitlines()[-1])
        assert outputs == sorted(f"echo: {aspect} of dish {n}" for n in range(3)
                                 for aspect in ("taste", "price"))  # fmt: skip
        assert server.count() == asked  # every answer came from the journal
