"""Resumable Streamable HTTP: every SSE event the server sends is kept, so a client whose
connection dropped (laptop sleep, proxy timeout) reconnects with Last-Event-ID and gets exactly
what it missed — the progress of a long process_audio and its result.

The events live in their own small SQLite file in the data folder (Settings.event_store_path),
apart from the memory's database: they are transient, so the file needs no migration — a file of
another layout is recreated empty. Being on disk, they outlive a server restart: a client that
resumes a stream of a session from before it gets what was stored, then is told its request was
interrupted (server.after_restart). Bounded by count and age (settings), the oldest go first.

Event ids are the rows' integer ids, one sequence for the whole file; every event also names its
MCP session, because the SDK's stream ids are JSON-RPC request ids, which every client starts
from the same numbers.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import anyio
from mcp.server.streamable_http import (
    GET_STREAM_KEY,
    EventCallback,
    EventId,
    EventMessage,
    EventStore,
    StreamId,
)
from mcp_types import JSONRPCError, JSONRPCMessage, JSONRPCResponse, jsonrpc_message_adapter

log = logging.getLogger(__name__)

LAYOUT = 1
"""PRAGMA user_version of the file's layout; a file with another one is recreated."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS event (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    session TEXT NOT NULL,
    stream TEXT NOT NULL,
    message TEXT,            -- JSON-RPC message; NULL for a priming event
    created REAL NOT NULL    -- seconds since the epoch
);
CREATE INDEX IF NOT EXISTS event_stream ON event (session, stream, id);
CREATE INDEX IF NOT EXISTS event_created ON event (created);
"""


class EventLog:
    """The event file shared by every session of the server."""

    def __init__(
        self, path: Path, *, max_events: int, max_age_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.max_events = max_events
        self.max_age_seconds = max_age_seconds
        self._clock = clock
        self.opened_at = clock()
        """Events stored before this are from an earlier server process (server.after_restart)."""
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # A lost last event on a power cut is acceptable for a resumption cache; speed is not.
        self._db.execute("PRAGMA synchronous=NORMAL")
        if self._db.execute("PRAGMA user_version").fetchone()[0] not in (0, LAYOUT):
            log.info("recreating %s (another layout)", path)
            self._db.execute("DROP TABLE IF EXISTS event")
        self._db.executescript(SCHEMA)
        self._db.execute(f"PRAGMA user_version={LAYOUT}")
        with self._lock:
            self._prune()

    def for_session(self, session_id: str) -> SessionEvents:
        return SessionEvents(self, session_id)

    def append(self, session: str, stream: str, message: str | None) -> int:
        with self._lock:
            cursor = self._db.execute(
                "INSERT INTO event (session, stream, message, created) VALUES (?, ?, ?, ?)",
                (session, stream, message, self._clock()),
            )
            event_id = cursor.lastrowid
            assert event_id is not None
            self._prune()
        return event_id

    def stream_of(
        self, session: str, event_id: int, *, before_open: bool = False
    ) -> str | None:
        """The stream of one of this session's events; None when unknown or dropped, or, with
        `before_open`, stored by this server process."""
        with self._lock:
            row = self._db.execute(
                "SELECT stream, created FROM event WHERE id = ? AND session = ?",
                (event_id, session),
            ).fetchone()
        if row is None or (before_open and float(row[1]) >= self.opened_at):
            return None
        return str(row[0])

    def after(self, session: str, stream: str, event_id: int) -> list[tuple[int, str | None]]:
        """(id, message) of the stream's events after `event_id`, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, message FROM event WHERE session = ? AND stream = ? AND id > ?"
                " ORDER BY id",
                (session, stream, event_id),
            ).fetchall()
        return [(int(r[0]), r[1]) for r in rows]

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM event").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _prune(self) -> None:
        # Ids only grow, so "all but the newest N" is a range below the newest id.
        self._db.execute(
            "DELETE FROM event WHERE id <= (SELECT max(id) FROM event) - ?", (self.max_events,)
        )
        self._db.execute(
            "DELETE FROM event WHERE created < ?", (self._clock() - self.max_age_seconds,)
        )


class SessionEvents(EventStore):
    """The SDK's EventStore for one MCP session: its events, and only its events, replayed.

    A dropped request stream is replayed from the file and then followed from it until the
    request's response has gone out, so nothing stored between the replay and the live stream
    can fall into a gap. The standalone GET stream has no end: after its replay, the SDK
    carries on live."""

    def __init__(self, events: EventLog, session_id: str) -> None:
        self._events = events
        self._session = session_id
        self._stored: anyio.Event | None = None
        self.unkept: set[StreamId] = set()
        """Streams with nothing to resume (requests answered with one JSON body): their
        messages are not written to the file, and have no event id."""

    async def store_event(self, stream_id: StreamId, message: JSONRPCMessage | None) -> EventId:
        if stream_id in self.unkept:
            return ""
        data = None if message is None else message.model_dump_json(
            by_alias=True, exclude_unset=True
        )
        event_id = self._events.append(self._session, stream_id, data)
        if self._stored is not None:  # wake the replays following this session's streams
            self._stored.set()
            self._stored = None
        return str(event_id)

    async def replay_events_after(
        self, last_event_id: EventId, send_callback: EventCallback
    ) -> StreamId | None:
        if not last_event_id.isdigit():
            return None
        cursor = int(last_event_id)
        stream = self._events.stream_of(self._session, cursor)
        if stream is None:
            log.info("no stored event %s in this session: nothing to replay", last_event_id)
            return None
        while True:
            stored = self._next_store()  # taken before reading: a store meanwhile wakes us
            for event_id, data in self._events.after(self._session, stream, cursor):
                cursor = event_id
                if data is None:  # a priming event carries nothing
                    continue
                message = jsonrpc_message_adapter.validate_json(data)
                await send_callback(EventMessage(message, str(event_id)))
                if isinstance(message, JSONRPCResponse | JSONRPCError):
                    return None  # the request is answered: the resumed stream ends here
            if stream == GET_STREAM_KEY:
                return stream
            await stored.wait()

    def _next_store(self) -> anyio.Event:
        if self._stored is None:
            self._stored = anyio.Event()
        return self._stored
