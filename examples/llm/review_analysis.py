"""Review analysis: one agent with a prompt, a tool and a chat model, per product review.

The shape of upstream Flink Agents' single-agent workflow quickstart, on the embedded runtime:

    python examples/llm/review_analysis.py                      # offline stand-in model
    LLM_PROVIDER=ollama python examples/llm/review_analysis.py  # a real model (see model.py)

Each review is an input keyed by its product; the agent asks the model for a score and its
reasons (the model may notify the shipping manager first, through the tool), and outputs them.
"""

from __future__ import annotations

import asyncio
import json

from model import ChatModel, chat_model
from reviews import (
    REVIEWS,
    ProductReviewAnalysisRes,
    notify_shipping_manager,
    review_analysis_prompt,
)

from flink_agents_async import (
    Agent,
    AgentsExecutionEnvironment,
    ChatMessage,
    ChatRequestEvent,
    ChatResponseEvent,
    InputEvent,
    MessageRole,
    OutputEvent,
    Prompt,
    ResourceType,
    RunnerContext,
    action,
    prompt,
    tool,
)


class ReviewAnalysisAgent(Agent):
    """Scores a product review with a chat model."""

    def __init__(self, model: ChatModel) -> None:
        super().__init__()
        self.add_resource(
            "review_analysis_model",
            ResourceType.CHAT_MODEL,
            model.setup(
                prompt="review_analysis_prompt",
                tools=["notify_shipping_manager"],
                extract_reasoning=True,
            ),
        )

    @prompt
    @staticmethod
    def review_analysis_prompt() -> Prompt:
        return review_analysis_prompt

    @tool
    @staticmethod
    def notify_shipping_manager(id: str, review: str) -> None:
        """Notify the shipping manager when a product was damaged, late or lost in delivery.

        Parameters
        ----------
        id : str
            The id of the product the review is about.
        review : str
            The text of the review.
        """
        notify_shipping_manager(id, review)

    @action(InputEvent)
    @staticmethod
    def process_input(event: InputEvent, ctx: RunnerContext) -> None:
        review = InputEvent.from_event(event).input
        ctx.short_term_memory.set("id", review.id)
        content = f'"id": "{review.id}", "review": "{review.review}"'
        ctx.send_event(
            ChatRequestEvent(
                model="review_analysis_model",
                messages=[ChatMessage(role=MessageRole.USER)],
                prompt_args={"input": content},
            )
        )

    @action(ChatResponseEvent)
    @staticmethod
    def process_chat_response(event: ChatResponseEvent, ctx: RunnerContext) -> None:
        answer = json.loads(event.response.content)
        ctx.send_event(
            OutputEvent(
                output=ProductReviewAnalysisRes(
                    id=ctx.short_term_memory.get("id"),
                    score=answer["score"],
                    reasons=answer["reasons"],
                )
            )
        )


async def main() -> None:
    with chat_model() as model:
        env = AgentsExecutionEnvironment.get_execution_environment()
        env.add_resource("connection", ResourceType.CHAT_MODEL_CONNECTION, model.connection)
        reviews = [{"key": review.id, "value": review} for review in REVIEWS]
        outputs = env.from_list(reviews).apply(ReviewAnalysisAgent(model)).to_list()
        await env.execute()
    for entry in outputs:
        for product, analysis in entry.items():
            print(f"{product}: score {analysis.score}, {', '.join(analysis.reasons)}")


if __name__ == "__main__":
    asyncio.run(main())
