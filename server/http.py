"""The HTTP face: /mcp (Streamable HTTP), /api/v1 (REST), /healthz and the review page (/),
behind AccessGuard."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute

from server.event_store import EventLog
from server.live_ws import live_endpoint
from server.mcp_server import build_server
from server.mcp_tools import PLAIN_TOOLS
from server.page import PAGE_PATHS, page_routes
from server.rest import rest_routes
from server.resumable import ResumableEndpoint, ResumableSessionManager
from server.security import (
    AccessGuard,
    Tickets,
    allowed_host_names,
    check_bind,
    transport_security,
)
from tools import live, rebuild
from tools.context import App
from tools.heap import settle
from tools.inputs import base64_audio_cap

log = logging.getLogger(__name__)

MIN_MCP_BODY = 4 * 1024 * 1024


def create_http_app(app: App) -> Starlette:
    """One Starlette app serving MCP and REST over the same tools. Raises UnsafeBind when the
    settings would listen beyond loopback without a token."""
    settings = app.settings
    check_bind(settings.host, settings.token)
    host_names = allowed_host_names(settings.host, settings.allowed_hosts)
    mcp = build_server(app)
    # base64 audio travels inside JSON-RPC bodies: room for it, and no more (the SDK parses a
    # body whole, on the event loop).
    body_cap = max(MIN_MCP_BODY, base64_audio_cap(settings) * 4 // 3 + (1 << 16))
    events = EventLog(settings.event_store_path, max_events=settings.event_store_max_events,
                      max_age_seconds=settings.event_store_max_age_seconds)
    session_manager = ResumableSessionManager(
        mcp.protocol_server, events,
        security_settings=transport_security(host_names, settings.allowed_origins),
        max_request_body_size=body_cap,
        session_idle_timeout=settings.session_idle_seconds,
        plain_tools=PLAIN_TOOLS,
    )

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok", "server": "speaker-memory"})

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        try:
            async with session_manager.run():
                log.info("speaker-memory HTTP ready: /mcp, /api/v1, /healthz")
                settle()  # what start-up imported lives as long as the process
                # Speakers without a profile of the voice model get one, in the background.
                check = rebuild.start_in_background(app)
                left = await anyio.to_thread.run_sync(live.finalise_left_open, app)
                if left:
                    log.info("finalising live sessions left open: conversations %s", left)
                yield
                check.join(timeout=30)
        finally:
            events.close()

    tickets = Tickets()
    routes: list[BaseRoute] = [
        Route("/healthz", healthz, methods=["GET"]),
        WebSocketRoute("/api/v1/live", live_endpoint(app)),
        Mount("/api/v1", routes=rest_routes(app, tickets)),
        Route("/mcp", ResumableEndpoint(session_manager)),
        *page_routes(),
    ]
    return Starlette(
        routes=routes,
        middleware=[Middleware(AccessGuard, token=settings.token, host_names=host_names,
                               origins=settings.allowed_origins, tickets=tickets,
                               public=PAGE_PATHS)],
        lifespan=lifespan,
    )
