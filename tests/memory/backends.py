"""The store backends the memory suite runs against: the SQLite file (the default) and
PostgreSQL with pgvector. Tests open stores through `open_memory`, which follows the
`backend` fixture (tests/memory/conftest.py) of the test that runs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from memory import SpeakerMemory
from memory.types import MatchConfig
from tests.postgres import TestPostgres


@dataclass
class Backend:
    name: str
    postgres: TestPostgres | None = None

    def open(self, path: Path, match: MatchConfig | None = None) -> SpeakerMemory:
        """The store at `path` on this backend (PostgreSQL: the schema made for that path)."""
        if self.postgres is None:
            return SpeakerMemory(path, match)
        return SpeakerMemory(path, match, database_url=self.postgres.url_for(str(path)))


SQLITE = Backend("sqlite")
sqlite_only = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
"""For tests of SQLite's own machinery (sqlite-vec's layout, PRAGMAs, old SQLite files)."""
current: Backend = SQLITE
"""The backend of the test that runs (set by the `backend` fixture)."""


def open_memory(path: Path, match: MatchConfig | None = None) -> SpeakerMemory:
    return current.open(path, match)


def postgres_for(path: Path) -> TestPostgres | None:
    """The PostgreSQL holding the store opened at `path`; None for a SQLite file (a store
    another layer's tests opened, whatever backend the memory tests ran last)."""
    postgres = current.postgres
    return postgres if postgres is not None and postgres.holds(str(path)) else None


def discard(path: Path) -> None:
    """Forget the store opened at `path` (closed already): PostgreSQL drops its schema."""
    if current.postgres is not None:
        current.postgres.drop(str(path))
