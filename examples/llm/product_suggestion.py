"""Two agents in a row: review analysis, then product suggestions from each product's reviews.

The shape of upstream Flink Agents' multi-agent workflow quickstart, on the embedded runtime
(where upstream aggregates the first agent's outputs in a Flink window, this example does it
between two jobs):

    python examples/llm/product_suggestion.py                      # offline stand-in model
    LLM_PROVIDER=openai python examples/llm/product_suggestion.py  # a real model (see model.py)
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter, defaultdict

from model import ChatModel, chat_model
from review_analysis import ReviewAnalysisAgent
from reviews import (
    REVIEWS,
    ProductReviewAnalysisRes,
    ProductReviewSummary,
    ProductSuggestion,
    product_suggestion_prompt,
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
)


class ProductSuggestionAgent(Agent):
    """Suggests improvements of a product from the summary of its reviews."""

    def __init__(self, model: ChatModel) -> None:
        super().__init__()
        self.add_resource(
            "generate_suggestion_model",
            ResourceType.CHAT_MODEL,
            model.setup(prompt="generate_suggestion_prompt", extract_reasoning=True),
        )

    @prompt
    @staticmethod
    def generate_suggestion_prompt() -> Prompt:
        return product_suggestion_prompt

    @action(InputEvent)
    @staticmethod
    def process_input(event: InputEvent, ctx: RunnerContext) -> None:
        summary: ProductReviewSummary = InputEvent.from_event(event).input
        ctx.short_term_memory.set("id", summary.id)
        ctx.short_term_memory.set("score_hist", summary.score_hist)
        content = (
            f'{{"id": "{summary.id}", "score_histogram": {summary.score_hist}, '
            f'"unsatisfied_reasons": {summary.unsatisfied_reasons}}}'
        )
        ctx.send_event(
            ChatRequestEvent(
                model="generate_suggestion_model",
                messages=[ChatMessage(role=MessageRole.USER)],
                prompt_args={"input": content},
            )
        )

    @action(ChatResponseEvent)
    @staticmethod
    def process_chat_response(event: ChatResponseEvent, ctx: RunnerContext) -> None:
        answer = json.loads(event.response.content)
        memory = ctx.short_term_memory
        ctx.send_event(
            OutputEvent(
                output=ProductSuggestion(
                    id=memory.get("id"),
                    score_hist=memory.get("score_hist"),
                    suggestions=answer["suggestion_list"],
                )
            )
        )


def summarise(analyses: list[ProductReviewAnalysisRes]) -> list[ProductReviewSummary]:
    """Each product's score histogram (percentages of scores 1 to 5) and unhappy reasons."""
    by_product: dict[str, list[ProductReviewAnalysisRes]] = defaultdict(list)
    for analysis in analyses:
        by_product[analysis.id].append(analysis)
    summaries = []
    for product, results in sorted(by_product.items()):
        counts = Counter(result.score for result in results)
        histogram = [f"{round(100 * counts[score] / len(results))}%" for score in range(1, 6)]
        unhappy = [reason for result in results if result.score <= 2 for reason in result.reasons]
        summaries.append(ProductReviewSummary(id=product, score_hist=histogram,
                                              unsatisfied_reasons=unhappy))  # fmt: skip
    return summaries


async def run_agent(model: ChatModel, agent: Agent, items: list[dict[str, object]]) -> list[object]:
    env = AgentsExecutionEnvironment.get_execution_environment()
    env.add_resource("connection", ResourceType.CHAT_MODEL_CONNECTION, model.connection)
    outputs = env.from_list(items).apply(agent).to_list()
    await env.execute()
    return [output for entry in outputs for output in entry.values()]


async def main() -> None:
    with chat_model() as model:
        reviews = [{"key": review.id, "value": review} for review in REVIEWS]
        analyses = await run_agent(model, ReviewAnalysisAgent(model), reviews)
        summaries = summarise(analyses)  # type: ignore[arg-type]
        items = [{"key": summary.id, "value": summary} for summary in summaries]
        suggestions = await run_agent(model, ProductSuggestionAgent(model), items)
    for suggestion in suggestions:
        print(f"{suggestion.id}: scores {suggestion.score_hist}, try: {suggestion.suggestions}")


if __name__ == "__main__":
    asyncio.run(main())
