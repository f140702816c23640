"""The PostgreSQL engine: SQLAlchemy over psycopg 3, with pgvector for text vectors.

The domain modules build their statements with SQLAlchemy Core from memory.tables, and
SQLAlchemy renders them for PostgreSQL; `PgTx` adds what differs below that: many rows go in
by binary COPY, and the id sequences follow rows inserted with explicit ids.

Writers on PostgreSQL: every write transaction first takes one transaction-level advisory
lock (`pg_advisory_xact_lock`), so writes from every API server are serialised exactly as
SQLite's `BEGIN IMMEDIATE` serialises them in one process. Identity operations read a
speaker, then move thousands of segments and record the exact undo payload; with row locks
each operation would have to lock every row its undo will read (segments of both speakers,
voiceprints, centroids, the unknown-number counter), and SERIALIZABLE would abort and retry
large relabels under contention. One lock keeps every invariant the state machine checks
with no retry path, and writes are short (the 100k-segment relabel is one UPDATE).
Readers run in REPEATABLE READ READ ONLY transactions: one snapshot across their
statements (what SQLite's WAL read transaction gives) and never blocked by the writer.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.adapt import Dumper, PyFormat
from psycopg.pq import Format
from psycopg.types.numeric import FloatLoader, NumericBinaryLoader
from sqlalchemy import Engine, Table, create_engine, event, func, select, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import QueuePool
from sqlalchemy.sql.dml import Insert

from memory.db import Bound, Tx
from memory.pg_index import PendingIndexer, VectorParam
from memory.prepared import Form
from memory.tables import SERIAL_TABLES

WRITE_LOCK_KEY = 0x5350_4B52_4D45_4D  # "SPKRMEM": one key for the store's writers
TAKE_WRITE_LOCK = select(func.pg_advisory_xact_lock(WRITE_LOCK_KEY))
AUTOINCREMENT_TABLES = tuple(sorted(SERIAL_TABLES - {"diarization_turn"}))
"""The tables SQLite's sqlite_sequence tracks (AUTOINCREMENT): a backup carries their
counters, so that ids stay never reused after an import."""

COPY_MIN_ROWS = 20
"""Fewer rows go by executemany: COPY's column-type lookup costs a round trip."""


def _params(params: Sequence[Any]) -> tuple[Any, ...]:
    # SQLite stores a bool as 0/1 in an INTEGER column; PostgreSQL refuses a boolean there.
    return tuple(int(p) if isinstance(p, bool) else p for p in params)


def _send_vectors(raw: Any) -> None:
    """Teach this connection to send VectorParam as a `vector`. The type's oid exists once
    the extension does, so this runs on first use, not on connect."""
    try:
        raw.adapters.get_dumper(VectorParam, PyFormat.BINARY)
        return
    except psycopg.ProgrammingError:
        pass
    oid = raw.execute("SELECT to_regtype('vector')::oid").fetchone()[0]

    class VectorDumper(Dumper):
        format = Format.BINARY

        def dump(self, obj: Any) -> bytes:
            data: bytes = obj.data
            return data

    VectorDumper.oid = int(oid)
    raw.adapters.register_dumper(VectorParam, VectorDumper)


class PgTx(Tx):
    """A `Tx` on PostgreSQL: the same calls; bulk inserts by COPY, sequences kept ahead."""

    dialect = "postgresql"

    def insert(self, statement: Insert) -> int:
        result = self.connection.execute(statement)
        table = statement.table.name
        if table in SERIAL_TABLES and "id" in result.context.compiled_parameters[0]:
            self._follow_sequence(table)
        key = result.inserted_primary_key
        return 0 if key is None or key[0] is None else int(key[0])

    def insert_rows(self, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
        if not rows:
            return
        columns = list(rows[0])
        values = [_params([r[c] for c in columns]) for r in rows]
        if any(isinstance(p, VectorParam) for p in values[0]):
            _send_vectors(self._raw)
        if len(rows) >= COPY_MIN_ROWS:
            self._copy(table.name, columns, values)
        else:
            quoted = ", ".join(f'"{c}"' for c in columns)
            marks = ", ".join(["%s"] * len(columns))
            with self._raw.cursor() as cursor:
                cursor.executemany(
                    f"INSERT INTO {table.name} ({quoted}) VALUES ({marks})", values
                )
        if table.name in SERIAL_TABLES and "id" in columns:
            self._follow_sequence(table.name)

    def _run(self, form: Form, params: Bound) -> Any:
        # Results in binary: a voiceprint's bytea comes as its bytes, not as hex text of twice
        # the size (matching a voice reads ~1000 of them: ~0.5 ms less per 250 rows).
        return self._raw.execute(form.sql, form.bind(params), binary=True)

    def script(self, sql: str) -> None:
        with self._raw.cursor() as cursor:
            cursor.execute(sql.encode())  # bytes: no placeholder parsing in DDL

    def next_id(self, table: str) -> int:
        """The id the next row of `table` gets (ids are never reused)."""
        with self._raw.cursor() as cursor:
            given, top = cursor.execute(
                f"SELECT (SELECT CASE WHEN is_called THEN last_value ELSE 0 END"
                f" FROM {_sequence(table)}), (SELECT COALESCE(MAX(id), 0) FROM {table})"
            ).fetchone()
        return max(int(given or 0), int(top)) + 1

    def _copy(self, table: str, columns: list[str], rows: Sequence[tuple[Any, ...]]) -> None:
        """Rows in by binary COPY: one statement for all rows, no per-row parse and bind
        (executemany sends one statement per row, pipelined)."""
        with self._raw.cursor() as cursor:
            types = dict(cursor.execute(
                "SELECT attname, atttypid FROM pg_attribute WHERE attrelid = to_regclass(%s)"
                " AND attnum > 0 AND NOT attisdropped", (table,),
            ).fetchall())
        quoted = ", ".join(f'"{c}"' for c in columns)
        with self._raw.cursor() as cursor, cursor.copy(
            f"COPY {table} ({quoted}) FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.set_types([int(types[c]) for c in columns])
            for row in rows:
                copy.write_row(row)

    def _follow_sequence(self, table: str) -> None:
        """Rows inserted with explicit ids (ingest's reserved ranges, undo, import) leave the
        sequence behind: move it past them, never back."""
        sequence = _sequence(table)
        with self._raw.cursor() as cursor:
            cursor.execute(
                f"SELECT setval('{sequence}', top) FROM (SELECT GREATEST("
                f"(SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM {sequence}),"
                f" (SELECT COALESCE(MAX(id), 0) FROM {table})) AS top) t WHERE top > 0"
            )


def _sequence(table: str) -> str:
    return f"{table}_id_seq"


def sequences_select() -> str:
    """The (name, seq) rows SQLite's sqlite_sequence would hold: the last id given per table."""
    return " UNION ALL ".join(
        f"SELECT '{t}' AS name, last_value AS seq FROM {_sequence(t)} WHERE is_called"
        for t in AUTOINCREMENT_TABLES
    ) + " ORDER BY name"


def set_sequences(tx: Tx, rows: Sequence[tuple[str, int]]) -> None:
    """Put the sequences where a backup's sqlite_sequence rows say (after its rows went in)."""
    for name, seq in rows:
        if name in AUTOINCREMENT_TABLES and seq > 0:
            tx.value(text("SELECT setval(:sequence, :seq)"),
                     {"sequence": _sequence(name), "seq": seq})


def display_url(url: str) -> str:
    """The URL without its password, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(a database URL that does not parse)"


class PgDatabase:
    """One PostgreSQL store: the same `write()` / `read()` contract as `memory.db.Database`."""

    dialect = "postgresql"

    def __init__(self, url: str) -> None:
        self.label = display_url(url)
        self.write_lock = threading.RLock()
        # psycopg 3 whatever driver the URL names (postgresql:// alone means psycopg2 to
        # SQLAlchemy, which is not installed).
        parsed = with_commit_durability(make_url(url).set(drivername="postgresql+psycopg"))
        self.engine: Engine = create_engine(
            parsed, poolclass=QueuePool, pool_size=4, max_overflow=16, pool_pre_ping=True,
        )
        event.listen(self.engine, "connect", _on_connect)
        self.indexer = PendingIndexer(self._unlocked_write)

    @contextmanager
    def write(self) -> Iterator[Tx]:
        """One write transaction, serialised across every process by the advisory lock."""
        with self.write_lock, self.engine.connect() as conn, conn.begin():
            tx = PgTx(conn)
            tx.value(TAKE_WRITE_LOCK)
            yield tx
        self.indexer.poke()

    @contextmanager
    def _unlocked_write(self) -> Iterator[Tx]:
        """A write transaction without the writers' lock: PendingIndexer's, which row locks
        keep safe."""
        with self.engine.connect() as conn, conn.begin():
            yield PgTx(conn)

    @contextmanager
    def read(self) -> Iterator[Tx]:
        """One read transaction: a consistent snapshot across its statements."""
        with self.engine.connect() as conn:
            conn = conn.execution_options(
                isolation_level="REPEATABLE READ", postgresql_readonly=True
            )
            with conn.begin():
                yield PgTx(conn)

    def index_pending(self) -> None:
        """Put every pending text vector into its HNSW graph now (memory.pg_index)."""
        self.indexer.drain()

    def dispose(self) -> None:
        self.indexer.stop()
        self.engine.dispose()


def with_commit_durability(url: URL) -> URL:
    """The URL with `synchronous_commit=off` unless it sets synchronous_commit itself.

    The same durability as the SQLite default (WAL, synchronous=NORMAL): a commit is final
    and nothing is ever corrupted, but a crash of the database's machine (not of a server
    process) may lose the last commits, up to ~0.6 s of them. Waiting for the WAL flush
    instead costs ~15 ms per write on this machine's disk, more than a one-cluster ingest
    takes. For that wait, put `options=-csynchronous_commit%3Don` in the URL."""
    options = str(url.query.get("options", ""))
    if "synchronous_commit" in options:
        return url
    return url.update_query_dict({"options": f"{options} -csynchronous_commit=off".strip()})


class _FloatNumericBinaryLoader(NumericBinaryLoader):
    """numeric as float in binary results too (memory.prepared's rows)."""

    def load(self, data: Any) -> float:  # type: ignore[override]  # float, not Decimal
        return float(super().load(data))


def _on_connect(dbapi_conn: Any, _record: Any) -> None:
    # SUM/AVG of integers are numeric in PostgreSQL (Decimal in Python); SQLite gives
    # int or float, and the domain code does arithmetic with floats on them.
    dbapi_conn.adapters.register_loader("numeric", FloatLoader)
    dbapi_conn.adapters.register_loader("numeric", _FloatNumericBinaryLoader)


def is_postgresql(url: str) -> bool:
    try:
        return make_url(url).get_backend_name() == "postgresql"
    except ArgumentError:
        return False


__all__ = ["PgDatabase", "PgTx", "display_url", "is_postgresql"]

