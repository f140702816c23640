"""What the MCP client asked to be told (logging/setLevel), per session.

The SDK leaves the filtering to the application on handshake-era protocol versions: each
session's level is kept here; stdio has one session, keyed None.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import get_args

from mcp_types import LoggingLevel

LEVELS: tuple[LoggingLevel, ...] = get_args(LoggingLevel)
"""The protocol's levels, least severe first (RFC 5424 order)."""

DEFAULT_LEVEL: LoggingLevel = "info"
"""Until a client sets a level: job stages (info) and warnings."""

MAX_SESSIONS = 10_000
"""Sessions whose level is remembered; the least recently set are forgotten first."""

SESSION_HEADER = "mcp-session-id"


class ClientLogLevels:
    def __init__(self) -> None:
        self._levels: OrderedDict[str | None, LoggingLevel] = OrderedDict()

    def set(self, session: str | None, level: LoggingLevel) -> None:
        self._levels[session] = level
        self._levels.move_to_end(session)
        while len(self._levels) > MAX_SESSIONS:
            self._levels.popitem(last=False)

    def allows(self, session: str | None, level: LoggingLevel) -> bool:
        wanted = self._levels.get(session, DEFAULT_LEVEL)
        return LEVELS.index(level) >= LEVELS.index(wanted)


def session_of(headers: Mapping[str, str] | None) -> str | None:
    """The MCP session a request belongs to (None on stdio)."""
    return None if headers is None else headers.get(SESSION_HEADER)


def as_level(name: str) -> LoggingLevel:
    """A Python logging level name as the protocol's level."""
    lowered = name.lower()
    for level in LEVELS:
        if level == lowered:
            return level
    return "warning"
