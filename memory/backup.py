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

from memory import pg
from memory.db import Tx
from memory.errors import BackupError, ImportNotEmpty
from memory.search_index import SearchIndex
from memory.voiceprints import recompute_centroids

FORMAT = "speaker-memory-backup"
TABLES = (
    "meta", "voice_model", "text_model", "speaker", "conversation", "live_session",
    "local_cluster", "diarization_turn", "segment", "segment_content", "segment_voice",
    "segment_text_vector", "voiceprint", "enrollment_clip", "identity_event", "sqlite_sequence",
)
BOOKKEEPING_KEYS = ("text_index_generation", "write_generation")
NOT_BOOKKEEPING = "key NOT IN (" + ", ".join(f"'{k}'" for k in BOOKKEEPING_KEYS) + ")"
"""meta rows that count writes for in-RAM caches: process state, not data."""
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


def _columns(tx: Tx, table: str) -> list[str]:
    if tx.dialect == "postgresql":
        return pg.columns(tx, table)
    return [str(r[1]) for r in tx.all(f"PRAGMA table_info({table})")]


def export(tx: Tx, path: Path, schema_version: int) -> None:
    """Write the backup document row by row: memory stays that of a batch of rows, not of the
    store (building the document first took 4.6x the store's size)."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as out:
        out.write(f'{{"format":{json.dumps(FORMAT)},"schema_version":{schema_version},'
                  '"tables":{')
        for t, table in enumerate(TABLES):
            columns = _columns(tx, table)
            out.write(("," if t else "") + f'{json.dumps(table)}:{{"columns":'
                      f'{json.dumps(columns, separators=(",", ":"))},"rows":[')
            for r, row in enumerate(tx.each(_select_all(tx, table, columns), batch=EXPORT_BATCH)):
                out.write(("," if r else "")
                          + json.dumps([_encode(v) for v in row], separators=(",", ":")))
            out.write("]}")
        out.write("}}")
    tmp.replace(path)


def _select_all(tx: Tx, table: str, columns: list[str]) -> str:
    """Every exported row of `table`, in a stable order."""
    if tx.dialect == "postgresql":
        if table == "sqlite_sequence":
            return pg.sequences_select()
        # The first column is the key SQLite's rowid follows.
        where = f" WHERE {NOT_BOOKKEEPING}" if table == "meta" else ""
        quoted = ", ".join(f'"{c}"' for c in columns)
        return f"SELECT {quoted} FROM {table}{where} ORDER BY 1"
    order = "name" if table == "sqlite_sequence" else ("key" if table == "meta" else "rowid")
    if table in ("voice_model", "text_model"):
        order = "model_id"
    quoted = ", ".join(f'"{c}"' for c in columns)
    where = f" WHERE {NOT_BOOKKEEPING}" if table == "meta" else ""
    if table == "sqlite_sequence":  # ours only, not the vec0 index's shadow tables
        where = " WHERE name IN (" + ", ".join(f"'{t}'" for t in TABLES) + ")"
    return f"SELECT {quoted} FROM {table}{where} ORDER BY {order}"


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
        if tx.one(f"SELECT 1 FROM {table} LIMIT 1"):
            raise ImportNotEmpty(
                f"the store already holds data (table {table}); import a backup into an "
                "empty data directory"
            )
    # The write counters stay: they are how caches (this process's and others') see the import.
    tx.run(f"DELETE FROM meta WHERE {NOT_BOOKKEEPING}")
    for table in TABLES:
        columns = tables[table]["columns"]
        known = set(_columns(tx, table))
        if set(columns) != known:
            raise BackupError(f"table {table} of the backup has other columns than this store")
        rows = [[_decode(v) for v in r] for r in tables[table]["rows"]]
        if table in ("text_model",):
            for model_id, dim in rows:
                index.register_model(tx, str(model_id), int(dim))
            continue
        quoted = ", ".join(f'"{c}"' for c in columns)
        marks = ", ".join("?" for _ in columns)
        if table == "sqlite_sequence" and tx.dialect == "postgresql":
            pg.set_sequences(tx, [(str(name), int(seq)) for name, seq in rows])
            continue
        if table == "sqlite_sequence":  # inserts above advanced it: set it as it was
            tx.run("DELETE FROM sqlite_sequence")
        tx.many(f"INSERT INTO {table}({quoted}) VALUES ({marks})", rows)
    # Derived data.
    speakers = [int(r[0]) for r in tx.all("SELECT id FROM speaker")]
    recompute_centroids(tx, speakers)
    index.rebuild(tx)
