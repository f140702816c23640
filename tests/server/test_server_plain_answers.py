"""Over Streamable HTTP, a call of a read-only tool that asks for no progress is answered with one
JSON body (nothing to resume, nothing kept in the event file); every other request still gets
its resumable SSE stream."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from server.http import create_http_app
from server.mcp_tools import PLAIN_TOOLS, TOOLS
from tools.context import App

HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
PROTOCOL = "2025-11-25"


@pytest.fixture
def session(app: App) -> Iterator[tuple[TestClient, dict[str, str]]]:
    with TestClient(create_http_app(app), base_url="http://127.0.0.1:8000") as client:
        opened = client.post("/mcp", headers=HEADERS, json={
            "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": PROTOCOL, "capabilities": {},
                "clientInfo": {"name": "test", "version": "1"}}})
        assert opened.status_code == 200, opened.text
        headers = HEADERS | {"mcp-session-id": opened.headers["mcp-session-id"],
                             "mcp-protocol-version": PROTOCOL}
        client.post("/mcp", headers=headers,
                    json={"jsonrpc": "2.0", "method": "notifications/initialized"})
        yield client, headers


def call(client: TestClient, headers: dict[str, str], request_id: int, tool: str,
         arguments: dict[str, Any], meta: dict[str, Any] | None = None
         ) -> tuple[str, dict[str, Any]]:
    """(content type, the JSON-RPC answer) of one tools/call."""
    params: dict[str, Any] = {"name": tool, "arguments": arguments}
    if meta is not None:
        params["_meta"] = meta
    response = client.post("/mcp", headers=headers, json={
        "jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params})
    assert response.status_code == 200, response.text
    kind = response.headers["content-type"].split(";")[0]
    if kind == "application/json":
        return kind, dict(response.json())
    answers = [json.loads(line[5:]) for line in response.text.splitlines()
               if line.startswith("data:") and line[5:].strip()]
    return kind, answers[-1]


def stored_streams(app: App) -> set[str]:
    with sqlite3.connect(app.settings.event_store_path) as db:
        return {row[0] for row in db.execute("SELECT stream FROM event")}


def test_the_plain_tools_are_the_read_only_ones() -> None:
    read_only = {s.name for s in TOOLS if s.annotations and s.annotations.read_only_hint}
    assert read_only == PLAIN_TOOLS
    assert {"list_speakers", "search_conversations", "get_conversation"} <= PLAIN_TOOLS
    assert not {"process_audio", "rebuild_voice_profiles", "rename_speaker"} & PLAIN_TOOLS


def test_a_read_only_call_is_answered_with_one_json_body(
    session: tuple[TestClient, dict[str, str]], app: App
) -> None:
    client, headers = session
    kind, answer = call(client, headers, 7, "list_speakers", {})
    assert kind == "application/json"
    assert answer["id"] == 7 and answer["result"]["structuredContent"] == {"speakers": []}
    assert "7" not in stored_streams(app)  # nothing to resume, so nothing kept
    # A refusal comes back the same way, as the tool's error result.
    kind, refused = call(client, headers, 8, "get_conversation", {"conversation_id": 99})
    assert kind == "application/json" and refused["result"]["isError"]
    assert "no conversation 99" in refused["result"]["content"][0]["text"]


def test_asking_for_progress_or_changing_data_keeps_the_sse_stream(
    session: tuple[TestClient, dict[str, str]], app: App
) -> None:
    client, headers = session
    kind, answer = call(client, headers, 9, "list_speakers", {}, meta={"progressToken": "p"})
    assert kind == "text/event-stream" and answer["result"]["structuredContent"]
    kind, answer = call(client, headers, 10, "delete_all_unknown_speakers", {})
    assert kind == "text/event-stream" and not answer["result"].get("isError")
    assert {"9", "10"} <= stored_streams(app)  # resumable: stored


def test_a_plain_call_still_needs_its_session(
    session: tuple[TestClient, dict[str, str]]
) -> None:
    client, _ = session
    response = client.post("/mcp", headers=HEADERS, json={
        "jsonrpc": "2.0", "id": 11, "method": "tools/call",
        "params": {"name": "list_speakers", "arguments": {}}})
    assert response.status_code == 400 and "session" in response.text.lower()
