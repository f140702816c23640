"""The SQLite engine: SQLAlchemy over `sqlean` (so sqlite-vec loads on every connection).

One `Database` per store. Writes are serialised by a Python lock and run in `BEGIN IMMEDIATE`
transactions, so no writer in this process ever waits on another inside SQLite and
"database is locked" cannot escape; the busy timeout covers other processes. Readers use
their own pooled connections and, thanks to WAL, never block the writer.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from functools import lru_cache
from operator import itemgetter
from pathlib import Path
from typing import Any, Protocol

import sqlean
import sqlite_vec
from sqlalchemy import (
    Connection,
    Engine,
    Row,
    Table,
    create_engine,
    event,
    func,
    insert,
    select,
)
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.pool import QueuePool
from sqlalchemy.sql import Executable
from sqlalchemy.sql.dml import Insert

from memory.prepared import Form, Prepared
from memory.tables import metadata

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 30_000
MMAP_BYTES = 64 << 30
_SQLITE = SQLiteDialect_pysqlite(paramstyle="qmark")
Bound = Mapping[str, Any] | None
"""Values for a statement's named parameters (`text()` statements; Core ones carry theirs)."""
Statement = Executable | Prepared
"""A Core statement, or one built once for the hot path (memory.prepared)."""


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
    # Reads through a memory map (of the whole file, up to 64 GiB of address space; pages
    # are the OS page cache, not process memory): a random row then costs no read() call and
    # no copy. Semantic search re-scores thousands of scattered rows at 1M segments, ~35%
    # less CPU than with a 1 GiB map of a 4 GB store. Writes still go through the WAL.
    conn.execute(f"PRAGMA mmap_size = {MMAP_BYTES}")
    # Checkpoints run in a background thread (see Checkpointer), not inside the commit of
    # whichever write happened to cross the threshold: a relabel of 100k segments would
    # otherwise pay for copying the whole WAL back into the database file.
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    conn.execute("PRAGMA journal_size_limit = 67108864")
    return conn


class Tx:
    """A connection inside one transaction. SQLAlchemy owns the pool and the transaction
    (BEGIN/COMMIT/ROLLBACK); statements are SQLAlchemy Core expressions built from
    memory.tables (or `text()` in a backend's own index module), rendered for the dialect.

    Rows come back as SQLAlchemy `Row`s, read by column name. Two calls skip SQLAlchemy's
    per-row result processing (~0.2 s per 100k rows) where row counts are large: `stream`
    (plain tuples, unpacked in the order the statement selects them) and `insert_rows`
    (SQLite: one executemany; PostgreSQL: binary COPY, memory.pg.PgTx)."""

    dialect = "sqlite"

    def __init__(self, conn: Connection) -> None:
        self.connection = conn
        """The SQLAlchemy connection (also for Alembic, which runs the migrations)."""
        self._raw: Any = conn.connection.driver_connection

    def rows(self, statement: Statement, params: Bound = None) -> Sequence[Row[Any]]:
        if isinstance(statement, Prepared):
            form = statement.form(self.connection.dialect)
            cursor = self._run(form, params)
            # Named tuples, read by column name as the Rows below are.
            return form.wrap(cursor, cursor.fetchall())  # type: ignore[return-value]
        return self.connection.execute(statement, params).all()

    def first(self, statement: Statement, params: Bound = None) -> Row[Any] | None:
        if isinstance(statement, Prepared):
            form = statement.form(self.connection.dialect)
            cursor = self._run(form, params)
            found = cursor.fetchone()
            return None if found is None else form.wrap(cursor, [found])[0]  # type: ignore[return-value]
        return self.connection.execute(statement, params).first()

    def value(self, statement: Statement, params: Bound = None) -> Any:
        """The first column of the first row (None without a row)."""
        row = self.first(statement, params)
        return None if row is None else row[0]

    def execute(self, statement: Statement, params: Bound = None) -> int:
        """Run an UPDATE / DELETE (or DDL); returns the number of rows it changed."""
        if isinstance(statement, Prepared):
            return int(self._run(statement.form(self.connection.dialect), params).rowcount)
        return int(self.connection.execute(statement, params).rowcount)

    def execute_many(self, statement: Executable, rows: Sequence[Mapping[str, Any]]) -> None:
        """Run one UPDATE / DELETE once for each set of parameter values (executemany)."""
        if rows:
            self.connection.execute(statement, list(rows))

    def _run(self, form: Form, params: Bound) -> Any:
        """A Prepared statement's cursor, run on the driver connection (memory.prepared)."""
        return self._raw.execute(form.sql, form.bind(params))

    def insert(self, statement: Insert) -> int:
        """Run an INSERT of one row; returns its primary key (the id the store gave it)."""
        key = self.connection.execute(statement).inserted_primary_key
        return 0 if key is None or key[0] is None else int(key[0])

    def insert_rows(self, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
        """INSERT many rows, each with the same keys (the columns given)."""
        if not rows:
            return
        sql, order = _plain_insert(table, tuple(rows[0]))
        self._raw.executemany(sql, [order(r) for r in rows])

    def stream(
        self, statement: Statement, params: Bound = None, batch: int = 1000
    ) -> Iterator[tuple[Any, ...]]:
        """The rows as plain tuples, fetched `batch` at a time: for reads too large to hold
        or too many to wrap. SQLAlchemy compiles (and caches) the statement and binds its
        values; the rows come straight from the driver's cursor, without result processing
        (the columns' stored values: a Flag reads as 0/1)."""
        if isinstance(statement, Prepared):
            cursor = self._run(statement.form(self.connection.dialect), params)
            close = cursor.close
        else:
            result = self.connection.execute(statement, params)
            cursor, close = result.cursor, result.close
        try:
            while rows := cursor.fetchmany(batch):
                yield from rows
        finally:
            close()

    def script(self, sql: str) -> None:
        """Run several statements (DDL of a migration) inside the current transaction."""
        for statement in _split_statements(sql):
            self._raw.execute(statement)

    def next_id(self, table: str) -> int:
        """The id the next row of `table` gets (AUTOINCREMENT: ids are never reused), for
        inserting many rows with their ids known up front."""
        given = self._raw.execute(
            "SELECT COALESCE(MAX(seq), 0) FROM sqlite_sequence WHERE name = ?", (table,)
        ).fetchone()[0]
        top = self._raw.execute(f"SELECT COALESCE(MAX(id), 0) FROM {table}").fetchone()[0]
        return max(int(given), int(top)) + 1


@lru_cache(maxsize=256)
def _plain_insert(table: Table, columns: tuple[str, ...]) -> tuple[str, Callable[..., Any]]:
    """SQLite's INSERT of `columns` (qmark), and what picks a row's values in its order."""
    compiled = insert(table).compile(dialect=_SQLITE, column_keys=list(columns))
    order = compiled.positiontup or []
    pick = itemgetter(*order)
    if len(order) == 1:
        return compiled.string, lambda row: (pick(row),)
    return compiled.string, pick


def latest_id_hint(tx: Tx, table: str, noun: str, plural: str) -> str:
    """The second half of a not-found message: the ids the caller can use instead."""
    latest = tx.value(select(func.max(metadata.tables[table].c.id)))
    if latest is None:
        return f"the store has no {plural} yet"
    return f"the latest {noun} id is {latest}"


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


def checkpoint_delay(
    now: float, last_write: float, woken: float, idle: float, interval: float
) -> float:
    """Seconds the checkpointer still waits (0: checkpoint now): until writes have paused for
    `idle` seconds, but no longer than `interval` seconds after it was woken."""
    if now - woken >= interval:
        return 0.0
    return max(0.0, min(idle - (now - last_write), interval - (now - woken)))


class Checkpointer:
    """Moves WAL content back into the database file after writes, off the caller's path.

    A checkpoint copies pages and fsyncs the database file; run after every write, it competes
    with the next write for the disk and the CPU (a burst of small ingests ran ~2x slower).
    So it waits until writes pause for IDLE_SECONDS, but never lets more than
    INTERVAL_SECONDS pass while writes keep coming. Durability is unchanged: a commit is in
    the WAL before the call returns (synchronous=NORMAL: safe against a crash of the
    application; a power loss may roll back only the last commits, never corrupt). SQLite's own
    automatic checkpoint would wait for 1000 pages of WAL, typically much longer."""

    INTERVAL_SECONDS = 5.0
    IDLE_SECONDS = 0.5

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._last_write = 0.0
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpoint", daemon=True)
        self._thread.start()

    def poke(self) -> None:
        """A write committed."""
        self._last_write = time.monotonic()
        self._wake.set()

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(self.INTERVAL_SECONDS)
            self._wake.clear()
            started = time.monotonic()
            while not self._stopping.is_set():
                delay = checkpoint_delay(
                    time.monotonic(), self._last_write, started, self.IDLE_SECONDS,
                    self.INTERVAL_SECONDS,
                )
                if delay <= 0:
                    break
                self._stopping.wait(delay)
            if self._stopping.is_set():
                break
            self._checkpoint("PASSIVE")

    def _checkpoint(self, mode: str) -> None:
        try:
            with self._engine.connect() as conn:
                conn.exec_driver_sql(f"PRAGMA wal_checkpoint({mode})")
                conn.commit()
        except Exception as exc:
            log.debug("checkpoint (%s) failed: %s", mode, exc)

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        self._thread.join(timeout=30)
        self._checkpoint("TRUNCATE")


class Store(Protocol):
    """What the domain needs of an engine: SQLite (`Database`) or PostgreSQL (memory.pg)."""

    dialect: str
    label: str
    write_lock: threading.RLock

    def write(self) -> AbstractContextManager[Tx]: ...

    def read(self) -> AbstractContextManager[Tx]: ...

    def dispose(self) -> None: ...

    def index_pending(self) -> None: ...


class Database:
    dialect = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.label = str(path)
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
        self.checkpointer = Checkpointer(self.engine)

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
        self.checkpointer.poke()

    @contextmanager
    def read(self) -> Iterator[Tx]:
        """One read transaction: a consistent snapshot across its statements."""
        with self.engine.connect() as conn, conn.begin():
            yield Tx(conn)

    def index_pending(self) -> None:
        """Nothing to do: SQLite's search indexes are complete when a write commits."""

    def dispose(self) -> None:
        self.checkpointer.stop()
        self.engine.dispose()
