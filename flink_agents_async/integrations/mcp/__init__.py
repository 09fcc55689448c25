"""MCP servers (``MCPServer``) and their tools and prompts (``MCPTool``, ``MCPPrompt``), through
the official ``mcp`` package (``pip install 'flink-agents-async[mcp]'``).

``flink_agents_async.integrations.mcp.mcp`` is the same module under upstream's path
(``flink_agents.integrations.mcp.mcp``); its docstring tells how servers are declared and run.
"""

from .mcp import MCPPrompt, MCPServer, MCPServerError, MCPTool, extract_mcp_content_item

__all__ = ["MCPPrompt", "MCPServer", "MCPServerError", "MCPTool", "extract_mcp_content_item"]
