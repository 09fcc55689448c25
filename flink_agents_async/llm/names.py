"""``ResourceName``: the class paths of the built-in integrations, for
``ResourceDescriptor(clazz=ResourceName.ChatModel.OLLAMA_SETUP, ...)`` as upstream's examples
write it. Upstream 0.2's ``OPENAI_*`` and 0.3's ``OPENAI_COMPLETIONS_*`` name the same classes.
"""

from __future__ import annotations

__all__ = ["ResourceName"]

_INTEGRATIONS = "flink_agents_async.integrations"


class ResourceName:
    """Class paths of the built-in resources, by kind."""

    MCP_SERVER = f"{_INTEGRATIONS}.mcp.MCPServer"

    class ChatModel:
        OPENAI_CONNECTION = f"{_INTEGRATIONS}.openai.OpenAIChatModelConnection"
        OPENAI_SETUP = f"{_INTEGRATIONS}.openai.OpenAIChatModelSetup"
        OPENAI_COMPLETIONS_CONNECTION = OPENAI_CONNECTION
        OPENAI_COMPLETIONS_SETUP = OPENAI_SETUP
        AZURE_OPENAI_CONNECTION = f"{_INTEGRATIONS}.openai.AzureOpenAIChatModelConnection"
        AZURE_OPENAI_SETUP = f"{_INTEGRATIONS}.openai.AzureOpenAIChatModelSetup"
        VLLM_CONNECTION = f"{_INTEGRATIONS}.openai.VLLMChatModelConnection"
        VLLM_SETUP = f"{_INTEGRATIONS}.openai.VLLMChatModelSetup"
        ANTHROPIC_CONNECTION = f"{_INTEGRATIONS}.anthropic.AnthropicChatModelConnection"
        ANTHROPIC_SETUP = f"{_INTEGRATIONS}.anthropic.AnthropicChatModelSetup"
        OLLAMA_CONNECTION = f"{_INTEGRATIONS}.ollama.OllamaChatModelConnection"
        OLLAMA_SETUP = f"{_INTEGRATIONS}.ollama.OllamaChatModelSetup"

    class EmbeddingModel:
        OPENAI_CONNECTION = f"{_INTEGRATIONS}.openai.OpenAIEmbeddingModelConnection"
        OPENAI_SETUP = f"{_INTEGRATIONS}.openai.OpenAIEmbeddingModelSetup"
        OLLAMA_CONNECTION = f"{_INTEGRATIONS}.ollama.OllamaEmbeddingModelConnection"
        OLLAMA_SETUP = f"{_INTEGRATIONS}.ollama.OllamaEmbeddingModelSetup"
        LOCAL_CONNECTION = f"{_INTEGRATIONS}.local_embeddings.LocalEmbeddingModelConnection"
        LOCAL_SETUP = f"{_INTEGRATIONS}.local_embeddings.LocalEmbeddingModelSetup"

    class VectorStore:
        CHROMA_VECTOR_STORE = f"{_INTEGRATIONS}.chroma.ChromaVectorStore"
        # The embedded default: one SQLite file in a directory, searched with sqlite-vec.
        LOCAL_VECTOR_STORE = f"{_INTEGRATIONS}.local_vector_store.LocalVectorStore"


# Upstream's class paths of the same integrations, so descriptors written with them as strings
# (``clazz="flink_agents.integrations...."``) find ours.
_UPSTREAM_CHAT = "flink_agents.integrations.chat_models"
_UPSTREAM_EMBEDDING = "flink_agents.integrations.embedding_models"
UPSTREAM_CLASS_PATHS: dict[str, str] = {
    f"{_UPSTREAM_CHAT}.openai.openai_chat_model.OpenAIChatModelConnection": (
        ResourceName.ChatModel.OPENAI_CONNECTION
    ),
    f"{_UPSTREAM_CHAT}.openai.openai_chat_model.OpenAIChatModelSetup": (
        ResourceName.ChatModel.OPENAI_SETUP
    ),
    f"{_UPSTREAM_CHAT}.azure.azure_openai_chat_model.AzureOpenAIChatModelConnection": (
        ResourceName.ChatModel.AZURE_OPENAI_CONNECTION
    ),
    f"{_UPSTREAM_CHAT}.azure.azure_openai_chat_model.AzureOpenAIChatModelSetup": (
        ResourceName.ChatModel.AZURE_OPENAI_SETUP
    ),
    f"{_UPSTREAM_CHAT}.vllm.vllm_chat_model.VLLMChatModelConnection": (
        ResourceName.ChatModel.VLLM_CONNECTION
    ),
    f"{_UPSTREAM_CHAT}.vllm.vllm_chat_model.VLLMChatModelSetup": ResourceName.ChatModel.VLLM_SETUP,
    f"{_UPSTREAM_CHAT}.anthropic.anthropic_chat_model.AnthropicChatModelConnection": (
        ResourceName.ChatModel.ANTHROPIC_CONNECTION
    ),
    f"{_UPSTREAM_CHAT}.anthropic.anthropic_chat_model.AnthropicChatModelSetup": (
        ResourceName.ChatModel.ANTHROPIC_SETUP
    ),
    f"{_UPSTREAM_CHAT}.ollama_chat_model.OllamaChatModelConnection": (
        ResourceName.ChatModel.OLLAMA_CONNECTION
    ),
    f"{_UPSTREAM_CHAT}.ollama_chat_model.OllamaChatModelSetup": ResourceName.ChatModel.OLLAMA_SETUP,
    f"{_UPSTREAM_EMBEDDING}.openai_embedding_model.OpenAIEmbeddingModelConnection": (
        ResourceName.EmbeddingModel.OPENAI_CONNECTION
    ),
    f"{_UPSTREAM_EMBEDDING}.openai_embedding_model.OpenAIEmbeddingModelSetup": (
        ResourceName.EmbeddingModel.OPENAI_SETUP
    ),
    f"{_UPSTREAM_EMBEDDING}.local.ollama_embedding_model.OllamaEmbeddingModelConnection": (
        ResourceName.EmbeddingModel.OLLAMA_CONNECTION
    ),
    f"{_UPSTREAM_EMBEDDING}.local.ollama_embedding_model.OllamaEmbeddingModelSetup": (
        ResourceName.EmbeddingModel.OLLAMA_SETUP
    ),
}
UPSTREAM_CLASS_PATHS["flink_agents.integrations.mcp.mcp.MCPServer"] = ResourceName.MCP_SERVER
UPSTREAM_CLASS_PATHS[
    "flink_agents.integrations.vector_stores.chroma.chroma_vector_store.ChromaVectorStore"
] = ResourceName.VectorStore.CHROMA_VECTOR_STORE
