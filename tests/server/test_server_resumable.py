"""Resuming a dropped stream, end to end: `speaker-memory serve` (real models) processes a
minute of audio while a raw HTTP client follows the call's SSE stream; in one run the client
cuts the connection in the middle and comes back with Last-Event-ID. Either way, every event
the server stored for the call (its progress and log notifications, then the result) arrives
exactly once, in order — checked against the server's own event file."""

from __future__ import annotations

import json
import sqlite3
import time
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.after_restart import INTERRUPTED
from tests.server.tests_support import running_server, serve_subprocess
from tests.testdata import DATA

pytestmark = pytest.mark.models

PROTOCOL = "2025-11-25"
CALL_ID = 2


@dataclass
class Event:
    id: str | None
    data: str
    retry: int | None

    @property
    def message(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.data)
        return parsed


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    folder = tmp_path_factory.mktemp("resumable")
    for base, _ in serve_subprocess(folder, token=None):
        yield base, folder / "data"


def long_recording(inbox: Path, name: str, parts: list[str]) -> Path:
    """A minute of speech: two 30 s test clips one after the other (a new file each run)."""
    inbox.mkdir(parents=True, exist_ok=True)
    target = inbox / name
    with wave.open(str(target), "wb") as out:
        for i, part in enumerate(parts):
            with wave.open(str(DATA / part), "rb") as clip:
                if i == 0:
                    out.setparams(clip.getparams())
                out.writeframes(clip.readframes(clip.getnframes()))
    return target


def sse_events(response: httpx.Response) -> Iterator[Event]:
    """The SSE events of a streaming response, as they come."""
    fields: dict[str, str] = {}
    data: list[str] = []
    for line in response.iter_lines():
        if line == "":
            if fields or data:
                retry = fields.get("retry")
                yield Event(fields.get("id"), "\n".join(data), int(retry) if retry else None)
            fields, data = {}, []
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            data.append(value)
        elif name:
            fields[name] = value


def call_tool(http: httpx.Client, base: str, headers: dict[str, str], name: str,
              **arguments: Any) -> dict[str, Any]:
    """A tool's structured result, read from the call's SSE stream, or from its one JSON body
    (a read-only tool's answer: server/resumable.py)."""
    call = {"jsonrpc": "2.0", "id": 99, "method": "tools/call",
            "params": {"name": name, "arguments": arguments}}
    with http.stream("POST", f"{base}/mcp", headers=headers, json=call) as response:
        if response.headers["content-type"].startswith("application/json"):
            response.read()
            messages = [response.json()]
        else:
            messages = [event.message for event in sse_events(response) if event.data]
        for message in messages:
            if message.get("id") == 99:
                result: dict[str, Any] = message["result"]
                assert not result.get("isError"), result
                structured: dict[str, Any] = result["structuredContent"]
                return structured
    raise AssertionError(f"no result for {name}")


def open_session(http: httpx.Client, base: str) -> dict[str, str]:
    headers = {"accept": "application/json, text/event-stream",
               "content-type": "application/json"}
    with http.stream("POST", f"{base}/mcp", headers=headers, json={
        "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": PROTOCOL, "capabilities": {},
            "clientInfo": {"name": "resume-test", "version": "1"}},
    }) as response:
        assert response.status_code == 200
        session = response.headers["mcp-session-id"]
        assert any("result" in e.message for e in sse_events(response) if e.data)
    headers |= {"mcp-session-id": session, "mcp-protocol-version": PROTOCOL}
    http.post(f"{base}/mcp", headers=headers,
              json={"jsonrpc": "2.0", "method": "notifications/initialized"})
    return headers


def stored_events(
    data_dir: Path, session: str, after: str = "0"
) -> list[tuple[str, dict[str, Any]]]:
    """What the server kept for the call: (event id, message), priming events left out."""
    db = sqlite3.connect(f"file:{data_dir / 'mcp_events.db'}?mode=ro", uri=True)
    try:
        rows = db.execute(
            "SELECT id, message FROM event WHERE session = ? AND stream = ? AND message IS NOT"
            " NULL AND id > ? ORDER BY id", (session, str(CALL_ID), int(after)),
        ).fetchall()
    finally:
        db.close()
    return [(str(r[0]), json.loads(r[1])) for r in rows]


@pytest.mark.parametrize("cut", [False, True], ids=["uncut", "cut"])
def test_every_notification_and_the_result_arrive_exactly_once(
    server: tuple[str, Path], cut: bool,
) -> None:
    base, data_dir = server
    parts = ["rdev01_first30s.wav", "sample_call.wav"]
    audio = long_recording(data_dir / "inbox", f"long_{'cut' if cut else 'uncut'}.wav",
                           parts if cut else parts[::-1])
    received: list[Event] = []
    with httpx.Client(timeout=httpx.Timeout(30, read=600)) as http:
        headers = open_session(http, base)
        call = {"jsonrpc": "2.0", "id": CALL_ID, "method": "tools/call", "params": {
            "name": "process_audio", "arguments": {"path": str(audio)},
            "_meta": {"progressToken": "p1"}}}
        with http.stream("POST", f"{base}/mcp", headers=headers, json=call) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            for event in sse_events(response):
                received.append(event)
                progress = [e for e in received if e.data and "notifications/progress" in e.data]
                if cut and len(progress) == 3:
                    break  # leaving the block drops the connection, the job still running
        priming = received[0]
        assert priming.id and priming.data == "" and priming.retry, "no priming event"
        before_cut = len(received)

        if cut:
            time.sleep(priming.retry / 1000)  # as a client does: it waits `retry` ms
            last_id = next(e.id for e in reversed(received) if e.id)
            resume = headers | {"accept": "text/event-stream", "last-event-id": last_id}
            with http.stream("GET", f"{base}/mcp", headers=resume) as response:
                assert response.status_code == 200
                received.extend(sse_events(response))  # ends after the result

    messages = [(e.id, e.message) for e in received if e.data]
    results = [m for _, m in messages if m.get("id") == CALL_ID]
    assert len(results) == 1, results
    result = results[0]["result"]
    assert not result.get("isError"), (result, (data_dir.parent / "server.log").read_text())
    assert result["structuredContent"]["status"] == "done"
    # Exactly what the server stored, each once and in order: nothing lost, nothing twice.
    session = headers["mcp-session-id"]
    assert messages == stored_events(data_dir, session)
    progress = [m["params"]["progress"] for _, m in messages
                if m.get("method") == "notifications/progress"]
    assert len(progress) > 3 and progress == sorted(progress)
    stages = [m["params"]["data"] for _, m in messages
              if m.get("method") == "notifications/message"]
    assert any("transcribing" in stage for stage in stages), stages
    if cut:  # the connection was cut while the job ran: events came on both connections
        after = [e for e in received[before_cut:] if e.data]
        assert any("notifications/progress" in e.data for e in after)


def test_a_stream_cut_by_a_server_restart_ends_with_what_was_stored_then_interrupted(
    tmp_path: Path,
) -> None:
    """The server dies mid-job (SIGKILL) and comes back on the same data folder: the client
    that resumes gets the events stored before the crash and an error saying the request was
    interrupted; the conversation is reported as interrupted and sending the audio again
    finishes it."""
    audio = long_recording(tmp_path / "data" / "inbox", "restart.wav", ["rdev01_first30s.wav"])
    received: list[Event] = []
    with httpx.Client(timeout=httpx.Timeout(30, read=600)) as http:
        with running_server(tmp_path, token=None) as (process, base):
            headers = open_session(http, base)
            call = {"jsonrpc": "2.0", "id": CALL_ID, "method": "tools/call", "params": {
                "name": "process_audio", "arguments": {"path": str(audio)},
                "_meta": {"progressToken": "p1"}}}
            with http.stream("POST", f"{base}/mcp", headers=headers, json=call) as response:
                for event in sse_events(response):
                    received.append(event)
                    if sum("notifications/progress" in e.data for e in received) == 2:
                        process.kill()  # a crash, in the middle of the job
                        process.wait()
                        break
        last_id = next(e.id for e in reversed(received) if e.id)
        assert last_id is not None

        with running_server(tmp_path, token=None) as (_, base):
            resume = headers | {"accept": "text/event-stream", "last-event-id": last_id}
            with http.stream("GET", f"{base}/mcp", headers=resume) as response:
                assert response.status_code == 200
                replayed = [(e.id, e.message) for e in sse_events(response) if e.data]
            *stored, (_, ending) = replayed
            assert stored == stored_events(tmp_path / "data", headers["mcp-session-id"], last_id)
            assert ending["id"] == CALL_ID and ending["error"]["message"] == INTERRUPTED

            fresh = open_session(http, base)
            listed = call_tool(http, base, fresh, "list_conversations")
            conversation_id = listed["conversations"][0]["id"]
            status = call_tool(http, base, fresh, "get_processing_status",
                               conversation_id=conversation_id)
            assert listed["conversations"][0]["status"] == "interrupted"
            assert status["status"] == "interrupted" and "send the same audio again" in (
                status["message"])
            again = call_tool(http, base, fresh, "process_audio", path=str(audio))
            assert again["status"] == "done" and again["conversation_id"] == conversation_id
