"""A small MCP server for the MCP tests, written with the official SDK's ``FastMCP``.

Its tools and prompt are the ones upstream's MCP examples use (``add``, ``ask_sum``), plus
``multiply``, ``broken`` (a tool whose input schema is not an object schema, as a faulty server
would send) and ``pid`` (which process answers, so a test can see a restarted server).

* ``python tests/mcp_server_app.py stdio``: serve on stdin/stdout (the stdio transport);
* ``python tests/mcp_server_app.py http PORT``: serve streamable HTTP on 127.0.0.1:PORT at
  ``/mcp``;
* ``HttpServer(port)``: the same HTTP server in a thread of the test process (uvicorn on its own
  event loop), which a test can stop and start again on the same port.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import threading
import time
from typing import Any

import uvicorn
from mcp.server.fastmcp import FastMCP

BAD_SCHEMA: dict[str, Any] = {"type": "object", "properties": ["a", "b"]}


def build_server(port: int = 8000) -> FastMCP:
    """A fresh ``FastMCP`` server (a streamable HTTP app can be started once per server)."""
    server = FastMCP("MathServer", host="127.0.0.1", port=port, log_level="WARNING")

    @server.tool()
    async def add(a: int, b: int) -> int:
        """Calculate the sum of two numbers.

        Args:
            a: The first operand
            b: The second operand
        """
        return a + b

    @server.tool()
    def multiply(a: int, b: int) -> int:
        """Multiply two numbers."""
        return a * b

    @server.tool()
    def pid() -> int:
        """The process id of the server."""
        return os.getpid()

    @server.tool()
    def broken(a: int) -> int:
        """A tool the server describes with a schema no client can use."""
        return a

    @server.prompt()
    def ask_sum(a: int, b: int) -> str:
        """Ask for the sum of two numbers."""
        return f"Can you please calculate the sum of {a} and {b}?"

    # What a faulty server sends: the SDK keeps a tool's schema as it was given.
    server._tool_manager._tools["broken"].parameters = BAD_SCHEMA
    return server


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 10.0, up: bool = True) -> None:
    """Return once 127.0.0.1:``port`` accepts connections (``up``) or refuses them."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                listening = True
        except OSError:
            listening = False
        if listening == up:
            return
        if time.monotonic() > deadline:
            state = "listen" if up else "stop listening"
            raise TimeoutError(f"port {port} did not {state} within {timeout} s")
        time.sleep(0.01)  # polling the port, not waiting for a guessed time


class HttpServer:
    """The MCP server over streamable HTTP, in a thread; ``start()`` / ``stop()`` any number
    of times, on the same port."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port if port is not None else free_port()
        self._uvicorn: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def start(self) -> HttpServer:
        app = build_server(self.port).streamable_http_app()
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="critical", lifespan="on"
        )
        server = self._uvicorn = uvicorn.Server(config)
        server.config.timeout_graceful_shutdown = 0.1
        self._thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the MCP test server did not start on port {self.port}")
            time.sleep(0.005)
        wait_for_port(self.port)
        return self

    def stop(self) -> None:
        if self._uvicorn is None or self._thread is None:
            return
        self._uvicorn.should_exit = True
        self._uvicorn.force_exit = True
        self._thread.join(10)
        self._uvicorn = self._thread = None
        wait_for_port(self.port, up=False)


def main(argv: list[str]) -> None:
    transport = argv[1] if len(argv) > 1 else "stdio"
    if transport == "stdio":
        build_server().run("stdio")
    elif transport == "http":
        build_server(int(argv[2])).run("streamable-http")
    else:
        raise SystemExit(f"usage: {argv[0]} stdio | http PORT")


if __name__ == "__main__":
    main(sys.argv)
