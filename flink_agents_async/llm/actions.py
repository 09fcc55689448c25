"""The built-in actions every agent's plan carries: the chat-model action, the tool-call action
and the context-retrieval action (``llm.retrieval``), as upstream Flink Agents adds them.

* ``chat_model_action`` (on ``ChatRequestEvent`` and ``ToolResponseEvent``): asks the setup the
  request names; an answer with tool calls becomes a ``ToolRequestEvent`` and, once its
  ``ToolResponseEvent`` comes back, the results go to the model in the next round; the final
  answer becomes a ``ChatResponseEvent`` whose ``request_id`` is the request's id. With an
  ``output_schema`` the final answer is validated JSON (re-asked with what was wrong, a bounded
  number of times: ``chat.structured-output.retries``); tool rounds are bounded as well
  (``chat.max-tool-call-rounds``).
* ``tool_call_action`` (on ``ToolRequestEvent``): runs each call (concurrently; async tools on
  the loop, sync ones in the thread pool), after checking its arguments against the tool's
  schema and filling its injected arguments. A failing call, an unknown tool or bad arguments
  become an error result the model reads (``success``/``error`` on the response), not a failed
  run.

Every model call and every tool call is a durable call: after a crash the run replays the
answers the journal holds instead of asking again. Several requests of one run are in flight at
once (each request's rounds are actions of their own), and the journal matches each call to its
record by content, so replay holds whatever order the answers come in.

Token counts (``promptTokens``, ``completionTokens``) and retries (``retryCount``,
``retryWaitSec``) are counted where a call really happens, never on replay, in the action's
metric group: ``model`` / <model name> and ``model`` / <connection name>.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid5

from ..config import AgentExecutionOptions
from ..errors import FlinkAgentsAsyncError, ResourceError
from ..events import (
    ChatRequestEvent,
    ChatResponseEvent,
    ContextRetrievalRequestEvent,
    ToolRequestEvent,
    ToolResponseEvent,
)
from ..logging import library_logger
from ..resources import ResourceType
from .chat_models import BaseChatModelSetup, is_sync_setup
from .messages import ChatMessage, MessageRole
from .retrieval import CONTEXT_RETRIEVAL_ACTION, process_context_retrieval_request
from .schema import STRUCTURED_OUTPUT, StructuredOutput, resolve_output_schema
from .tools import InjectedArg, Tool, ToolParameterSource

if TYPE_CHECKING:
    from ..context import RunnerContext
    from ..metrics import MetricGroup

__all__ = [
    "BUILT_IN_ACTIONS",
    "CHAT_MODEL_ACTION",
    "TOOL_CALL_ACTION",
    "ChatModelError",
    "process_chat_request_or_tool_response",
    "process_tool_request",
]

logger = library_logger()

CHAT_MODEL_ACTION = "chat_model_action"
TOOL_CALL_ACTION = "tool_call_action"
_SCRATCH = "chat_model_action"


class ChatModelError(FlinkAgentsAsyncError):
    """A chat request could not be answered: the model kept asking for tools past the bound,
    its final answer never fitted the output schema, or it answered nothing usable. Names the
    setup and the request."""


@dataclass
class _Conversation:
    """One chat request in flight: its messages so far and what is left to do."""

    request_id: UUID
    model: str
    messages: list[ChatMessage]
    prompt_args: dict[str, Any]
    schema: StructuredOutput | None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)  # of the pending round
    rounds: int = 0
    reasks: int = 0
    retries: int = 0
    waited: float = 0.0


# -- the chat-model action ---------------------------------------------------------------------


async def process_chat_request_or_tool_response(event: Any, ctx: RunnerContext) -> None:
    """The chat-model action: start a request, or go on with one whose tools answered."""
    pending: dict[UUID, _Conversation] = ctx.run_scratch().setdefault(_SCRATCH, {})
    if event.type == ChatRequestEvent.EVENT_TYPE:
        request = ChatRequestEvent.from_event(event)
        conversation = _Conversation(
            request_id=request.id,
            model=request.model,
            messages=list(request.messages),
            prompt_args=dict(request.prompt_args),
            schema=resolve_output_schema(request.output_schema),
        )
    else:
        response = ToolResponseEvent.from_event(event)
        found = pending.pop(response.request_id, None)
        if found is None:
            return  # a tool request an action sent itself: not a round of a chat request
        conversation = found
        conversation.messages.extend(_tool_messages(conversation.tool_calls, response))
    await _converse(conversation, ctx, pending)


async def _converse(
    conversation: _Conversation, ctx: RunnerContext, pending: dict[UUID, _Conversation]
) -> None:
    setup = _setup(ctx, conversation)
    config = ctx.config
    max_rounds = config.get(AgentExecutionOptions.MAX_TOOL_CALL_ROUNDS) or 0
    max_reasks = config.get(AgentExecutionOptions.STRUCTURED_OUTPUT_RETRIES) or 0
    while True:
        answer = await _ask(setup, conversation, ctx)
        conversation.retries += int(answer.extra_args.get("retry_count") or 0)
        conversation.waited += float(answer.extra_args.get("retry_wait_sec") or 0.0)
        if answer.tool_calls:
            if conversation.rounds >= max_rounds:
                raise ChatModelError(
                    f"chat request {conversation.request_id} to {conversation.model!r}: the "
                    f"model asked for tools more than {max_rounds} times in a row "
                    "(chat.max-tool-call-rounds); last asked for "
                    f"{[_tool_name(call) for call in answer.tool_calls]}"
                )
            conversation.rounds += 1
            answer.tool_calls = _identified(answer.tool_calls, conversation)
            conversation.messages.append(answer)
            conversation.tool_calls = list(answer.tool_calls)
            request = ToolRequestEvent(model=conversation.model, tool_calls=answer.tool_calls)
            pending[request.id] = conversation
            ctx.send_event(request)
            return
        if conversation.schema is not None:
            try:
                answer.extra_args[STRUCTURED_OUTPUT] = conversation.schema.parse(answer.content)
            except ValueError as error:
                if conversation.reasks >= max_reasks:
                    raise ChatModelError(
                        f"chat request {conversation.request_id} to {conversation.model!r}: "
                        f"the answer does not fit its output schema after {max_reasks} "
                        f"re-asks: {error}"
                    ) from None
                conversation.reasks += 1
                conversation.messages += [answer, _correction(error, conversation.schema)]
                continue
        ctx.send_event(
            ChatResponseEvent(
                request_id=conversation.request_id,
                response=answer,
                retry_count=conversation.retries,
                total_retry_wait_sec=conversation.waited,
            )
        )
        return


def _setup(ctx: RunnerContext, conversation: _Conversation) -> BaseChatModelSetup:
    try:
        setup = ctx.get_resource(conversation.model, ResourceType.CHAT_MODEL)
    except ResourceError as error:
        raise type(error)(
            f"chat request {conversation.request_id} to {conversation.model!r}: {error}"
        ) from error
    if not isinstance(setup, BaseChatModelSetup):
        raise ResourceError(
            f"chat request {conversation.request_id}: resource {conversation.model!r} is a "
            f"{type(setup).__name__}, not a chat model setup"
        )
    return setup


async def _ask(
    setup: BaseChatModelSetup, conversation: _Conversation, ctx: RunnerContext
) -> ChatMessage:
    """One model call, as a durable call (answered from the journal on replay)."""
    metrics = ctx.action_metric_group
    messages = list(conversation.messages)
    args = conversation.prompt_args
    if is_sync_setup(setup) or not ctx.config.get(AgentExecutionOptions.CHAT_ASYNC):
        answer = await ctx.durable_execute_async(_ask_sync, setup, messages, args, metrics)
    else:
        answer = await ctx.durable_execute_async(_ask_async, setup, messages, args, metrics)
    if not isinstance(answer, ChatMessage):
        raise ChatModelError(
            f"chat request {conversation.request_id}: setup {conversation.model!r} answered "
            f"a {type(answer).__name__}, not a ChatMessage"
        )
    return answer


async def _ask_async(
    setup: BaseChatModelSetup,
    messages: list[ChatMessage],
    prompt_args: dict[str, Any],
    metrics: MetricGroup,
) -> ChatMessage:
    try:
        answer = await setup.achat(messages, prompt_args)
    except Exception as error:
        _count_retries(metrics, setup, vars(error) if hasattr(error, "__dict__") else {})
        raise
    _count(metrics, setup, answer)
    return answer


def _ask_sync(
    setup: BaseChatModelSetup,
    messages: list[ChatMessage],
    prompt_args: dict[str, Any],
    metrics: MetricGroup,
) -> ChatMessage:
    # Upstream 0.2's setups take no prompt_args: pass them only when there are some.
    try:
        answer = setup.chat(messages, prompt_args) if prompt_args else setup.chat(messages)
    except Exception as error:
        _count_retries(metrics, setup, vars(error) if hasattr(error, "__dict__") else {})
        raise
    _count(metrics, setup, answer)
    return answer


def _count(metrics: MetricGroup, setup: BaseChatModelSetup, answer: Any) -> None:
    """Token and retry metrics of a call that really happened (never of a replayed one)."""
    if not isinstance(answer, ChatMessage):
        return
    extra = answer.extra_args
    model = extra.get("model_name") or setup.model
    if model:
        group = metrics.get_sub_group("model", str(model))
        for name in ("promptTokens", "completionTokens"):
            count = extra.get(name)
            if isinstance(count, int) and count > 0:
                group.get_counter(name).inc(count)
    _count_retries(metrics, setup, extra)


def _count_retries(metrics: MetricGroup, setup: BaseChatModelSetup, facts: Any) -> None:
    """Retry metrics (``retryCount``, ``retryWaitSec``, and ``retryWaitMs``, which keeps the
    short waits that whole seconds round away) from an answer's ``extra_args`` or a failed
    request's error attributes."""
    retries = facts.get("retry_count") if isinstance(facts, dict) else None
    if not isinstance(retries, int) or retries <= 0:
        return
    waited = facts.get("retry_wait_sec")
    waited = float(waited) if isinstance(waited, int | float) else 0.0
    group = metrics.get_sub_group("model", setup.connection)
    group.get_counter("retryCount").inc(retries)
    group.get_counter("retryWaitSec").inc(round(waited))
    group.get_counter("retryWaitMs").inc(round(waited * 1000))


def _tool_messages(
    tool_calls: list[dict[str, Any]], response: ToolResponseEvent
) -> list[ChatMessage]:
    """The tool results of a round as messages, in the order the model asked for the calls."""
    by_id = {str(call_id): value for call_id, value in response.responses.items()}
    messages = []
    for call in tool_calls:
        call_id = str(call.get("id"))
        if call_id not in by_id:
            continue
        external = call.get("original_id")
        messages.append(
            ChatMessage(
                role=MessageRole.TOOL,
                content=str(by_id[call_id]),
                extra_args={"external_id": external} if external else {},
            )
        )
    return messages


def _correction(error: ValueError, schema: StructuredOutput) -> ChatMessage:
    return ChatMessage(
        role=MessageRole.USER,
        content=(
            f"Your answer cannot be used: {error}. Answer again with only a JSON value that "
            f"follows this JSON schema: {schema.json_schema()}"
        ),
    )


def _identified(tool_calls: list[Any], conversation: _Conversation) -> list[Any]:
    """The tool calls, each with an id: a call a connection left without one gets an id made
    from the request and the round, the same on every replay, so that its result finds it."""
    identified = []
    for index, call in enumerate(tool_calls):
        if isinstance(call, dict) and not call.get("id"):
            name = f"{conversation.rounds}:{index}"
            call = {**call, "id": uuid5(UUID(str(conversation.request_id)), name)}
        identified.append(call)
    return identified


def _tool_name(call: Any) -> str:
    function = call.get("function") if isinstance(call, Mapping) else None
    return str(function.get("name")) if isinstance(function, Mapping) else "?"


# -- the tool-call action ----------------------------------------------------------------------


@dataclass
class _ToolCall:
    """One call of a tool request: what runs, or why it cannot."""

    call_id: UUID | str
    name: str
    external_id: str | None
    tool: Tool | None = None
    arguments: dict[str, Any] = field(default_factory=dict)
    problem: str | None = None


async def process_tool_request(event: Any, ctx: RunnerContext) -> None:
    """The tool-call action: run the calls of a ``ToolRequestEvent``, answer with their
    results."""
    request = ToolRequestEvent.from_event(event)
    calls = [_prepare(raw, ctx) for raw in request.tool_calls]
    runnable = [call for call in calls if call.problem is None]
    outcomes: list[Any]
    specs = [_durable_spec(call) for call in runnable]
    if ctx.config.get(AgentExecutionOptions.TOOL_CALL_ASYNC):
        outcomes = list(await ctx.durable_execute_all_async(specs, return_exceptions=True))
    else:  # one after another
        outcomes = []
        for spec in specs:
            outcomes += await ctx.durable_execute_all_async([spec], return_exceptions=True)
    results = dict(zip((id(call) for call in runnable), outcomes, strict=True))
    responses: dict[Any, Any] = {}
    success: dict[Any, bool] = {}
    errors: dict[Any, str] = {}
    for call in calls:
        outcome = results.get(id(call))
        if call.problem is not None:
            responses[call.call_id], success[call.call_id] = call.problem, False
            errors[call.call_id] = call.problem
        elif isinstance(outcome, BaseException):
            text = f"{type(outcome).__name__}: {outcome}"
            responses[call.call_id] = f"Tool `{call.name}` execute failed: {text}"
            success[call.call_id], errors[call.call_id] = False, text
        else:
            responses[call.call_id], success[call.call_id] = outcome, True
    ctx.send_event(
        ToolResponseEvent(
            request_id=request.id,
            responses=responses,
            external_ids={call.call_id: call.external_id for call in calls},
            success=success,
            error=errors,
        )
    )


def _prepare(raw: Any, ctx: RunnerContext) -> _ToolCall:
    """A model's tool call, looked up, checked and completed; or the problem with it."""
    if not isinstance(raw, Mapping):
        return _ToolCall("?", "?", None, problem=f"a tool call must be an object, got {raw!r:.200}")
    call_id = raw.get("id") or "?"
    external = raw.get("original_id")
    function = raw.get("function")
    name = function.get("name") if isinstance(function, Mapping) else None
    if not isinstance(name, str) or not name:
        return _ToolCall(call_id, "?", external, problem=f"a tool call names no tool: {raw!r:.200}")
    call = _ToolCall(call_id, name, external)
    try:
        tool = ctx.get_resource(name, ResourceType.TOOL)
    except ResourceError:
        call.problem = f"Tool `{name}` does not exist."
        return call
    if not isinstance(tool, Tool):
        call.problem = f"Tool `{name}` is a {type(tool).__name__}, which cannot be called."
        return call
    arguments = function.get("arguments") if isinstance(function, Mapping) else None
    if isinstance(arguments, str):  # a connection that passed the provider's JSON text on
        try:
            arguments = json.loads(arguments) if arguments.strip() else None
        except ValueError as error:
            call.problem = f"Tool `{name}`: its arguments are not valid JSON ({error}): "
            call.problem += f"{arguments!r:.200}"
            return call
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, Mapping):
        call.problem = f"Tool `{name}`: its arguments are not a JSON object: {arguments!r:.200}"
        return call
    try:
        call.arguments = tool.validate_arguments(_visible(tool, arguments))
        call.arguments.update(_injected(tool, ctx))
    except (ValueError, TypeError, KeyError) as error:
        call.problem = f"Tool `{name}`: {error}"
        return call
    call.tool = tool
    return call


def _visible(tool: Tool, arguments: Mapping[str, Any]) -> dict[str, Any]:
    """The arguments the model may give: injected ones are the runtime's."""
    injected = getattr(tool, "injected_args", None) or {}
    return {name: value for name, value in arguments.items() if name not in injected}


def _injected(tool: Tool, ctx: RunnerContext) -> dict[str, Any]:
    injected: Mapping[str, InjectedArg] = getattr(tool, "injected_args", None) or {}
    values = {}
    for name, spec in injected.items():
        key = spec.key or name
        if spec.source is ToolParameterSource.CONFIG:
            if not ctx.config.contains(key):
                raise KeyError(f"injected argument {name!r}: no configuration key {key!r}")
            values[name] = ctx.config.to_dict()[key]
            continue
        memory = (
            ctx.sensory_memory
            if spec.source is ToolParameterSource.SENSORY_MEMORY
            else ctx.short_term_memory
        )
        if not memory.is_exist(key):
            raise KeyError(f"injected argument {name!r}: nothing in {spec.source.value} at {key!r}")
        value = memory.get(key)
        if not isinstance(value, str | int | float | bool | list | dict | bytes | type(None)):
            raise TypeError(f"injected argument {name!r}: {key!r} holds an object, not a value")
        values[name] = value
    return values


def _durable_spec(call: _ToolCall) -> tuple[Any, tuple[Any, ...], dict[str, Any]]:
    """The durable call of a tool call: the tool's name is part of its arguments, so two tools
    called with the same arguments are two different calls in the journal."""
    assert call.tool is not None
    runner = _call_async_tool if call.tool.is_async else _call_sync_tool
    return runner, (call.name, call.tool, call.arguments), {}


async def _call_async_tool(name: str, tool: Tool, arguments: dict[str, Any]) -> Any:
    result = tool.call(**arguments)
    return await result if inspect.isawaitable(result) else result


def _call_sync_tool(name: str, tool: Tool, arguments: dict[str, Any]) -> Any:
    result = tool.call(**arguments)
    if inspect.isawaitable(result):
        return asyncio.run(result) if inspect.iscoroutine(result) else result
    return result


BUILT_IN_ACTIONS: tuple[tuple[str, tuple[str, ...], Any], ...] = (
    (
        CHAT_MODEL_ACTION,
        (ChatRequestEvent.EVENT_TYPE, ToolResponseEvent.EVENT_TYPE),
        process_chat_request_or_tool_response,
    ),
    (TOOL_CALL_ACTION, (ToolRequestEvent.EVENT_TYPE,), process_tool_request),
    (
        CONTEXT_RETRIEVAL_ACTION,
        (ContextRetrievalRequestEvent.EVENT_TYPE,),
        process_context_retrieval_request,
    ),
)
"""(name, event types, function) of each built-in action, in plan order."""
