"""The live WebSocket end to end: the real bundled models (tiny.en, CAM++, segmentation) on a
corpus excerpt streamed at 4x real time, auth before the upgrade, limits, malformed frames and
a client that goes away."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jiwer
import numpy as np
import pytest
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from inference.audio import decode
from server.http import create_http_app
from tests.testdata import dev_conversation
from tools.context import App
from tools.settings import Settings

BASE = "http://127.0.0.1:8000"
WS = "ws://127.0.0.1:8000/api/v1/live"
CLIP = dev_conversation("dev01-start")


def reference_text() -> str:
    meta = json.loads(CLIP.with_suffix(".json").read_text())
    return " ".join(turn["text"] for turn in meta["turns"])


def normal(text: str) -> str:
    return re.sub(r"[^\w' ]", " ", text.lower()).replace("ten", "10")


@pytest.fixture(scope="module")
def pcm() -> bytes:
    samples = decode(CLIP).samples
    return (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()


def live_app(tmp_path: Path, **overrides: Any) -> App:
    settings = Settings(data_dir=tmp_path / "data", **overrides)
    return App(settings, start_dir=tmp_path)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with live_app(tmp_path, live_max_sessions=1) as app, \
            TestClient(create_http_app(app), base_url=BASE) as test_client:
        yield test_client


def stream(ws: Any, pcm: bytes, seconds_per_frame: float = 0.5,
           speed: float | None = None) -> None:
    """Send PCM16 in frames, paced at `speed` times real time (None: as fast as possible)."""
    step = int(16000 * 2 * seconds_per_frame)
    started = time.monotonic()
    for k, i in enumerate(range(0, len(pcm), step)):
        ws.send_bytes(pcm[i:i + step])
        if speed is not None:
            time.sleep(max(0.0, started + (k + 1) * seconds_per_frame / speed
                           - time.monotonic()))


def events_until_stopped(ws: Any) -> list[dict[str, Any]]:
    events = []
    while True:
        event = json.loads(ws.receive_text())
        events.append(event)
        if event["type"] in ("stopped", "error"):
            return events


def segments_of(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each segment as its latest `final` has it (an open one is sent again as it grows)."""
    latest: dict[int, dict[str, Any]] = {}
    for event in events:
        if event["type"] == "final":
            latest[event["segment_id"]] = event
    return list(latest.values())


def test_a_stream_is_transcribed_with_speakers_then_finalised(
    client: TestClient, pcm: bytes
) -> None:
    with client.websocket_connect(WS, subprotocols=["speaker-memory.v1"]) as ws:
        assert ws.accepted_subprotocol == "speaker-memory.v1"
        ws.send_text(json.dumps({"type": "start", "format": "pcm16", "sample_rate": 16000,
                                 "title": "standup"}))
        started = json.loads(ws.receive_text())
        assert started["type"] == "started" and started["seq"] == 1
        stream(ws, pcm, speed=4.0)
        ws.send_text(json.dumps({"type": "stop"}))
        events = [started, *events_until_stopped(ws)]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[-1]["type"] == "stopped"
    finals = segments_of(events)
    assert all(e["complete"] for e in finals)
    live_text = " ".join(e["text"] for e in finals)
    assert jiwer.wer(normal(reference_text()), normal(live_text)) < 0.25, live_text
    assert all(e["speaker"]["label"].startswith("Unknown") for e in finals)
    assert len({e["speaker"]["id"] for e in finals}) >= 2  # two voices in the excerpt
    conversation_id = started["conversation_id"]
    # Readable while it happened, and finalised afterwards with the ids the client saw.
    status = client.get(f"/api/v1/conversations/{conversation_id}/status").json()
    assert status["status"] in ("processing", "done")
    for _ in range(600):
        status = client.get(f"/api/v1/conversations/{conversation_id}/status").json()
        if status["status"] == "done":
            break
        time.sleep(0.2)
    assert status["status"] == "done", status
    stored = client.get(f"/api/v1/conversations/{conversation_id}").json()
    stored_ids = {s["id"] for s in stored["segments"]}
    seen = {e["segment_id"] for e in finals}
    assert stored_ids & seen, "finalising kept none of the segment ids the client saw"
    assert stored["conversation"]["duration"] == pytest.approx(len(pcm) / 32000, abs=0.1)


def test_refusals_are_said_before_closing(client: TestClient, pcm: bytes) -> None:
    with client.websocket_connect(WS) as ws:
        ws.send_bytes(b"\x00\x01")  # audio before saying what it is
        event = json.loads(ws.receive_text())
        assert event["type"] == "error" and "start" in event["message"]
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_text()
        assert closed.value.code == 1008
    with client.websocket_connect(WS) as ws:
        ws.send_text(json.dumps({"type": "start", "format": "mp3"}))
        event = json.loads(ws.receive_text())
        assert event["type"] == "error" and "pcm16" in event["message"]
    # One session at most here: a second one is told to try later (1013).
    with client.websocket_connect(WS) as first:
        first.send_text(json.dumps({"type": "start", "format": "pcm16"}))
        assert json.loads(first.receive_text())["type"] == "started"
        with client.websocket_connect(WS) as second:
            second.send_text(json.dumps({"type": "start", "format": "pcm16"}))
            refused = json.loads(second.receive_text())
            assert refused["type"] == "error" and "LIVE_MAX_SESSIONS" in refused["message"]
            with pytest.raises(WebSocketDisconnect) as closed:
                second.receive_text()
            assert closed.value.code == 1013
        # A malformed frame mid-stream: an error event, then close; what came is kept.
        stream(first, pcm[: 16000 * 2 * 3])
        first.send_text("not json")
        events = events_until_stopped(first)
        assert events[-1]["type"] == "error" and "JSON" in events[-1]["message"]


def test_a_client_that_goes_away_leaves_its_session_finalised(
    client: TestClient, pcm: bytes
) -> None:
    with client.websocket_connect(WS) as ws:
        ws.send_text(json.dumps({"type": "start", "format": "pcm16", "sample_rate": 8000}))
        conversation_id = json.loads(ws.receive_text())["conversation_id"]
        # 8 kHz PCM (resampled by the server): a few seconds, then the socket just closes.
        eight = np.frombuffer(pcm, "<i2")[::2].tobytes()
        stream(ws, eight[: 8000 * 2 * 4])
    for _ in range(600):
        status = client.get(f"/api/v1/conversations/{conversation_id}/status").json()
        if status["status"] in ("done", "failed"):
            break
        time.sleep(0.2)
    assert status["status"] == "done", status
    detail = client.get(f"/api/v1/conversations/{conversation_id}").json()
    assert detail["conversation"]["duration"] == pytest.approx(4.0, abs=0.1)


def test_the_websocket_needs_the_token_or_a_ticket(tmp_path: Path) -> None:
    token = "a-long-enough-secret-token"
    with live_app(tmp_path, token=token) as app, \
            TestClient(create_http_app(app), base_url=BASE) as client:
        refused = WebSocketDisconnect  # closed before the upgrade is accepted: HTTP 403
        with pytest.raises(refused), client.websocket_connect(WS):
            pass
        with pytest.raises(refused), client.websocket_connect(
                WS, headers={"origin": "http://evil.example"}):
            pass
        bearer = {"authorization": f"Bearer {token}"}
        not_json = client.post("/api/v1/live/tickets", content="{}",
                               headers={**bearer, "content-type": "text/plain"})
        assert not_json.status_code == 400
        ticket = client.post("/api/v1/live/tickets", json={}, headers=bearer).json()["ticket"]
        offered = ["speaker-memory.v1", f"ticket.{ticket}"]
        with client.websocket_connect(WS, subprotocols=offered) as ws:
            assert ws.accepted_subprotocol == "speaker-memory.v1"
        with pytest.raises(refused), client.websocket_connect(WS, subprotocols=offered):
            pass  # a ticket is good for one use
        with client.websocket_connect(WS, headers=bearer) as ws:
            ws.send_text(json.dumps({"type": "stop"}))


def test_a_client_faster_than_real_time_is_told_and_slowed(tmp_path: Path, pcm: bytes) -> None:
    with live_app(tmp_path, live_max_behind_seconds=2.0) as app, \
            TestClient(create_http_app(app), base_url=BASE) as client, \
            client.websocket_connect(WS) as ws:
        ws.send_text(json.dumps({"type": "start", "format": "pcm16"}))
        json.loads(ws.receive_text())
        stream(ws, pcm)  # 20 s of audio at once
        ws.send_text(json.dumps({"type": "stop"}))
        events = events_until_stopped(ws)
    assert any(e["type"] == "slow_down" for e in events)
    # Slowed, not dropped: every word still arrives.
    text = " ".join(e["text"] for e in segments_of(events))
    assert jiwer.wer(normal(reference_text()), normal(text)) < 0.25, text
    assert events[-1]["type"] == "stopped" and events[-1]["skipped_seconds"] == 0
