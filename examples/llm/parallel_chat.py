"""Parallel chat requests: two aspects of a review judged at once, then summarised.

The shape of upstream Flink Agents' parallel chat quickstart, on the embedded runtime: two
actions each send a chat request with an output schema; both are in flight together; once both
answers are in, a third request summarises them.

    python examples/llm/parallel_chat.py                      # offline stand-in model
    LLM_PROVIDER=ollama python examples/llm/parallel_chat.py  # a real model (see model.py)
"""

from __future__ import annotations

import asyncio
from typing import Any

from model import ChatModel, chat_model
from reviews import AspectResponse, SummaryResponse

from flink_agents_async import (
    STRUCTURED_OUTPUT,
    Agent,
    AgentsExecutionEnvironment,
    ChatMessage,
    ChatRequestEvent,
    ChatResponseEvent,
    Event,
    InputEvent,
    MessageRole,
    OutputEvent,
    OutputSchema,
    ResourceType,
    RunnerContext,
    action,
)

ASPECTS = ("taste", "service")
JUDGE = (
    "You judge one dimension of a restaurant review. Answer with a JSON object only, like "
    '{"aspect": "taste", "result": "positive"}.'
)


def judge(aspect: str, event: Event, ctx: RunnerContext) -> None:
    request = ChatRequestEvent(
        model="sentiment_model",
        messages=[
            ChatMessage(role=MessageRole.SYSTEM, content=JUDGE),
            ChatMessage(
                role=MessageRole.USER,
                content=f'Judge the "{aspect}" dimension: {event.get_attr("text")}',
            ),
        ],
        output_schema=OutputSchema(output_schema=AspectResponse),
    )
    ctx.sensory_memory.set(f"aspect_map.{request.id}", aspect)
    ctx.send_event(request)


class ParallelChatAgent(Agent):
    def __init__(self, model: ChatModel) -> None:
        super().__init__()
        self.add_resource("sentiment_model", ResourceType.CHAT_MODEL, model.setup())

    @action(InputEvent)
    @staticmethod
    def start(event: InputEvent, ctx: RunnerContext) -> None:
        review = InputEvent.from_event(event).input
        ctx.sensory_memory.set("text", review["text"])
        ctx.send_event(Event(type="SentimentInputEvent", attributes={"text": review["text"]}))

    @action("SentimentInputEvent")
    @staticmethod
    def judge_taste(event: Event, ctx: RunnerContext) -> None:
        judge("taste", event, ctx)

    @action("SentimentInputEvent")
    @staticmethod
    def judge_service(event: Event, ctx: RunnerContext) -> None:
        judge("service", event, ctx)

    @action(ChatResponseEvent)
    @staticmethod
    def collect(event: ChatResponseEvent, ctx: RunnerContext) -> None:
        result: Any = event.response.extra_args[STRUCTURED_OUTPUT]
        memory = ctx.sensory_memory
        if isinstance(result, SummaryResponse):
            ctx.send_event(OutputEvent(output={"text": memory.get("text"), **result.model_dump()}))
            return
        memory.set(f"sentiments.{memory.get(f'aspect_map.{event.request_id}')}", result.result)
        judged = memory.get("sentiments").to_dict()
        if len(judged) == len(ASPECTS):
            verdicts = ", ".join(f"{aspect}: {judged[aspect]}" for aspect in ASPECTS)
            ctx.send_event(
                ChatRequestEvent(
                    model="sentiment_model",
                    messages=[
                        ChatMessage(
                            role=MessageRole.USER,
                            content=f"Summarise these verdicts in one sentence: {verdicts}",
                        )
                    ],
                    output_schema=OutputSchema(output_schema=SummaryResponse),
                )
            )


async def main() -> None:
    with chat_model() as model:
        env = AgentsExecutionEnvironment.get_execution_environment()
        env.add_resource("connection", ResourceType.CHAT_MODEL_CONNECTION, model.connection)
        reviews = [
            {"key": 1, "value": {"text": "The soup was delicious but the waiter was cold."}},
            {"key": 2, "value": {"text": "Tasty food and friendly staff."}},
        ]
        outputs = env.from_list(reviews).apply(ParallelChatAgent(model)).to_list()
        await env.execute()
    for entry in outputs:
        for key, result in entry.items():
            print(f"{key}: {result['summary']}")


if __name__ == "__main__":
    asyncio.run(main())
