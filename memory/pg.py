"""The PostgreSQL engine: SQLAlchemy over psycopg 3, with pgvector for text vectors.

The domain modules write their statements once, in the SQL both engines accept (qmark
parameters, standard joins, `RETURNING`); `PgTx` adapts the few spellings that differ (the
`?` placeholder, `json_each` id lists, the id an INSERT made) in one place, cached per
statement, so the SQLite path keeps its raw cursor speed untouched.

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

import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

import psycopg
from psycopg.adapt import Dumper, PyFormat
from psycopg.pq import Format
from psycopg.types.numeric import FloatLoader
from sqlalchemy import Engine, Table, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import QueuePool
from sqlalchemy.sql.dml import Insert

from memory.db import Params, Tx
from memory.pg_index import PendingIndexer, VectorParam
from memory.tables import SERIAL_TABLES

WRITE_LOCK_KEY = 0x5350_4B52_4D45_4D  # "SPKRMEM": one key for the store's writers
AUTOINCREMENT_TABLES = tuple(sorted(SERIAL_TABLES - {"diarization_turn"}))
"""The tables SQLite's sqlite_sequence tracks (AUTOINCREMENT): a backup carries their
counters, so that ids stay never reused after an import."""

_INSERT = re.compile(r"^\s*INSERT\s+INTO\s+(\w+)\s*(\(\s*\"?id\"?\s*[,)])?", re.IGNORECASE)
_PLAIN_INSERT = re.compile(
    r"^\s*INSERT\s+INTO\s+(\w+)\s*\(([^)]*)\)\s*VALUES\s*\(\s*\?(?:\s*,\s*\?)*\s*\)\s*$",
    re.IGNORECASE,
)
"""An INSERT of parameters only: PgTx.many sends its rows by COPY."""
COPY_MIN_ROWS = 20
"""Fewer rows go by executemany: COPY's column-type lookup costs a round trip."""
_JSON_IDS = "SELECT value FROM json_each(?)"
_PG_IDS = "SELECT value::bigint FROM jsonb_array_elements_text(?::jsonb) AS value"


@lru_cache(maxsize=4096)
def to_pg(sql: str) -> str:
    """The statement in psycopg's spelling: `%s` placeholders (literal `%` doubled), id lists
    from a JSON array. `?` inside quoted literals or identifiers is left alone."""
    sql = sql.replace(_JSON_IDS, _PG_IDS)
    out: list[str] = []
    quote: str | None = None
    for ch in sql:
        if quote is not None:
            if ch == quote:
                quote = None
            out.append("%%" if ch == "%" else ch)
        elif ch in ("'", '"'):
            quote = ch
            out.append(ch)
        elif ch == "?":
            out.append("%s")
        elif ch == "%":
            out.append("%%")
        else:
            out.append(ch)
    return "".join(out)


def _params(params: Params) -> tuple[Any, ...]:
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
    """A `Tx` on PostgreSQL: the same calls, the statements adapted by `to_pg`."""

    dialect = "postgresql"

    def all(self, sql: str, params: Params = ()) -> list[tuple[Any, ...]]:
        with self._raw.cursor() as cursor:
            cursor.execute(to_pg(sql), _params(params))
            return list(cursor.fetchall())

    def one(self, sql: str, params: Params = ()) -> tuple[Any, ...] | None:
        with self._raw.cursor() as cursor:
            cursor.execute(to_pg(sql), _params(params))
            row: tuple[Any, ...] | None = cursor.fetchone()
            return row

    def each(self, sql: str, params: Params = (), batch: int = 1000) -> Iterator[tuple[Any, ...]]:
        with self._raw.cursor() as cursor:
            cursor.execute(to_pg(sql), _params(params))
            while rows := cursor.fetchmany(batch):
                yield from rows

    def scalar(self, sql: str, params: Params = ()) -> Any:
        row = self.one(sql, params)
        return None if row is None else row[0]

    def run(self, sql: str, params: Params = ()) -> int:
        """Execute one statement; returns the new id for INSERT, else the row count."""
        insert = _INSERT.match(sql)
        statement = to_pg(sql)
        returning = (insert is not None and insert.group(1) in SERIAL_TABLES
                     and "RETURNING" not in sql.upper())
        if returning:
            statement += " RETURNING id"
        with self._raw.cursor() as cursor:
            cursor.execute(statement, _params(params))
            if returning:
                row = cursor.fetchone()
                result = 0 if row is None else int(row[0])
            elif insert is not None:
                result = 0
            else:
                result = int(cursor.rowcount)
        self._after_insert(insert)
        return result

    def many(self, sql: str, rows: Sequence[Params]) -> None:
        if not rows:
            return
        if any(isinstance(p, VectorParam) for p in rows[0]):
            _send_vectors(self._raw)
        plain = _PLAIN_INSERT.match(sql)
        if plain is not None and len(rows) >= COPY_MIN_ROWS:
            self._copy(plain.group(1), [c.strip().strip('"') for c in plain.group(2).split(",")],
                       rows)
        else:
            with self._raw.cursor() as cursor:
                cursor.executemany(to_pg(sql), [_params(r) for r in rows])
        self._after_insert(_INSERT.match(sql))

    def _copy(self, table: str, columns: list[str], rows: Sequence[Params]) -> None:
        """Rows in by binary COPY: one statement for all rows, no per-row parse and bind
        (executemany sends one statement per row, pipelined)."""
        types = dict(self.all(
            "SELECT attname, atttypid FROM pg_attribute WHERE attrelid = to_regclass(?)"
            " AND attnum > 0 AND NOT attisdropped", (table,),
        ))
        quoted = ", ".join(f'"{c}"' for c in columns)
        with self._raw.cursor() as cursor, cursor.copy(
            f"COPY {table} ({quoted}) FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.set_types([int(types[c]) for c in columns])
            for row in rows:
                copy.write_row(_params(row))

    def script(self, sql: str) -> None:
        with self._raw.cursor() as cursor:
            cursor.execute(sql.encode())  # bytes: no placeholder parsing in DDL

    def next_id(self, table: str) -> int:
        """The id the next row of `table` gets (ids are never reused)."""
        given = self.scalar(
            f"SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM {_sequence(table)}"
        )
        top = self.scalar(f"SELECT COALESCE(MAX(id), 0) FROM {table}")
        return max(int(given or 0), int(top)) + 1

    def _after_insert(self, insert: re.Match[str] | None) -> None:
        if insert is not None and insert.group(2) is not None and insert.group(1) in SERIAL_TABLES:
            self._follow_sequence(insert.group(1))

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

    # --- Core calls whose PostgreSQL form differs --------------------------------------------
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


def _sequence(table: str) -> str:
    return f"{table}_id_seq"


def columns(tx: Tx, table: str) -> list[str]:
    """A table's stored columns in order (a backup's columns; not generated ones). The
    sqlite_sequence of a backup is the sequences' state (sequences_select)."""
    if table == "sqlite_sequence":
        return ["name", "seq"]
    # pg_catalog, not information_schema: the latter's view costs ~1 s on a busy catalog.
    return [str(r[0]) for r in tx.all(
        "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(?) AND attnum > 0"
        " AND NOT attisdropped AND attgenerated = '' ORDER BY attnum", (table,),
    )]


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
            tx.run(f"SELECT setval('{_sequence(name)}', ?)", (seq,))


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
        parsed = make_url(url).set(drivername="postgresql+psycopg")
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
            tx.run("SELECT pg_advisory_xact_lock(?)", (WRITE_LOCK_KEY,))
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


def _on_connect(dbapi_conn: Any, _record: Any) -> None:
    # SUM/AVG of integers are numeric in PostgreSQL (Decimal in Python); SQLite gives
    # int or float, and the domain code does arithmetic with floats on them.
    dbapi_conn.adapters.register_loader("numeric", FloatLoader)


def is_postgresql(url: str) -> bool:
    try:
        return make_url(url).get_backend_name() == "postgresql"
    except ArgumentError:
        return False


__all__ = ["PgDatabase", "PgTx", "display_url", "is_postgresql", "to_pg"]

