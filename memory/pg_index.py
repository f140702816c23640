"""Keyword and meaning search on PostgreSQL: the pgvector and tsvector counterparts of
memory/text_index.py (FTS5) and memory/vector_index.py (sqlite-vec), with the same results
contract: (segment id, score) best first, ties newer segment first.

Keyword: `segment_content.search_vector` is a generated tsvector with a GIN index; the query
is every word of the user's text as a quoted phrase for `websearch_to_tsquery` (all words
required, operators taken literally, as the FTS5 escape does), ranked by `ts_rank` among the
newest NEWEST_MATCHES matches, as bm25 is on SQLite.

Meaning: the exact float32 vectors stay in `segment_text_vector` (bytea, what backup and
every module reads); per dimension, `segment_text_embedding_<dim>` holds them as pgvector
`vector`s with an HNSW index (cosine). Small or selectively filtered sets are scored
exactly; larger ones take HNSW candidates and re-score them exactly, as the binary codes'
candidates are on SQLite.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from memory.db import Tx
from memory.errors import ModelMismatch
from memory.filters import filter_clause, is_empty
from memory.keywords import NEWEST_MATCHES, words
from memory.types import SearchFilters, Vector
from memory.vectors import as_vector, from_blob, normalize, to_blob

EXACT_SCAN_LIMIT = 20_000
"""At most this many (matching) rows are scored exactly, without the HNSW index."""
HNSW_CANDIDATES = 1000
"""Rows the HNSW scan returns for exact re-scoring (pgvector's ef_search maximum)."""
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 64


def embedding_table(dim: int) -> str:
    return f"segment_text_embedding_{int(dim)}"


def vector_literal(vector: Vector) -> str:
    """pgvector's text form: '[x, y, ...]', each float32 exactly (as the double it widens
    to, printed shortest; pgvector reads it back as the same float32). One C loop (list
    repr): a Python loop per number cost ~1 s of an hour's ingest."""
    return str(np.asarray(vector, np.float32).tolist())


# ---------------------------------------------------------------- keyword search
def keyword_query(text: str) -> str | None:
    """websearch_to_tsquery input: each word a quoted phrase (quotes inside dropped)."""
    tokens = words(text)
    if not tokens:
        return None
    return " ".join('"' + t.replace('"', " ") + '"' for t in tokens)


def keyword_search(
    tx: Tx, query: str, filters: SearchFilters | None, wanted: int
) -> list[tuple[int, float]]:
    """(segment id, ts_rank) best first."""
    text = keyword_query(query)
    if text is None:
        return []
    where, params = filter_clause(filters)
    joins = "" if not where else (
        " JOIN segment s ON s.id = t.segment_id JOIN conversation c ON c.id = s.conversation_id"
    )
    cap = max(NEWEST_MATCHES, wanted * 4)
    rows = tx.all(
        "SELECT m.segment_id, ts_rank(m.search_vector, q.query) FROM"
        " (SELECT websearch_to_tsquery('simple', ?) AS query) q,"
        " LATERAL (SELECT t.segment_id, t.search_vector FROM segment_content t"
        f"{joins} WHERE t.search_vector @@ q.query{where}"
        " ORDER BY t.segment_id DESC LIMIT ?) m",
        [text, *params, cap],
    )
    rows.sort(key=lambda r: (-float(r[1]), -int(r[0])))
    return [(int(r[0]), float(r[1])) for r in rows[:wanted]]


# ---------------------------------------------------------------- text vectors
def create_embedding_table(tx: Tx, dim: int) -> None:
    """The pgvector table (and its HNSW index) of one text-vector dimension."""
    table = embedding_table(dim)
    tx.script(
        f"CREATE TABLE IF NOT EXISTS {table} ("
        " segment_id BIGINT PRIMARY KEY REFERENCES segment(id),"
        f" model_id TEXT NOT NULL, embedding vector({int(dim)}) NOT NULL);"
        f" CREATE INDEX IF NOT EXISTS {table}_hnsw ON {table}"
        f" USING hnsw (embedding vector_cosine_ops)"
        f" WITH (m = {HNSW_M}, ef_construction = {HNSW_EF_CONSTRUCTION});"
    )


def add_vectors(tx: Tx, model_id: str, rows: Sequence[tuple[int, Vector]]) -> None:
    """Store (segment id, vector) rows of a registered model, all of its dimension."""
    dim = rows[0][1].shape[0]
    tx.many(
        "INSERT INTO segment_text_vector(segment_id, model_id, vector) VALUES (?, ?, ?)",
        [(sid, model_id, to_blob(v)) for sid, v in rows],
    )
    tx.many(
        f"INSERT INTO {embedding_table(dim)}(segment_id, model_id, embedding)"
        " VALUES (?, ?, ?::vector)",
        [(sid, model_id, vector_literal(v)) for sid, v in rows],
    )


def remove_vectors(tx: Tx, segment_ids_json: str) -> None:
    for (dim,) in tx.all("SELECT DISTINCT dim FROM text_model"):
        tx.run(
            f"DELETE FROM {embedding_table(int(dim))}"
            " WHERE segment_id IN (SELECT value FROM json_each(?))",
            (segment_ids_json,),
        )
    tx.run(
        "DELETE FROM segment_text_vector WHERE segment_id IN (SELECT value FROM json_each(?))",
        (segment_ids_json,),
    )


def rebuild_embeddings(tx: Tx) -> None:
    """Re-derive the pgvector rows from the stored float vectors (after a backup import)."""
    for model_id, dim in tx.all("SELECT model_id, dim FROM text_model"):
        tx.run(f"DELETE FROM {embedding_table(int(dim))} WHERE model_id = ?", (model_id,))
        tx.many(
            f"INSERT INTO {embedding_table(int(dim))}(segment_id, model_id, embedding)"
            " VALUES (?, ?, ?::vector)",
            [(int(sid), model_id, vector_literal(from_blob(blob))) for sid, blob in tx.all(
                "SELECT segment_id, vector FROM segment_text_vector WHERE model_id = ?",
                (model_id,),
            )],
        )


def semantic_search(
    tx: Tx, query: Vector, model_id: str, filters: SearchFilters | None, wanted: int
) -> list[tuple[int, float]]:
    """(segment id, cosine similarity) best first."""
    query = as_vector(query, "query vector")
    value = tx.scalar("SELECT dim FROM text_model WHERE model_id = ?", (model_id,))
    if value is None:
        return []
    dim = int(value)
    if query.shape[0] != dim:
        raise ModelMismatch(
            f"query vector has {query.shape[0]} dimensions; text model {model_id!r} has {dim}"
        )
    literal = vector_literal(normalize(query))
    table = embedding_table(dim)
    where, params = filter_clause(filters)
    joins = "" if not where else (
        " JOIN segment s ON s.id = e.segment_id JOIN conversation c ON c.id = s.conversation_id"
    )
    if is_empty(filters):
        matching = int(tx.scalar(f"SELECT count(*) FROM {table} WHERE model_id = ?",
                                 (model_id,)))
    else:
        matching = int(tx.scalar(
            "SELECT count(*) FROM segment s JOIN conversation c ON c.id = s.conversation_id"
            f" WHERE 1 = 1{where}", params,
        ))
    if matching <= EXACT_SCAN_LIMIT:
        return _best(tx, literal, wanted, f"FROM {table} e{joins} WHERE e.model_id = ?{where}",
                     [model_id, *params])
    # As many candidates as pgvector's search keeps (ef_search at most 1000): the exact
    # top-k hides among near-ties in a large store (see vector_index.py), and re-scoring
    # 1000 rows exactly costs little beside the graph search.
    candidates = max(wanted, HNSW_CANDIDATES)
    tx.run(f"SET LOCAL hnsw.ef_search = {int(min(candidates, HNSW_CANDIDATES))}")
    return _best(
        tx, literal, wanted,
        f"FROM {table} e{joins} WHERE e.segment_id IN (SELECT segment_id FROM {table}"
        " WHERE model_id = ? ORDER BY embedding <=> ?::vector LIMIT ?)"
        f" AND e.model_id = ?{where}",
        [model_id, literal, candidates, model_id, *params],
    )


def _best(
    tx: Tx, literal: str, wanted: int, source: str, params: Sequence[Any]
) -> list[tuple[int, float]]:
    """(segment id, cosine) of the rows `source` selects (the embeddings aliased e), best
    `wanted` first, ties newer first. A zero vector's NaN distance scores 0, as on SQLite."""
    rows = tx.all(
        "SELECT e.segment_id,"
        " COALESCE(NULLIF(1.0 - (e.embedding <=> ?::vector), 'NaN'::float8), 0.0) AS score"
        f" {source} ORDER BY score DESC, e.segment_id DESC LIMIT ?",
        [literal, *params, wanted],
    )
    return [(int(r[0]), float(r[1])) for r in rows]
