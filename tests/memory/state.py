"""Reading a store's rows directly, to compare whole states (undo, backup round-trip)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlean

IDENTITY_TABLES = ("speaker", "segment", "voiceprint")


def rows(db_path: Path, table: str) -> list[tuple[Any, ...]]:
    conn = sqlean.connect(str(db_path))
    try:
        return [tuple(r) for r in conn.execute(f"SELECT * FROM {table} ORDER BY rowid")]
    finally:
        conn.close()


def snapshot(db_path: Path, tables: tuple[str, ...] = IDENTITY_TABLES) -> dict[str, list[Any]]:
    return {t: rows(db_path, t) for t in tables}


def centroids(db_path: Path) -> dict[tuple[int, str], tuple[int, bytes]]:
    """speaker_centroid rows as {(speaker, model): (count, total)}."""
    conn = sqlean.connect(str(db_path))
    try:
        return {
            (int(r[0]), str(r[1])): (int(r[2]), bytes(r[3]))
            for r in conn.execute("SELECT speaker_id, model_id, count, total FROM speaker_centroid")
        }
    finally:
        conn.close()
