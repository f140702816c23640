"""The PostgreSQL search index (`PgSearchIndex`, memory.search_index's interface): keyword
and meaning search with tsvector and pgvector, the counterparts of memory/text_index.py (FTS5)
and memory/vector_index.py (sqlite-vec), with the same results contract: (segment id, score)
best first, ties newer segment first.

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
from functools import cache
from typing import Any

import numpy as np
from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    MetaData,
    Select,
    Table,
    Text,
    bindparam,
    cast,
    column,
    delete,
    desc,
    func,
    literal_column,
    select,
    table,
    text,
    true,
    union_all,
)
from sqlalchemy.sql.selectable import Subquery
from sqlalchemy.types import Float, UserDefinedType

from memory.db import Tx
from memory.errors import StoreError
from memory.filters import SEGMENT_CONVERSATION, filter_condition, joined
from memory.keywords import NEWEST_MATCHES, words
from memory.search_index import (
    Scored,
    TextCodes,
    checked_query,
    new_model,
    vectors_dim,
)
from memory.sql import in_ids
from memory.tables import segment_text_vector, text_model
from memory.types import SearchFilters, Vector
from memory.vectors import from_blob, to_blob

log = logging.getLogger(__name__)

EXACT_SCAN_LIMIT = 20_000
"""At most this many (matching) rows are scored exactly, without the HNSW index."""
HNSW_EF_SEARCH = 1000
"""The breadth of pgvector's graph search (its maximum)."""
HNSW_CANDIDATES = 4000
"""Rows the HNSW scan returns for exact ordering. pgvector 0.8's iterative scan goes on past
the ef_search rows of the first pass. At 1M segments (scripts/bench_memory.py) the exact
top 20 were among 1000 candidates for 0.90 of queries' rows, among 4000 for 0.955 (more
added nothing), at ~40 ms a query."""
PGVECTOR_MIN = (0, 8, 0)
"""pgvector's first version with iterative index scans."""
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


class PgVector(UserDefinedType[Any]):
    """pgvector's `vector` type, for casts in Core statements."""

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "vector"


def embedding_table(dim: int) -> str:
    return f"segment_text_embedding_{int(dim)}"


def pending_table(dim: int) -> str:
    """New vectors of one dimension, not yet in the HNSW graph (see PendingIndexer)."""
    return f"segment_text_pending_{int(dim)}"


@cache
def _vector_table(name: str) -> Table:
    """An embedding or pending table as a Core table."""
    return Table(name, MetaData(), Column("segment_id", BigInteger, primary_key=True),
                 Column("model_id", Text), Column("embedding", PgVector()))


def _vector_tables(dim: int) -> tuple[Table, Table]:
    """(the HNSW-indexed table, the pending table) of one dimension."""
    return _vector_table(embedding_table(dim)), _vector_table(pending_table(dim))


def _distances(source: Table) -> Select[Any]:
    """(segment_id, model_id, distance): each row's cosine distance to the query."""
    return select(source.c.segment_id, source.c.model_id,
                  source.c.embedding.op("<=>", return_type=Float)(QUERY).label("distance"))


def _all_vectors(dim: int) -> Subquery:
    """Every vector of one dimension, indexed or pending, with its distance, as `e`."""
    indexed, pending = _vector_tables(dim)
    return union_all(_distances(indexed), _distances(pending)).subquery("e")


def _nearest_vectors(dim: int, candidates: int) -> Subquery:
    """The HNSW graph's `candidates` nearest rows (in about that order) and every pending
    row (none is in the graph yet), with their distances, as `e`. The graph scan has no
    WHERE: with one, the planner may prefer a sequential scan and sort (it did, 150 ms at
    100k, on a table not yet analysed); the model is checked on the candidates."""
    indexed, pending = _vector_tables(dim)
    nearest = _distances(indexed).order_by(literal_column("distance")).limit(candidates)
    return union_all(nearest, _distances(pending)).subquery("e")


SEARCH_SETTINGS = text(
    "SELECT set_config('hnsw.ef_search', :ef_search, true),"
    " set_config('hnsw.iterative_scan', 'relaxed_order', true)"
)
"""For this transaction: pgvector's search breadth, and its iterative scan (rows come in
about distance order; _best orders them exactly)."""


def check_pgvector(tx: Tx) -> None:
    """Refuse a database whose pgvector is older than PGVECTOR_MIN, with what to do."""
    version = tx.value(text("SELECT extversion FROM pg_extension WHERE extname = 'vector'"))
    found = tuple(int(part) for part in str(version or "0").split(".") if part.isdigit())
    if found < PGVECTOR_MIN:
        raise StoreError(
            f"this database's pgvector is {version or 'not installed'}; speaker-memory needs "
            f"{'.'.join(map(str, PGVECTOR_MIN))} or newer (iterative index scans): install "
            "it on the PostgreSQL server, then run ALTER EXTENSION vector UPDATE in this "
            "database"
        )


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


SELECT_MODELS = select(text_model.c.model_id, text_model.c.dim)
SELECT_DIMS = select(text_model.c.dim).distinct()
QUERY = cast(bindparam("query", type_=Text), PgVector())
"""The query vector (vector_literal) as a `vector`."""

REGCLASS = text("SELECT to_regclass(:name)")
SIZE_ESTIMATE = text(
    "SELECT (SELECT reltuples FROM pg_class WHERE oid = to_regclass(:name)),"
    " (SELECT count(*) FROM text_model WHERE dim = :dim)"
)
"""A vector table's row count as the planner estimates it (-1 before its first ANALYZE),
and how many text models have its dimension."""

# ---------------------------------------------------------------- keyword search
_content = table("segment_content", column("segment_id"), column("search_vector")).alias("t")
_tsquery = select(
    func.websearch_to_tsquery(literal_column("'simple'"), bindparam("text", type_=Text))
    .label("query")
).subquery("q")


def keyword_query(text: str) -> str | None:
    """websearch_to_tsquery input: each word a quoted phrase (quotes inside dropped)."""
    tokens = words(text)
    if not tokens:
        return None
    return " ".join('"' + t.replace('"', " ") + '"' for t in tokens)


def keyword_search(tx: Tx, query: str, filters: SearchFilters | None, wanted: int) -> Scored:
    """(segment id, ts_rank) best first, among the newest NEWEST_MATCHES (or 4 x wanted)
    matches."""
    words_query = keyword_query(query)
    if words_query is None:
        return []
    cap = max(NEWEST_MATCHES, wanted * 4)
    matches = joined(
        select(_content.c.segment_id, _content.c.search_vector)
        .where(_content.c.search_vector.op("@@")(_tsquery.c.query)),
        _content.c.segment_id, filter_condition(filters),
    ).order_by(desc(_content.c.segment_id)).limit(cap).lateral("m")
    statement = select(
        matches.c.segment_id,
        func.ts_rank(matches.c.search_vector, _tsquery.c.query, type_=Float).label("score"),
    ).select_from(_tsquery).join(matches, true())
    rows = [(int(r.segment_id), float(r.score)) for r in tx.rows(statement, {"text": words_query})]
    rows.sort(key=lambda r: (-r[1], -r[0]))
    return rows[:wanted]


# ---------------------------------------------------------------- text vectors
def create_embedding_table(tx: Tx, dim: int) -> None:
    """The pgvector tables of one text-vector dimension: the HNSW-indexed one and the
    pending one."""
    name = embedding_table(dim)
    columns = (" segment_id BIGINT PRIMARY KEY REFERENCES segment(id),"
               f" model_id TEXT NOT NULL, embedding vector({int(dim)}) NOT NULL")
    tx.script(
        f"CREATE TABLE IF NOT EXISTS {name} ({columns});"
        f" CREATE INDEX IF NOT EXISTS {name}_hnsw ON {name}"
        f" USING hnsw (embedding vector_cosine_ops)"
        f" WITH (m = {HNSW_M}, ef_construction = {HNSW_EF_CONSTRUCTION});"
        f" CREATE TABLE IF NOT EXISTS {pending_table(dim)} ({columns});"
    )


def drop_index(tx: Tx, dim: int) -> None:
    """Drop one dimension's HNSW index, for loading many rows at once: building it afterwards
    (create_embedding_table) is far cheaper than inserting into the graph row by row."""
    tx.script(f"DROP INDEX IF EXISTS {embedding_table(dim)}_hnsw")


def register_model(tx: Tx, model_id: str, dim: int) -> None:
    """Record the text model's dimension and make its pgvector tables."""
    if new_model(tx, model_id, dim):
        create_embedding_table(tx, dim)


def add_vectors(
    tx: Tx, model_id: str, rows: Sequence[tuple[int, Vector]], *, indexed: bool = False
) -> None:
    """Store (segment id, vector) rows of a registered model, all of its dimension: into the
    pending table (PendingIndexer indexes them later), or with `indexed` straight into the
    HNSW table (a bulk load that builds its index afterwards)."""
    dim = rows[0][1].shape[0]
    tx.insert_rows(segment_text_vector, [
        {"segment_id": sid, "model_id": model_id, "vector": to_blob(v)} for sid, v in rows
    ])
    name = embedding_table(dim) if indexed else pending_table(dim)
    tx.insert_rows(_vector_table(name), [
        {"segment_id": sid, "model_id": model_id, "embedding": VectorParam(v)} for sid, v in rows
    ])


def remove_vectors(tx: Tx, segment_ids: Sequence[int]) -> None:
    for (dim,) in tx.rows(SELECT_DIMS):
        # Pending first: a row PendingIndexer is moving is locked; this waits for the move to
        # commit, and the next statement (a new snapshot) finds the row in the HNSW table.
        for name in (pending_table(int(dim)), embedding_table(int(dim))):
            vectors = _vector_table(name)
            tx.execute(delete(vectors).where(in_ids(vectors.c.segment_id, segment_ids)))
    tx.execute(delete(segment_text_vector)
               .where(in_ids(segment_text_vector.c.segment_id, segment_ids)))


def rebuild_embeddings(tx: Tx) -> None:
    """Re-derive the pgvector rows from the stored float vectors (after a backup import):
    loaded REBUILD_BATCH rows at a time into the HNSW table with its index dropped, which
    is then built once."""
    for model_id, dim in tx.rows(SELECT_MODELS):
        dim = int(dim)
        for name in (pending_table(dim), embedding_table(dim)):
            vectors = _vector_table(name)
            tx.execute(delete(vectors).where(vectors.c.model_id == model_id))
        drop_index(tx, dim)
        indexed = _vector_table(embedding_table(dim))
        after = 0
        while rows := tx.rows(
            select(segment_text_vector.c.segment_id, segment_text_vector.c.vector)
            .where(segment_text_vector.c.model_id == model_id,
                   segment_text_vector.c.segment_id > after)
            .order_by(segment_text_vector.c.segment_id).limit(REBUILD_BATCH)
        ):
            tx.insert_rows(indexed, [
                {"segment_id": int(r.segment_id), "model_id": model_id,
                 "embedding": VectorParam(from_blob(r.vector))}
                for r in rows
            ])
            after = int(rows[-1].segment_id)
        create_embedding_table(tx, dim)


def semantic_search(
    tx: Tx, query: Vector, model_id: str, filters: SearchFilters | None, wanted: int
) -> Scored:
    """(segment id, cosine similarity) best first."""
    checked = checked_query(tx, query, model_id)
    if checked is None:
        return []
    normalised, dim = checked
    literal = vector_literal(normalised)
    condition = filter_condition(filters)
    if not _over_exact_limit(tx, dim, model_id, condition):
        return _best(tx, literal, wanted, _all_vectors(dim), model_id, condition)
    # Many candidates, all ordered exactly: the exact top-k hides among near-ties in a large
    # store (see vector_index.py), and the graph's own order is approximate.
    tx.execute(SEARCH_SETTINGS, {"ef_search": str(HNSW_EF_SEARCH)})
    source = _nearest_vectors(dim, max(wanted, HNSW_CANDIDATES))
    return _best(tx, literal, wanted, source, model_id, condition)


def _over_exact_limit(
    tx: Tx, dim: int, model_id: str, condition: ColumnElement[bool] | None
) -> bool:
    """Whether more than EXACT_SCAN_LIMIT rows match: counted up to the limit only (all that
    matters is which side of it they are). Unfiltered, a table whose planner estimate is far
    past the limit is not counted when one model has this dimension: 20k of its wide rows
    take ~15 ms to count at 1M segments."""
    if condition is None:
        sized = tx.first(SIZE_ESTIMATE, {"name": embedding_table(dim), "dim": dim})
        if sized is not None and sized[1] == 1 and float(sized[0] or 0) > 2 * EXACT_SCAN_LIMIT:
            return True
        indexed, pending = _vector_tables(dim)
        every = union_all(select(indexed.c.model_id), select(pending.c.model_id)).subquery("e")
        counted: Select[Any] = select(literal_column("1")).select_from(every).where(
            every.c.model_id == model_id)
    else:
        counted = select(literal_column("1")).select_from(SEGMENT_CONVERSATION).where(condition)
    return int(tx.value(
        select(func.count()).select_from(counted.limit(EXACT_SCAN_LIMIT + 1).subquery("n"))
    )) > EXACT_SCAN_LIMIT


def _best(
    tx: Tx, literal: str, wanted: int, source: Subquery, model_id: str,
    condition: ColumnElement[bool] | None,
) -> Scored:
    """(segment id, cosine) of the `source` rows of `model_id` whose segment passes
    `condition`, best `wanted` first, ties newer first. A zero vector's NaN distance scores
    0, as on SQLite."""
    score = func.coalesce(
        func.nullif(1.0 - source.c.distance, literal_column("'NaN'::float8")), 0.0, type_=Float
    ).label("score")
    statement: Select[Any] = joined(
        select(source.c.segment_id, score).where(source.c.model_id == model_id),
        source.c.segment_id, condition,
    ).order_by(desc(score), desc(source.c.segment_id)).limit(wanted)
    return [(int(r.segment_id), float(r.score)) for r in tx.rows(statement, {"query": literal})]


class PgSearchIndex:
    """The PostgreSQL search index: the functions above. Its state is in the database (the
    pending vectors are PendingIndexer's, run by memory.pg.PgDatabase): nothing in RAM."""

    @staticmethod
    def add_text(tx: Tx, rows: Sequence[tuple[int, str]]) -> None:
        """Nothing: the tsvector is a generated column of segment_content."""

    @staticmethod
    def remove_text(tx: Tx, segment_ids: Sequence[int]) -> None:
        """Nothing: the tsvector goes with its segment_content row."""

    @staticmethod
    def keyword_search(tx: Tx, query: str, filters: SearchFilters | None, wanted: int) -> Scored:
        return keyword_search(tx, query, filters, wanted)

    @staticmethod
    def register_model(tx: Tx, model_id: str, dim: int) -> None:
        register_model(tx, model_id, dim)

    @staticmethod
    def add_vectors(tx: Tx, model_id: str, rows: Sequence[tuple[int, Vector]]) -> TextCodes:
        if rows:
            register_model(tx, model_id, rows[0][1].shape[0])
            vectors_dim(rows)
            add_vectors(tx, model_id, rows)
        return []

    @staticmethod
    def remove_vectors(tx: Tx, segment_ids: Sequence[int]) -> None:
        remove_vectors(tx, segment_ids)

    @staticmethod
    def rebuild(tx: Tx) -> None:
        rebuild_embeddings(tx)

    @staticmethod
    def semantic_search(
        tx: Tx, query: Vector, model_id: str, filters: SearchFilters | None, wanted: int
    ) -> Scored:
        return semantic_search(tx, query, model_id, filters, wanted)

    @staticmethod
    def generation(tx: Tx) -> int:
        return 0  # nothing in RAM to keep in step

    def publish(self, generation: int, added: TextCodes) -> None:
        """Nothing: no RAM state."""

    def warm(self, tx: Tx) -> None:
        """Nothing: pgvector's index is PostgreSQL's to cache."""

    def clear(self) -> None:
        """Nothing: no RAM state."""


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
            if tx.value(REGCLASS, {"name": "text_model"}) is None:
                return 0  # a store still being created
            for (dim,) in tx.rows(SELECT_DIMS):
                pending = pending_table(int(dim))
                if tx.value(REGCLASS, {"name": pending}) is None:
                    continue  # a store still being migrated
                moved += tx.execute(text(
                    f"WITH moved AS (DELETE FROM {pending} WHERE segment_id IN"
                    f" (SELECT segment_id FROM {pending} ORDER BY segment_id LIMIT :batch"
                    " FOR UPDATE SKIP LOCKED) RETURNING segment_id, model_id, embedding)"
                    f" INSERT INTO {embedding_table(int(dim))}(segment_id, model_id, embedding)"
                    " SELECT segment_id, model_id, embedding FROM moved"
                ), {"batch": INDEX_BATCH})
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
