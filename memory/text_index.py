"""Full-text search over segment text: SQLite FTS5 here, PostgreSQL tsvector in
memory/pg_index.py, behind these functions (each picks by the transaction's dialect)."""

from __future__ import annotations

from collections.abc import Sequence

from memory import pg_index
from memory.db import Tx
from memory.filters import filter_clause
from memory.keywords import NEWEST_MATCHES, words
from memory.types import SearchFilters


def escape_query(text: str) -> str | None:
    """Any user text as a safe FTS5 query: every word a quoted string, all required.

    Quotes are doubled, and operators (AND, OR, NOT, NEAR, *, ^, :, parentheses) become
    plain words or separators. Returns None when the text has no searchable word."""
    tokens = words(text)
    if not tokens:
        return None
    return " ".join('"' + t.replace('"', '""') + '"' for t in tokens)


def add(tx: Tx, rows: Sequence[tuple[int, str]]) -> None:
    """Index (segment id, text) rows. (PostgreSQL: the tsvector is a generated column.)"""
    if tx.dialect == "sqlite":
        tx.many("INSERT INTO segment_fts(rowid, text) VALUES (?, ?)", rows)


def rebuild(tx: Tx) -> None:
    if tx.dialect == "sqlite":
        tx.run("INSERT INTO segment_fts(segment_fts) VALUES ('rebuild')")


def search(
    tx: Tx, query: str, filters: SearchFilters | None, wanted: int
) -> list[tuple[int, float]]:
    """(segment id, score) best first; score is -bm25 on SQLite, ts_rank on PostgreSQL
    (higher is better either way)."""
    if tx.dialect == "postgresql":
        return pg_index.keyword_search(tx, query, filters, wanted)
    match = escape_query(query)
    if match is None:
        return []
    where, params = filter_clause(filters)
    cap = max(NEWEST_MATCHES, wanted * 4)
    joins = "" if not where else (
        " JOIN segment s ON s.id = segment_fts.rowid"
        " JOIN conversation c ON c.id = s.conversation_id"
    )
    rows = tx.all(
        f"SELECT segment_fts.rowid, segment_fts.rank FROM segment_fts{joins}"
        f" WHERE segment_fts MATCH ?{where} ORDER BY segment_fts.rowid DESC LIMIT ?",
        [match, *params, cap],
    )
    rows.sort(key=lambda r: (r[1], -r[0]))
    return [(int(r[0]), -float(r[1])) for r in rows[:wanted]]


def remove(tx: Tx, segment_ids_json: str) -> None:
    """Drop these segments (a JSON list of ids) from the index. An external-content FTS5
    table forgets a row only when told its indexed text: run this before the text goes.
    (PostgreSQL: the tsvector goes with its segment_content row.)"""
    if tx.dialect != "sqlite":
        return
    tx.run(
        "INSERT INTO segment_fts(segment_fts, rowid, text) SELECT 'delete', segment_id, text"
        " FROM segment_content WHERE segment_id IN (SELECT value FROM json_each(?))",
        (segment_ids_json,),
    )
