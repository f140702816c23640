"""The search indexes behind keyword and meaning search: one interface, one implementation per
backend, picked once when the store opens (memory.api):
- SQLite: FTS5 (memory/text_index.py) and sqlite-vec binary codes with an in-RAM code table
  (memory/vector_index.py, `SqliteSearchIndex`);
- PostgreSQL: a tsvector with a GIN index and pgvector HNSW tables with their pending tables
  (memory/pg_index.py, `PgSearchIndex`).
Callers never branch on the dialect. Both give the same results contract: (segment id, score)
best first, ties newer segment first.

What both share is here: the text model's dimension (text_model) and the checks on vectors.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from sqlalchemy import bindparam, insert, select

from memory.db import Tx
from memory.errors import ModelMismatch
from memory.prepared import Prepared
from memory.tables import text_model
from memory.types import SearchFilters, Vector
from memory.vectors import as_vector, normalize

Scored = list[tuple[int, float]]
"""(segment id, score) best first."""
TextCodes = Sequence[tuple[int, int, bytes]]
"""What a write added to an index's RAM state, published after its commit (SQLite: the
(dimension, segment id, binary code) of each new text vector; PostgreSQL: nothing)."""

MODEL_DIM = Prepared(
    select(text_model.c.dim).where(text_model.c.model_id == bindparam("model_id")))


class SearchIndex(Protocol):
    """Keyword and meaning search over segment text, and the index writes that go with the
    segment rows (in the caller's transaction)."""

    def add_text(self, tx: Tx, rows: Sequence[tuple[int, str]]) -> None:
        """Index (segment id, text) rows (the segment_content rows are stored)."""

    def remove_text(self, tx: Tx, segment_ids: Sequence[int]) -> None:
        """Drop these segments from the keyword index: before their text goes."""

    def register_model(self, tx: Tx, model_id: str, dim: int) -> None:
        """Record the text model's dimension (and make its vector tables); vectors of another
        dimension are refused (ModelMismatch)."""

    def add_vectors(self, tx: Tx, model_id: str, rows: Sequence[tuple[int, Vector]]) -> TextCodes:
        """Store (segment id, text vector) rows of one model; returns what `publish` adds to
        RAM after the commit."""

    def remove_vectors(self, tx: Tx, segment_ids: Sequence[int]) -> None:
        """Drop these segments' text vectors."""

    def rebuild(self, tx: Tx) -> None:
        """Re-derive the indexes from the stored rows (after a backup import)."""

    def keyword_search(
        self, tx: Tx, query: str, filters: SearchFilters | None, wanted: int
    ) -> Scored:
        """Every word of `query` required; score is -bm25 (SQLite) or ts_rank (PostgreSQL),
        higher is better either way."""

    def semantic_search(
        self, tx: Tx, query: Vector, model_id: str, filters: SearchFilters | None, wanted: int
    ) -> Scored:
        """Score is the cosine similarity to `query` (text vectors of `model_id` only)."""

    def generation(self, tx: Tx) -> int:
        """The index's write generation, read inside the write that `publish` follows."""

    def publish(self, generation: int, added: TextCodes) -> None:
        """After a commit in this process: add its new vectors to the RAM state."""

    def warm(self, tx: Tx) -> None:
        """Load the RAM state now instead of on the first search."""

    def clear(self) -> None:
        """Forget the RAM state (the store's rows were replaced)."""


def model_dim(tx: Tx, model_id: str) -> int | None:
    value = tx.value(MODEL_DIM, {"model_id": model_id})
    return None if value is None else int(value)


def new_model(tx: Tx, model_id: str, dim: int) -> bool:
    """Record a text model's dimension; False when it is known (with this dimension: another
    raises ModelMismatch), True when it was recorded now (its vector tables are to be made)."""
    known = model_dim(tx, model_id)
    if known is not None:
        if known != dim:
            raise ModelMismatch(
                f"text model {model_id!r} has {known}-d vectors in this store, got {dim}-d"
            )
        return False
    if dim % 8 != 0:
        raise ModelMismatch(f"text vectors must have a dimension divisible by 8, got {dim}")
    tx.execute(insert(text_model).values(model_id=model_id, dim=dim))
    return True


def vectors_dim(rows: Sequence[tuple[int, Vector]]) -> int:
    """The one dimension of a write's text vectors (ModelMismatch when they differ)."""
    dim = rows[0][1].shape[0]
    for _, vector in rows:
        if vector.shape[0] != dim:
            raise ModelMismatch(
                f"text vectors of one result differ in dimension ({dim} and {vector.shape[0]})"
            )
    return int(dim)


def checked_query(tx: Tx, query: Vector, model_id: str) -> tuple[Vector, int] | None:
    """The query vector normalised, and the model's dimension; None when the store has no
    vectors of that model (ModelMismatch when the query has another dimension)."""
    query = as_vector(query, "query vector")
    dim = model_dim(tx, model_id)
    if dim is None:
        return None
    if query.shape[0] != dim:
        raise ModelMismatch(
            f"query vector has {query.shape[0]} dimensions; text model {model_id!r} has {dim}"
        )
    return normalize(query), dim
