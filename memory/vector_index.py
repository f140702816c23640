"""Semantic (meaning) search over segment text vectors. On SQLite (below) the one module that
knows sqlite-vec; on PostgreSQL each entry point hands over to memory/pg_index.py (pgvector
HNSW), picked by the transaction's dialect.

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
from typing import Any

import numpy as np
import numpy.typing as npt

from memory import pg_index
from memory.db import Tx
from memory.errors import ModelMismatch
from memory.filters import filter_clause, is_empty
from memory.types import SearchFilters, Vector
from memory.vectors import as_vector, from_blob, normalize, to_blob

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


def bits_table(dim: int) -> str:
    return f"segment_text_bits_{int(dim)}"


def quantise(vector: Vector) -> bytes:
    return np.packbits(vector > 0).tobytes()


def register_model(tx: Tx, model_id: str, dim: int) -> None:
    """Record the text model's dimension; vectors of another dimension are refused."""
    row = tx.one("SELECT dim FROM text_model WHERE model_id = ?", (model_id,))
    if row is not None:
        if int(row[0]) != dim:
            raise ModelMismatch(
                f"text model {model_id!r} has {row[0]}-d vectors in this store, got {dim}-d"
            )
        return
    if dim % 8 != 0:
        raise ModelMismatch(f"text vectors must have a dimension divisible by 8, got {dim}")
    tx.run("INSERT INTO text_model(model_id, dim) VALUES (?, ?)", (model_id, dim))
    if tx.dialect == "postgresql":
        pg_index.create_embedding_table(tx, dim)
        return
    tx.run(f"CREATE VIRTUAL TABLE IF NOT EXISTS {bits_table(dim)} USING vec0(embedding bit[{dim}])")


def model_dim(tx: Tx, model_id: str) -> int | None:
    value = tx.scalar("SELECT dim FROM text_model WHERE model_id = ?", (model_id,))
    return None if value is None else int(value)


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


class TextVectorIndex:
    """The in-RAM first stage (binary codes per dimension) plus the SQL around it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._codes: dict[int, _CodeTable] = {}
        self._generation: int | None = None

    # ------------------------------------------------------------ writes
    def add(self, tx: Tx, model_id: str, rows: Sequence[tuple[int, Vector]]) -> list[
        tuple[int, int, bytes]
    ]:
        """Store (segment id, vector) rows; returns what `publish` adds to RAM after commit
        (nothing on PostgreSQL: its index is pgvector's, in the database)."""
        if not rows:
            return []
        dim = rows[0][1].shape[0]
        register_model(tx, model_id, dim)
        for _, vector in rows:
            if vector.shape[0] != dim:
                raise ModelMismatch(
                    f"text vectors of one result differ in dimension ({dim} and {vector.shape[0]})"
                )
        if tx.dialect == "postgresql":
            pg_index.add_vectors(tx, model_id, rows)
            return []
        floats = [(segment_id, model_id, to_blob(vector)) for segment_id, vector in rows]
        packed = np.packbits(np.vstack([v for _, v in rows]) > 0, axis=1)
        bits = [(segment_id, packed[i].tobytes()) for i, (segment_id, _) in enumerate(rows)]
        tx.many(
            "INSERT INTO segment_text_vector(segment_id, model_id, vector) VALUES (?, ?, ?)",
            floats,
        )
        tx.many(f"INSERT INTO {bits_table(dim)}(rowid, embedding) VALUES (?, vec_bit(?))", bits)
        _bump_generation(tx)
        return [(dim, sid, code) for sid, code in bits]

    @staticmethod
    def remove(tx: Tx, segment_ids_json: str) -> None:
        """Drop these segments' (a JSON list of ids) vectors and codes. Every process's RAM
        codes are reloaded on their next search (the generation moves on)."""
        if tx.dialect == "postgresql":
            pg_index.remove_vectors(tx, segment_ids_json)
            return
        rows = tx.all(
            "SELECT v.segment_id, m.dim FROM segment_text_vector v"
            " JOIN text_model m ON m.model_id = v.model_id"
            " WHERE v.segment_id IN (SELECT value FROM json_each(?))",
            (segment_ids_json,),
        )
        if not rows:
            return
        by_dim: dict[int, list[tuple[int]]] = {}
        for segment_id, dim in rows:
            by_dim.setdefault(int(dim), []).append((int(segment_id),))
        for dim, ids in by_dim.items():
            # One rowid at a time: vec0 finds a rowid directly, an IN list it would scan.
            tx.many(f"DELETE FROM {bits_table(dim)} WHERE rowid = ?", ids)
        tx.run(
            "DELETE FROM segment_text_vector WHERE segment_id IN (SELECT value FROM json_each(?))",
            (segment_ids_json,),
        )
        _bump_generation(tx)

    def publish(self, tx_generation: int, added: Sequence[tuple[int, int, bytes]]) -> None:
        """After a commit in this process: append its codes, unless RAM is already stale."""
        with self._lock:
            if self._generation is None or self._generation != tx_generation - 1:
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
            self._generation = tx_generation

    def clear(self) -> None:
        with self._lock:
            self._codes.clear()
            self._generation = None

    @staticmethod
    def generation(tx: Tx) -> int:
        value = tx.scalar("SELECT value FROM meta WHERE key = ?", (GENERATION_KEY,))
        return int(value or 0)

    # ------------------------------------------------------------ search
    def warm(self, tx: Tx, dim: int) -> None:
        if tx.dialect == "sqlite":
            self._table_for(tx, dim)

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

    def search(
        self, tx: Tx, query: Vector, model_id: str, filters: SearchFilters | None, wanted: int
    ) -> list[tuple[int, float]]:
        """(segment id, cosine similarity) best first."""
        if tx.dialect == "postgresql":
            return pg_index.semantic_search(tx, query, model_id, filters, wanted)
        query = as_vector(query, "query vector")
        dim = model_dim(tx, model_id)
        if dim is None:
            return []
        if query.shape[0] != dim:
            raise ModelMismatch(
                f"query vector has {query.shape[0]} dimensions; text model {model_id!r} has {dim}"
            )
        query = normalize(query)
        where, params = filter_clause(filters)
        joins = (
            " JOIN segment s ON s.id = v.segment_id"
            " JOIN conversation c ON c.id = s.conversation_id"
        )
        share = 1.0
        if not is_empty(filters):
            matching = int(tx.scalar(
                "SELECT count(*) FROM segment s JOIN conversation c ON c.id = s.conversation_id"
                f" WHERE 1 = 1{where}", params,
            ))
            if matching <= EXACT_SCAN_LIMIT:
                return _best(
                    tx, query, wanted,
                    f"FROM segment_text_vector v{joins} WHERE v.model_id = ?{where}",
                    [model_id, *params],
                )
            total = max(1, int(tx.scalar("SELECT COALESCE(MAX(id), 0) FROM segment")))
            share = max(matching / total, 1e-6)
        table, (ids, columns, size) = self._table_for(tx, dim)
        if size == 0:
            return []
        exact, rerank = candidate_counts(size, share, wanted)
        positions = _nearest_positions(columns, size, table.query_words(quantise(query)), rerank)
        positions = _rerank_positions(columns, positions, query, exact)
        candidates = [int(i) for i in ids[positions]]
        if not where:
            joins = ""  # no filter: the vectors alone
        return _best(
            tx, query, wanted,
            f"FROM segment_text_vector v{joins}"
            f" WHERE v.segment_id IN (SELECT value FROM json_each(?)) AND v.model_id = ?{where}",
            [_json_ids(sorted(candidates)), model_id, *params],
        )


def candidate_counts(size: int, share: float, wanted: int) -> tuple[int, int]:
    """(rows re-scored exactly, rows kept by the Hamming scan) for a store of `size` codes
    of which a `share` match the filter."""
    matching = size * share
    exact = max(MIN_CANDIDATES, OVERSAMPLE * wanted, int(matching * EXACT_SHARE)) / share
    exact_count = int(min(size, MAX_CANDIDATES, exact))
    rerank = min(size, max(RERANK_FACTOR * exact_count, int(size * RERANK_SHARE)))
    return exact_count, rerank


def rebuild_codes(tx: Tx) -> None:
    """Re-derive every binary code from the stored float vectors (after a backup import)."""
    if tx.dialect == "postgresql":
        pg_index.rebuild_embeddings(tx)
        return
    for model_id, dim in tx.all("SELECT model_id, dim FROM text_model"):
        vectors = tx.all(
            "SELECT segment_id, vector FROM segment_text_vector WHERE model_id = ?", (model_id,)
        )
        tx.many(
            f"INSERT INTO {bits_table(int(dim))}(rowid, embedding) VALUES (?, vec_bit(?))",
            [(int(sid), quantise(from_blob(blob))) for sid, blob in vectors],
        )
    _bump_generation(tx)


def _bump_generation(tx: Tx) -> None:
    """Tell every process's RAM copy of the codes that the table changed."""
    tx.run(
        "INSERT INTO meta(key, value) VALUES (?, '1') ON CONFLICT(key) DO UPDATE"
        " SET value = CAST(value AS INTEGER) + 1",
        (GENERATION_KEY,),
    )


def _json_ids(ids: Sequence[int]) -> str:
    return "[" + ",".join(str(int(i)) for i in ids) + "]"


def _best(
    tx: Tx, query: Vector, wanted: int, source: str, params: Sequence[Any]
) -> list[tuple[int, float]]:
    """(segment id, cosine) of the rows `source` ("FROM ... WHERE ...", aliasing the vectors
    as v) selects, best `wanted` first (ties: newer segment first). Scored inside SQLite by
    sqlite-vec, so thousands of 1.5 kB vectors never become Python objects (~25% of a 1M
    search). A zero vector has no direction: its NaN distance is NULL, scored 0."""
    rows = tx.all(
        "SELECT v.segment_id, COALESCE(1.0 - vec_distance_cosine(v.vector, ?), 0.0) AS score"
        f" {source} ORDER BY score DESC, v.segment_id DESC LIMIT ?",
        [query.astype(np.float32).tobytes(), *params, wanted],
    )
    return [(int(r[0]), float(r[1])) for r in rows]


def _load_codes(tx: Tx, dim: int) -> tuple[Ids, Codes]:
    """All codes of one dimension. Reads sqlite-vec's chunk tables directly (1024 codes per
    row: ~100x faster than scanning the virtual table at 1M rows); falls back to the scan if
    the layout is not the one expected."""
    table = bits_table(dim)
    width = dim // 8
    try:
        rows = tx.all(
            f"SELECT c.validity, c.rowids, v.vectors FROM {table}_chunks c"
            f" JOIN {table}_vector_chunks00 v ON v.rowid = c.chunk_id ORDER BY c.chunk_id"
        )
        id_parts: list[Ids] = []
        code_parts: list[Codes] = []
        for validity, rowids, vectors in rows:
            valid = np.unpackbits(np.frombuffer(validity, np.uint8), bitorder="little").astype(bool)
            chunk_ids = np.frombuffer(rowids, np.int64)
            chunk_codes = np.frombuffer(vectors, np.uint8).reshape(-1, width)
            n = min(valid.size, chunk_ids.size, chunk_codes.shape[0])
            id_parts.append(chunk_ids[:n][valid[:n]])
            code_parts.append(chunk_codes[:n][valid[:n]])
        ids = np.concatenate(id_parts) if id_parts else np.zeros(0, np.int64)
        codes = np.vstack(code_parts) if code_parts else np.zeros((0, width), np.uint8)
        expected = int(tx.scalar(f"SELECT count(*) FROM {table}_rowids"))
        if ids.size == expected:
            return ids, codes
        log.warning("unexpected sqlite-vec chunk layout in %s; scanning it instead", table)
    except Exception:
        log.warning("cannot read sqlite-vec chunks of %s; scanning it instead", table)
    scanned = tx.all(f"SELECT rowid, embedding FROM {table}")
    ids = np.fromiter((r[0] for r in scanned), dtype=np.int64, count=len(scanned))
    codes = np.frombuffer(b"".join(r[1] for r in scanned), dtype=np.uint8).reshape(-1, width)
    return ids, codes
