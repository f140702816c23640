"""WebSocket /api/v1/live: a client streams audio, the server answers with the session's events.

Protocol (README "Live listening"): the first frame is JSON
`{"type": "start", "format": "pcm16"|"webm", "sample_rate": 16000, "title": "..."}`; then binary
audio frames; then `{"type": "stop"}` (closing the socket also stops). Every server frame is a
JSON event with `seq` and `type` (tools.live_session). Auth happens before the upgrade is
accepted (server.security.AccessGuard: bearer header, or a one-use ticket as subprotocol).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import anyio
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from inference.live_audio import LiveDecoder, decoder_for
from memory.errors import SpeakerMemoryError, TooManyLiveSessions
from tools import live
from tools.context import App
from tools.errors import explain
from tools.live_session import LiveEvent, LiveSession

log = logging.getLogger(__name__)

PROTOCOL = "speaker-memory.v1"
MAX_FRAME_BYTES = 1 << 20
START_TIMEOUT_SECONDS = 30.0
"""A client that does not say how it will send audio within this long is closed."""
WAIT_SLICE_SECONDS = 1.0

CLOSE_NORMAL, CLOSE_POLICY, CLOSE_TOO_BIG, CLOSE_TRY_LATER = 1000, 1008, 1009, 1013


class _Refused(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def live_endpoint(app: App) -> Any:
    async def endpoint(websocket: WebSocket) -> None:
        offered = websocket.scope.get("subprotocols") or []
        await websocket.accept(subprotocol=PROTOCOL if PROTOCOL in offered else None)
        try:
            start = await _start_message(websocket)
            decoder = decoder_for(start["format"], start["sample_rate"])
            session = await anyio.to_thread.run_sync(
                live.start_session, app, start["title"], "websocket")
        except _Refused as exc:
            await _close_with_error(websocket, str(exc), exc.code)
            return
        except TooManyLiveSessions as exc:
            await _close_with_error(websocket, await _explain(app, exc), CLOSE_TRY_LATER)
            return
        except SpeakerMemoryError as exc:
            await _close_with_error(websocket, await _explain(app, exc), CLOSE_POLICY)
            return
        await _serve(app, websocket, session, decoder)

    return endpoint


async def _explain(app: App, exc: SpeakerMemoryError) -> str:
    return await anyio.to_thread.run_sync(explain, app, exc)


async def _start_message(websocket: WebSocket) -> dict[str, Any]:
    try:
        with anyio.fail_after(START_TIMEOUT_SECONDS):
            message = await websocket.receive()
    except TimeoutError as exc:
        raise _Refused("no start message: send {\"type\": \"start\", \"format\": \"pcm16\", "
                       "\"sample_rate\": 16000} first", CLOSE_POLICY) from exc
    text = message.get("text")
    if text is None:
        raise _Refused("the first frame must be a JSON start message, e.g. {\"type\": "
                       "\"start\", \"format\": \"pcm16\", \"sample_rate\": 16000}", CLOSE_POLICY)
    start = _json(text)
    if start.get("type") != "start":
        raise _Refused(f"the first message must have type 'start', got {start.get('type')!r}",
                       CLOSE_POLICY)
    audio_format = start.get("format", "pcm16")
    rate = start.get("sample_rate", 16000)
    title = start.get("title")
    if title is not None and not isinstance(title, str):  # its length: tools.live checks it
        raise _Refused("title must be text", CLOSE_POLICY)
    return {"format": audio_format, "sample_rate": rate, "title": title}


def _json(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _Refused(f"a text frame must be JSON ({exc.msg})", CLOSE_POLICY) from exc
    if not isinstance(value, dict):
        raise _Refused("a text frame must be a JSON object with a 'type'", CLOSE_POLICY)
    return value


async def _serve(app: App, websocket: WebSocket, session: LiveSession,
                 decoder: LiveDecoder) -> None:
    loop = asyncio.get_running_loop()
    events: asyncio.Queue[LiveEvent] = asyncio.Queue()

    def deliver(event: LiveEvent) -> None:
        loop.call_soon_threadsafe(events.put_nowait, event)

    for event in session.subscribe(deliver):
        events.put_nowait(event)
    sender = asyncio.create_task(_send_events(websocket, events))
    problem: tuple[str, int] | None = None
    try:
        await _receive_audio(websocket, session, decoder)
        tail = decoder.finish()
        if tail.size:
            session.push(tail)
    except _Refused as exc:
        problem = (str(exc), exc.code)
    except WebSocketDisconnect:
        log.info("live client of conversation %d went away: finalising what it sent",
                 session.conversation_id)
    except SpeakerMemoryError as exc:
        problem = (await _explain(app, exc), CLOSE_POLICY)
    if problem is not None:
        # Told first, then closed: what the session confirmed stays and is finalised.
        session.emit("error", {"message": problem[0]})
    session.stop()
    try:
        await sender
    finally:
        session.unsubscribe(deliver)
    if websocket.client_state == WebSocketState.CONNECTED:
        await websocket.close(problem[1] if problem else CLOSE_NORMAL)


async def _receive_audio(websocket: WebSocket, session: LiveSession,
                         decoder: LiveDecoder) -> None:
    told_slow = False
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", 1000))
        data = message.get("bytes")
        if data is not None:
            if len(data) > MAX_FRAME_BYTES:
                raise _Refused(f"an audio frame of {len(data)} bytes is over the "
                               f"{MAX_FRAME_BYTES} limit; send smaller chunks", CLOSE_TOO_BIG)
            if not session.push(decoder.feed(data)):
                session.emit("error", {"message": "the session reached its maximum length "
                                       "(SPEAKER_MEMORY_LIVE_MAX_SECONDS); audio after it is "
                                       "not kept. It is being finalised."})
                return
            if session.behind_seconds > session.max_behind_seconds:
                if not told_slow:
                    session.emit("slow_down", {"message": "audio arrives faster than it is "
                                               "transcribed; frames are read again once it "
                                               "catches up"})
                    told_slow = True
                while not await anyio.to_thread.run_sync(
                        session.wait_until_caught_up, WAIT_SLICE_SECONDS):
                    pass
            else:
                told_slow = False
            continue
        request = _json(message.get("text") or "")
        if request.get("type") == "stop":
            return
        raise _Refused(f"unknown message type {request.get('type')!r}; send binary audio "
                       "frames, or {\"type\": \"stop\"}", CLOSE_POLICY)


async def _send_events(websocket: WebSocket, events: asyncio.Queue[LiveEvent]) -> None:
    while True:
        event = await events.get()
        try:
            await websocket.send_text(json.dumps(event.as_json(), ensure_ascii=False))
        except (WebSocketDisconnect, RuntimeError):
            return  # the client is gone; the session goes on to its end
        if event.type in ("stopped", "error"):
            return


async def _close_with_error(websocket: WebSocket, message: str, code: int) -> None:
    await websocket.send_text(json.dumps({"seq": 0, "type": "error", "message": message}))
    await websocket.close(code)

