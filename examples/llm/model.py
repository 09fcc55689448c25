"""Which chat model the LLM examples talk to.

By default they run offline: a local model server (``flink_agents_async.testing.ModelServer``)
speaking Ollama's protocol answers with a small stand-in model (``stand_in``), so the examples
run anywhere, in a second. Point them at a real model with environment variables:

* ``LLM_PROVIDER=ollama`` (``OLLAMA_HOST``, default ``http://localhost:11434``; ``LLM_MODEL``,
  default ``qwen3:8b``);
* ``LLM_PROVIDER=openai`` (``OPENAI_API_KEY``, optional ``OPENAI_API_BASE_URL`` for any
  OpenAI-compatible server; ``LLM_MODEL``, default ``gpt-4o-mini``);
* ``LLM_PROVIDER=anthropic`` (``ANTHROPIC_API_KEY``; ``LLM_MODEL``, default
  ``claude-sonnet-4-20250514``).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from flink_agents_async import ResourceDescriptor, ResourceName

__all__ = ["ChatModel", "chat_model"]


@dataclass
class ChatModel:
    """What an example declares: the connection and the setup's class and model."""

    connection: ResourceDescriptor
    setup_class: str
    model: str
    requests: Any = None  # the local server's request counter (offline only)

    def setup(self, **arguments: Any) -> ResourceDescriptor:
        """A setup descriptor on the connection resource ``connection``."""
        return ResourceDescriptor(
            clazz=self.setup_class, connection="connection", model=self.model, **arguments
        )


@contextmanager
def chat_model() -> Iterator[ChatModel]:
    """The chat model to use: a real one if ``LLM_PROVIDER`` says so, else the stand-in."""
    provider = os.environ.get("LLM_PROVIDER", "offline")
    names = ResourceName.ChatModel
    if provider == "ollama":
        host = os.environ.get("OLLAMA_HOST", "http://localhost:11434")
        yield ChatModel(
            ResourceDescriptor(clazz=names.OLLAMA_CONNECTION, base_url=host, request_timeout=240),
            names.OLLAMA_SETUP,
            os.environ.get("LLM_MODEL", "qwen3:8b"),
        )
    elif provider == "openai":
        yield ChatModel(
            ResourceDescriptor(clazz=names.OPENAI_CONNECTION),
            names.OPENAI_SETUP,
            os.environ.get("LLM_MODEL", "gpt-4o-mini"),
        )
    elif provider == "anthropic":
        yield ChatModel(
            ResourceDescriptor(clazz=names.ANTHROPIC_CONNECTION),
            names.ANTHROPIC_SETUP,
            os.environ.get("LLM_MODEL", "claude-sonnet-4-20250514"),
        )
    elif provider == "offline":
        from flink_agents_async.testing import ModelServer

        with ModelServer() as server:
            server.respond_with(stand_in)
            yield ChatModel(
                ResourceDescriptor(clazz=names.OLLAMA_CONNECTION, base_url=server.url("ollama")),
                names.OLLAMA_SETUP,
                "stand-in",
                requests=server.count,
            )
    else:
        raise SystemExit(f"LLM_PROVIDER={provider!r}: use offline, ollama, openai or anthropic")


# -- the stand-in model ------------------------------------------------------------------------

_UNHAPPY = ("broken", "late", "damaged", "never arrived", "refund", "disappointed", "cold")


def stand_in(request: Any) -> Any:
    """A deterministic stand-in for a chat model, good enough for the examples' prompts: it
    scores reviews (and reports bad ones with the shipping tool), writes suggestions, judges
    aspects and summarises, always in the JSON the prompts ask for, and answers the web
    example's customers about their orders (looking them up with the order tool)."""
    from flink_agents_async.testing import Reply, ToolCall

    system = " ".join(m.content for m in request.messages if m.role == "system").lower()
    question = request.last_user_text
    if "shipping manager" in system and not request.tool_results and _unhappy(question):
        fields = _review_fields(question)
        if "notify_shipping_manager" in request.tools:
            return Reply.tools(ToolCall("notify_shipping_manager", fields))
    if "suggest" in system:
        return Reply(json.dumps({"suggestion_list": ["pack it better", "ship it faster"]}))
    if "score" in system and "reasons" in system:
        fields = _review_fields(question)
        score = 1 if _unhappy(question) else 5
        reasons = ["the delivery went wrong"] if score == 1 else ["the customer is happy"]
        return Reply(json.dumps({"id": fields["id"], "score": score, "reasons": reasons}))
    if "dimension" in question.lower():
        aspect = re.search(r'"(\w+)" dimension', question)
        result = "negative" if _unhappy(question) else "positive"
        return Reply(json.dumps({"aspect": aspect.group(1) if aspect else "?", "result": result}))
    if "customer support" in system:
        return _support_reply(request)
    if "what you remember about this customer" in system:
        return _remembering_reply(request)
    if "based on the following context" in question.lower():
        return _context_reply(question)
    if "summar" in system or "summar" in question.lower():
        return Reply(json.dumps({"summary": f"customers say: {question[:80]}"}))
    return Reply(f"echo: {question}")


def _support_reply(request: Any) -> Any:
    """Looks up the order the customer's last message names, then answers from the result."""
    from flink_agents_async.testing import Reply, ToolCall

    last_user = max(i for i, m in enumerate(request.messages) if m.role == "user")
    results = [m.content for m in request.messages[last_user + 1 :] if m.role == "tool"]
    if results:
        found = re.search(r"'status': '([^']*)'.*'eta': '([^']*)'", results[-1])
        if found is None:
            return Reply("Sorry, I cannot find that order. Could you check its id?")
        return Reply(f"Your order is {found.group(1)}; expected: {found.group(2)}.")
    order = re.search(r"\b([A-Z]\d{4})\b", request.last_user_text)
    if order is not None and "lookup_order" in request.tools:
        return Reply.tools(ToolCall("lookup_order", {"order_id": order.group(1)}))
    return Reply("Happy to help! Which order is it about? Its id looks like A1001.")


def _context_reply(question: str) -> Any:
    """Answers from the first document of the context a RAG prompt carries."""
    from flink_agents_async.testing import Reply

    found = re.search(r"^1\. (.+)$", question, re.M)
    return Reply(f"From the knowledge base: {found.group(1) if found else 'nothing relevant.'}")


def _remembering_reply(request: Any) -> Any:
    """Answers with the most relevant thing remembered about the customer."""
    from flink_agents_async.testing import Reply

    system = "\n".join(m.content for m in request.messages if m.role == "system")
    found = re.search(r"^- (.+)$", system, re.M)
    if found is None:
        return Reply("Nice to meet you! How can I help?")
    return Reply(f"As you told me before: {found.group(1)}")


def _unhappy(text: str) -> bool:
    return any(word in text.lower() for word in _UNHAPPY)


def _review_fields(text: str) -> dict[str, str]:
    found = re.search(r'"id":\s*"?([\w-]+)"?,\s*"review":\s*"?(.*?)"?\s*$', text, re.S)
    if found is None:
        return {"id": "unknown", "review": text}
    return {"id": found.group(1), "review": found.group(2)}
