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
from sqlalchemy import Column, Select, Table, delete, func, inspect, literal, select, text

from memory import pg, pg_index
from memory.backup import NOT_BOOKKEEPING, SQLITE_SEQUENCE
from memory.db import Tx
from memory.errors import StoreError, StoreNotEmpty
from memory.tables import (
    conversation,
    diarization_turn,
    enrollment_clip,
    identity_event,
    live_session,
    local_cluster,
    meta,
    segment,
    segment_content,
    segment_text_vector,
    segment_voice,
    speaker,
    speaker_centroid,
    text_model,
    voice_model,
    voiceprint,
)
from memory.vectors import from_blob

COPY_BATCH = 2000
"""Rows read and written at a time (a text-vector row is ~1.5 kB, a segment's words ~1 kB)."""
SAMPLE_ROWS = 200
"""Rows per table compared column by column after the copy, spread evenly over its keys."""

INDEX_BUILD_MEMORY = "1GB"
"""PostgreSQL's maintenance_work_mem while the HNSW indexes are built at the end: pgvector
builds fast while the graph fits in it (1M 384-d vectors are 1.5 GB before the graph; beyond
it the build goes on, slower)."""

COPIED_TABLES: tuple[Table, ...] = (
    meta, voice_model, text_model, speaker, conversation, live_session, local_cluster,
    diarization_turn, segment, segment_content, segment_voice, segment_text_vector, voiceprint,
    speaker_centroid, enrollment_clip, identity_event,
)
"""Every stored table, in an order that inserts referenced rows first; each is read in the
order of its primary key. (The derived tables, FTS5 and sqlite-vec's, are not copied;
schema_version is the target's; job_progress is a running job's, which no copy carries.)"""


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
    for table in COPIED_TABLES:
        _same_columns(source, target, table)
    target.execute(delete(meta).where(NOT_BOOKKEEPING))  # the fresh store's defaults
    for table in COPIED_TABLES:
        _copy_table(source, target, table)
    # The HNSW indexes were dropped for the load (memory.pg_index.drop_index): build them now.
    target.execute(text(f"SET LOCAL maintenance_work_mem = '{INDEX_BUILD_MEMORY}'"))
    for row in target.rows(select(text_model.c.dim).distinct()):
        pg_index.create_embedding_table(target, int(row.dim))
    # Statistics for the planner now, not when autovacuum gets round to the new rows.
    target.execute(text("ANALYZE"))
    pg.set_sequences(target, [(str(r.name), int(r.seq)) for r in source.rows(
        select(SQLITE_SEQUENCE.c.name, SQLITE_SEQUENCE.c.seq)
    )])
    report = CopyReport()
    for table in COPIED_TABLES:
        report.tables.append(_verify_table(source, target, table))
    report.vectors_indexed, report.vectors_compared = _verify_vectors(source, target)
    report.seconds = time.perf_counter() - started
    return report


def _refuse_non_empty(target: Tx) -> None:
    for table in COPIED_TABLES:
        if table in (meta, voice_model, text_model):
            continue  # what opening a store may register
        if target.first(select(literal(1)).select_from(table).limit(1)):
            raise StoreNotEmpty(
                f"the PostgreSQL store already holds data (table {table.name} has rows); "
                "migrate-store copies into an empty database (or schema) only"
            )


def _stored_columns(tx: Tx, table: Table) -> list[str]:
    """The columns the store has for `table` (not PostgreSQL's generated tsvector)."""
    return [str(c["name"]) for c in inspect(tx.connection).get_columns(table.name)
            if "computed" not in c]


def _same_columns(source: Tx, target: Tx, table: Table) -> None:
    mine = _stored_columns(source, table)
    theirs = _stored_columns(target, table)
    if set(mine) != set(theirs):
        raise StoreError(
            f"table {table.name} has other columns on PostgreSQL ({', '.join(theirs)}) than "
            f"in the SQLite store ({', '.join(mine)}); are both at the same schema version?"
        )


def _keys(table: Table) -> list[Column[Any]]:
    return list(table.primary_key.columns)


def _select(table: Table, *columns: Column[Any]) -> Select[Any]:
    """`columns` (all of the table's by default) of its copied rows, in key order."""
    statement = select(*(columns or table.columns)).order_by(*_keys(table))
    return statement.where(NOT_BOOKKEEPING) if table is meta else statement


def _batches(source: Tx, statement: Select[Any]) -> Iterator[list[tuple[Any, ...]]]:
    """The rows of `statement` on the source, COPY_BATCH at a time."""
    batch: list[tuple[Any, ...]] = []
    for row in source.stream(statement, batch=COPY_BATCH):
        batch.append(row)
        if len(batch) == COPY_BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _copy_table(source: Tx, target: Tx, table: Table) -> None:
    if table is text_model:  # also makes the model's pgvector table
        for row in source.rows(select(text_model.c.model_id, text_model.c.dim)):
            pg_index.register_model(target, str(row.model_id), int(row.dim))
            pg_index.drop_index(target, int(row.dim))
        return
    if table is segment_text_vector:
        vectors = _select(table, table.c.segment_id, table.c.model_id, table.c.vector)
        for batch in _batches(source, vectors):
            _copy_text_vectors(target, batch)
        return
    names = [c.name for c in table.columns]
    for batch in _batches(source, _select(table)):
        target.insert_rows(table, [dict(zip(names, row, strict=True)) for row in batch])


def _copy_text_vectors(target: Tx, batch: list[tuple[Any, ...]]) -> None:
    """Both the exact float32 rows and their pgvector copies, per model."""
    by_model: dict[str, list[tuple[int, Any]]] = {}
    for segment_id, model_id, vector in batch:
        by_model.setdefault(str(model_id), []).append((int(segment_id), from_blob(vector)))
    for model_id, rows in by_model.items():
        pg_index.add_vectors(target, model_id, rows, indexed=True)


def _count(tx: Tx, table: Table) -> int:
    counted = select(func.count()).select_from(table)
    return int(tx.value(counted.where(NOT_BOOKKEEPING) if table is meta else counted))


def _verify_table(source: Tx, target: Tx, table: Table) -> TableCopy:
    copied = TableCopy(table.name, _count(source, table), _count(target, table), 0)
    if copied.source_rows != copied.target_rows:
        raise StoreError(
            f"copy check failed: table {table.name} has {copied.source_rows} rows in the "
            f"SQLite store but {copied.target_rows} on PostgreSQL; nothing was committed"
        )
    keys = _sample_keys(source, table, copied.source_rows)
    for key in keys:
        one = _select(table).where(*(k == v for k, v in zip(_keys(table), key, strict=True)))
        mine = source.first(one)
        theirs = target.first(one)
        if mine is None or theirs is None or _plain(mine) != _plain(theirs):
            raise StoreError(
                f"copy check failed: row {key} of table {table.name} differs on PostgreSQL "
                f"({mine!r} against {theirs!r}); nothing was committed"
            )
    return TableCopy(table.name, copied.source_rows, copied.target_rows, len(keys))


def _sample_keys(source: Tx, table: Table, count: int) -> list[tuple[Any, ...]]:
    """Up to SAMPLE_ROWS keys spread evenly over the table (first and last included)."""
    if count == 0:
        return []
    step = max(1, count // SAMPLE_ROWS)
    keys: list[tuple[Any, ...]] = []
    last: tuple[Any, ...] = ()
    for i, row in enumerate(source.stream(_select(table, *_keys(table)))):
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
    for model in source.rows(select(text_model.c.model_id, text_model.c.dim)):
        model_id = model.model_id
        table = pg_index.embedding_table(int(model.dim))
        of_model = segment_text_vector.c.model_id == model_id
        expected = int(source.value(
            select(func.count()).select_from(segment_text_vector).where(of_model)))
        # The pgvector tables are PostgreSQL's own (memory.pg_index), not in memory.tables.
        found = int(target.value(text(f"SELECT count(*) FROM {table} WHERE model_id = :model"),
                                 {"model": model_id}))
        if found != expected:
            raise StoreError(
                f"copy check failed: text model {model_id!r} has {expected} vectors in the "
                f"SQLite store but {found} in {table}; nothing was committed"
            )
        indexed += found
        step = max(1, expected // SAMPLE_ROWS)
        numbered = select(
            segment_text_vector.c.segment_id, segment_text_vector.c.vector,
            (func.row_number().over(order_by=segment_text_vector.c.segment_id) - 1).label("n"),
        ).where(of_model).subquery()
        sample = source.rows(select(numbered.c.segment_id, numbered.c.vector)
                             .where(numbered.c.n % step == 0))
        embedding = text(f"SELECT embedding::text FROM {table} WHERE segment_id = :segment")
        for row in sample:
            stored_text = target.value(embedding, {"segment": int(row.segment_id)})
            stored = np.asarray(json.loads(stored_text or "[]"), np.float32)
            if not np.array_equal(stored, from_blob(row.vector)):
                raise StoreError(
                    f"copy check failed: the pgvector copy of segment {row.segment_id}'s text "
                    "vector differs from the SQLite one; nothing was committed"
                )
            compared += 1
    return indexed, compared


__all__ = ["COPIED_TABLES", "COPY_BATCH", "CopyReport", "TableCopy", "copy_store"]
