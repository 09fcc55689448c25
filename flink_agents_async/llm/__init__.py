"""The LLM layer: chat messages, prompts, tools, chat models, structured output, the built-in
chat and tool-call actions, and ``ReActAgent``. The public names are re-exported from
``flink_agents_async``; provider integrations live in ``flink_agents_async.integrations``.
"""
