"""Real transports: `speaker-memory mcp` over stdio and `speaker-memory serve` (uvicorn on an
ephemeral loopback port) as subprocesses, driven by the SDK client and by the MCP Inspector CLI
(an independent client). Only read-only tools are called, so no model is loaded."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from server.mcp_server import TOOL_NAMES
from tests.server.tests_support import REPO, child_env, serve_subprocess

pytestmark = pytest.mark.anyio

TOKEN = "test-token-123"
INSPECTOR = "@modelcontextprotocol/inspector@0.15.0"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def http_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str | None]]:
    yield from serve_subprocess(tmp_path_factory.mktemp("http"), token=None)


@pytest.fixture(scope="module")
def token_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str | None]]:
    yield from serve_subprocess(tmp_path_factory.mktemp("http-token"), token=TOKEN)


async def test_stdio_subprocess_serves_every_tool(tmp_path: Path) -> None:
    params = StdioServerParameters(command=sys.executable, args=["-m", "server.cli", "mcp"],
                                   env=child_env(tmp_path / "data"), cwd=REPO)
    async with Client(params) as client:
        assert sorted(t.name for t in (await client.list_tools()).tools) == sorted(TOOL_NAMES)
        speakers = await client.call_tool("list_speakers", {})
        assert not speakers.is_error and speakers.structured_content == {"speakers": []}
        missing = await client.call_tool("get_conversation", {"conversation_id": 3})
        assert missing.is_error
        assert "call process_audio first" in missing.content[0].text  # type: ignore[union-attr]
    assert (tmp_path / "data" / "speaker_memory.db").exists()


def test_stdio_stdout_carries_only_protocol(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "server.cli", "mcp", "--log-level", "DEBUG"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=REPO, env=child_env(tmp_path / "data"),
    )
    assert process.stdin is not None and process.stdout is not None

    def send(message: dict[str, object]) -> None:
        assert process.stdin is not None
        process.stdin.write(json.dumps(message) + "\n")
        process.stdin.flush()

    def reply(request_id: int) -> dict[str, object]:
        assert process.stdout is not None
        while True:
            line = process.stdout.readline()
            assert line, "the server closed stdout early"
            message: dict[str, object] = json.loads(line)  # every stdout line is JSON-RPC
            assert message.get("jsonrpc") == "2.0"
            if message.get("id") == request_id:
                return message

    try:
        send({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "raw", "version": "1"}}})
        assert "result" in reply(1)
        send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        send({"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
        tools = reply(2)["result"]["tools"]  # type: ignore[index]
        assert len(tools) == len(TOOL_NAMES)
    finally:
        _, stderr = process.communicate(timeout=60)  # closes stdin: the server exits
    assert process.returncode == 0
    assert "DEBUG" in stderr  # the logs went to stderr


async def test_http_server_with_sdk_client(token_server: tuple[str, str | None]) -> None:
    base, token = token_server
    assert httpx.get(f"{base}/healthz").status_code == 401
    assert httpx.post(f"{base}/mcp", json={}).status_code == 401
    assert httpx.get(f"{base}/api/v1/speakers").status_code == 401
    async with (
        httpx2.AsyncClient(headers={"authorization": f"Bearer {token}"}) as http,
        Client(streamable_http_client(f"{base}/mcp", http_client=http)) as client,
    ):
        assert sorted(t.name for t in (await client.list_tools()).tools) == sorted(TOOL_NAMES)
        result = await client.call_tool("list_conversations", {})
        assert not result.is_error and result.structured_content is not None
        assert result.structured_content["total"] == 0
    rest = httpx.get(f"{base}/api/v1/speakers", headers={"authorization": f"Bearer {token}"})
    assert rest.status_code == 200 and rest.json() == {"speakers": []}


def test_serve_refuses_a_public_address_without_token(tmp_path: Path) -> None:
    process = subprocess.run(
        [sys.executable, "-m", "server.cli", "serve", "--host", "0.0.0.0", "--port", "9"],
        capture_output=True, text=True, cwd=REPO, env=child_env(tmp_path / "data"), timeout=120,
    )
    assert process.returncode == 2
    assert "SPEAKER_MEMORY_TOKEN" in process.stderr and "0.0.0.0" in process.stderr


def _inspector(args: list[str], env: dict[str, str]) -> dict[str, object]:
    npx = shutil.which("npx")
    if npx is None or shutil.which("node") is None:
        pytest.skip("node/npx is not installed: the MCP Inspector CLI cannot run")
    try:
        process = subprocess.run([npx, "-y", INSPECTOR, "--cli", *args], capture_output=True,
                                 text=True, cwd=REPO, env=env, timeout=300)
    except subprocess.TimeoutExpired:
        pytest.skip("the MCP Inspector CLI did not finish (npm registry unreachable?)")
    npm_failed = any(marker in process.stderr for marker in
                     ("npm ERR", "npm error", "ENOTFOUND", "EAI_AGAIN"))
    if process.returncode != 0 and npm_failed:
        pytest.skip(f"the MCP Inspector CLI could not be installed: {process.stderr[-300:]}")
    assert process.returncode == 0, process.stderr
    output: dict[str, object] = json.loads(process.stdout)
    return output


def test_inspector_cli_over_stdio(tmp_path: Path) -> None:
    env = child_env(tmp_path / "data")
    command = [sys.executable, "-m", "server.cli", "mcp"]
    listed = _inspector([*command, "--method", "tools/list"], env)
    names = sorted(t["name"] for t in listed["tools"])  # type: ignore[attr-defined]
    assert names == sorted(TOOL_NAMES)
    called = _inspector([*command, "--method", "tools/call", "--tool-name", "list_speakers"], env)
    assert called.get("isError") in (None, False)
    assert called["structuredContent"] == {"speakers": []}


def test_inspector_cli_over_http(http_server: tuple[str, str | None], tmp_path: Path) -> None:
    base, _ = http_server
    env = child_env(tmp_path / "unused")
    listed = _inspector([f"{base}/mcp", "--transport", "http", "--method", "tools/list"], env)
    assert sorted(t["name"] for t in listed["tools"]) == sorted(TOOL_NAMES)  # type: ignore[attr-defined]
    called = _inspector([f"{base}/mcp", "--transport", "http", "--method", "tools/call",
                         "--tool-name", "list_conversations", "--tool-arg", "limit=5"], env)
    assert called["structuredContent"]["total"] == 0  # type: ignore[index]
