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

New vectors go first to `segment_text_pending_<dim>` (no index), and `PendingIndexer` moves
them into the HNSW table in the background: inserting into the graph costs ~9 ms a row on
this machine, 8.8 s of the 9.3 s an hour's ingest took at 100k segments. Searches score the
pending rows exactly besides the HNSW candidates, so a vector is found the moment its ingest
commits, and recall is what it was.
"""

from __future__ import annotations

import logging
import struct
import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any

import numpy as np

from memory.db import Tx
from memory.errors import ModelMismatch
from memory.filters import filter_clause, is_empty
from memory.keywords import NEWEST_MATCHES, words
from memory.types import SearchFilters, Vector
from memory.vectors import as_vector, from_blob, normalize, to_blob

log = logging.getLogger(__name__)

EXACT_SCAN_LIMIT = 20_000
"""At most this many (matching) rows are scored exactly, without the HNSW index."""
HNSW_CANDIDATES = 1000
"""Rows the HNSW scan returns for exact re-scoring (pgvector's ef_search maximum)."""
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 64
REBUILD_BATCH = 2000
"""Vectors read at a time when the pgvector rows are re-derived."""
INDEX_BATCH = 100
"""Pending vectors moved into the HNSW graph per transaction (~1 s of graph inserts here):
short, so that a deletion waiting for one of them is not held up long."""
INDEX_INTERVAL_SECONDS = 5.0
"""How often the indexer looks for pending vectors it was not told about (another process's
ingest, or one whose process stopped before they were indexed)."""


def embedding_table(dim: int) -> str:
    return f"segment_text_embedding_{int(dim)}"


def pending_table(dim: int) -> str:
    """New vectors of one dimension, not yet in the HNSW graph (see PendingIndexer)."""
    return f"segment_text_pending_{int(dim)}"


def _all_vectors(dim: int) -> str:
    """Every vector of one dimension, indexed or pending, as one row source."""
    columns = "segment_id, model_id, embedding"
    return (f"(SELECT {columns} FROM {embedding_table(dim)}"
            f" UNION ALL SELECT {columns} FROM {pending_table(dim)})")


def vector_literal(vector: Vector) -> str:
    """pgvector's text form: '[x, y, ...]', each float32 exactly (as the double it widens
    to, printed shortest; pgvector reads it back as the same float32). One C loop (list
    repr): a Python loop per number cost ~1 s of an hour's ingest."""
    return str(np.asarray(vector, np.float32).tolist())


class VectorParam:
    """A float32 vector in pgvector's binary input form (vector_recv: dimension, a zero,
    big-endian floats), sent as a binary parameter: exact, and no text to format and parse
    (a text literal per vector cost ~0.3 ms of Python, 280 ms of an hour's ingest)."""

    __slots__ = ("data",)

    def __init__(self, vector: Any) -> None:
        values = np.asarray(vector, ">f4")
        self.data = struct.pack(">HH", values.shape[0], 0) + values.tobytes()


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
    """The pgvector tables of one text-vector dimension: the HNSW-indexed one and the
    pending one."""
    table = embedding_table(dim)
    columns = (" segment_id BIGINT PRIMARY KEY REFERENCES segment(id),"
               f" model_id TEXT NOT NULL, embedding vector({int(dim)}) NOT NULL")
    tx.script(
        f"CREATE TABLE IF NOT EXISTS {table} ({columns});"
        f" CREATE INDEX IF NOT EXISTS {table}_hnsw ON {table}"
        f" USING hnsw (embedding vector_cosine_ops)"
        f" WITH (m = {HNSW_M}, ef_construction = {HNSW_EF_CONSTRUCTION});"
        f" CREATE TABLE IF NOT EXISTS {pending_table(dim)} ({columns});"
    )


def drop_index(tx: Tx, dim: int) -> None:
    """Drop one dimension's HNSW index, for loading many rows at once: building it afterwards
    (create_embedding_table) is far cheaper than inserting into the graph row by row."""
    tx.script(f"DROP INDEX IF EXISTS {embedding_table(dim)}_hnsw")


def add_vectors(
    tx: Tx, model_id: str, rows: Sequence[tuple[int, Vector]], *, indexed: bool = False
) -> None:
    """Store (segment id, vector) rows of a registered model, all of its dimension: into the
    pending table (PendingIndexer indexes them later), or with `indexed` straight into the
    HNSW table (a bulk load that builds its index afterwards)."""
    dim = rows[0][1].shape[0]
    tx.many(
        "INSERT INTO segment_text_vector(segment_id, model_id, vector) VALUES (?, ?, ?)",
        [(sid, model_id, to_blob(v)) for sid, v in rows],
    )
    table = embedding_table(dim) if indexed else pending_table(dim)
    tx.many(
        f"INSERT INTO {table}(segment_id, model_id, embedding) VALUES (?, ?, ?)",
        [(sid, model_id, VectorParam(v)) for sid, v in rows],
    )


def remove_vectors(tx: Tx, segment_ids_json: str) -> None:
    for (dim,) in tx.all("SELECT DISTINCT dim FROM text_model"):
        # Pending first: a row PendingIndexer is moving is locked; this waits for the move to
        # commit, and the next statement (a new snapshot) finds the row in the HNSW table.
        for table in (pending_table(int(dim)), embedding_table(int(dim))):
            tx.run(
                f"DELETE FROM {table} WHERE segment_id IN (SELECT value FROM json_each(?))",
                (segment_ids_json,),
            )
    tx.run(
        "DELETE FROM segment_text_vector WHERE segment_id IN (SELECT value FROM json_each(?))",
        (segment_ids_json,),
    )


def rebuild_embeddings(tx: Tx) -> None:
    """Re-derive the pgvector rows from the stored float vectors (after a backup import):
    loaded REBUILD_BATCH rows at a time into the HNSW table with its index dropped, which
    is then built once."""
    for model_id, dim in tx.all("SELECT model_id, dim FROM text_model"):
        dim = int(dim)
        for table in (pending_table(dim), embedding_table(dim)):
            tx.run(f"DELETE FROM {table} WHERE model_id = ?", (model_id,))
        drop_index(tx, dim)
        after = 0
        while rows := tx.all(
            "SELECT segment_id, vector FROM segment_text_vector WHERE model_id = ?"
            " AND segment_id > ? ORDER BY segment_id LIMIT ?", (model_id, after, REBUILD_BATCH),
        ):
            tx.many(
                f"INSERT INTO {embedding_table(dim)}(segment_id, model_id, embedding)"
                " VALUES (?, ?, ?)",
                [(int(sid), model_id, VectorParam(from_blob(blob))) for sid, blob in rows],
            )
            after = int(rows[-1][0])
        create_embedding_table(tx, dim)


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
    # Counted up to the limit only: all that matters is which side of it the rows are.
    if is_empty(filters):
        matching = int(tx.scalar(
            f"SELECT count(*) FROM (SELECT 1 FROM {_all_vectors(dim)} e WHERE model_id = ?"
            " LIMIT ?) n", (model_id, EXACT_SCAN_LIMIT + 1),
        ))
    else:
        matching = int(tx.scalar(
            "SELECT count(*) FROM (SELECT 1 FROM segment s"
            f" JOIN conversation c ON c.id = s.conversation_id WHERE 1 = 1{where} LIMIT ?) n",
            [*params, EXACT_SCAN_LIMIT + 1],
        ))
    if matching <= EXACT_SCAN_LIMIT:
        return _best(tx, literal, wanted,
                     f"FROM {_all_vectors(dim)} e{joins} WHERE e.model_id = ?{where}",
                     [model_id, *params])
    # As many candidates as pgvector's search keeps (ef_search at most 1000): the exact
    # top-k hides among near-ties in a large store (see vector_index.py), and re-scoring
    # 1000 rows exactly costs little beside the graph search. The pending rows (not in the
    # graph yet) are all candidates. The graph scan has no WHERE: with one, the planner may
    # prefer a sequential scan and sort (it did, 150 ms at 100k, on a table not yet
    # analysed); the model is checked on the candidates (one model per dimension is usual).
    candidates = max(wanted, HNSW_CANDIDATES)
    tx.run(f"SET LOCAL hnsw.ef_search = {int(min(candidates, HNSW_CANDIDATES))}")
    columns = "segment_id, model_id, embedding"
    return _best(
        tx, literal, wanted,
        f"FROM (SELECT {columns} FROM {table} WHERE segment_id IN (SELECT segment_id"
        f" FROM {table} ORDER BY embedding <=> ?::vector LIMIT ?)"
        f" UNION ALL SELECT {columns} FROM {pending_table(dim)}) e{joins}"
        f" WHERE e.model_id = ?{where}",
        [literal, candidates, model_id, *params],
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


class PendingIndexer:
    """Moves pending text vectors into the HNSW tables on a background thread, INDEX_BATCH at a
    time, each batch one transaction of its own. It does not take the writers' lock: rows are
    claimed with FOR UPDATE SKIP LOCKED, so the indexers of several processes share the work,
    and a deletion of a row being moved waits for that batch (remove_vectors). Woken after
    each write (`poke`), and every INDEX_INTERVAL_SECONDS."""

    def __init__(self, transaction: Callable[[], AbstractContextManager[Tx]]) -> None:
        self._transaction = transaction
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pgvector-indexer", daemon=True)
        self._thread.start()

    def poke(self) -> None:
        """A write committed (it may have added pending vectors)."""
        self._wake.set()

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(INDEX_INTERVAL_SECONDS)
            self._wake.clear()
            try:
                while not self._stopping.is_set() and self.index_batch():
                    pass
            except Exception as exc:  # retried next round; searches score pending rows anyway
                log.warning("indexing pending text vectors failed (retried): %s", exc)

    def index_batch(self) -> int:
        """Move up to INDEX_BATCH pending vectors of each dimension into the HNSW table;
        returns how many moved."""
        moved = 0
        with self._transaction() as tx:
            if tx.scalar("SELECT to_regclass('text_model')") is None:
                return 0  # a store still being created
            for (dim,) in tx.all("SELECT DISTINCT dim FROM text_model"):
                pending = pending_table(int(dim))
                if tx.scalar("SELECT to_regclass(?)", (pending,)) is None:
                    continue  # a store still being migrated
                moved += tx.run(
                    f"WITH moved AS (DELETE FROM {pending} WHERE segment_id IN"
                    f" (SELECT segment_id FROM {pending} ORDER BY segment_id LIMIT ?"
                    " FOR UPDATE SKIP LOCKED) RETURNING segment_id, model_id, embedding)"
                    f" INSERT INTO {embedding_table(int(dim))}(segment_id, model_id, embedding)"
                    " SELECT segment_id, model_id, embedding FROM moved",
                    (INDEX_BATCH,),
                )
        return moved

    def drain(self) -> None:
        """Index every pending vector now (benchmarks and tests: a steady state)."""
        while self.index_batch():
            pass

    def stop(self) -> None:
        """Stop after the current batch; what is still pending waits for the next indexer."""
        self._stopping.set()
        self._wake.set()
        self._thread.join(timeout=60)
