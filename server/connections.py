"""HTTP connections that must send their request in time.

uvicorn waits for ever for a connection's first bytes, and for the rest of a header block, so
idle or half-open connections pile up before any Host, Origin or token check can refuse them.
This protocol closes a connection that has no request under way once it has been waiting for
one (first bytes, or the rest of the headers) longer than the deadline. A request whose
headers have arrived is never cut: a long upload or a process_audio call waits on the work.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class DeadlineHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol plus a deadline for each request's headers (seconds, at
    construction: `with_deadline`). httptools parses in C: with 32 clients reading at once the
    server spent about a quarter less CPU per call than on the pure-Python h11
    (scripts/bench_load.py)."""

    header_timeout: float = 30.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._upgraded = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._awaiting_request():
            self._arm()  # a new request has begun to arrive: its headers get the deadline

    def handle_websocket_upgrade(self) -> None:
        # The connection becomes a WebSocket (another protocol object serves it from here):
        # the header deadline must not close it later.
        self._upgraded = True
        self._disarm()
        super().handle_websocket_upgrade()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _awaiting_request(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _arm(self) -> None:
        if self._deadline is None and not self._upgraded:
            self._deadline = self.loop.call_later(self.header_timeout, self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        if self._awaiting_request() and not self.transport.is_closing():
            self.transport.close()


def with_deadline(seconds: float) -> type[DeadlineHttpProtocol]:
    """The protocol class with its header deadline (uvicorn builds one per connection)."""
    return type("DeadlineHttpProtocol", (DeadlineHttpProtocol,), {"header_timeout": seconds})
