"""The web example, for real: uvicorn on 127.0.0.1 in a subprocess, driven over HTTP by httpx.

Includes a SIGKILL of the server while requests are in flight: every request that got a 2xx
before the kill must have its effect committed exactly once after the restart.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from flink_agents_async.testing import ModelServer, Reply, ToolCall

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(port: int, journal: Path | None, **env: str) -> subprocess.Popen[bytes]:
    environment = {**os.environ, **env}
    if journal is not None:
        environment["JOURNAL_DIR"] = str(journal)
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "examples.webapp.app:app",
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        cwd=ROOT, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:  # waiting for a process to listen, not for our code
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {process.stderr.read().decode()}")  # type: ignore[union-attr]
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("server did not start")


@contextmanager
def server(journal: Path | None = None, **env: str) -> Iterator[str]:
    port = free_port()
    process = start_server(port, journal, **env)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


async def conversation(client: httpx.AsyncClient, key: str, count: int) -> list[int]:
    counts = []
    for n in range(count):
        response = await client.post(
            f"/agents/{key}", json={"message": f"m{n}", "request_id": f"{key}-{n}"}
        )
        assert response.status_code == 200, response.text
        counts.append(response.json()["outputs"][0]["count"])
    return counts


async def test_concurrent_keys_keep_per_key_order(tmp_path: Path) -> None:
    keys = [f"user-{n}" for n in range(20)]
    with server(tmp_path / "journal") as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            counts = await asyncio.gather(*(conversation(client, key, 8) for key in keys))
            assert counts == [list(range(1, 9))] * len(keys)
            for key in keys:
                history = (await client.get(f"/agents/{key}")).json()["history"]
                assert history == [f"{key}-{n}" for n in range(8)]
            health = (await client.get("/health")).json()
            assert health["status"] == "ok" and health["unfinished_inputs"] == 0
            metrics = (await client.get("/metrics")).text
    assert "# TYPE flink_agents_num_of_event_processed counter" in metrics
    processed = [line for line in metrics.splitlines() if line.startswith(
        'flink_agents_num_of_event_processed{agent="conversations"} ')]  # fmt: skip
    assert processed and float(processed[0].split()[1]) >= 20 * 8 * 2


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"text": "hi"}', "'message'"),
        (b'{"message": "hi", "request_id": 5}', "request_id"),
    ],
)
def test_bad_bodies_get_400_with_a_clear_message(body: bytes, message: str) -> None:
    with server() as url:
        response = httpx.post(f"{url}/agents/k", content=body, timeout=10)
    assert response.status_code == 400
    assert message in response.json()["detail"]


async def test_saturated_runtime_answers_429() -> None:
    with server(MAX_PENDING="1") as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            responses = await asyncio.gather(
                *(
                    client.post(f"/agents/k{n % 50}", json={"message": "x", "request_id": str(n)})
                    for n in range(200)
                )
            )
    statuses = {response.status_code for response in responses}
    assert statuses == {200, 429}
    busy = next(response for response in responses if response.status_code == 429)
    assert "saturated" in busy.json()["detail"]


async def test_sigkill_mid_traffic_keeps_every_acknowledged_request_exactly_once(
    tmp_path: Path,
) -> None:
    journal = tmp_path / "journal"
    keys = [f"user-{n}" for n in range(12)]
    acknowledged: dict[str, list[str]] = {key: [] for key in keys}
    port = free_port()
    process = start_server(port, journal)
    url = f"http://127.0.0.1:{port}"

    async def talk(client: httpx.AsyncClient, key: str) -> None:
        for n in range(10_000):
            request_id = f"{key}-{n}"
            try:
                response = await client.post(
                    f"/agents/{key}", json={"message": "x", "request_id": request_id}
                )
            except httpx.TransportError:
                return  # the server died under us
            if response.status_code == 200:
                acknowledged[key].append(request_id)

    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        talkers = [asyncio.create_task(talk(client, key)) for key in keys]
        deadline = time.monotonic() + START_TIMEOUT
        while sum(map(len, acknowledged.values())) < 150:  # let traffic build up
            assert time.monotonic() < deadline, "the server answered too few requests"
            await asyncio.sleep(0.01)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        await asyncio.gather(*talkers)

    with server(journal) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            histories = {
                key: (await client.get(f"/agents/{key}")).json()["history"] for key in keys
            }
    for key in keys:
        history = histories[key]
        assert len(history) == len(set(history)), f"{key}: an effect was committed twice"
        # every acknowledged request is there, in order, and at most one more (in flight)
        assert history[: len(acknowledged[key])] == acknowledged[key]
        assert len(history) - len(acknowledged[key]) <= 1


# -- the customer-support agent, answering through a chat model --------------------------------


async def test_support_answers_offline_through_the_stand_in_model_and_its_tool() -> None:
    with server() as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            first = await client.post("/support/ann", json={"message": "Hello"})
            second = await client.post("/support/ann", json={"message": "Where is A1002?"})
            unknown = await client.post("/support/bob", json={"message": "And Z9999?"})
    assert first.status_code == 200, first.text
    assert "Which order" in first.json()["answer"] and first.json()["turns"] == 1
    assert second.json() == {
        "customer": "ann",
        "answer": "Your order is delayed at the depot; expected: Friday.",
        "turns": 2,
    }
    assert "cannot find that order" in unknown.json()["answer"]


async def test_support_talks_to_a_real_openai_endpoint_named_by_environment_variables(
    tmp_path: Path,
) -> None:
    with ModelServer() as model:
        model.script(
            Reply.tools(ToolCall("lookup_order", {"order_id": "A1001"})),
            "It shipped; it arrives Tuesday.",
            "You are welcome!",
        )
        provider = {
            "LLM_PROVIDER": "openai",
            "OPENAI_API_BASE_URL": model.url("openai"),
            "OPENAI_API_KEY": "test-key",
            "LLM_MODEL": "support-model",
        }
        with server(tmp_path / "journal", **provider) as url:
            async with httpx.AsyncClient(base_url=url, timeout=30) as client:
                asked = await client.post("/support/c1", json={"message": "Where is A1001?"})
                thanked = await client.post("/support/c1", json={"message": "Thanks"})
                metrics = (await client.get("/metrics")).text
        requests = model.requests

    assert asked.json()["answer"] == "It shipped; it arrives Tuesday."
    assert thanked.json() == {"customer": "c1", "answer": "You are welcome!", "turns": 2}
    assert [request.model for request in requests] == ["support-model"] * 3
    assert requests[0].tools == ("lookup_order",)
    assert requests[0].messages[0].role == "system" and "ACME" in requests[0].messages[0].content
    [result] = requests[1].tool_results
    assert "'status': 'shipped'" in result.content
    # The second question carries the conversation so far, without the tool round.
    assert [(m.role, m.content) for m in requests[2].messages[1:]] == [
        ("user", "Where is A1001?"),
        ("assistant", "It shipped; it arrives Tuesday."),
        ("user", "Thanks"),
    ]
    assert 'flink_agents_prompt_tokens{agent="support",action="chat_model_action",model=' in metrics
