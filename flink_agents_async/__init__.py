"""flink-agents-async: an asyncio-native actor runtime for Apache Flink Agents style agents.

Write agents against the Flink Agents Python API (``Agent``, ``@action``, events,
``RunnerContext``, memory), then run them with ``await env.execute()``::

    from flink_agents_async import (
        Agent, AgentsExecutionEnvironment, InputEvent, OutputEvent, RunnerContext, action,
    )

    class Echo(Agent):
        @action(InputEvent)
        @staticmethod
        def echo(event: InputEvent, ctx: RunnerContext) -> None:
            ctx.send_event(OutputEvent(output=event.input))

    env = AgentsExecutionEnvironment.get_execution_environment()
    outputs = env.from_list([{"key": "a", "value": 1}]).apply(Echo()).to_list()
    await env.execute()          # outputs == [{"a": 1}]

Importing this package never configures logging.
"""

from .agent import (
    Agent,
    action,
    chat_model_connection,
    chat_model_setup,
    embedding_model_connection,
    embedding_model_setup,
    mcp_server,
    prompt,
    tool,
    vector_store,
)
from .config import (
    AgentConfigOptions,
    AgentExecutionOptions,
    ConditionEvaluationFailureStrategy,
    ConfigOption,
    Configuration,
    ErrorHandlingStrategy,
    EventLogLevel,
    LoggerType,
    MemoryEventOptions,
    ReadableConfiguration,
    ShortTermMemoryTtlUpdate,
    ShortTermMemoryTtlVisibility,
    WritableConfiguration,
)
from .context import RunnerContext
from .environment import AgentBuilder, AgentsExecutionEnvironment
from .errors import (
    ActionFailedError,
    AgentDefinitionError,
    ConfigurationError,
    ContextUsageError,
    DurableContextError,
    ExecutionError,
    FlinkAgentsAsyncError,
    InputError,
    JournalError,
    JournalLockedError,
    JournalWriteError,
    KeyHaltedError,
    NonDeterminismError,
    ReplayedError,
    ResourceError,
    RuntimeBusyError,
    RuntimeClosedError,
    TriggerError,
)
from .events import (
    ChatRequestEvent,
    ChatResponseEvent,
    ContextRetrievalRequestEvent,
    ContextRetrievalResponseEvent,
    Event,
    EventType,
    InputEvent,
    OutputEvent,
    ToolRequestEvent,
    ToolResponseEvent,
)
from .llm.chat_models import (
    BaseChatModelConnection,
    BaseChatModelSetup,
    RemoteChatModelConnection,
)
from .llm.embedding_models import (
    BaseEmbeddingModelConnection,
    BaseEmbeddingModelSetup,
    EmbeddingResult,
    EmbeddingTokenUsage,
    RemoteEmbeddingModelConnection,
)
from .llm.messages import ChatMessage, MessageRole
from .llm.names import ResourceName
from .llm.prompts import Prompt
from .llm.react import ReActAgent
from .llm.schema import STRUCTURED_OUTPUT, OutputSchema
from .llm.tools import (
    FunctionTool,
    InjectedArg,
    Tool,
    ToolMetadata,
    ToolParameterSource,
    ToolType,
)
from .llm.vector_stores import (
    BaseVectorStore,
    CollectionManageableVectorStore,
    CollectionNotFoundError,
    Document,
    VectorStoreQuery,
    VectorStoreQueryMode,
    VectorStoreQueryResult,
)
from .local.service import RunHandle, ServiceRuntime
from .logging import configure_logging
from .long_term_memory import (
    BaseLongTermMemory,
    CompactionConfig,
    DatetimeRange,
    LongTermMemoryBackend,
    LongTermMemoryOptions,
    MemorySet,
    MemorySetItem,
)
from .memory import MemoryObject, MemoryRef, MemoryType
from .metrics import Counter, Gauge, Histogram, Meter, MetricGroup
from .resources import (
    Resource,
    ResourceContext,
    ResourceDescriptor,
    ResourceNotFoundError,
    ResourceType,
    SerializableResource,
)

__version__ = "0.1.0"

__all__ = [
    "STRUCTURED_OUTPUT",
    "ActionFailedError",
    "Agent",
    "AgentBuilder",
    "AgentConfigOptions",
    "AgentDefinitionError",
    "AgentExecutionOptions",
    "AgentsExecutionEnvironment",
    "BaseChatModelConnection",
    "BaseChatModelSetup",
    "BaseEmbeddingModelConnection",
    "BaseEmbeddingModelSetup",
    "BaseLongTermMemory",
    "BaseVectorStore",
    "ChatMessage",
    "ChatRequestEvent",
    "ChatResponseEvent",
    "CollectionManageableVectorStore",
    "CollectionNotFoundError",
    "CompactionConfig",
    "ConditionEvaluationFailureStrategy",
    "ConfigOption",
    "Configuration",
    "ConfigurationError",
    "ContextRetrievalRequestEvent",
    "ContextRetrievalResponseEvent",
    "ContextUsageError",
    "Counter",
    "DatetimeRange",
    "Document",
    "DurableContextError",
    "EmbeddingResult",
    "EmbeddingTokenUsage",
    "ErrorHandlingStrategy",
    "Event",
    "EventLogLevel",
    "EventType",
    "ExecutionError",
    "FlinkAgentsAsyncError",
    "FunctionTool",
    "Gauge",
    "Histogram",
    "InjectedArg",
    "InputError",
    "InputEvent",
    "JournalError",
    "JournalLockedError",
    "JournalWriteError",
    "KeyHaltedError",
    "LoggerType",
    "LongTermMemoryBackend",
    "LongTermMemoryOptions",
    "MemoryEventOptions",
    "MemoryObject",
    "MemoryRef",
    "MemorySet",
    "MemorySetItem",
    "MemoryType",
    "MessageRole",
    "Meter",
    "MetricGroup",
    "NonDeterminismError",
    "OutputEvent",
    "OutputSchema",
    "Prompt",
    "ReActAgent",
    "ReadableConfiguration",
    "RemoteChatModelConnection",
    "RemoteEmbeddingModelConnection",
    "ReplayedError",
    "Resource",
    "ResourceContext",
    "ResourceDescriptor",
    "ResourceError",
    "ResourceName",
    "ResourceNotFoundError",
    "ResourceType",
    "RunHandle",
    "RunnerContext",
    "RuntimeBusyError",
    "RuntimeClosedError",
    "SerializableResource",
    "ServiceRuntime",
    "ShortTermMemoryTtlUpdate",
    "ShortTermMemoryTtlVisibility",
    "Tool",
    "ToolMetadata",
    "ToolParameterSource",
    "ToolRequestEvent",
    "ToolResponseEvent",
    "ToolType",
    "TriggerError",
    "VectorStoreQuery",
    "VectorStoreQueryMode",
    "VectorStoreQueryResult",
    "WritableConfiguration",
    "__version__",
    "action",
    "chat_model_connection",
    "chat_model_setup",
    "configure_logging",
    "embedding_model_connection",
    "embedding_model_setup",
    "mcp_server",
    "prompt",
    "tool",
    "vector_store",
]
