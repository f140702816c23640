"""Full-text search over segment text on SQLite: the FTS5 table `segment_fts` (external
content: segment_content's text), the one module that knows FTS5. Used by
memory.vector_index.SqliteSearchIndex; PostgreSQL's counterpart is in memory/pg_index.py."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Column, Integer, MetaData, Text, desc, literal_column, select, text
from sqlalchemy import Table as CoreTable
from sqlalchemy import insert as core_insert

from memory.db import Tx
from memory.filters import filter_condition, joined
from memory.keywords import NEWEST_MATCHES, words
from memory.search_index import Scored
from memory.sql import in_ids
from memory.tables import segment_content
from memory.types import SearchFilters

segment_fts = CoreTable(
    "segment_fts", MetaData(),
    Column("rowid", Integer, primary_key=True),
    Column("text", Text),
    Column("rank"),
    Column("segment_fts"),  # FTS5's hidden column named like the table: commands, MATCH
)
MATCHES = text("segment_fts MATCH :match")
REBUILD = text("INSERT INTO segment_fts(segment_fts) VALUES ('rebuild')")


def escape_query(text: str) -> str | None:
    """Any user text as a safe FTS5 query: every word a quoted string, all required.

    Quotes are doubled, and operators (AND, OR, NOT, NEAR, *, ^, :, parentheses) become
    plain words or separators. Returns None when the text has no searchable word."""
    tokens = words(text)
    if not tokens:
        return None
    return " ".join('"' + t.replace('"', '""') + '"' for t in tokens)


def add(tx: Tx, rows: Sequence[tuple[int, str]]) -> None:
    """Index (segment id, text) rows."""
    tx.insert_rows(segment_fts, [{"rowid": sid, "text": body} for sid, body in rows])


def rebuild(tx: Tx) -> None:
    tx.execute(REBUILD)


def search(tx: Tx, query: str, filters: SearchFilters | None, wanted: int) -> Scored:
    """(segment id, -bm25) best first, among the newest NEWEST_MATCHES (or 4 x wanted)
    matches."""
    match = escape_query(query)
    if match is None:
        return []
    cap = max(NEWEST_MATCHES, wanted * 4)
    statement = joined(
        select(segment_fts.c.rowid, segment_fts.c.rank).where(MATCHES),
        segment_fts.c.rowid, filter_condition(filters),
    ).order_by(desc(segment_fts.c.rowid)).limit(cap)
    rows = [(int(rowid), float(rank)) for rowid, rank in tx.rows(statement, {"match": match})]
    rows.sort(key=lambda r: (r[1], -r[0]))
    return [(sid, -rank) for sid, rank in rows[:wanted]]


def remove(tx: Tx, segment_ids: Sequence[int]) -> None:
    """Drop these segments from the index. An external-content FTS5 table forgets a row only
    when told its indexed text: run this before the text goes."""
    tx.execute(core_insert(segment_fts).from_select(
        ["segment_fts", "rowid", "text"],
        select(literal_column("'delete'"), segment_content.c.segment_id, segment_content.c.text)
        .where(in_ids(segment_content.c.segment_id, segment_ids)),
    ))
