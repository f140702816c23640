"""The SDK's Streamable HTTP session manager, made resumable for every client.

Two departures from the SDK, each small:
- every session gets its own view of the event file (server.event_store.SessionEvents): the
  SDK hands one event store to every session, but its stream ids are request ids, which every
  client numbers from the same start, so one client could be replayed another's events;
- every SSE stream starts with a priming event (an event id, and `retry`), and a tool may close
  its stream mid-call, whatever protocol version the request names. The SDK keeps both for
  2025-11-25 clients, but a client of any version resumes with Last-Event-ID only if it was
  given an event id, and the official conformance suite checks this with 2025-03-26 requests.
  The priming event is an SSE event with an id and empty data, which current SDK clients pass
  over; a client too old to know it sees one message it cannot parse before the real ones.

And two additions:
- a call of a tool that sends nothing while it runs (PLAIN tools: the read-only ones), when it
  asks for no progress, is answered with one JSON body instead of an SSE stream, as the
  specification allows. Its answer comes at once, so there is nothing to resume, and the SSE
  machinery (a stream, its writer and ping tasks, a priming event written to the event file)
  was most of what such a call cost the event loop: with 32 clients reading at once, the
  server answered nearly twice as many calls a second without it;
- ResumableEndpoint answers a client resuming a session from before a server
restart, which the SDK, whose sessions live in memory, would answer 404 (server.after_restart).

The overridden methods are private SDK methods: pyproject pins the SDK's minor version, and
tests/server/test_server_resumable.py and the conformance run check the behaviour.
"""

from __future__ import annotations

from functools import partial
from http import HTTPStatus
from typing import Any
from uuid import uuid4

import anyio
import pydantic_core
from mcp.server.auth.middleware.bearer_auth import AuthorizationContext
from mcp.server.lowlevel.server import Server
from mcp.server.streamable_http import (
    REQUEST_STREAM_BUFFER_SIZE,
    EventMessage,
    SSEEvent,
    StreamableHTTPServerTransport,
    StreamId,
    check_accept_headers,
)
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.message import SessionMessage
from mcp_types import (
    INTERNAL_ERROR,
    JSONRPCError,
    JSONRPCRequest,
    JSONRPCResponse,
    RequestId,
    jsonrpc_message_adapter,
)
from pydantic import ValidationError
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from server.after_restart import replay_after_restart
from server.event_store import EventLog, SessionEvents

RETRY_MILLISECONDS = 2000
"""How long a client waits before reconnecting a dropped stream (the SSE `retry` field)."""

RESUMABLE_VERSION = "2025-11-25"
"""The protocol version from which the SDK primes streams; every request is treated as it."""


class ResumableTransport(StreamableHTTPServerTransport):
    """One session's transport: streams primed and closable whatever version a request names;
    calls of `plain_tools` that ask for no progress answered with one JSON body."""

    def __init__(self, *, events: SessionEvents, plain_tools: frozenset[str],
                 **options: Any) -> None:
        super().__init__(event_store=events, **options)
        self.events = events
        self.plain_tools = plain_tools

    async def _mint_priming_event(
        self, stream_id: StreamId, protocol_version: str
    ) -> SSEEvent | None:
        return await super()._mint_priming_event(stream_id, RESUMABLE_VERSION)

    def _create_session_message(
        self, message: JSONRPCRequest, request: Request, request_id: RequestId,
        protocol_version: str,
    ) -> SessionMessage:
        return super()._create_session_message(message, request, request_id, RESUMABLE_VERSION)

    async def _handle_post_request(
        self, scope: Scope, request: Request, receive: Receive, send: Send
    ) -> None:
        call = await self._plain_call(request)
        if call is None:
            await super()._handle_post_request(scope, request, receive, send)
        elif await self._validate_request_headers(request, send):
            await self._answer_plainly(call, scope, request, receive, send)

    async def _plain_call(self, request: Request) -> JSONRPCRequest | None:
        """The request, when it is a call of a plain tool that asks for no progress, from a
        client the SSE answer would also have served; None for anything else, which the SDK
        handles (and refuses) as before. The body is read once: Starlette keeps it."""
        if check_accept_headers(request) != (True, True) or not self._check_content_type(request):
            return None
        try:
            raw = pydantic_core.from_json(await request.body())
        except ValueError:
            return None
        if not isinstance(raw, dict) or raw.get("method") != "tools/call" or "id" not in raw:
            return None
        params = raw.get("params")
        if not isinstance(params, dict) or params.get("name") not in self.plain_tools:
            return None
        meta = params.get("_meta")
        if isinstance(meta, dict) and "progressToken" in meta:
            return None
        try:
            message = jsonrpc_message_adapter.validate_python(raw, by_name=False)
        except ValidationError:
            return None
        return message if isinstance(message, JSONRPCRequest) else None

    async def _answer_plainly(
        self, message: JSONRPCRequest, scope: Scope, request: Request, receive: Receive,
        send: Send,
    ) -> None:
        """As the SDK answers a request in its JSON-response mode."""
        writer = self._read_stream_writer
        assert writer is not None  # the session's streams are connected before any request
        request_id = str(message.id)
        self._request_streams[request_id] = anyio.create_memory_object_stream[EventMessage](
            REQUEST_STREAM_BUFFER_SIZE)
        reader = self._request_streams[request_id][1]
        metadata = self._message_metadata(request, on_request_unanswered=partial(
            self._terminate_unanswered_request, message.id))
        self.events.unkept.add(request_id)  # answered at once: nothing to resume
        try:
            await writer.send(SessionMessage(message, metadata=metadata))
            while True:  # anything before the answer has no wire here (plain tools send none)
                event = await reader.receive()
                if isinstance(event.message, JSONRPCResponse | JSONRPCError):
                    break
            response = self._create_json_response(event.message)
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            response = self._create_error_response(
                "Session terminated before the request completed",
                HTTPStatus.INTERNAL_SERVER_ERROR, INTERNAL_ERROR)
        finally:
            self.events.unkept.discard(request_id)
            await self._clean_up_memory_streams(request_id)
        await response(scope, receive, send)


class ResumableSessionManager(StreamableHTTPSessionManager):
    """Stateful sessions whose streams can be resumed from `events`."""

    def __init__(
        self, app: Server[Any], events: EventLog, *,
        security_settings: TransportSecuritySettings, max_request_body_size: int,
        session_idle_timeout: float, plain_tools: frozenset[str] = frozenset(),
    ) -> None:
        """`plain_tools`: the tools whose calls may be answered with one JSON body."""
        super().__init__(
            app, security_settings=security_settings, retry_interval=RETRY_MILLISECONDS,
            max_request_body_size=max_request_body_size,
            session_idle_timeout=session_idle_timeout,
        )
        self.events = events
        self.plain_tools = plain_tools

    def _admit_session(
        self, requestor: AuthorizationContext | None
    ) -> StreamableHTTPServerTransport | None:
        # As the SDK's, with this module's transport and the session's own events.
        if self.max_sessions is not None and len(self._server_instances) >= self.max_sessions:
            return None
        session_id = uuid4().hex
        transport = ResumableTransport(
            mcp_session_id=session_id,
            is_json_response_enabled=self.json_response,
            events=self.events.for_session(session_id),
            security_settings=self.security_settings,
            retry_interval=self.retry_interval,
            idle_timeout=self.session_idle_timeout,
            plain_tools=self.plain_tools,
        )
        if requestor is not None:
            self._session_owners[session_id] = requestor
        self._server_instances[session_id] = transport
        return transport


class ResumableEndpoint:
    """The /mcp ASGI endpoint. A GET resuming a stream of a session from before a server
    restart is answered from the event file (server.after_restart); all else is the manager's."""

    def __init__(self, manager: ResumableSessionManager) -> None:
        self.manager = manager

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = Headers(scope=scope)
        session = headers.get("mcp-session-id")
        last_event_id = headers.get("last-event-id")
        if scope.get("method") == "GET" and session and last_event_id:
            answer = replay_after_restart(self.manager.events, session, last_event_id)
            if answer is not None:
                await answer(scope, receive, send)
                return
        await self.manager.handle_request(scope, receive, send)
