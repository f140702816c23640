"""A real `speaker-memory serve`: connections that send no request, and sessions nobody uses,
do not stay open for ever (both deadlines are settings)."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from tests.server.tests_support import running_server

PROTOCOL = "2025-06-18"
HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}


def _closed_by_server(base: str, send: bytes) -> bool:
    """Connect, send `send` (maybe nothing, maybe half a request), then wait: True when the
    server closes the connection (recv gives b"") within 20 s."""
    address = urlsplit(base)
    with socket.create_connection((address.hostname, address.port), timeout=20) as sock:
        if send:
            sock.sendall(send)
        try:
            return sock.recv(1024) == b""
        except TimeoutError:
            return False


def test_connections_without_a_request_are_closed(tmp_path: Path) -> None:
    with running_server(tmp_path, token=None,
                        SPEAKER_MEMORY_HEADER_TIMEOUT_SECONDS="1") as (_, base):
        assert _closed_by_server(base, b"")  # half-open: connected, silent
        assert _closed_by_server(base, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        # A request that arrives in time is served, however long it then takes.
        assert httpx.get(f"{base}/healthz", timeout=10).status_code == 200
        # A WebSocket is not a request waiting for its headers: it stays open.
        from websockets.sync.client import connect

        with connect(base.replace("http://", "ws://") + "/api/v1/live") as ws:
            time.sleep(2.5)
            ws.send('{"type": "stop"}')  # no start message: refused, but on an open socket
            assert "start" in ws.recv(timeout=10)


def test_an_idle_mcp_session_expires(tmp_path: Path) -> None:
    with running_server(tmp_path, token=None,
                        SPEAKER_MEMORY_SESSION_IDLE_SECONDS="1") as (_, base), \
            httpx.Client(timeout=10) as http:
        opened = http.post(f"{base}/mcp", headers=HEADERS, json={
            "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": PROTOCOL, "capabilities": {},
                "clientInfo": {"name": "idle-test", "version": "1"}}})
        assert opened.status_code == 200
        session = HEADERS | {"mcp-session-id": opened.headers["mcp-session-id"],
                             "mcp-protocol-version": PROTOCOL}
        ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
        assert http.post(f"{base}/mcp", headers=session, json=ping).status_code == 200
        time.sleep(3)
        assert http.post(f"{base}/mcp", headers=session, json=ping).status_code == 404
