"""The SQLite engine: SQLAlchemy over `sqlean` (so sqlite-vec loads on every connection).

One `Database` per store. Writes are serialised by a Python lock and run in `BEGIN IMMEDIATE`
transactions, so no writer in this process ever waits on another inside SQLite and
"database is locked" cannot escape; the busy timeout covers other processes. Readers use
their own pooled connections and, thanks to WAL, never block the writer.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlean
import sqlite_vec
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.pool import QueuePool

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 30_000
Params = Sequence[Any]


def _connect(path: Path) -> Any:
    conn = sqlean.connect(str(path), isolation_level=None, check_same_thread=False)
    conn.enable_load_extension(True)
    sqlite_vec.load(conn)
    conn.enable_load_extension(False)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA cache_size = -65536")
    conn.execute("PRAGMA temp_store = MEMORY")
    conn.execute("PRAGMA mmap_size = 1073741824")
    return conn


class Tx:
    """A connection inside one transaction, with the few calls the store needs (qmark SQL)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def all(self, sql: str, params: Params = ()) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in self._conn.exec_driver_sql(sql, tuple(params)).fetchall()]

    def one(self, sql: str, params: Params = ()) -> tuple[Any, ...] | None:
        row = self._conn.exec_driver_sql(sql, tuple(params)).fetchone()
        return None if row is None else tuple(row)

    def scalar(self, sql: str, params: Params = ()) -> Any:
        return self._conn.exec_driver_sql(sql, tuple(params)).scalar()

    def run(self, sql: str, params: Params = ()) -> int:
        """Execute one statement; returns lastrowid for INSERT, else the row count."""
        result = self._conn.exec_driver_sql(sql, tuple(params))
        if sql.lstrip()[:6].upper() == "INSERT":
            return int(result.lastrowid or 0)
        return int(result.rowcount)

    def many(self, sql: str, rows: Sequence[Params]) -> None:
        if rows:
            self._conn.exec_driver_sql(sql, [tuple(r) for r in rows])

    def script(self, sql: str) -> None:
        """Run several statements (DDL of a migration) inside the current transaction."""
        for statement in _split_statements(sql):
            self._conn.exec_driver_sql(statement)


def _split_statements(sql: str) -> list[str]:
    """Split DDL on ';' at statement ends (our migrations use no ';' inside literals)."""
    out: list[str] = []
    buf: list[str] = []
    for line in sql.splitlines():
        buf.append(line)
        joined = "\n".join(buf).strip()
        if joined.endswith(";") and sqlean.complete_statement(joined):
            out.append(joined)
            buf = []
    rest = "\n".join(buf).strip()
    if rest:
        out.append(rest)
    return out


class Database:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.write_lock = threading.RLock()
        self.engine: Engine = create_engine(
            "sqlite+pysqlite://",
            creator=lambda: _connect(path),
            module=sqlean,
            poolclass=QueuePool,
            pool_size=4,
            max_overflow=16,
            pool_pre_ping=False,
        )
        # Transactions are ours: the driver runs in autocommit mode and we emit BEGIN.
        event.listen(self.engine, "begin", self._on_begin)

    @staticmethod
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get("begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")

    @contextmanager
    def write(self) -> Iterator[Tx]:
        """One write transaction (serialised in-process; BEGIN IMMEDIATE)."""
        with self.write_lock, self.engine.connect() as conn:
            conn = conn.execution_options(begin="IMMEDIATE")
            with conn.begin():
                yield Tx(conn)

    @contextmanager
    def read(self) -> Iterator[Tx]:
        """One read transaction: a consistent snapshot across its statements."""
        with self.engine.connect() as conn, conn.begin():
            yield Tx(conn)

    def dispose(self) -> None:
        self.engine.dispose()
