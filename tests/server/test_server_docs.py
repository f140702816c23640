"""Documentation cannot fall behind the code (after sqlite-utils' tests/test_docs.py): every MCP
tool needs a description and a README row, every REST route a README row, and the README's
settings table is Settings'."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from mcp import Client

from server.docs import env_rows
from server.mcp_server import TOOL_NAMES, build_server
from server.rest import rest_routes
from server.security import Tickets
from tools.context import App

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.fixture
def readme() -> str:
    return README.read_text(encoding="utf-8")


def _tool_rows(readme: str) -> dict[str, str]:
    section = readme.split("## Tools", 1)[1].split("\n## ", 1)[0]
    return {m.group(1): m.group(2).strip()
            for m in re.finditer(r"^\| `([a-z_]+)` \| (.+) \|$", section, re.MULTILINE)}


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_every_tool_has_a_description_and_a_readme_row(app: App, readme: str) -> None:
    async with Client(build_server(app)) as client:
        tools = (await client.list_tools()).tools
    rows = _tool_rows(readme)
    for tool in tools:
        assert tool.description and len(tool.description.split()) >= 5, (
            f"MCP tool {tool.name} needs a description an agent can act on")
        assert tool.name in rows, f"README.md's tool table lacks a row for {tool.name}"
        assert rows[tool.name], f"README.md's row for {tool.name} is empty"
    assert set(rows) == {t.name for t in tools}, "README.md lists tools the server lacks"
    assert set(rows) == set(TOOL_NAMES)


def test_readme_settings_table_is_generated_from_settings(readme: str) -> None:
    for env, default, meaning in env_rows():
        row = f"| `{env}` | {default} | {meaning} |"
        assert row in readme, (
            f"README.md is out of date for {env}: run `.venv/bin/python -m server.docs` and "
            "paste the table into the Configuration section")


def test_readme_quick_start_has_exactly_the_two_commands(readme: str) -> None:
    quick = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```bash\n(.+?)\n```", quick, re.DOTALL)
    assert commands == ["bash scripts/setup.sh && .venv/bin/speaker-memory serve",
                        "bash scripts/test.sh"]


def test_every_rest_route_has_a_readme_row(app: App, readme: str) -> None:
    section = readme.split("## REST API", 1)[1].split("\n## ", 1)[0]
    rows = set(re.findall(r"^\| `([A-Z]+ /api/v1/[^`?]*)[^`]*` \|", section, re.MULTILINE))
    routes = {f"{method} /api/v1{re.sub(r':[a-z]+}', '}', route.path)}"
              for route in rest_routes(app, Tickets()) for method in route.methods or ()
              if method != "HEAD"}
    assert routes - rows == set(), "README.md's REST table lacks these routes"
    assert rows - routes == set(), "README.md's REST table lists routes the server lacks"
