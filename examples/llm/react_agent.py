"""A ReAct agent: a chat model that uses a tool and answers in a schema, per review.

The shape of upstream Flink Agents' ReAct quickstart, on the embedded runtime:

    python examples/llm/react_agent.py                         # offline stand-in model
    LLM_PROVIDER=anthropic python examples/llm/react_agent.py  # a real model (see model.py)
"""

from __future__ import annotations

import asyncio

from model import chat_model
from reviews import (
    REVIEWS,
    ProductReviewAnalysisRes,
    notify_shipping_manager,
    review_analysis_react_prompt,
)

from flink_agents_async import (
    AgentsExecutionEnvironment,
    ReActAgent,
    ResourceType,
    Tool,
)


async def main() -> None:
    with chat_model() as model:
        env = AgentsExecutionEnvironment.get_execution_environment()
        env.add_resource(
            "connection", ResourceType.CHAT_MODEL_CONNECTION, model.connection
        ).add_resource(
            "notify_shipping_manager",
            ResourceType.TOOL,
            Tool.from_callable(notify_shipping_manager),
        )
        agent = ReActAgent(
            chat_model=model.setup(tools=["notify_shipping_manager"]),
            prompt=review_analysis_react_prompt,
            output_schema=ProductReviewAnalysisRes,
        )
        reviews = [{"key": review.id, "value": review} for review in REVIEWS]
        outputs = env.from_list(reviews).apply(agent).to_list()
        await env.execute()
    for entry in outputs:
        for product, analysis in entry.items():
            print(f"{product}: score {analysis.score}, {', '.join(analysis.reasons)}")


if __name__ == "__main__":
    asyncio.run(main())
