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

And one addition: ResumableEndpoint answers a client resuming a session from before a server
restart, which the SDK, whose sessions live in memory, would answer 404 (server.after_restart).

The overridden methods are private SDK methods: pyproject pins the SDK's minor version, and
tests/server/test_server_resumable.py and the conformance run check the behaviour.
"""

from __future__ import annotations

from typing import Any
from uuid import uuid4

from mcp.server.auth.middleware.bearer_auth import AuthorizationContext
from mcp.server.lowlevel.server import Server
from mcp.server.streamable_http import SSEEvent, StreamableHTTPServerTransport, StreamId
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.message import SessionMessage
from mcp_types import JSONRPCRequest, RequestId
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from server.after_restart import replay_after_restart
from server.event_store import EventLog

RETRY_MILLISECONDS = 2000
"""How long a client waits before reconnecting a dropped stream (the SSE `retry` field)."""

RESUMABLE_VERSION = "2025-11-25"
"""The protocol version from which the SDK primes streams; every request is treated as it."""


class ResumableTransport(StreamableHTTPServerTransport):
    """One session's transport: streams primed and closable whatever version a request names."""

    async def _mint_priming_event(
        self, stream_id: StreamId, protocol_version: str
    ) -> SSEEvent | None:
        return await super()._mint_priming_event(stream_id, RESUMABLE_VERSION)

    def _create_session_message(
        self, message: JSONRPCRequest, request: Request, request_id: RequestId,
        protocol_version: str,
    ) -> SessionMessage:
        return super()._create_session_message(message, request, request_id, RESUMABLE_VERSION)


class ResumableSessionManager(StreamableHTTPSessionManager):
    """Stateful sessions whose streams can be resumed from `events`."""

    def __init__(
        self, app: Server[Any], events: EventLog, *,
        security_settings: TransportSecuritySettings, max_request_body_size: int,
        session_idle_timeout: float,
    ) -> None:
        super().__init__(
            app, security_settings=security_settings, retry_interval=RETRY_MILLISECONDS,
            max_request_body_size=max_request_body_size,
            session_idle_timeout=session_idle_timeout,
        )
        self.events = events

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
            event_store=self.events.for_session(session_id),
            security_settings=self.security_settings,
            retry_interval=self.retry_interval,
            idle_timeout=self.session_idle_timeout,
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
