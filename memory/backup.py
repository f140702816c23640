"""Backup: every stored row to one JSON file, and back into an empty store, exactly.

Derived data (centroids, the full-text index, quantised text vectors) is not exported; it is
rebuilt on import from the rows it derives from. Audio files are not in it either: recordings
and enrollment clips are referenced by their paths (conversation.audio_path,
enrollment_clip.path).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    Integer,
    MetaData,
    Select,
    Table,
    Text,
    TextClause,
    delete,
    literal,
    select,
    text,
)

from memory import pg
from memory.db import Tx
from memory.errors import BackupError, ImportNotEmpty
from memory.search_index import SearchIndex
from memory.tables import meta, metadata, speaker
from memory.voiceprints import recompute_centroids

FORMAT = "speaker-memory-backup"
TABLES = (
    "meta", "voice_model", "text_model", "speaker", "conversation", "live_session",
    "local_cluster", "diarization_turn", "segment", "segment_content", "segment_voice",
    "segment_text_vector", "voiceprint", "enrollment_clip", "identity_event", "sqlite_sequence",
)
BOOKKEEPING_KEYS = ("text_index_generation", "write_generation")
NOT_BOOKKEEPING = meta.c.key.not_in(BOOKKEEPING_KEYS)
"""meta rows that count writes for in-RAM caches: process state, not data."""
SQLITE_SEQUENCE = Table(
    "sqlite_sequence", MetaData(), Column("name", Text), Column("seq", Integer),
)
"""SQLite's own table of AUTOINCREMENT counters (a backup's last table; on PostgreSQL the
sequences, memory.pg)."""
EXPORT_BATCH = 256
"""Rows read at a time while exporting (a text-vector row is ~3.5 KB once encoded)."""
CONTENT_TABLES = ("speaker", "conversation", "segment", "voiceprint", "identity_event")


def _encode(value: Any) -> Any:
    if isinstance(value, bytes | memoryview):
        return {"b64": base64.b64encode(bytes(value)).decode("ascii")}
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        return base64.b64decode(value["b64"])
    return value


def _table(name: str) -> Table:
    return SQLITE_SEQUENCE if name == "sqlite_sequence" else metadata.tables[name]


def _columns(table: str) -> list[str]:
    """The stored columns of `table` in order (memory.tables holds them to the store's)."""
    return [c.name for c in _table(table).columns]


def export(tx: Tx, path: Path, schema_version: int) -> None:
    """Write the backup document row by row: memory stays that of a batch of rows, not of the
    store (building the document first took 4.6x the store's size)."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as out:
        out.write(f'{{"format":{json.dumps(FORMAT)},"schema_version":{schema_version},'
                  '"tables":{')
        for t, table in enumerate(TABLES):
            columns = _columns(table)
            out.write(("," if t else "") + f'{json.dumps(table)}:{{"columns":'
                      f'{json.dumps(columns, separators=(",", ":"))},"rows":[')
            rows = tx.stream(_select_all(tx, table), batch=EXPORT_BATCH)
            for r, row in enumerate(rows):
                out.write(("," if r else "")
                          + json.dumps([_encode(v) for v in row], separators=(",", ":")))
            out.write("]}")
        out.write("}}")
    tmp.replace(path)


def _select_all(tx: Tx, table: str) -> Select[Any] | TextClause:
    """Every exported row of `table`, in a stable order: by its first column, its key (on
    SQLite the rowid, or the text key of meta and the model tables)."""
    if table == "sqlite_sequence":
        if tx.dialect == "postgresql":
            return text(pg.sequences_select())
        return (select(SQLITE_SEQUENCE)  # ours only, not the vec0 index's shadow tables
                .where(SQLITE_SEQUENCE.c.name.in_(TABLES)).order_by(SQLITE_SEQUENCE.c.name))
    stored = metadata.tables[table]
    statement = select(stored).order_by(stored.columns[0])
    return statement.where(NOT_BOOKKEEPING) if stored is meta else statement


def read(path: Path, schema_version: int) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise BackupError(f"no backup file at {path}") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BackupError(f"{path} is not a readable JSON backup: {exc}") from exc
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise BackupError(f"{path} is not a speaker-memory backup")
    if document.get("schema_version") != schema_version:
        raise BackupError(
            f"{path} has schema version {document.get('schema_version')}; this store has "
            f"{schema_version}"
        )
    tables = document.get("tables")
    if not isinstance(tables, dict) or any(t not in tables for t in TABLES):
        raise BackupError(f"{path} lacks some of the tables a backup has")
    return tables


def restore(tx: Tx, index: SearchIndex, tables: dict[str, Any]) -> None:
    for table in CONTENT_TABLES:
        if tx.first(select(literal(1)).select_from(metadata.tables[table]).limit(1)):
            raise ImportNotEmpty(
                f"the store already holds data (table {table}); import a backup into an "
                "empty data directory"
            )
    # The write counters stay: they are how caches (this process's and others') see the import.
    tx.execute(delete(meta).where(NOT_BOOKKEEPING))
    for table in TABLES:
        columns = tables[table]["columns"]
        if set(columns) != set(_columns(table)):
            raise BackupError(f"table {table} of the backup has other columns than this store")
        rows = [[_decode(v) for v in r] for r in tables[table]["rows"]]
        if table in ("text_model",):
            for model_id, dim in rows:
                index.register_model(tx, str(model_id), int(dim))
            continue
        if table == "sqlite_sequence" and tx.dialect == "postgresql":
            pg.set_sequences(tx, [(str(name), int(seq)) for name, seq in rows])
            continue
        if table == "sqlite_sequence":  # inserts above advanced it: set it as it was
            tx.execute(delete(SQLITE_SEQUENCE))
        tx.insert_rows(_table(table), [dict(zip(columns, row, strict=True)) for row in rows])
    # Derived data.
    speakers = [int(r.id) for r in tx.rows(select(speaker.c.id))]
    recompute_centroids(tx, speakers)
    index.rebuild(tx)
