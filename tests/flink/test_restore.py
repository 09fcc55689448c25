"""Restore from a checkpoint: a job over a FLIP-27 source fails once on purpose, mid-stream.

* While a run whose durable call is journaled (and checkpointed) is still going: after the
  restart the outputs and short-term memory equal a run without failure, and that call is not
  executed again.
* With sync runs only, which commit inside ``process_element`` and keep their actors on the
  loop between inputs: the restored attempt starts from the checkpointed memory, not from what
  the failed attempt's actors held.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from flink_agents import ChargeAgent, TallyAgent, fail_once
from flink_env import stream_env

from flink_agents_async import AgentsExecutionEnvironment

RECORDS = 80
KEYS = 3
PAUSE_AT = 20  # this input's run pauses after its charge, across several checkpoints
PAUSE_S = 4.0
FAIL_AT = 60  # the job fails when this record passes, 2 s after PAUSE_AT's charge
RECORD_INTERVAL_S = 0.05


def _slowly(marker: str, n: int) -> int:
    time.sleep(RECORD_INTERVAL_S)
    return fail_once(marker, FAIL_AT, n)


def _spec(effects: str, n: int) -> dict[str, Any]:
    return {"n": n, "effects": effects, "pause_at": PAUSE_AT, "pause_s": PAUSE_S}


def _expected() -> set[tuple[int, str, int]]:
    totals = [0] * KEYS
    expected = set()
    for n in range(RECORDS):
        totals[n % KEYS] += n
        expected.add((n, f"charged {n}", totals[n % KEYS]))
    return expected


def _failing_once_env() -> Any:
    return stream_env(
        parallelism=1,
        **{
            "execution.checkpointing.interval": "500 ms",
            "restart-strategy.type": "fixed-delay",
            "restart-strategy.fixed-delay.attempts": "1",
            "restart-strategy.fixed-delay.delay": "200 ms",
        },
    )


def _numbers(env: Any) -> Any:
    from pyflink.common import WatermarkStrategy
    from pyflink.datastream.connectors.number_seq import NumberSequenceSource

    return env.from_source(
        NumberSequenceSource(0, RECORDS - 1), WatermarkStrategy.no_watermarks(), "numbers"
    )


def test_a_restored_job_replays_journaled_calls_and_loses_nothing(tmp_path: Path) -> None:
    from pyflink.common import Types

    marker, effects = str(tmp_path / "failed-once"), str(tmp_path / "effects.txt")
    env = _failing_once_env()
    numbers = _numbers(env)
    specs = numbers.map(lambda n, m=marker: _slowly(m, n), Types.LONG()).map(
        lambda n, e=effects: _spec(e, n), Types.PICKLED_BYTE_ARRAY()
    )
    agents_env = AgentsExecutionEnvironment.get_execution_environment(env)
    outputs = (
        agents_env.from_datastream(specs, key_selector=lambda spec: spec["n"] % KEYS)
        .apply(ChargeAgent())
        .to_datastream()
    )
    got = list(outputs.execute_and_collect())

    assert Path(marker).exists(), "the job was meant to fail once"
    assert len(got) == RECORDS and set(got) == _expected()
    executions = Path(effects).read_text().split()
    assert executions.count(str(PAUSE_AT)) == 1, "a checkpointed durable call ran again"
    # The inputs queued behind the paused run never ran before the failure: the failed
    # attempt's runs must not go on after it (they run once, in the restored attempt).
    queued = [str(n) for n in range(PAUSE_AT + KEYS, FAIL_AT, KEYS)]
    assert [executions.count(n) for n in queued] == [1] * len(queued)
    assert set(executions) == {str(n) for n in range(RECORDS)}


def test_a_restored_job_of_sync_runs_starts_from_the_checkpointed_memory(tmp_path: Path) -> None:
    from pyflink.common import Types

    marker = str(tmp_path / "failed-once")
    env = _failing_once_env()
    numbers = _numbers(env).map(lambda n, m=marker: _slowly(m, n), Types.LONG())
    agents_env = AgentsExecutionEnvironment.get_execution_environment(env)
    outputs = (
        agents_env.from_datastream(numbers, key_selector=lambda n: n % KEYS)
        .apply(TallyAgent())
        .to_datastream()
    )
    got = list(outputs.execute_and_collect())

    assert Path(marker).exists(), "the job was meant to fail once"
    expected = {(n, total) for n, _, total in _expected()}
    assert len(got) == RECORDS and set(got) == expected
