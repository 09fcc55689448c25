"""MCP servers: their tools and prompts as ordinary tools and prompts of the agent, through the
official ``mcp`` package (``pip install 'flink-agents-async[mcp]'``).

Declared as upstream Flink Agents declares them (``flink_agents.integrations.mcp.mcp``)::

    @mcp_server
    @staticmethod
    def calculator() -> ResourceDescriptor:
        return ResourceDescriptor(clazz=ResourceName.MCP_SERVER, endpoint="http://127.0.0.1:8000/mcp")

    # or a server started as a subprocess, spoken to over its stdin/stdout:
    ResourceDescriptor(clazz=ResourceName.MCP_SERVER, command="python", args=["server.py"])

A chat model setup then names the server's tools and prompts like any other
(``tools=["add"]``, ``prompt="ask_sum"``): the runtime finds a tool or prompt no one declared
among the tools and prompts its MCP servers list (``Resource.provide``).

How it runs:

* **one connection per server, owned by the runtime**: ``open()`` (when the runtime starts, off
  its event loop) connects and lists the tools and prompts, and ``aclose()`` at shutdown ends the
  session (a stdio server's process exits). The session lives on an event loop of its own, in a
  thread of its own: the SDK's sessions are bound to the anyio task that opened them, and this
  way one session serves every caller, whichever loop or thread it runs on (the local host's
  loop, the Flink bridge's loop, a worker thread running sync code). A task there owns the
  session's context managers; requests are sent to that loop and awaited from the caller's;
* **tool calls are async** (``MCPTool.call`` is a coroutine function), so the tool-call action
  awaits them on the runtime's loop, as durable calls like every tool call;
* **reconnection**: a request whose connection failed (refused, lost, a stdio process gone, a
  session a restarted server does not know) reconnects, lists the tools and prompts again and is
  sent once more over the new session; if that fails too, the request fails, and the next one
  tries again. A tool call cut off by a crashing server may so run twice: at least once, as
  every durable call interrupted by a crash;
* **errors name the server** (``MCPServerError``): unreachable, no such tool or prompt, a tool
  the server described with an unusable input schema (only that tool is refused), a tool that
  failed.

What differs from upstream, and why: upstream opens a new connection for every call and lists
the tools when it compiles the plan (so the server must run wherever a job is built); ``command``
/ ``args`` / ``env`` / ``cwd`` (the stdio transport) are ours; a tool that reports an error
raises ``MCPServerError`` instead of returning the error text as a result; an ``MCPPrompt`` passes
the optional arguments it is given as well as the required ones.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from datetime import timedelta
from typing import Any, TypeVar
from urllib.parse import urlparse

from pydantic import Field, PrivateAttr, ValidationError, model_validator

from ...errors import ResourceError
from ...llm.messages import ChatMessage, MessageRole
from ...llm.prompts import Prompt
from ...llm.tools import Tool, ToolMetadata, ToolType
from ...logging import library_logger
from ...resources import Resource, ResourceNotFoundError, ResourceType

try:
    import anyio
    import httpx
    from mcp import types
    from mcp.client.session import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client
    from mcp.shared.exceptions import McpError
except ImportError as error:  # pragma: no cover - exercised with the SDK hidden
    raise ImportError(
        "flink_agents_async.integrations.mcp needs the mcp package: "
        "pip install 'flink-agents-async[mcp]'"
    ) from error

__all__ = ["MCPPrompt", "MCPServer", "MCPServerError", "MCPTool", "extract_mcp_content_item"]

logger = library_logger()
T = TypeVar("T")

_SESSION_TERMINATED = "Session terminated"  # the SDK's answer to a session a server forgot
_LINKS = threading.Lock()  # guards making and taking a server's link (not its requests)


class MCPServerError(ResourceError):
    """An MCP server could not do what was asked; the message names the server."""


# -- tools and prompts -------------------------------------------------------------------------


class MCPTool(Tool):
    """A tool of an MCP server: calling it calls the server (asynchronously)."""

    mcp_server: MCPServer | None = Field(default=None, exclude=True)
    mcp_server_name: str | None = None

    @classmethod
    def tool_type(cls) -> ToolType:
        """An MCP tool."""
        return ToolType.MCP

    async def call(self, *args: Any, **kwargs: Any) -> Any:
        """Call the tool on its server: its result's content items (text as ``str``)."""
        if self.mcp_server is None:
            raise MCPServerError(f"MCP tool {self.name!r} has no MCP server to call")
        return await self.mcp_server.call_tool_async(self.name, *args, **kwargs)

    def validate_arguments(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """The arguments checked against the server's schema, as JSON values, and only those
        given (the server applies its own defaults)."""
        if self.metadata is None:
            return dict(arguments)
        try:
            validated = self.metadata.args_schema.model_validate(dict(arguments))
        except ValidationError as error:
            raise ValueError(f"invalid arguments for tool {self.name!r}: {error}") from None
        return dict(validated.model_dump(mode="json", exclude_unset=True))

    def close(self) -> None:
        """Nothing to close: the server's connection is the server's."""


class MCPPrompt(Prompt):
    """A prompt of an MCP server: formatting it asks the server for its messages."""

    name: str
    title: str | None = None
    description: str | None = None
    prompt_arguments: list[types.PromptArgument] = Field(default_factory=list)
    mcp_server: MCPServer | None = Field(default=None, exclude=True)

    def _arguments(self, given: Mapping[str, Any]) -> dict[str, str]:
        """The declared arguments that were given, as text; a required one missing is an
        error naming it."""
        arguments: dict[str, str] = {}
        for argument in self.prompt_arguments:
            if argument.name in given:
                arguments[argument.name] = str(given[argument.name])
            elif argument.required:
                raise MCPServerError(
                    f"{self._server().describe()}: prompt {self.name!r} needs the argument "
                    f"{argument.name!r}"
                )
        return arguments

    def _server(self) -> MCPServer:
        if self.mcp_server is None:
            raise MCPServerError(f"MCP prompt {self.name!r} has no MCP server to ask")
        return self.mcp_server

    def format_string(self, **kwargs: Any) -> str:
        """The server's messages for these arguments, their texts one per line."""
        return "\n".join(message.content for message in self.format_messages(**kwargs))

    def format_messages(
        self, role: MessageRole = MessageRole.SYSTEM, **kwargs: Any
    ) -> list[ChatMessage]:
        """The server's messages for these arguments (each with the role the server gives)."""
        return self._server().get_prompt(self.name, self._arguments(kwargs))

    async def aformat_messages(
        self, role: MessageRole = MessageRole.SYSTEM, **kwargs: Any
    ) -> list[ChatMessage]:
        """``format_messages`` for async callers (the chat action's): without blocking the
        loop."""
        return await self._server().aget_prompt(self.name, self._arguments(kwargs))

    def close(self) -> None:
        """Nothing to close: the server's connection is the server's."""


# -- the server --------------------------------------------------------------------------------


class MCPServer(Resource):
    """An MCP server, reached over streamable HTTP (``endpoint``) or stdio (``command``).

    HTTP (upstream's fields): ``endpoint`` (``http(s)://host:port/mcp``), ``headers``, ``auth``
    (an ``httpx.Auth``), ``timeout`` (seconds, for connecting and for each request) and
    ``sse_read_timeout`` (seconds a server's event stream may stay silent). Stdio: ``command``,
    ``args``, ``env`` (added to a minimal default environment) and ``cwd``; ``timeout`` too.
    """

    endpoint: str | None = None
    headers: dict[str, Any] | None = None
    timeout: float = Field(default=30, gt=0)
    sse_read_timeout: float = Field(default=60 * 5, gt=0)
    auth: httpx.Auth | None = None
    command: str | None = None
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] | None = None
    cwd: str | None = None

    _link: _Link | None = PrivateAttr(default=None)
    _tools: dict[str, MCPTool] = PrivateAttr(default_factory=dict)
    _unusable_tools: dict[str, str] = PrivateAttr(default_factory=dict)
    _prompts: dict[str, MCPPrompt] = PrivateAttr(default_factory=dict)

    @classmethod
    def resource_type(cls) -> ResourceType:
        """An MCP server."""
        return ResourceType.MCP_SERVER

    @model_validator(mode="after")
    def _one_transport(self) -> MCPServer:
        if (self.endpoint is None) == (self.command is None):
            raise ValueError(
                "MCPServer needs either endpoint (streamable HTTP) or command (stdio), not "
                f"{'both' if self.endpoint is not None else 'neither'}"
            )
        if self.endpoint is not None:
            parsed = urlparse(self.endpoint)
            if parsed.scheme not in ("http", "https") or not parsed.netloc:
                raise ValueError(f"Invalid HTTP endpoint: {self.endpoint!r}")
        return self

    def __getstate__(self) -> dict[Any, Any]:
        """Pickled (a plan shipped to Flink's workers) without its connection: a copy opens
        its own."""
        state = super().__getstate__()
        state["__pydantic_private__"] = {
            **(state.get("__pydantic_private__") or {}),
            "_link": None,
            "_tools": {},
            "_unusable_tools": {},
            "_prompts": {},
        }
        return state

    def describe(self) -> str:
        """How errors name this server: its resource name and where it is."""
        where = (
            self.endpoint
            if self.endpoint is not None
            else "stdio: " + " ".join([self.command or "", *self.args])
        )
        name = self.resource_name
        return f"MCP server {name!r} ({where})" if name else f"MCP server {where}"

    # -- lifecycle --------------------------------------------------------------------------

    def open(self) -> None:
        """Connect, and list the server's tools and prompts (blocks the calling thread until
        then; the runtime opens its MCP servers in a worker thread)."""
        try:
            self._connection().run(self._connection().connect())
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """End the session (a stdio server's process exits) and stop its thread."""
        link = self._take_link()
        if link is not None:
            link.stop()

    async def aclose(self) -> None:
        """``close`` awaited on the caller's loop."""
        link = self._take_link()
        if link is not None:
            await link.astop()

    def _take_link(self) -> _Link | None:
        with _LINKS:
            link, self._link = self._link, None
        return link

    def _connection(self) -> _Link:
        with _LINKS:
            if self._link is None:
                self._link = _Link(self)
            return self._link

    @contextlib.asynccontextmanager
    async def _transport(self) -> AsyncIterator[tuple[Any, Any]]:
        """The SDK's streams to the server (entered and left by the owner task)."""
        if self.command is not None:
            parameters = StdioServerParameters(
                command=self.command, args=list(self.args), env=self.env, cwd=self.cwd
            )
            async with stdio_client(parameters) as (read, write):
                yield read, write
            return
        assert self.endpoint is not None
        from mcp.client import streamable_http

        timeout = httpx.Timeout(self.timeout, read=self.sse_read_timeout)
        modern = getattr(streamable_http, "streamable_http_client", None)
        if modern is None:  # mcp < 1.24: the transport makes the HTTP client itself
            async with streamable_http.streamablehttp_client(
                self.endpoint,
                headers=self.headers,
                timeout=timedelta(seconds=self.timeout),
                sse_read_timeout=timedelta(seconds=self.sse_read_timeout),
                auth=self.auth,
            ) as (read, write, _):
                yield read, write
            return
        async with (
            httpx.AsyncClient(
                headers=self.headers, timeout=timeout, auth=self.auth, follow_redirects=True
            ) as client,
            modern(self.endpoint, http_client=client) as (read, write, _),
        ):
            yield read, write

    # -- discovery: what the runtime finds by name -----------------------------------------

    def provide(self, resource_type: ResourceType, name: str) -> Any:
        """The server's tool or prompt of that name (listed when it connected)."""
        if self._link is None or not self._link.discovered:
            self.open()
        if resource_type is ResourceType.TOOL:
            if name in self._unusable_tools:
                raise MCPServerError(self._unusable_tools[name])
            tool = self._tools.get(name)
            if tool is not None:
                return tool
            raise ResourceNotFoundError(
                f"{self.describe()} has no tool {name!r} (its tools: "
                f"{', '.join(sorted([*self._tools, *self._unusable_tools])) or 'none'})"
            )
        if resource_type is ResourceType.PROMPT:
            prompt = self._prompts.get(name)
            if prompt is not None:
                return prompt
            raise ResourceNotFoundError(
                f"{self.describe()} has no prompt {name!r} (its prompts: "
                f"{', '.join(sorted(self._prompts)) or 'none'})"
            )
        raise ResourceNotFoundError(f"{self.describe()} provides no {resource_type.value}s")

    async def _discover(self, session: ClientSession) -> None:
        """List the tools and prompts (after each connect: a restarted server may differ)."""
        tools: dict[str, MCPTool] = {}
        unusable: dict[str, str] = {}
        cursor: str | None = None
        while True:
            listed = await (session.list_tools(cursor=cursor) if cursor else session.list_tools())
            for described in listed.tools:
                try:
                    tools[described.name] = self._tool(described)
                except Exception as error:
                    unusable[described.name] = (
                        f"{self.describe()} describes tool {described.name!r} with an unusable "
                        f"input schema: {error}"
                    )
                    logger.warning("unusable MCP tool", problem=unusable[described.name])
            cursor = listed.nextCursor
            if not cursor:
                break
        prompts: dict[str, MCPPrompt] = {}
        capabilities = session.get_server_capabilities()
        if capabilities is not None and capabilities.prompts is not None:
            cursor = None
            while True:
                found = await (
                    session.list_prompts(cursor=cursor) if cursor else session.list_prompts()
                )
                for listed_prompt in found.prompts:
                    prompts[listed_prompt.name] = MCPPrompt(
                        name=listed_prompt.name,
                        title=getattr(listed_prompt, "title", None),
                        description=listed_prompt.description,
                        prompt_arguments=list(listed_prompt.arguments or []),
                        mcp_server=self,
                    )
                cursor = found.nextCursor
                if not cursor:
                    break
        self._tools, self._unusable_tools, self._prompts = tools, unusable, prompts

    def _tool(self, described: types.Tool) -> MCPTool:
        schema = described.inputSchema
        _check_object_schema(schema)
        metadata = ToolMetadata(
            name=described.name,
            description=described.description or "",
            args_schema=dict(schema) if schema else {"type": "object", "properties": {}},
        )
        metadata.get_parameters_dict()  # what a model is offered: fails here, not later
        return MCPTool(metadata=metadata, mcp_server=self, mcp_server_name=self.resource_name)

    # -- upstream's API, sync and async ----------------------------------------------------

    def list_tools(self) -> list[MCPTool]:
        """The server's tools (listed again)."""
        self._connection().run(self._connection().request(self._discover))
        return list(self._tools.values())

    async def alist_tools(self) -> list[MCPTool]:
        """``list_tools`` for async callers."""
        await self._connection().arun(self._connection().request(self._discover))
        return list(self._tools.values())

    def get_tool(self, name: str) -> MCPTool:
        """The server's tool of that name."""
        self.list_tools()
        tool: MCPTool = self.provide(ResourceType.TOOL, name)
        return tool

    def get_tool_metadata(self, name: str) -> ToolMetadata:
        """The name, description and argument schema of the server's tool."""
        metadata = self.get_tool(name).metadata
        assert metadata is not None
        return metadata

    def list_prompts(self) -> list[MCPPrompt]:
        """The server's prompts (listed again; none if it has no prompts capability)."""
        self._connection().run(self._connection().request(self._discover))
        return list(self._prompts.values())

    async def alist_prompts(self) -> list[MCPPrompt]:
        """``list_prompts`` for async callers."""
        await self._connection().arun(self._connection().request(self._discover))
        return list(self._prompts.values())

    def get_prompt(self, name: str, arguments: dict[str, str] | None = None) -> list[ChatMessage]:
        """The messages of the server's prompt for these arguments."""
        return self._connection().run(self._get_prompt(name, arguments))

    async def aget_prompt(
        self, name: str, arguments: dict[str, str] | None = None
    ) -> list[ChatMessage]:
        """``get_prompt`` for async callers."""
        return await self._connection().arun(self._get_prompt(name, arguments))

    async def _get_prompt(self, name: str, arguments: dict[str, str] | None) -> list[ChatMessage]:
        async def get(session: ClientSession) -> types.GetPromptResult:
            return await session.get_prompt(name, arguments)

        result = await self._connection().request(get)
        messages = []
        for message in result.messages:
            if not isinstance(message.content, types.TextContent):
                raise MCPServerError(
                    f"{self.describe()}: prompt {name!r} has a message that is not text "
                    f"({type(message.content).__name__})"
                )
            messages.append(
                ChatMessage(role=MessageRole(message.role), content=message.content.text)
            )
        return messages

    async def call_tool_async(self, tool_name: str, *args: Any, **kwargs: Any) -> Any:
        """Call a tool of the server: the content items of its result (``str`` for text).
        Arguments are keywords, or one mapping. Raises ``MCPServerError`` for a tool the
        server does not list and for a result the server marks as an error."""
        arguments = dict(kwargs) if kwargs else (dict(args[0]) if args else {})
        return await self._connection().arun(self._call_tool(tool_name, arguments))

    def call_tool(self, tool_name: str, *args: Any, **kwargs: Any) -> Any:
        """``call_tool_async`` for sync callers."""
        arguments = dict(kwargs) if kwargs else (dict(args[0]) if args else {})
        return self._connection().run(self._call_tool(tool_name, arguments))

    async def _call_tool(self, name: str, arguments: dict[str, Any]) -> Any:
        link = self._connection()

        async def call(session: ClientSession) -> types.CallToolResult:
            if name not in self._tools and name not in self._unusable_tools:
                raise MCPServerError(
                    f"{self.describe()} has no tool {name!r} (its tools: "
                    f"{', '.join(sorted(self._tools)) or 'none'})"
                )
            return await session.call_tool(
                name, arguments, read_timeout_seconds=timedelta(seconds=self.timeout)
            )

        result = await link.request(call)
        content = [extract_mcp_content_item(item) for item in result.content]
        if result.isError:
            text = "; ".join(str(item) for item in content) or "no details"
            raise MCPServerError(f"{self.describe()}: tool {name!r} failed: {text}")
        return content


def _check_object_schema(schema: Any) -> None:
    """Refuse an input schema that is not a JSON schema of an object (the MCP spec's rule)."""
    if not isinstance(schema, Mapping):
        raise ValueError(f"it must be an object, got {type(schema).__name__}")
    if schema.get("type", "object") != "object":
        raise ValueError(f"its type must be 'object', got {schema.get('type')!r}")
    properties = schema.get("properties", {})
    if not isinstance(properties, Mapping):
        raise ValueError(f"its properties must be an object, got {properties!r:.100}")
    for name, described in properties.items():
        if not isinstance(described, Mapping | bool):
            raise ValueError(f"property {name!r} must be a schema, got {described!r:.100}")
    required = schema.get("required", [])
    if not isinstance(required, list) or not all(isinstance(item, str) for item in required):
        raise ValueError(f"its required must be a list of names, got {required!r:.100}")


def extract_mcp_content_item(content_item: Any) -> dict[str, Any] | str:
    """One content item of a tool's result as a plain value: text as ``str``, an image or an
    embedded resource as a dict (``type``, and ``data``/``mimeType`` or ``uri`` with
    ``text``/``blob``), anything else as its JSON form."""
    if isinstance(content_item, types.TextContent):
        return content_item.text
    if isinstance(content_item, types.ImageContent):
        return {"type": "image", "data": content_item.data, "mimeType": content_item.mimeType}
    if isinstance(content_item, types.EmbeddedResource):
        resource = content_item.resource
        item: dict[str, Any] = {"type": "resource", "uri": str(resource.uri)}
        if isinstance(resource, types.TextResourceContents):
            item["text"] = resource.text
        else:
            item["blob"] = resource.blob
        return item
    if hasattr(content_item, "model_dump"):
        return dict(content_item.model_dump(mode="json"))
    return str(content_item)


# -- the connection ----------------------------------------------------------------------------


class _Link:
    """One server's session, held by an owner task on a private event loop in a daemon thread.

    Every coroutine below runs on that loop; ``run`` (sync) and ``arun`` (from any other loop)
    hand them over. The owner task enters the transport and the ``ClientSession`` and leaves
    them (the SDK's anyio task groups must be left by the task that entered them); it ends when
    told to, or when the transport fails (which cancels it).
    """

    def __init__(self, server: MCPServer) -> None:
        self.server = server
        self.discovered = False
        self.loop = asyncio.new_event_loop()
        self._session: ClientSession | None = None
        self._owner: asyncio.Task[None] | None = None
        self._stop: asyncio.Event | None = None
        self._failure: BaseException | None = None
        self._connecting: asyncio.Lock | None = None
        self._stopped = False
        name = server.resource_name or server.endpoint or server.command
        self.thread = threading.Thread(target=self._serve, name=f"mcp-{name}", daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            with contextlib.suppress(Exception):
                self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()

    # -- handing work to the loop ----------------------------------------------------------

    def _submit(self, work: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        if threading.current_thread() is self.thread:
            work.close()
            raise RuntimeError("an MCP server's own thread cannot wait for it")
        if self._stopped or self.loop.is_closed():
            work.close()
            raise MCPServerError(f"{self.server.describe()} is closed")
        return asyncio.run_coroutine_threadsafe(work, self.loop)

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        """Run ``work`` on the loop, waiting in this thread."""
        return self._submit(work).result()

    async def arun(self, work: Coroutine[Any, Any, T]) -> T:
        """Run ``work`` on the loop, awaiting it on the caller's (cancelling it cancels it)."""
        return await asyncio.wrap_future(self._submit(work))

    # -- on the loop -----------------------------------------------------------------------

    async def connect(self) -> ClientSession:
        """The live session: the current one, or a new one (tools and prompts listed)."""
        if self._session is not None and self._owner is not None and not self._owner.done():
            return self._session
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._session is not None and self._owner is not None and not self._owner.done():
                return self._session
            await self._drop()
            ready: asyncio.Future[ClientSession] = self.loop.create_future()
            self._stop = asyncio.Event()
            self._failure = None
            self._owner = self.loop.create_task(self._own(ready, self._stop))
            try:
                session = await ready
            except Exception as error:
                raise MCPServerError(
                    f"{self.server.describe()} cannot be reached: {_describe(error)}"
                ) from error
            try:
                await self._within_timeout(self.server._discover(session))
            except Exception as error:
                await self._drop()
                raise MCPServerError(
                    f"{self.server.describe()}: listing its tools and prompts failed: "
                    f"{_describe(error)}"
                ) from error
            self._session = session
            self.discovered = True
            return session

    async def _within_timeout(self, work: Awaitable[T]) -> T:
        return await asyncio.wait_for(work, self.server.timeout)

    async def _own(self, ready: asyncio.Future[ClientSession], stop: asyncio.Event) -> None:
        """The owner task: holds the session's context managers from connect to stop."""
        try:
            async with contextlib.AsyncExitStack() as stack:
                read, write = await stack.enter_async_context(self.server._transport())
                session = await stack.enter_async_context(
                    ClientSession(read, write, timedelta(seconds=self.server.timeout))
                )
                with anyio.fail_after(self.server.timeout):
                    await session.initialize()
                ready.set_result(session)
                await stop.wait()
        except BaseException as error:  # the transport failed (cancelling us), or was stopped
            self._failure = _cause(error)
            if not ready.done():
                ready.set_exception(self._failure)
            if isinstance(error, KeyboardInterrupt | SystemExit):
                raise
        finally:
            if self._owner is asyncio.current_task():
                self._session = None

    async def _drop(self) -> None:
        """End the current session, if any (its owner leaves the context managers)."""
        owner, stop = self._owner, self._stop
        self._session = None
        if owner is None or stop is None:
            return
        stop.set()
        try:
            await asyncio.wait_for(asyncio.shield(owner), 10)
        except TimeoutError:
            owner.cancel()
            await asyncio.gather(owner, return_exceptions=True)

    async def request(self, send: Callable[[ClientSession], Awaitable[T]]) -> T:
        """``send(session)``, reconnecting once when it cannot have reached the server."""
        for attempt in (1, 2):
            session = await self.connect()
            owner = self._owner
            assert owner is not None
            sent: asyncio.Future[T] = asyncio.ensure_future(send(session))
            try:
                racing: set[asyncio.Future[Any]] = {sent, owner}
                await asyncio.wait(racing, return_when=asyncio.FIRST_COMPLETED)
            finally:
                if not sent.done():
                    sent.cancel()
                    await asyncio.gather(sent, return_exceptions=True)
            if sent.cancelled():  # the connection failed while the request was out
                error: BaseException = self._failure or ConnectionError("connection lost")
            elif sent.exception() is None:
                return sent.result()
            else:
                error = sent.exception()  # type: ignore[assignment]
            if isinstance(error, MCPServerError):
                raise error
            if _connection_failed(error) or owner.done():
                await self._drop()
                if attempt == 1:
                    logger.info("reconnecting to MCP server", server=self.server.describe())
                    continue
                raise MCPServerError(
                    f"{self.server.describe()} cannot be reached: {_describe(error)}"
                ) from error
            raise MCPServerError(f"{self.server.describe()}: {_describe(error)}") from error
        raise AssertionError("unreachable")  # pragma: no cover

    async def _shutdown(self) -> None:
        await self._drop()
        self.discovered = False

    # -- stopping --------------------------------------------------------------------------

    def stop(self) -> None:
        """End the session and the thread, waiting here."""
        if self._stopped:
            return
        try:
            if threading.current_thread() is not self.thread and self.loop.is_running():
                self.run(self._shutdown())
        finally:
            self._end_thread()

    async def astop(self) -> None:
        """End the session and the thread, awaiting it."""
        if self._stopped:
            return
        try:
            if self.loop.is_running():
                await self.arun(self._shutdown())
        finally:
            self._end_thread()

    def _end_thread(self) -> None:
        self._stopped = True
        with contextlib.suppress(RuntimeError):  # already closed
            self.loop.call_soon_threadsafe(self.loop.stop)
        if threading.current_thread() is not self.thread:
            self.thread.join(5)


def _cause(error: BaseException) -> BaseException:
    """The error inside the SDK's exception groups (the first that is not a cancellation)."""
    while isinstance(error, BaseExceptionGroup):
        inner = [e for e in error.exceptions if not isinstance(e, asyncio.CancelledError)]
        error = (inner or list(error.exceptions))[0]
    return error


def _describe(error: BaseException) -> str:
    error = _cause(error)
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def _connection_failed(error: BaseException) -> bool:
    """Whether a request failed with its connection: refused, closed (a stdio server's process
    gone), lost, or a session the server does not know (it restarted)."""
    error = _cause(error)
    if isinstance(error, TimeoutError | httpx.TimeoutException):  # slow, not gone
        return isinstance(error, httpx.ConnectTimeout)
    if isinstance(error, McpError):
        return error.error.code == types.CONNECTION_CLOSED or (
            error.error.message == _SESSION_TERMINATED
        )
    return isinstance(
        error,
        httpx.TransportError
        | OSError
        | anyio.ClosedResourceError
        | anyio.BrokenResourceError
        | anyio.EndOfStream,
    )


MCPTool.model_rebuild()
MCPPrompt.model_rebuild()
