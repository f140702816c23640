"""Copy a SQLite store into an empty PostgreSQL store (`speaker-memory migrate-store`).

Every row of every table goes across with its id, read from one snapshot of the source and
written in one transaction on the target, `COPY_BATCH` rows at a time (memory is a batch,
not the store). Derived data is made the target's way: the tsvector is a generated column,
each text vector also goes into its dimension's pgvector table, whose HNSW index is built
once at the end (inserting 100k rows into the graph one by one took minutes); speaker
centroids are copied as they are (they are exact running sums). Sequences end where
SQLite's counters were, so no id is ever given twice. Before the transaction commits, the
copy is verified: row counts per table, and an evenly spread sample of rows (every column)
and of text vectors compared exactly. A mismatch raises and rolls everything back: the
target stays empty.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from memory import pg, pg_index
from memory.backup import NOT_BOOKKEEPING
from memory.db import Tx
from memory.errors import StoreError, StoreNotEmpty
from memory.vectors import from_blob

COPY_BATCH = 2000
"""Rows read and written at a time (a text-vector row is ~1.5 kB, a segment's words ~1 kB)."""
SAMPLE_ROWS = 200
"""Rows per table compared column by column after the copy, spread evenly over its keys."""

INDEX_BUILD_MEMORY = "1GB"
"""PostgreSQL's maintenance_work_mem while the HNSW indexes are built at the end: pgvector
builds fast while the graph fits in it (1M 384-d vectors are 1.5 GB before the graph; beyond
it the build goes on, slower)."""

TABLE_KEYS: dict[str, tuple[str, ...]] = {
    "meta": ("key",),
    "voice_model": ("model_id",),
    "text_model": ("model_id",),
    "speaker": ("id",),
    "conversation": ("id",),
    "live_session": ("conversation_id",),
    "local_cluster": ("id",),
    "diarization_turn": ("id",),
    "segment": ("id",),
    "segment_content": ("segment_id",),
    "segment_voice": ("segment_id",),
    "segment_text_vector": ("segment_id",),
    "voiceprint": ("id",),
    "speaker_centroid": ("speaker_id", "model_id"),
    "enrollment_clip": ("id",),
    "identity_event": ("id",),
}
"""Every stored table, in an order that inserts referenced rows first, with its key. (The
derived tables, FTS5 and sqlite-vec's, are not copied; schema_version is the target's.)"""


@dataclass(frozen=True)
class TableCopy:
    table: str
    source_rows: int
    target_rows: int
    sampled: int
    """Rows compared column by column."""


@dataclass
class CopyReport:
    tables: list[TableCopy] = field(default_factory=list)
    vectors_indexed: int = 0
    """Rows in the pgvector tables (one per text vector)."""
    vectors_compared: int = 0
    """Text vectors read back from pgvector and compared with the source's float32 values."""
    seconds: float = 0.0

    @property
    def rows(self) -> int:
        return sum(t.target_rows for t in self.tables)


def copy_store(source: Tx, target: Tx) -> CopyReport:
    """Copy `source` (SQLite, one read snapshot) into `target` (PostgreSQL, one write
    transaction, freshly migrated to the same schema version and empty)."""
    if source.dialect != "sqlite" or target.dialect != "postgresql":
        raise StoreError("migrate-store copies a SQLite store into a PostgreSQL one")
    started = time.perf_counter()
    _refuse_non_empty(target)
    columns = {table: _same_columns(source, target, table) for table in TABLE_KEYS}
    target.run(f"DELETE FROM meta WHERE {NOT_BOOKKEEPING}")  # the fresh store's defaults
    for table in TABLE_KEYS:
        _copy_table(source, target, table, columns[table])
    # The HNSW indexes were dropped for the load (memory.pg_index.drop_index): build them now.
    target.run(f"SET LOCAL maintenance_work_mem = '{INDEX_BUILD_MEMORY}'")
    for (dim,) in target.all("SELECT DISTINCT dim FROM text_model"):
        pg_index.create_embedding_table(target, int(dim))
    # Statistics for the planner now, not when autovacuum gets round to the new rows.
    target.run("ANALYZE")
    pg.set_sequences(target, [(str(name), int(seq)) for name, seq in source.all(
        "SELECT name, seq FROM sqlite_sequence"
    )])
    report = CopyReport()
    for table in TABLE_KEYS:
        report.tables.append(_verify_table(source, target, table, columns[table]))
    report.vectors_indexed, report.vectors_compared = _verify_vectors(source, target)
    report.seconds = time.perf_counter() - started
    return report


def _refuse_non_empty(target: Tx) -> None:
    for table in TABLE_KEYS:
        if table in ("meta", "voice_model", "text_model"):
            continue  # what opening a store may register
        if target.one(f"SELECT 1 FROM {table} LIMIT 1"):
            raise StoreNotEmpty(
                f"the PostgreSQL store already holds data (table {table} has rows); "
                "migrate-store copies into an empty database (or schema) only"
            )


def _same_columns(source: Tx, target: Tx, table: str) -> list[str]:
    mine = [str(r[1]) for r in source.all(f"PRAGMA table_info({table})")]
    theirs = pg.columns(target, table)
    if set(mine) != set(theirs):
        raise StoreError(
            f"table {table} has other columns on PostgreSQL ({', '.join(theirs)}) than in "
            f"the SQLite store ({', '.join(mine)}); are both at the same schema version?"
        )
    return mine


def _select(table: str, columns: Sequence[str], where: str = "") -> str:
    quoted = ", ".join(f'"{c}"' for c in columns)
    keys = ", ".join(f'"{k}"' for k in TABLE_KEYS[table])
    return f"SELECT {quoted} FROM {table}{where} ORDER BY {keys}"


def _rows(source: Tx, table: str, columns: Sequence[str]) -> Iterator[list[tuple[Any, ...]]]:
    """The source rows of `table` in key order, COPY_BATCH at a time."""
    where = f" WHERE {NOT_BOOKKEEPING}" if table == "meta" else ""
    batch: list[tuple[Any, ...]] = []
    for row in source.each(_select(table, columns, where), batch=COPY_BATCH):
        batch.append(row)
        if len(batch) == COPY_BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _copy_table(source: Tx, target: Tx, table: str, columns: list[str]) -> None:
    if table == "text_model":  # also makes the model's pgvector table
        for model_id, dim in source.all("SELECT model_id, dim FROM text_model"):
            pg_index.register_model(target, str(model_id), int(dim))
            pg_index.drop_index(target, int(dim))
        return
    quoted = ", ".join(f'"{c}"' for c in columns)
    insert = f"INSERT INTO {table}({quoted}) VALUES ({', '.join('?' for _ in columns)})"
    for batch in _rows(source, table, columns):
        if table == "segment_text_vector":
            _copy_text_vectors(target, columns, batch)
        else:
            target.many(insert, batch)


def _copy_text_vectors(target: Tx, columns: list[str], batch: list[tuple[Any, ...]]) -> None:
    """Both the exact float32 rows and their pgvector copies, per model."""
    by_model: dict[str, list[tuple[int, Any]]] = {}
    at = {c: i for i, c in enumerate(columns)}
    for row in batch:
        by_model.setdefault(str(row[at["model_id"]]), []).append(
            (int(row[at["segment_id"]]), from_blob(row[at["vector"]]))
        )
    for model_id, rows in by_model.items():
        pg_index.add_vectors(target, model_id, rows, indexed=True)


def _count(tx: Tx, table: str) -> int:
    where = f" WHERE {NOT_BOOKKEEPING}" if table == "meta" else ""
    return int(tx.scalar(f"SELECT count(*) FROM {table}{where}"))


def _verify_table(source: Tx, target: Tx, table: str, columns: list[str]) -> TableCopy:
    copied = TableCopy(table, _count(source, table), _count(target, table), 0)
    if copied.source_rows != copied.target_rows:
        raise StoreError(
            f"copy check failed: table {table} has {copied.source_rows} rows in the SQLite "
            f"store but {copied.target_rows} on PostgreSQL; nothing was committed"
        )
    keys = _sample_keys(source, table, copied.source_rows)
    for key in keys:
        where = " AND ".join(f'"{k}" = ?' for k in TABLE_KEYS[table])
        mine = source.one(_select(table, columns, f" WHERE {where}"), key)
        theirs = target.one(_select(table, columns, f" WHERE {where}"), key)
        if mine is None or theirs is None or _plain(mine) != _plain(theirs):
            raise StoreError(
                f"copy check failed: row {key} of table {table} differs on PostgreSQL "
                f"({mine!r} against {theirs!r}); nothing was committed"
            )
    return TableCopy(table, copied.source_rows, copied.target_rows, len(keys))


def _sample_keys(source: Tx, table: str, count: int) -> list[tuple[Any, ...]]:
    """Up to SAMPLE_ROWS keys spread evenly over the table (first and last included)."""
    if count == 0:
        return []
    step = max(1, count // SAMPLE_ROWS)
    where = f" WHERE {NOT_BOOKKEEPING}" if table == "meta" else ""
    keys: list[tuple[Any, ...]] = []
    last: tuple[Any, ...] = ()
    for i, row in enumerate(source.each(_select(table, TABLE_KEYS[table], where))):
        last = tuple(row)
        if i % step == 0 and len(keys) < SAMPLE_ROWS:
            keys.append(last)
    if keys[-1] != last:
        keys.append(last)
    return keys


def _plain(row: Sequence[Any]) -> tuple[Any, ...]:
    """Values as both drivers agree on them (a BLOB may come back as a memoryview)."""
    return tuple(bytes(v) if isinstance(v, bytes | memoryview) else v for v in row)


def _verify_vectors(source: Tx, target: Tx) -> tuple[int, int]:
    """(pgvector rows, rows compared): every text vector has its pgvector row, and a sample
    of them holds exactly the source's float32 values."""
    indexed = 0
    compared = 0
    for model_id, dim in source.all("SELECT model_id, dim FROM text_model"):
        table = pg_index.embedding_table(int(dim))
        expected = int(source.scalar(
            "SELECT count(*) FROM segment_text_vector WHERE model_id = ?", (model_id,)))
        found = int(target.scalar(f"SELECT count(*) FROM {table} WHERE model_id = ?",
                                  (model_id,)))
        if found != expected:
            raise StoreError(
                f"copy check failed: text model {model_id!r} has {expected} vectors in the "
                f"SQLite store but {found} in {table}; nothing was committed"
            )
        indexed += found
        step = max(1, expected // SAMPLE_ROWS)
        sample = source.all(
            "SELECT segment_id, vector FROM (SELECT segment_id, vector, row_number() OVER"
            " (ORDER BY segment_id) - 1 AS n FROM segment_text_vector WHERE model_id = ?)"
            " WHERE n % ? = 0", (model_id, step),
        )
        for segment_id, blob in sample:
            text = target.scalar(f"SELECT embedding::text FROM {table} WHERE segment_id = ?",
                                 (int(segment_id),))
            stored = np.asarray(json.loads(text or "[]"), np.float32)
            if not np.array_equal(stored, from_blob(blob)):
                raise StoreError(
                    f"copy check failed: the pgvector copy of segment {segment_id}'s text "
                    "vector differs from the SQLite one; nothing was committed"
                )
            compared += 1
    return indexed, compared


__all__ = ["COPY_BATCH", "CopyReport", "TableCopy", "copy_store"]
