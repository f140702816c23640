"""Reading a store's rows directly, to compare whole states (undo, backup round-trip), on
whichever backend the running test uses (tests/memory/backends.py)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import sqlean
from sqlalchemy import text
from sqlalchemy.dialects import postgresql

from memory.pg import sequences_select
from tests.memory import backends

IDENTITY_TABLES = ("speaker", "segment", "voiceprint")


def query(
    db_path: Path, sql: str, params: Mapping[str, Any] | None = None
) -> list[tuple[Any, ...]]:
    """The rows of one statement (`:name` parameters) against the store opened at `db_path`,
    read by the driver directly (not through the store's code under test)."""
    postgres = backends.postgres_for(db_path)
    if postgres is None:
        conn = sqlean.connect(str(db_path))
        try:
            return [tuple(r) for r in conn.execute(sql, dict(params or {}))]
        finally:
            conn.close()
    native = str(text(sql).compile(dialect=postgresql.psycopg.dialect()))
    with postgres.connect() as pg:
        pg.execute(f"SET search_path = {postgres.schema_for(str(db_path))}, public")
        return [tuple(r) for r in pg.execute(native, dict(params or {})).fetchall()]


def rows(db_path: Path, table: str) -> list[tuple[Any, ...]]:
    if backends.postgres_for(db_path) is None:
        return query(db_path, f"SELECT * FROM {table} ORDER BY rowid")
    if table == "sqlite_sequence":
        return query(db_path, sequences_select())
    # The stored columns (not the generated tsvector), by the key SQLite's rowid follows.
    names = [r[0] for r in query(
        db_path, "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(:table)"
        " AND attnum > 0 AND NOT attisdropped AND attgenerated = '' ORDER BY attnum",
        {"table": table},
    )]
    quoted = ", ".join(f'"{n}"' for n in names)
    return query(db_path, f"SELECT {quoted} FROM {table} ORDER BY 1")


def snapshot(db_path: Path, tables: tuple[str, ...] = IDENTITY_TABLES) -> dict[str, list[Any]]:
    return {t: rows(db_path, t) for t in tables}


def centroids(db_path: Path) -> dict[tuple[int, str], tuple[int, bytes]]:
    """speaker_centroid rows as {(speaker, model): (count, total)}."""
    return {
        (int(r[0]), str(r[1])): (int(r[2]), bytes(r[3]))
        for r in query(db_path, "SELECT speaker_id, model_id, count, total FROM speaker_centroid")
    }
