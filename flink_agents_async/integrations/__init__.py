"""Chat model integrations, each through its provider's official async client.

* ``flink_agents_async.integrations.openai``: OpenAI, Azure OpenAI and vLLM (OpenAI-compatible),
  with the ``openai`` package (``pip install 'flink-agents-async[openai]'``);
* ``flink_agents_async.integrations.anthropic``: Anthropic, with the ``anthropic`` package
  (``pip install 'flink-agents-async[anthropic]'``);
* ``flink_agents_async.integrations.ollama``: Ollama, with the ``ollama`` package
  (``pip install 'flink-agents-async[ollama]'``);
* ``flink_agents_async.integrations.mcp``: MCP servers (streamable HTTP and stdio), whose tools
  and prompts become the agent's, with the ``mcp`` package (``pip install
  'flink-agents-async[mcp]'``).

Each SDK is an optional extra, so this package imports none of them: importing one integration
never imports the others, and a missing SDK is an ``ImportError`` naming the extra to install.
Declare them by class path, as upstream's examples do:
``ResourceDescriptor(clazz=ResourceName.ChatModel.OPENAI_SETUP, connection=..., model=...)``.
"""
