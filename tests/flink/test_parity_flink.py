"""The parity table on the Flink bridge: every case, in one job per execution mode, must give
the outputs the local host gives (per key in order, across keys as a set)."""

from __future__ import annotations

from typing import Any

import pytest
from flink_env import stream_env
from parity_cases import CASES, by_key, run_locally

from flink_agents_async import AgentsExecutionEnvironment


def _run_on_flink(mode: str, extra: dict[str, Any]) -> dict[str, list[tuple[Any, Any]]]:
    from pyflink.common import Types

    # PyFlink 2.3 runs a Python operator twice when a Python map fused after it feeds a
    # union (as the tagging map below does): without fusion each agent runs once, as in jobs.
    env = stream_env(mode, **{"python.operator-chaining.enabled": "false"})
    streams = []
    for case in CASES:
        agents_env = AgentsExecutionEnvironment.get_execution_environment(
            env, config={**case.settings(), **extra}
        )
        source = env.from_collection(list(case.inputs))
        outputs = (
            agents_env.from_datastream(source, key_selector=case.key_of)
            .apply(case.agent())
            .to_datastream(with_key=True)
        )
        streams.append(
            outputs.map(lambda pair, name=case.name: (name, *pair), Types.PICKLED_BYTE_ARRAY())
        )
    results: dict[str, list[tuple[Any, Any]]] = {case.name: [] for case in CASES}
    for name, key, output in streams[0].union(*streams[1:]).execute_and_collect():
        results[name].append((key, output))
    return results


@pytest.mark.parametrize(
    ("mode", "extra"),
    [
        ("thread", {}),
        ("process", {}),
        # No idle actor stays on the loop: every key comes back from its keyed-state snapshot.
        ("thread", {"bridge.idle-actors": 0}),
        # With a state TTL (long enough not to expire anything here) keyed state keeps no
        # positions of idle keys, so every key reads its snapshot back, new ones too.
        ("thread", {"bridge.idle-actors": 0, "short-term-memory.state-ttl.ms": 3_600_000}),
    ],
    ids=["thread", "process", "thread-no-idle-actors", "thread-no-idle-actors-state-ttl"],
)
def test_every_case_gives_the_same_outputs_on_both_hosts(mode: str, extra: dict[str, Any]) -> None:
    flink = _run_on_flink(mode, extra)
    for case in CASES:
        local = by_key(run_locally(case))
        assert by_key(flink[case.name]) == local, case.name
        assert local == case.expected, case.name
