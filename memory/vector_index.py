"""The SQLite search index (`SqliteSearchIndex`, memory.search_index's interface): keyword
search through FTS5 (memory/text_index.py), and semantic (meaning) search over segment text
vectors here, the one module that knows sqlite-vec. PostgreSQL's is memory/pg_index.py.

Storage: exact float32 vectors in `segment_text_vector`, and binary-quantised codes in a
sqlite-vec `vec0` table `segment_text_bits_<dim>`. Search, three stages (sqlite-vec's own
brute force is ~0.2 s per query at 1M rows on this machine):
1. the codes are held in RAM (dim/8 bytes a row) and a Hamming-distance scan keeps the
   nearest ~1% of rows;
2. those are re-ranked by the asymmetric estimate query . sign(code) (the float query against
   the +-1 code: much finer than Hamming, still in RAM, via per-byte lookup tables);
3. the best ~0.3% of rows (at least 400) are fetched as float32 from SQLite and re-scored
   exactly by cosine.
The candidate counts grow with the store: the exact top-k hides among more near-ties in a
bigger store (a fixed 400 kept recall@20 at 0.36 on the 1M benchmark store, whose texts
are 64 topics of near-ties; these shares give ~0.96 there and ~0.95 at 100k).
A selective filter (one conversation, a rarely heard speaker) skips the first stages and
scores just its rows exactly.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from functools import cache
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import (
    Column,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    Select,
    Table,
    Text,
    TypeDecorator,
    bindparam,
    delete,
    desc,
    func,
    literal_column,
    select,
    text,
)
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from memory import text_index
from memory.db import Tx
from memory.filters import SEGMENT_CONVERSATION, filter_condition, joined
from memory.prepared import Prepared
from memory.search_index import (
    Scored,
    TextCodes,
    checked_query,
    new_model,
    vectors_dim,
)
from memory.sql import in_ids
from memory.tables import meta, segment, segment_text_vector, text_model
from memory.types import SearchFilters, Vector
from memory.vectors import from_blob, to_blob

log = logging.getLogger(__name__)

EXACT_SCAN_LIMIT = 20_000
"""Filtered searches over at most this many rows score every row exactly."""
MIN_CANDIDATES = 400
OVERSAMPLE = 10
EXACT_SHARE = 1 / 300
"""Share of the (matching) rows re-scored exactly: 3.3k of 1M (~10 ms of SQLite reads)."""
RERANK_SHARE = 1 / 100
"""Share of the rows the Hamming scan keeps for the in-RAM asymmetric re-rank."""
RERANK_FACTOR = 3
"""The Hamming scan keeps at least this many times the rows that are re-scored exactly."""
MAX_CANDIDATES = 50_000
GENERATION_KEY = "text_index_generation"

Codes = npt.NDArray[np.uint8]
Ids = npt.NDArray[np.int64]


class _Bits(TypeDecorator[bytes]):
    """A binary code as sqlite-vec's bit vector: the bytes go in through vec_bit()."""

    impl = LargeBinary
    cache_ok = True

    def bind_expression(self, bindvalue: Any) -> Any:
        return func.vec_bit(bindvalue, type_=self)


def bits_table(dim: int) -> str:
    return f"segment_text_bits_{int(dim)}"


@cache
def _bits(dim: int) -> Table:
    """The vec0 table of one dimension's codes, as a Core table (rowid = segment id)."""
    return Table(bits_table(dim), MetaData(), Column("rowid", Integer, primary_key=True),
                 Column("embedding", _Bits()))


def quantise(vector: Vector) -> bytes:
    return np.packbits(vector > 0).tobytes()


SELECT_GENERATION = Prepared(select(meta.c.value).where(meta.c.key == GENERATION_KEY))
_BUMP = sqlite_insert(meta).values(key=GENERATION_KEY, value="1")
BUMP_GENERATION = Prepared(_BUMP.on_conflict_do_update(
    index_elements=[meta.c.key],
    set_={"value": literal_column("CAST(value AS INTEGER) + 1")},
))
"""Tell every process's RAM copy of the codes that the table changed."""


class _CodeTable:
    """Binary codes of one dimension, column-major (one uint64 array per 64 bits), with
    room to grow: appends fill spare capacity, so readers holding an older (columns, size)
    view are never disturbed."""

    def __init__(self, ids: Ids, codes: Codes) -> None:
        self.words = (codes.shape[1] + 7) // 8
        self.size = 0
        self._ids = np.zeros(0, np.int64)
        self._columns = np.zeros((self.words, 0), np.uint64)
        self.append(ids, codes)

    def _as_words(self, codes: Codes) -> npt.NDArray[np.uint64]:
        padded = np.zeros((codes.shape[0], self.words * 8), np.uint8)
        padded[:, : codes.shape[1]] = codes
        return padded.view(np.uint64).T

    def append(self, ids: Ids, codes: Codes) -> None:
        needed = self.size + ids.size
        if needed > self._ids.size:
            capacity = max(needed, int(self._ids.size * 1.5), 1024)
            grown_ids = np.zeros(capacity, np.int64)
            grown_ids[: self.size] = self._ids[: self.size]
            grown = np.zeros((self.words, capacity), np.uint64)
            grown[:, : self.size] = self._columns[:, : self.size]
            self._ids, self._columns = grown_ids, grown
        self._ids[self.size : needed] = ids
        self._columns[:, self.size : needed] = self._as_words(codes)
        self.size = needed

    def view(self) -> tuple[Ids, npt.NDArray[np.uint64], int]:
        return self._ids, self._columns, self.size

    def query_words(self, query_code: bytes) -> npt.NDArray[np.uint64]:
        codes = np.frombuffer(query_code, np.uint8).reshape(1, -1)
        return self._as_words(codes)[:, 0].copy()


def _nearest_positions(
    columns: npt.NDArray[np.uint64], size: int, query: npt.NDArray[np.uint64], count: int
) -> npt.NDArray[np.intp]:
    """Positions of the `count` codes nearest by Hamming distance (ties: lower position
    first), in position order."""
    if count >= size:
        return np.arange(size)
    distances = np.zeros(size, np.uint16)
    for word in range(columns.shape[0]):
        distances += np.bitwise_count(columns[word, :size] ^ query[word])
    # Distances are small integers: a histogram finds the cut-off without sorting 1M values.
    cumulative = np.cumsum(np.bincount(distances))
    cutoff = int(np.searchsorted(cumulative, count))
    below = np.flatnonzero(distances < cutoff)
    at = np.flatnonzero(distances == cutoff)[: count - below.size]
    return np.sort(np.concatenate([below, at]))


_SIGNS = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1).astype(np.float32) * 2 - 1
"""Row v: the 8 bits of byte value v as +-1, most significant first (np.packbits order)."""


def _rerank_positions(
    columns: npt.NDArray[np.uint64], positions: npt.NDArray[np.intp], query: Vector, count: int
) -> npt.NDArray[np.intp]:
    """The `count` positions with the best asymmetric score query . sign(code), in position
    order (ties: lower position first). One lookup table per code byte: the score of each
    of the 256 byte values against the query's 8 dimensions there."""
    if count >= positions.size:
        return positions
    n_bytes = columns.shape[0] * 8
    padded = np.zeros(n_bytes * 8, np.float32)
    padded[: query.shape[0]] = query
    tables = _SIGNS @ padded.reshape(n_bytes, 8).T  # (256, bytes): score of value v at byte j
    code_bytes = np.ascontiguousarray(columns[:, positions].T).view(np.uint8)  # (rows, bytes)
    lookup = code_bytes.astype(np.intp) * n_bytes + np.arange(n_bytes)
    scores = tables.ravel()[lookup].sum(axis=1)
    best = np.argsort(-scores, kind="stable")[:count]
    return positions[np.sort(best)]


SELECT_MODELS = select(text_model.c.model_id, text_model.c.dim)
SELECT_DIMS = select(text_model.c.dim).distinct()
COUNT_MATCHING = select(func.count()).select_from(SEGMENT_CONVERSATION)
TOP_SEGMENT = select(func.coalesce(func.max(segment.c.id), 0))
SELECT_DIMS_OF = (select(segment_text_vector.c.segment_id, text_model.c.dim)
                  .join(text_model, text_model.c.model_id == segment_text_vector.c.model_id))
QUERY = bindparam("query", type_=LargeBinary)
SCORE = func.coalesce(
    1.0 - func.vec_distance_cosine(segment_text_vector.c.vector, QUERY, type_=Float), 0.0
).label("score")
SELECT_SCORED = select(segment_text_vector.c.segment_id, SCORE)
IN_CANDIDATES = segment_text_vector.c.segment_id.in_(
    select(literal_column("value")).select_from(
        func.json_each(bindparam("candidates", type_=Text))
    )
)
"""The candidates, a JSON array of ids bound at execution (memory.sql.in_ids binds them in
the statement, which SQLAlchemy then compiles anew on every search: ~1 ms)."""


class SqliteSearchIndex:
    """The SQLite search index: FTS5 for keywords (memory.text_index), sqlite-vec's binary
    codes for meaning, whose in-RAM first stage (binary codes per dimension) lives here."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._codes: dict[int, _CodeTable] = {}
        self._generation: int | None = None

    # ------------------------------------------------------------ keywords
    @staticmethod
    def add_text(tx: Tx, rows: Sequence[tuple[int, str]]) -> None:
        text_index.add(tx, rows)

    @staticmethod
    def remove_text(tx: Tx, segment_ids: Sequence[int]) -> None:
        text_index.remove(tx, segment_ids)

    @staticmethod
    def keyword_search(tx: Tx, query: str, filters: SearchFilters | None, wanted: int) -> Scored:
        return text_index.search(tx, query, filters, wanted)

    # ------------------------------------------------------------ writes
    @staticmethod
    def register_model(tx: Tx, model_id: str, dim: int) -> None:
        """Record the text model's dimension and make its vec0 table of codes."""
        if new_model(tx, model_id, dim):
            tx.execute(text(f"CREATE VIRTUAL TABLE IF NOT EXISTS {bits_table(dim)}"
                            f" USING vec0(embedding bit[{int(dim)}])"))

    def add_vectors(self, tx: Tx, model_id: str, rows: Sequence[tuple[int, Vector]]) -> TextCodes:
        """Store (segment id, vector) rows; returns the codes `publish` adds to RAM after
        commit."""
        if not rows:
            return []
        self.register_model(tx, model_id, rows[0][1].shape[0])
        dim = vectors_dim(rows)
        packed = np.packbits(np.vstack([v for _, v in rows]) > 0, axis=1)
        bits = [(segment_id, packed[i].tobytes()) for i, (segment_id, _) in enumerate(rows)]
        tx.insert_rows(segment_text_vector, [
            {"segment_id": segment_id, "model_id": model_id, "vector": to_blob(vector)}
            for segment_id, vector in rows
        ])
        tx.insert_rows(_bits(dim), [{"rowid": sid, "embedding": code} for sid, code in bits])
        tx.execute(BUMP_GENERATION)
        return [(dim, sid, code) for sid, code in bits]

    @staticmethod
    def remove_vectors(tx: Tx, segment_ids: Sequence[int]) -> None:
        """Drop these segments' vectors and codes. Every process's RAM codes are reloaded on
        their next search (the generation moves on)."""
        by_dim: dict[int, list[dict[str, int]]] = {}
        for segment_id, dim in tx.stream(
            SELECT_DIMS_OF.where(in_ids(segment_text_vector.c.segment_id, segment_ids))
        ):
            by_dim.setdefault(int(dim), []).append({"rowid": int(segment_id)})
        if not by_dim:
            return
        for dim, ids in by_dim.items():
            # One rowid at a time: vec0 finds a rowid directly, an IN list it would scan.
            bits = _bits(dim)
            tx.execute_many(delete(bits).where(bits.c.rowid == bindparam("rowid")), ids)
        tx.execute(delete(segment_text_vector)
                   .where(in_ids(segment_text_vector.c.segment_id, segment_ids)))
        tx.execute(BUMP_GENERATION)

    @staticmethod
    def rebuild(tx: Tx) -> None:
        """Re-derive the keyword index and every binary code from the stored rows (after a
        backup import)."""
        text_index.rebuild(tx)
        for model_id, dim in tx.rows(SELECT_MODELS):
            tx.insert_rows(_bits(int(dim)), [
                {"rowid": int(segment_id), "embedding": quantise(from_blob(vector))}
                for segment_id, vector in tx.stream(
                    select(segment_text_vector.c.segment_id, segment_text_vector.c.vector)
                    .where(segment_text_vector.c.model_id == model_id)
                )
            ])
        tx.execute(BUMP_GENERATION)

    def publish(self, generation: int, added: TextCodes) -> None:
        """After a commit in this process: append its codes, unless RAM is already stale."""
        if not added:
            return
        with self._lock:
            if self._generation is None or self._generation != generation - 1:
                self._codes.clear()
                self._generation = None
                return
            by_dim: dict[int, list[tuple[int, bytes]]] = {}
            for dim, sid, code in added:
                by_dim.setdefault(dim, []).append((sid, code))
            for dim, items in by_dim.items():
                table = self._codes.get(dim)
                if table is None:
                    continue  # never loaded: the next search loads it whole
                ids = np.array([i for i, _ in items], dtype=np.int64)
                codes = np.frombuffer(b"".join(c for _, c in items), dtype=np.uint8).reshape(
                    len(items), -1
                )
                table.append(ids, codes)
            self._generation = generation

    def clear(self) -> None:
        with self._lock:
            self._codes.clear()
            self._generation = None

    @staticmethod
    def generation(tx: Tx) -> int:
        return int(tx.value(SELECT_GENERATION) or 0)

    # ------------------------------------------------------------ search
    def warm(self, tx: Tx) -> None:
        for (dim,) in tx.rows(SELECT_DIMS):
            self._table_for(tx, int(dim))

    def _table_for(
        self, tx: Tx, dim: int
    ) -> tuple[_CodeTable, tuple[Ids, npt.NDArray[np.uint64], int]]:
        generation = self.generation(tx)
        with self._lock:
            if self._generation != generation:
                self._codes.clear()
                self._generation = generation
            table = self._codes.get(dim)
            if table is None:
                ids, codes = _load_codes(tx, dim)
                table = _CodeTable(ids, codes)
                self._codes[dim] = table
            return table, table.view()

    def semantic_search(
        self, tx: Tx, query: Vector, model_id: str, filters: SearchFilters | None, wanted: int
    ) -> Scored:
        """(segment id, cosine similarity) best first."""
        checked = checked_query(tx, query, model_id)
        if checked is None:
            return []
        query, dim = checked
        condition = filter_condition(filters)
        of_model = segment_text_vector.c.model_id == model_id
        share = 1.0
        if condition is not None:
            matching = int(tx.value(COUNT_MATCHING.where(condition)))
            if matching <= EXACT_SCAN_LIMIT:
                return _best(tx, query, wanted, joined(
                    SELECT_SCORED.where(of_model), segment_text_vector.c.segment_id, condition))
            total = max(1, int(tx.value(TOP_SEGMENT)))
            share = max(matching / total, 1e-6)
        table, (ids, columns, size) = self._table_for(tx, dim)
        if size == 0:
            return []
        exact, rerank = candidate_counts(size, share, wanted)
        positions = _nearest_positions(columns, size, table.query_words(quantise(query)), rerank)
        positions = _rerank_positions(columns, positions, query, exact)
        candidates = sorted(int(i) for i in ids[positions])
        # No filter: the vectors alone.
        return _best(tx, query, wanted, joined(
            SELECT_SCORED.where(IN_CANDIDATES, of_model), segment_text_vector.c.segment_id,
            condition,
        ), {"candidates": "[" + ",".join(map(str, candidates)) + "]"})


def candidate_counts(size: int, share: float, wanted: int) -> tuple[int, int]:
    """(rows re-scored exactly, rows kept by the Hamming scan) for a store of `size` codes
    of which a `share` match the filter."""
    matching = size * share
    exact = max(MIN_CANDIDATES, OVERSAMPLE * wanted, int(matching * EXACT_SHARE)) / share
    exact_count = int(min(size, MAX_CANDIDATES, exact))
    rerank = min(size, max(RERANK_FACTOR * exact_count, int(size * RERANK_SHARE)))
    return exact_count, rerank


def _best(
    tx: Tx, query: Vector, wanted: int, source: Select[Any],
    candidates: dict[str, str] | None = None,
) -> Scored:
    """(segment id, cosine) of the rows `source` (SELECT_SCORED with its conditions) selects,
    best `wanted` first (ties: newer segment first). Scored inside SQLite by sqlite-vec, so
    thousands of 1.5 kB vectors never become Python objects (~25% of a 1M search). A zero
    vector has no direction: its NaN distance is NULL, scored 0."""
    statement = source.order_by(desc(SCORE), desc(segment_text_vector.c.segment_id)).limit(wanted)
    return [(int(r.segment_id), float(r.score)) for r in tx.rows(
        statement, {"query": query.astype(np.float32).tobytes(), **(candidates or {})})]


def _load_codes(tx: Tx, dim: int) -> tuple[Ids, Codes]:
    """All codes of one dimension. Reads sqlite-vec's chunk tables directly (1024 codes per
    row: ~100x faster than scanning the virtual table at 1M rows); falls back to the scan if
    the layout is not the one expected."""
    table = bits_table(dim)
    width = dim // 8
    try:
        id_parts: list[Ids] = []
        code_parts: list[Codes] = []
        for validity, rowids, vectors in tx.stream(text(
            f"SELECT c.validity, c.rowids, v.vectors FROM {table}_chunks c"
            f" JOIN {table}_vector_chunks00 v ON v.rowid = c.chunk_id ORDER BY c.chunk_id"
        )):
            valid = np.unpackbits(np.frombuffer(validity, np.uint8), bitorder="little").astype(bool)
            chunk_ids = np.frombuffer(rowids, np.int64)
            chunk_codes = np.frombuffer(vectors, np.uint8).reshape(-1, width)
            n = min(valid.size, chunk_ids.size, chunk_codes.shape[0])
            id_parts.append(chunk_ids[:n][valid[:n]])
            code_parts.append(chunk_codes[:n][valid[:n]])
        ids = np.concatenate(id_parts) if id_parts else np.zeros(0, np.int64)
        codes = np.vstack(code_parts) if code_parts else np.zeros((0, width), np.uint8)
        expected = int(tx.value(text(f"SELECT count(*) FROM {table}_rowids")))
        if ids.size == expected:
            return ids, codes
        log.warning("unexpected sqlite-vec chunk layout in %s; scanning it instead", table)
    except Exception:
        log.warning("cannot read sqlite-vec chunks of %s; scanning it instead", table)
    id_list: list[int] = []
    code_list: list[bytes] = []
    for rowid, embedding in tx.stream(text(f"SELECT rowid, embedding FROM {table}")):
        id_list.append(rowid)
        code_list.append(embedding)
    ids = np.array(id_list, dtype=np.int64)
    codes = np.frombuffer(b"".join(code_list), dtype=np.uint8).reshape(-1, width)
    return ids, codes
