"""/api/v1: the same tools/ functions as MCP, as plain JSON over HTTP (plus file downloads)."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

import anyio
from pydantic import BaseModel
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import Message

from memory.errors import (
    AudioError,
    ConversationNotReady,
    DuplicateAudio,
    ImportNotEmpty,
    InputTooLarge,
    InvalidInput,
    NameTaken,
    NotFoundError,
    SpeakerMemoryError,
    StillRunning,
    UndoConflict,
)
from memory.types import MAX_ID
from server.jobs import follow_job, following
from server.security import TICKET_SECONDS, Tickets
from server.threads import tool_threads
from tools import deletion, exports, identity, processing, queries, rebuild
from tools.clips import recording, segment_wav, speaker_sample_wav
from tools.context import App
from tools.errors import explain
from tools.info import server_info
from tools.inputs import AudioFile, UploadWriter, require_id

log = logging.getLogger(__name__)

T = TypeVar("T")
Handler = Callable[[Request], Awaitable[Response]]

MAX_JSON_BODY_BYTES = 1 << 20
"""JSON bodies (names, titles, flags) are small; audio comes as multipart uploads."""
MULTIPART_OVERHEAD = 1 << 20
"""Room for form fields and boundaries on top of the audio size cap."""


def status_for(exc: SpeakerMemoryError) -> int:
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, InputTooLarge):
        return 413
    if isinstance(exc, NameTaken | DuplicateAudio | UndoConflict | ImportNotEmpty
                  | ConversationNotReady):
        return 409
    if isinstance(exc, AudioError):
        return 422
    if isinstance(exc, StillRunning):
        return 202
    return 400


class LiveTicket(BaseModel):
    ticket: str
    expires_in: int


def rest_routes(app: App, tickets: Tickets) -> list[Route]:
    async def call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await anyio.to_thread.run_sync(lambda: fn(*args, **kwargs),
                                              limiter=tool_threads)

    def endpoint(handler: Handler) -> Handler:
        async def wrapped(request: Request) -> Response:
            try:
                return await handler(request)
            except SpeakerMemoryError as exc:
                message = await anyio.to_thread.run_sync(explain, app, exc)
                return JSONResponse({"error": message, "type": type(exc).__name__},
                                    status_code=status_for(exc))
        return wrapped

    async def list_conversations(request: Request) -> Response:
        q = request.query_params
        result = await call(queries.list_conversations, app, _int(q, "limit", 20),
                            _int(q, "offset", 0), q.get("speaker"), _time(q, "since"),
                            _time(q, "until"))
        return _json(result)

    async def upload_conversation(request: Request) -> Response:
        form = await _form(request, app)
        options = processing.ProcessOptions(
            title=_text(form.get("title")), num_speakers=_opt_int(form.get("num_speakers"),
                                                                  "num_speakers"),
            language=_text(form.get("language")), recorded_at=_time(form, "recorded_at"),
        )
        processing.check_options(options)  # before the upload is kept: a refusal leaves none
        audio = await _upload(form, app)
        wait = _text(form.get("wait")) in ("1", "true", "yes")
        follow = following(app.settings.wait_seconds if wait else None)
        result = await processing.process_audio(app, audio, options, follow)
        if result.duplicate:
            return _json(result, 200)
        return _json(result, {"done": 201, "failed": 422}.get(result.status, 202))

    async def get_conversation(request: Request) -> Response:
        fmt = request.query_params.get("format", "json")
        if fmt not in ("json", "text"):
            raise InvalidInput(f"format must be 'json' or 'text' (got {fmt!r}).")
        return _json(await call(queries.get_conversation, app, _id(request), fmt))

    async def patch_conversation(request: Request) -> Response:
        title = await _string_field(request, "title")
        return _json(await call(identity.update_conversation_title, app, _id(request), title))

    async def delete_conversation(request: Request) -> Response:
        return _json(await call(deletion.delete_conversation, app, _id(request)))

    async def conversation_status(request: Request) -> Response:
        return _json(await call(processing.processing_status, app, _id(request)))

    async def cancel_processing(request: Request) -> Response:
        await _body(request, allow_empty=True)  # JSON only, as every endpoint that acts
        return _json(await call(processing.cancel_processing, app, _id(request)))

    async def reprocess(request: Request) -> Response:
        return _json(await call(processing.reprocess, app, _id(request)))

    async def export(request: Request) -> Response:
        fmt = request.query_params.get("format", "srt")
        if fmt not in exports.MIME_TYPES:
            raise InvalidInput(f"format must be one of {', '.join(exports.MIME_TYPES)}.")
        result = await call(exports.export_conversation, app, _id(request), fmt)
        return Response(result.content, media_type=result.mime_type, headers={
            "content-disposition": f'attachment; filename="{result.filename}"'})

    async def latest_segments(request: Request) -> Response:
        q = request.query_params
        return _json(await call(queries.get_latest_segments, app, _int(q, "limit", 20),
                                _opt_id(q.get("conversation_id"), "conversation_id")))

    async def segment_audio(request: Request) -> Response:
        wav = await call(segment_wav, app, _id(request))
        return Response(wav, media_type="audio/wav")

    async def identify(request: Request) -> Response:
        name = await _string_field(request, "speaker_name")
        return _json(await call(identity.identify_speaker_in_segment, app, _id(request), name))

    async def search(request: Request) -> Response:
        q = request.query_params
        mode = q.get("mode", "hybrid")
        if mode not in ("hybrid", "keyword", "semantic"):
            raise InvalidInput("mode must be 'hybrid', 'keyword' or 'semantic'.")
        return _json(await call(
            queries.search_conversations, app, q.get("query") or q.get("q") or "", mode,
            q.get("speaker"), _opt_id(q.get("conversation_id"), "conversation_id"),
            _time(q, "since"), _time(q, "until"), _int(q, "limit", 20)))

    async def list_speakers(request: Request) -> Response:
        kind = request.query_params.get("kind")
        if kind not in (None, "enrolled", "unknown"):
            raise InvalidInput("kind must be 'enrolled' or 'unknown'.")
        return _json(await call(queries.list_speakers, app, kind))

    async def enroll(request: Request) -> Response:
        form = await _form(request, app)
        name = _text(form.get("name"))
        if not name:
            raise InvalidInput("send the speaker's name in the 'name' form field.")
        audio = await _upload(form, app)
        follow = following(app.settings.wait_seconds)
        return _json(await identity.enroll_speaker(app, name, audio, follow), 201)

    async def speaker_conversations(request: Request) -> Response:
        q = request.query_params
        return _json(await call(queries.search_conversations_by_speaker, app,
                                _speaker(request), _int(q, "limit", 20),
                                _int(q, "offset", 0)))

    async def undo(request: Request) -> Response:
        body = await _body(request, allow_empty=True)
        event_id = body.get("event_id")
        if event_id is not None:
            require_id(event_id, "event_id")
        return _json(await call(identity.undo_identity_change, app, event_id))

    async def rebuild_profiles(request: Request) -> Response:
        body = await _body(request, allow_empty=True)
        for flag in ("wait", "cancel"):
            if not isinstance(body.get(flag, False), bool):
                raise InvalidInput(f"{flag} must be true or false.")
        if body.get("cancel"):
            return _json(await call(rebuild.cancel_rebuild, app))
        job = await call(rebuild.start_rebuild, app)
        if body.get("wait"):
            await follow_job(job, app.settings.wait_seconds, None)
        result = await call(rebuild.rebuild_status, app)
        return _json(result, 202 if result.status in ("queued", "running") else 200)

    async def rebuild_status(request: Request) -> Response:
        return _json(await call(rebuild.rebuild_status, app))

    async def info(request: Request) -> Response:
        # server/http.py serves these routes beside the live WebSocket (/api/v1/live).
        return _json(server_info(app, live=True))

    async def conversation_audio(request: Request) -> Response:
        found = await call(recording, app, _id(request))
        return FileResponse(found.path, media_type=found.media_type)

    async def mark_misidentified(request: Request) -> Response:
        body = await _body(request, allow_empty=True)
        correct = _speaker_field(body, "correct_speaker") if "correct_speaker" in body else None
        return _json(await call(identity.mark_segment_misidentified, app, _id(request),
                                correct))

    async def rename_speaker(request: Request) -> Response:
        name = await _string_field(request, "name")
        return _json(await call(identity.rename_speaker, app, _speaker(request), name))

    async def merge_speaker(request: Request) -> Response:
        target = _speaker_field(await _body(request), "into")
        return _json(await call(identity.merge_speakers, app, _speaker(request), target))

    async def delete_speaker(request: Request) -> Response:
        return _json(await call(identity.delete_speaker, app, _speaker(request)))

    async def delete_unknown_speakers(request: Request) -> Response:
        if request.query_params.get("kind") != "unknown":
            raise InvalidInput("only unknown voices are deleted together: "
                               "DELETE /api/v1/speakers?kind=unknown.")
        return _json(await call(identity.delete_all_unknown_speakers, app))

    async def speaker_sample(request: Request) -> Response:
        wav = await call(speaker_sample_wav, app, _speaker(request))
        return Response(wav, media_type="audio/wav")

    async def history(request: Request) -> Response:
        return _json(await call(queries.identity_history, app,
                                _int(request.query_params, "limit", 20)))

    async def live_ticket(request: Request) -> Response:
        await _body(request, allow_empty=True)  # JSON only, as every endpoint that acts
        return _json(LiveTicket(ticket=tickets.issue(), expires_in=int(TICKET_SECONDS)))

    # (path, handler, methods, the MCP tool it serves: its route name; None: no tool's)
    routes = [
        ("/live/tickets", live_ticket, ["POST"], None),
        ("/conversations", list_conversations, ["GET"], "list_conversations"),
        ("/conversations", upload_conversation, ["POST"], "process_audio"),
        ("/conversations/{id:int}", get_conversation, ["GET"], "get_conversation"),
        ("/conversations/{id:int}", patch_conversation, ["PATCH"], "update_conversation_title"),
        ("/conversations/{id:int}", delete_conversation, ["DELETE"], "delete_conversation"),
        ("/conversations/{id:int}/status", conversation_status, ["GET"],
         "get_processing_status"),
        ("/conversations/{id:int}/cancel", cancel_processing, ["POST"], "cancel_processing"),
        ("/conversations/{id:int}/reprocess", reprocess, ["POST"], "reprocess_conversation"),
        ("/conversations/{id:int}/export", export, ["GET"], "export_conversation"),
        ("/conversations/{id:int}/audio", conversation_audio, ["GET"], None),
        ("/segments", latest_segments, ["GET"], "get_latest_segments"),
        ("/segments/{id:int}/audio", segment_audio, ["GET"], None),
        ("/segments/{id:int}/identify", identify, ["POST"], "identify_speaker_in_segment"),
        ("/segments/{id:int}/misidentified", mark_misidentified, ["POST"],
         "mark_segment_misidentified"),
        ("/search", search, ["GET"], "search_conversations"),
        ("/speakers", list_speakers, ["GET"], "list_speakers"),
        ("/speakers", enroll, ["POST"], "enroll_speaker"),
        ("/speakers", delete_unknown_speakers, ["DELETE"], "delete_all_unknown_speakers"),
        ("/speakers/{speaker}", rename_speaker, ["PATCH"], "rename_speaker"),
        ("/speakers/{speaker}", delete_speaker, ["DELETE"], "delete_speaker"),
        ("/speakers/{speaker}/merge", merge_speaker, ["POST"], "merge_speakers"),
        ("/speakers/{speaker}/sample", speaker_sample, ["GET"], None),
        ("/speakers/{speaker}/conversations", speaker_conversations, ["GET"],
         "search_conversations_by_speaker"),
        ("/undo", undo, ["POST"], "undo_identity_change"),
        ("/history", history, ["GET"], None),
        ("/info", info, ["GET"], None),
        ("/voice-profiles/rebuild", rebuild_profiles, ["POST"], "rebuild_voice_profiles"),
        ("/voice-profiles/rebuild", rebuild_status, ["GET"], "rebuild_voice_profiles"),
    ]
    return [Route(path, endpoint(handler), methods=methods, name=tool or handler.__name__)
            for path, handler, methods, tool in routes]


_MICROPHONE = ("the server machine's microphone is for MCP and the CLI; an HTTP client streams "
               "its own audio through the /api/v1/live WebSocket")
NOT_ON_REST: dict[str, str] = {
    "start_listening": _MICROPHONE,
    "stop_listening": _MICROPHONE,
    "get_live_transcript": _MICROPHONE,
}
"""The MCP tools (server/mcp_tools.TOOLS) REST has no route for, and why: a test holds every
tool to a route or an entry here, so a new tool is a decision, not an omission."""


# ---------------------------------------------------------------- request helpers

def _json(model: BaseModel, status: int = 200) -> JSONResponse:
    return JSONResponse(model.model_dump(mode="json"), status_code=status)


def _id(request: Request) -> int:
    value: int = request.path_params["id"]
    return require_id(value, "the id in the URL")


def _speaker(request: Request) -> str:
    """The speaker named in the URL: an id, a name or an 'Unknown N' label."""
    value: str = request.path_params["speaker"]
    return value


def _speaker_field(body: dict[str, Any], field: str) -> int | str:
    """A speaker given in a JSON body: an id, a name or an 'Unknown N' label."""
    value = body.get(field)
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise InvalidInput(f'send JSON {{"{field}": "<speaker id, name or label>"}}.')
    return value


def _int(params: Any, name: str, default: int) -> int:
    value = _opt_int(params.get(name), name)
    return default if value is None else value


def _opt_int(raw: Any, name: str) -> int | None:
    text = _text(raw)
    if text is None:
        return None
    if re.fullmatch(r"-?[0-9]{1,19}", text) is None or abs(int(text)) > MAX_ID:
        raise InvalidInput(f"{name} must be a whole number (got {text[:40]!r}).")
    return int(text)


def _opt_id(raw: Any, name: str) -> int | None:
    value = _opt_int(raw, name)
    return None if value is None else require_id(value, name)


def _text(raw: Any) -> str | None:
    if raw is None or isinstance(raw, UploadFile):
        return None
    text = str(raw).strip()
    return text or None


def _time(params: Any, name: str) -> datetime | None:
    text = _text(params.get(name))
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"{name} must be an ISO 8601 date or time (got {text!r}).") from None


async def _string_field(request: Request, field: str) -> str:
    """The one string field a JSON body must carry."""
    value = (await _body(request)).get(field)
    if not isinstance(value, str):
        raise InvalidInput(f"send JSON {{\"{field}\": \"...\"}}.")
    return value


async def _body(request: Request, allow_empty: bool = False) -> dict[str, Any]:
    # Only application/json: a web page can send text/plain or a form to any address without
    # asking first, but not JSON (that needs a CORS preflight, which this server never grants).
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    raw = await _capped_body(request, MAX_JSON_BODY_BYTES)
    if not raw and allow_empty:
        return {}
    if media_type != "application/json":
        raise InvalidInput("send the body as JSON with 'Content-Type: application/json' "
                           f"(got {media_type or 'no content type'!r}).")
    try:
        import json

        body = json.loads(raw)
    except ValueError:
        raise InvalidInput("the request body must be JSON.") from None
    if not isinstance(body, dict):
        raise InvalidInput("the request body must be a JSON object.")
    return body


async def _capped_body(request: Request, cap: int) -> bytes:
    """The request body, read no further than `cap` bytes (InputTooLarge beyond)."""
    too_large = InputTooLarge(f"the JSON body is over the {cap:,}-byte limit; these calls take "
                              "a few fields, and audio goes to the upload endpoints.")
    return await _capped(request, cap, too_large).body()


async def _form(request: Request, app: App) -> Any:
    cap = app.settings.max_upload_bytes
    too_large = InputTooLarge(
        f"the upload is over the {cap:,}-byte limit (SPEAKER_MEMORY_MAX_UPLOAD_BYTES); put the "
        "file into the data inbox and process it by path instead.")
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise InvalidInput("send the audio as multipart/form-data with a 'file' field.")
    return await _capped(request, cap + MULTIPART_OVERHEAD, too_large).form(
        max_files=1, max_fields=20)


def _capped(request: Request, cap: int, too_large: InputTooLarge) -> Request:
    """The request, reading no more than `cap` bytes of body. A declared length over the cap
    is refused before anything is read; a chunked body (no declared length) is cut off as soon
    as it passes the cap, so at most `cap` bytes ever reach memory or a spool file."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > cap:
        raise too_large
    received = 0

    async def receive() -> Message:
        nonlocal received
        message = await request.receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > cap:
                raise too_large
        return message

    return Request(request.scope, receive)


async def _upload(form: Any, app: App) -> AudioFile:
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise InvalidInput("send the audio in a multipart 'file' field.")
    with UploadWriter(app, upload.filename) as writer:
        while chunk := await upload.read(1 << 20):
            await anyio.to_thread.run_sync(writer.write, chunk)
        return await anyio.to_thread.run_sync(writer.finish)
