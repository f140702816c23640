"""Generic test set-up shared by every layer. Layer fixtures live in tests/<layer>/conftest.py."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.postgres import TestPostgres

# Nothing may download model weights at run time.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

# The tools and server tests share one set of App fixtures (real store, fake pipeline).
pytest_plugins = ["tests.tools.fixtures"]


@pytest.fixture(scope="session")
def postgres() -> Iterator[TestPostgres]:
    """A real PostgreSQL with pgvector on a Unix socket, for the whole session (the memory
    suite's second backend, migrate-store's target). Its data directory is its own temporary
    one, not pytest's: other pytest sessions on the machine rotate those, and the socket path
    must stay short."""
    folder = Path(tempfile.mkdtemp(prefix="speaker-memory-pg-"))
    server = TestPostgres(folder)
    yield server
    server.stop()
    shutil.rmtree(folder, ignore_errors=True)
