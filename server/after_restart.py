"""A client resuming a stream of a session from before a server restart (crash, update,
reboot): sessions live in memory and are gone, but their events are on disk. The client gets
what was stored after its Last-Event-ID — the result, when the work finished before the
restart — else an error that says the request was interrupted and how to find out where its
work got to. Either way it is not left waiting for a stream that will never come back."""

from __future__ import annotations

from mcp.server.streamable_http import GET_STREAM_KEY
from mcp_types import (
    INTERNAL_ERROR,
    ErrorData,
    JSONRPCError,
    JSONRPCResponse,
    jsonrpc_message_adapter,
)
from starlette.responses import Response

from server.event_store import EventLog

INTERRUPTED = (
    "The server restarted while this request ran, so the request was interrupted and this "
    "session has ended: start a new one. Work it started may have finished or stopped: "
    "get_processing_status and list_conversations tell; process_audio with the same audio "
    "returns its conversation, or runs it again if it was interrupted."
)


def replay_after_restart(events: EventLog, session: str, last_event_id: str) -> Response | None:
    """The SSE answer to a Last-Event-ID of a session from before the restart; None when the
    event is unknown or from this server process (the SDK answers those)."""
    if not last_event_id.isdigit():
        return None
    cursor = int(last_event_id)
    stream = events.stream_of(session, cursor, before_open=True)
    if stream is None:
        return None
    lines: list[str] = []
    answered = stream == GET_STREAM_KEY  # the standalone stream has no answer to wait for
    for event_id, data in events.after(session, stream, cursor):
        if data is None:
            continue
        lines.append(f"event: message\nid: {event_id}\ndata: {data}\n\n")
        message = jsonrpc_message_adapter.validate_json(data)
        answered = answered or isinstance(message, JSONRPCResponse | JSONRPCError)
    if not answered:
        error = JSONRPCError(jsonrpc="2.0", id=_request_id(stream),
                             error=ErrorData(code=INTERNAL_ERROR, message=INTERRUPTED))
        lines.append(f"event: message\ndata: {error.model_dump_json(by_alias=True)}\n\n")
    return Response("".join(lines), media_type="text/event-stream",
                    headers={"cache-control": "no-cache"})


def _request_id(stream: str) -> int | str:
    # The SDK names a request's stream str(request id): JSON-RPC ids are numbers in every SDK
    # client, so a number it was.
    return int(stream) if stream.isdigit() else stream
