"""A customer-support agent that answers through a chat model, for the web example.

Each customer is a key: the agent keeps the conversation in the key's memory, asks the model
with the whole conversation, and the model may look orders up with the ``lookup_order`` tool
before it answers. Every model call and tool call is a durable call: after a crash of the server
an accepted question is finished from the journal without asking the model again.

The model is the LLM examples' (``examples/llm/model.py``): a local stand-in by default, a real
provider with ``LLM_PROVIDER`` and the provider's usual variables.
"""

from __future__ import annotations

from examples.llm.model import ChatModel
from flink_agents_async import (
    Agent,
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

SUPPORT_SYSTEM = """\
You are the customer support agent of ACME Parcels. Answer the customer briefly and politely.
When the customer asks about an order, look it up with the lookup_order tool and answer from
what it returns; never invent an order's status."""

# Stands for the shop's order service.
ORDERS: dict[str, dict[str, str]] = {
    "A1001": {"status": "shipped", "eta": "Tuesday"},
    "A1002": {"status": "delayed at the depot", "eta": "Friday"},
    "A1003": {"status": "delivered", "eta": "already there"},
}


class SupportAgent(Agent):
    """Answers a customer's question with a chat model that can look orders up.

    Input: ``{"message": "..."}``; output: ``{"answer": "...", "turns": n}``.
    """

    def __init__(self, model: ChatModel) -> None:
        """``model``: which chat model to ask (its connection is the environment's resource
        ``connection``)."""
        super().__init__()
        self.add_resource(
            "support_model",
            ResourceType.CHAT_MODEL,
            model.setup(prompt="support_prompt", tools=["lookup_order"]),
        )

    @prompt
    @staticmethod
    def support_prompt() -> Prompt:
        return Prompt.from_messages([ChatMessage(role=MessageRole.SYSTEM, content=SUPPORT_SYSTEM)])

    @tool
    @staticmethod
    def lookup_order(order_id: str) -> dict[str, str]:
        """Look an order up by its id.

        Parameters
        ----------
        order_id : str
            The order's id, like A1001.
        """
        order = ORDERS.get(order_id.strip().upper())
        if order is None:
            raise LookupError(f"there is no order {order_id!r}")
        return {"order_id": order_id, **order}

    @action(InputEvent)
    @staticmethod
    def ask(event: InputEvent, ctx: RunnerContext) -> None:
        history = ctx.short_term_memory.get("conversation") or []
        question = {"role": "user", "content": event.input["message"]}
        ctx.short_term_memory.set("conversation", [*history, question])
        ctx.send_event(
            ChatRequestEvent(
                model="support_model",
                messages=[ChatMessage.model_validate(turn) for turn in [*history, question]],
            )
        )

    @action(ChatResponseEvent)
    @staticmethod
    def answer(event: ChatResponseEvent, ctx: RunnerContext) -> None:
        history = ctx.short_term_memory.get("conversation") or []
        reply = {"role": "assistant", "content": event.response.content}
        ctx.short_term_memory.set("conversation", [*history, reply])
        turns = sum(1 for turn in history if turn["role"] == "user")
        ctx.send_event(OutputEvent(output={"answer": event.response.content, "turns": turns}))
