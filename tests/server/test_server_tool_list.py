"""The MCP tools are one module-level list (server/mcp_tools.TOOLS): the server registers exactly
that list, the CLI makes its commands by going through it, and REST has a route for each or a
stated reason, so a tool defined anywhere else, or a tool some surface leaves out, fails here."""

from __future__ import annotations

from pathlib import Path

import pytest
from mcp import Client
from mcp.server.mcpserver import Context
from starlette.routing import Route

from server import cli_commands, mcp_server, mcp_tools
from server.cli_commands import COMMAND_OF_TOOL, command_of_tool
from server.mcp_server import TOOL_NAMES, build_server
from server.mcp_tools import CONFORMANCE_TOOLS, READ_ONLY, TOOLS, ToolSpec, tool
from server.rest import NOT_ON_REST, rest_routes
from server.security import Tickets
from tests.tools.fake_pipeline import FakePipeline
from tools.context import App
from tools.settings import Settings

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def listed(app: App) -> list[tuple[str, str, object]]:
    async with Client(build_server(app)) as client:
        return [(t.name, t.description or "", t.annotations)
                for t in (await client.list_tools()).tools]


async def test_the_server_registers_the_module_list_and_nothing_else(app: App) -> None:
    assert await listed(app) == [(s.name, s.description, s.annotations) for s in TOOLS]
    assert sorted(s.name for s in TOOLS) == sorted(TOOL_NAMES)


async def test_the_conformance_tools_come_from_their_own_list(
    tmp_path: Path, fake: FakePipeline
) -> None:
    settings = Settings(data_dir=tmp_path / "data", conformance_tools=True)
    with App(settings, pipeline=fake) as app:
        names = [name for name, _, _ in await listed(app)]
    assert names == [s.name for s in [*TOOLS, *CONFORMANCE_TOOLS]]


async def test_a_tool_is_one_module_level_definition(
    monkeypatch: pytest.MonkeyPatch, app: App
) -> None:
    """@tool is all a new tool needs to be served (and then the CLI asks for its command)."""
    tools = list(TOOLS)
    for module in (mcp_tools, mcp_server, cli_commands):
        monkeypatch.setattr(module, "TOOLS", tools)

    @tool(READ_ONLY)
    async def count_speakers(ctx: Context) -> int:
        """How many speakers the memory knows."""
        return len(mcp_tools.served(ctx).app.memory.list_speakers())

    assert tools[-1] == ToolSpec("count_speakers", count_speakers, READ_ONLY)
    async with Client(build_server(app)) as client:
        found = {t.name: t for t in (await client.list_tools()).tools}["count_speakers"]
        result = await client.call_tool("count_speakers", {})
    # The App reaches the function through its context, which is not an argument to send.
    assert found.input_schema["properties"] == {}
    assert result.structured_content == {"result": 0}

    with pytest.raises(LookupError, match="count_speakers has no CLI command"):
        command_of_tool()


async def test_no_schema_shows_how_a_tool_reaches_the_app(app: App) -> None:
    async with Client(build_server(app)) as client:
        tools = (await client.list_tools()).tools
    for listed_tool in tools:
        assert not {"ctx", "app"} & set(listed_tool.input_schema.get("properties", {}))


def test_every_tool_has_a_rest_route_or_a_stated_reason(app: App) -> None:
    routes = {route.name for route in rest_routes(app, Tickets()) if isinstance(route, Route)}
    tools = {s.name for s in TOOLS}
    assert (routes & tools) | set(NOT_ON_REST) == tools
    assert not routes & set(NOT_ON_REST)
    # The routes that are no tool's: downloads, the review page's, the WebSocket's tickets.
    assert routes - tools == {"segment_audio", "live_ticket", "conversation_audio",
                              "speaker_sample", "history", "info"}


def test_the_cli_goes_through_the_same_list() -> None:
    assert list(COMMAND_OF_TOOL) == [s.name for s in TOOLS]
    assert command_of_tool() == COMMAND_OF_TOOL
