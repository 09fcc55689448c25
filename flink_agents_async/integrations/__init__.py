"""Chat model integrations, each through its provider's official async client.

* ``flink_agents_async.integrations.openai``: OpenAI, Azure OpenAI and vLLM (OpenAI-compatible),
  with the ``openai`` package (``pip install 'flink-agents-async[openai]'``);
* ``flink_agents_async.integrations.anthropic``: Anthropic, with the ``anthropic`` package
  (``pip install 'flink-agents-async[anthropic]'``);
* ``flink_agents_async.integrations.ollama``: Ollama, with the ``ollama`` package
  (``pip install 'flink-agents-async[ollama]'``).

Each SDK is an optional extra, so this package imports none of them: importing one integration
never imports the others, and a missing SDK is an ``ImportError`` naming the extra to install.
Declare them by class path, as upstream's examples do:
``ResourceDescriptor(clazz=ResourceName.ChatModel.OPENAI_SETUP, connection=..., model=...)``.
"""
