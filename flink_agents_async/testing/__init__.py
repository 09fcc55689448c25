"""Test helpers for agents built on flink-agents-async.

:class:`ModelServer` is a local HTTP server that answers the official OpenAI, Anthropic and
Ollama Python clients with scripted replies and records what they asked; see
:mod:`flink_agents_async.testing.model_server`. The core package never imports this package.
It needs starlette and uvicorn: ``pip install 'flink-agents-async[web]'``.
"""

from __future__ import annotations

from importlib import import_module
from importlib.util import find_spec
from typing import TYPE_CHECKING, Any

__all__ = [
    "FinishReason",
    "Message",
    "ModelRequest",
    "ModelServer",
    "ProtocolName",
    "Reply",
    "RequestKind",
    "Responder",
    "ToolCall",
    "Usage",
    "echo_reply",
    "fake_embedding",
]

# Fail at import, with the fix in the message, rather than at first use.
_missing = [name for name in ("starlette", "uvicorn") if find_spec(name) is None]
if _missing:
    raise ImportError(
        f"flink_agents_async.testing needs {' and '.join(_missing)}; "
        "install them with: pip install 'flink-agents-async[web]'"
    )

if TYPE_CHECKING:
    from flink_agents_async.testing.model_server import (
        FinishReason,
        Message,
        ModelRequest,
        ModelServer,
        ProtocolName,
        Reply,
        RequestKind,
        Responder,
        ToolCall,
        Usage,
        echo_reply,
        fake_embedding,
    )


def __getattr__(name: str) -> Any:
    # Loaded lazily: if this package imported model_server eagerly, then
    # `python -m flink_agents_async.testing.model_server` would run the module a second time
    # as __main__ and runpy would warn about it.
    if name in __all__:
        return getattr(import_module("flink_agents_async.testing.model_server"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
