"""A FastAPI app that keeps one flink-agents-async runtime for its lifetime.

    pip install 'flink-agents-async[web]'
    JOURNAL_DIR=./journal uvicorn examples.webapp.app:app --port 8000

* ``POST /agents/{key}`` with a JSON body ``{"message": "...", "request_id": "..."}`` runs one
  input for that key and answers with its outputs. 400 for a body that is not such an object,
  429 when the runtime is saturated (it does not queue requests beyond ``MAX_PENDING``).
* ``GET /agents/{key}`` returns what the key remembers (a read-only input).
* ``POST /support/{customer}`` with ``{"message": "..."}`` asks the customer-support agent
  (``support.py``), which answers through a chat model: a local stand-in by default, a real one
  with ``LLM_PROVIDER`` (see ``examples/llm/model.py``), e.g.
  ``LLM_PROVIDER=openai OPENAI_API_KEY=... uvicorn examples.webapp.app:app``.
* ``GET /health`` returns the runtime's stats, ``GET /metrics`` the built-in metrics in
  Prometheus text format.

With ``JOURNAL_DIR`` set (each agent journals in a directory of its own below it), an accepted
request survives a crash of the server: after a restart the runtime finishes it before serving
new ones, exactly once, and a model answer received before the crash is not asked for again.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from examples.llm.model import chat_model
from examples.webapp.support import SupportAgent
from flink_agents_async import (
    ActionFailedError,
    Agent,
    AgentsExecutionEnvironment,
    InputEvent,
    OutputEvent,
    ResourceType,
    RunnerContext,
    RuntimeBusyError,
    RuntimeClosedError,
    action,
)

MAX_PENDING = int(os.environ.get("MAX_PENDING", "1000"))


def record_message(key: str, request_id: str, message: str) -> str:
    """Stands for a side effect (a model call, a write to another service)."""
    return f"{key} got {message!r}"


class ConversationAgent(Agent):
    """Remembers every message of a key, in order; a read returns the history."""

    @action(InputEvent)
    @staticmethod
    async def handle(event: InputEvent, ctx: RunnerContext) -> None:
        request = event.input
        memory = ctx.short_term_memory
        history = memory.get("history") or []
        if request.get("read"):
            ctx.send_event(OutputEvent(output={"history": history}))
            return
        reply = await ctx.durable_execute_async(
            record_message, str(ctx.key), request["request_id"], request["message"]
        )
        history = [*history, request["request_id"]]
        memory.set("history", history)
        ctx.send_event(OutputEvent(output={"reply": reply, "count": len(history)}))


def journal_dir(agent: str) -> str | None:
    """The journal directory of one agent's runtime (a runtime holds its journal alone)."""
    root = os.environ.get("JOURNAL_DIR")
    return str(Path(root) / agent) if root else None


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    idle_timeout = float(os.environ.get("IDLE_TIMEOUT", "300"))
    options = {"max_pending": MAX_PENDING, "idle_timeout": idle_timeout}
    async with AsyncExitStack() as stack:
        env = AgentsExecutionEnvironment.get_execution_environment(
            journal_dir=journal_dir("conversations")
        )
        app.state.runtime = await stack.enter_async_context(
            env.serve(ConversationAgent(), **options)
        )
        model = stack.enter_context(chat_model())
        support_env = AgentsExecutionEnvironment.get_execution_environment(
            journal_dir=journal_dir("support")
        )
        support_env.add_resource("connection", ResourceType.CHAT_MODEL_CONNECTION, model.connection)
        app.state.support = await stack.enter_async_context(
            support_env.serve(SupportAgent(model), **options)
        )
        yield


app = FastAPI(title="flink-agents-async example", lifespan=lifespan)


def _checked(body: Any) -> dict[str, str]:
    if not isinstance(body, dict):
        raise HTTPException(400, "the body must be a JSON object like {'message': '...'}")
    message = body.get("message")
    if not isinstance(message, str) or not message:
        raise HTTPException(400, "the body needs a non-empty string field 'message'")
    request_id = body.get("request_id", "")
    if not isinstance(request_id, str):
        raise HTTPException(400, "'request_id' must be a string when given")
    return {"message": message, "request_id": request_id}


async def _run(runtime: Any, key: str, value: dict[str, Any]) -> list[Any]:
    try:
        return await runtime.send(key, value, nowait=True)
    except RuntimeBusyError as error:
        raise HTTPException(429, f"the runtime is saturated, retry later: {error}") from None
    except RuntimeClosedError as error:
        raise HTTPException(503, str(error)) from None
    except ActionFailedError as error:
        raise HTTPException(500, f"the agent failed: {error}") from None


@app.post("/agents/{key}")
async def post_message(key: str, request: Request) -> JSONResponse:
    try:
        body = await request.json()
    except ValueError:
        raise HTTPException(400, "the body is not valid JSON") from None
    value = _checked(body)
    outputs = await _run(request.app.state.runtime, key, value)
    return JSONResponse({"key": key, "outputs": outputs})


@app.get("/agents/{key}")
async def get_history(key: str, request: Request) -> JSONResponse:
    outputs = await _run(request.app.state.runtime, key, {"read": True})
    return JSONResponse({"key": key, "history": outputs[0]["history"]})


@app.post("/support/{customer}")
async def ask_support(customer: str, request: Request) -> JSONResponse:
    try:
        body = await request.json()
    except ValueError:
        raise HTTPException(400, "the body is not valid JSON") from None
    message = _checked(body)["message"]
    [output] = await _run(request.app.state.support, customer, {"message": message})
    return JSONResponse({"customer": customer, **output})


@app.get("/health")
async def health(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok", **request.app.state.runtime.stats()})


@app.get("/metrics")
async def metrics(request: Request) -> PlainTextResponse:
    snapshots = {
        "conversations": request.app.state.runtime.metrics(),
        "support": request.app.state.support.metrics(),
    }
    return PlainTextResponse(prometheus_text(snapshots))


def prometheus_text(snapshots: dict[str, dict[str, Any]]) -> str:
    """The built-in metrics of each agent's runtime in Prometheus exposition format: one family
    per metric name, labelled by agent, by action for the per-action ones, and by sub-group
    (``model`` for token counts) where there is one."""
    families: dict[str, list[str]] = {}
    kinds: dict[str, str] = {}
    for agent, snapshot in snapshots.items():
        for name, value in sorted(snapshot.items()):
            if not isinstance(value, int | float):
                continue
            *groups, metric = name.split(".")
            family = "flink_agents_" + re.sub(r"(?<!^)(?=[A-Z])", "_", metric).lower()
            kinds[family] = "gauge" if metric.endswith("PerSec") else "counter"
            labels = {"agent": agent, **_group_labels(groups)}
            text = ",".join(f'{label}="{_escaped(value)}"' for label, value in labels.items())
            families.setdefault(family, []).append(f"{family}{{{text}}} {value}")
    lines = []
    for family, samples in families.items():
        lines.append(f"# TYPE {family} {kinds[family]}")
        lines.extend(samples)
    return "\n".join(lines) + "\n"


def _group_labels(groups: list[str]) -> dict[str, str]:
    """``action.model.gpt-4o`` → ``{"action": ..., "model": "gpt-4o"}``: the action's group,
    then the key/value sub-groups under it."""
    if not groups:
        return {}
    labels = {"action": groups[0]}
    rest = groups[1:]
    if len(rest) % 2:
        labels["group"] = ".".join(rest)
    else:
        labels.update(zip(rest[::2], rest[1::2], strict=True))
    return labels


def _escaped(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
